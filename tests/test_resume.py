"""Exact resume: a run SIGKILLed anywhere (mid-step, mid-checkpoint-write) and resumed ends bit-identical to an
uninterrupted run; corrupt or partial checkpoints are detected, named, and skipped."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from r1.errors import CheckpointError
from r1.train.checkpointing import latest_checkpoint, verify
from r1.train.testing import (
    assert_identical,
    state_copy,
    tiny_overrides,
    token_corpus,
    train_run,
    write_config,
    write_jsonl,
)

ROOT = Path(__file__).resolve().parents[1]


def _config_file(tmp: Path) -> Path:
    data = write_jsonl(tmp / "train.jsonl", token_corpus())
    overrides = [*tiny_overrides(tmp / "unused"), f"data.paths=[{data}]", "checkpoint.every=2",
                 "checkpoint.keep_last=3"]
    return write_config(tmp / "config.yaml", overrides)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("resume")
    config = _config_file(tmp)
    result = train_run(config, tmp / "reference")
    return config, tmp / "reference", state_copy(result.model)


def _steps_logged(run: Path) -> list[int]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [r["step"] for r in map(json.loads, lines) if r["event"] == "step"]


def test_sigkill_anywhere_then_resume_gives_identicalstate_copy(reference, tmp_path):
    config, _, ref = reference
    kills = {  # run name: (step, where) — checkpoints every 2 steps of 6
        "before-any-checkpoint": (1, "step"),
        "mid-step": (3, "step"),
        "mid-checkpoint-write": (4, "checkpoint"),
        "mid-final-checkpoint": (6, "checkpoint"),
    }
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-m", "r1.train.cli", "--config", str(config), f"train.out={tmp_path / name}",
             f"debug.kill_at_step={step}", f"debug.kill_where={where}"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        for name, (step, where) in kills.items()
    }
    for name, p in procs.items():  # launched together: the interpreter start-ups overlap
        _, err = p.communicate(timeout=300)
        assert p.returncode == -9, f"{name}: exit {p.returncode}\n{err[-2000:]}"
    ckpts = tmp_path / "mid-checkpoint-write" / "checkpoints"
    assert (ckpts / "step-000004.tmp").is_dir() and not (ckpts / "step-000004.tmp" / "COMPLETE").exists()
    assert latest_checkpoint(tmp_path / "mid-checkpoint-write").name == "step-000002"
    assert latest_checkpoint(tmp_path / "before-any-checkpoint") is None

    for name in kills:
        result = train_run(config, tmp_path / name, "train.resume=true")
        assert_identical(result.model, ref)
        assert _steps_logged(tmp_path / name) == [1, 2, 3, 4, 5, 6], name  # no step logged twice
        assert not list((tmp_path / name / "checkpoints").glob("*.tmp"))


def test_corrupt_checkpoints_are_named_and_resume_falls_back(reference, tmp_path):
    config, ref_dir, ref = reference
    run = tmp_path / "run"
    shutil.copytree(ref_dir, run)
    ckpts = run / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == ["step-000002", "step-000004", "step-000006"]

    weights = ckpts / "step-000006" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"step-000006: model\.safetensors is \d+ bytes.*truncated"):
        verify(ckpts / "step-000006")
    (ckpts / "step-000004" / "trainer_state.json").unlink()
    with pytest.raises(CheckpointError, match=r"step-000004: missing file trainer_state\.json"):
        verify(ckpts / "step-000004")
    (ckpts / "step-000002" / "COMPLETE").unlink()
    with pytest.raises(CheckpointError, match=r"step-000002: incomplete checkpoint \(no COMPLETE"):
        verify(ckpts / "step-000002")
    with pytest.warns(UserWarning) as caught:
        assert latest_checkpoint(run) is None
    assert [str(w.message).split(": ")[1].rsplit("/", 1)[-1] for w in caught] == [
        "step-000006", "step-000004", "step-000002"]

    shutil.rmtree(ckpts / "step-000002")
    shutil.copytree(ref_dir / "checkpoints" / "step-000002", ckpts / "step-000002")
    with pytest.warns(UserWarning) as caught:
        result = train_run(config, run, "train.resume=true")  # skips 6 and 4, resumes from 2
    assert "step-000004: missing file" in str(caught[-1].message)
    assert_identical(result.model, ref)
    verify(ckpts / "step-000006")  # rewritten whole
