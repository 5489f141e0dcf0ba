"""Exact resume: a run SIGKILLed anywhere (mid-step, mid-checkpoint-write) and resumed ends bit-identical to an
uninterrupted run; corrupt or partial checkpoints (by size and by content hash) are detected, named, and skipped;
a run folder is never silently mixed with an earlier run, and a resume keeps the record of changed settings."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import yaml
from trainer_fixtures import (
    assert_identical,
    killed_runs,
    state_copy,
    tiny_overrides,
    token_corpus,
    train_run,
    write_config,
    write_jsonl,
)

from r1.errors import CheckpointError
from r1.train.checkpointing import latest_checkpoint, verify


def _config_file(tmp: Path) -> Path:
    data = write_jsonl(tmp / "train.jsonl", token_corpus())
    overrides = [
        *tiny_overrides(tmp / "unused"),
        f"data.paths=[{data}]",
        "checkpoint.every=2",
        "checkpoint.keep_last=3",
    ]
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
    overrides = {
        name: [f"debug.kill_at_step={step}", f"debug.kill_where={where}"] for name, (step, where) in kills.items()
    }
    killed_runs(config, tmp_path, overrides)
    ckpts = tmp_path / "mid-checkpoint-write" / "checkpoints"
    assert (ckpts / "step-000004.tmp").is_dir() and not (ckpts / "step-000004.tmp" / "COMPLETE").exists()
    assert latest_checkpoint(tmp_path / "mid-checkpoint-write").name == "step-000002"
    assert latest_checkpoint(tmp_path / "before-any-checkpoint") is None

    for name in kills:
        result = train_run(config, tmp_path / name, "train.resume=true")
        assert_identical(result.model, ref)
        assert _steps_logged(tmp_path / name) == [1, 2, 3, 4, 5, 6], name  # no step logged twice
        assert len(_events(tmp_path / name, "start")) == 1, name  # a restart from step 0 replaced the metrics
        assert not list((tmp_path / name / "checkpoints").glob("*.tmp"))


def _events(run: Path, kind: str) -> list[dict]:
    return [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if r["event"] == kind]


def _tree(path: Path) -> dict[str, bytes]:
    """Every file under `path` with its bytes: to show that a refused command changed nothing."""
    return {str(f.relative_to(path)): f.read_bytes() for f in sorted(path.rglob("*")) if f.is_file()}


def _same_size_garbage(path: Path, start: int = 0) -> None:
    """Overwrite a file's bytes from `start` on with others, keeping its size (what a size-only manifest misses)."""
    data = bytearray(path.read_bytes())
    data[start:] = bytes((b + 1) % 256 for b in data[start:])
    path.write_bytes(bytes(data))


def _cli(argv: list[str], capsys) -> tuple[int, list[str]]:
    from r1.cli import main

    rc = main(["train", *argv])
    return rc, [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def test_verify_names_the_file_and_the_problem(reference, tmp_path):
    _, ref_dir, _ = reference
    run = tmp_path / "run"
    shutil.copytree(ref_dir, run)
    ckpts = run / "checkpoints"
    verify(ckpts / "step-000006")
    weights = ckpts / "step-000006" / "model.safetensors"
    _same_size_garbage(weights, start=weights.stat().st_size // 2)  # the header stays readable
    with pytest.raises(CheckpointError, match=r"step-000006: model\.safetensors does not match its sha256"):
        verify(ckpts / "step-000006")
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
        "step-000006",
        "step-000004",
        "step-000002",
    ]


def test_overwritten_weights_and_garbage_state_are_skipped_and_resume_is_exact(reference, tmp_path, capsys):
    config, ref_dir, ref = reference
    run = tmp_path / "run"
    shutil.copytree(ref_dir, run)
    ckpts = run / "checkpoints"
    # step 6: weights overwritten in place, size unchanged: only the content hash sees it
    _same_size_garbage(ckpts / "step-000006" / "model.safetensors", start=4096)
    # step 4: a manifest of the older, size-only kind, and a trainer_state.json of the right size that is garbage
    manifest = json.loads((ckpts / "step-000004" / "COMPLETE").read_text())
    manifest["files"] = {name: entry["size"] for name, entry in manifest["files"].items()}
    (ckpts / "step-000004" / "COMPLETE").write_text(json.dumps(manifest))
    state = ckpts / "step-000004" / "trainer_state.json"
    state.write_bytes(b"\x00" * state.stat().st_size)
    capsys.readouterr()
    result = train_run(config, run, "train.resume=true")  # skips 6 and 4, resumes from 2
    assert_identical(result.model, ref)
    warned = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warned) == 2
    assert "step-000006: model.safetensors does not match its sha256" in warned[0]
    assert "step-000004: unreadable trainer_state.json" in warned[1]
    verify(ckpts / "step-000006")  # rewritten whole
    verify(ckpts / "step-000004")
    assert [e["checkpoint"].rsplit("/", 1)[-1] for e in _events(run, "resume")] == ["step-000002"]


def test_resume_with_no_intact_checkpoint_stops_and_changes_nothing(reference, tmp_path, capsys):
    config, ref_dir, _ = reference
    run = tmp_path / "run"
    shutil.copytree(ref_dir, run)
    ckpts = run / "checkpoints"
    _same_size_garbage(ckpts / "step-000006" / "model.safetensors", start=4096)
    (ckpts / "step-000004" / "COMPLETE").unlink()
    _same_size_garbage(ckpts / "step-000002" / "trainer_state.safetensors", start=4096)
    before = _tree(run)
    rc, err = _cli(["--config", str(config), "--out", str(run), "--resume"], capsys)
    assert rc == 2 and len(err) == 1, err
    assert err[0].startswith("error: resume: none of the 3 checkpoints") and "nothing was changed" in err[0]
    for culprit in (
        "step-000006: model.safetensors does not match",
        "step-000004: incomplete checkpoint",
        "step-000002: trainer_state.safetensors does not match",
    ):
        assert culprit in err[0]
    assert _tree(run) == before


def test_fresh_start_in_an_earlier_run_folder_needs_resume_or_overwrite(reference, tmp_path, capsys):
    config, ref_dir, ref = reference
    run = tmp_path / "run"
    shutil.copytree(ref_dir, run)
    before = _tree(run)
    rc, err = _cli(["--config", str(config), "--out", str(run)], capsys)
    assert rc == 2 and len(err) == 1, err
    assert "already holds checkpoints (latest step-000006)" in err[0] and "--resume" in err[0]
    assert _tree(run) == before
    rc, err = _cli(["--config", str(config), "--out", str(run), "--resume", "--overwrite"], capsys)
    assert rc == 2 and err == [
        "error: train.overwrite=True: excludes train.resume (--overwrite deletes what --resume would continue)"
    ]

    # a folder with metrics but no checkpoint (a run killed before its first one) is an earlier run too
    shutil.rmtree(run / "checkpoints")
    rc, err = _cli(["--config", str(config), "--out", str(run)], capsys)
    assert rc == 2 and "already holds a run (metrics.jsonl, no checkpoint)" in err[0]

    shutil.copytree(ref_dir / "checkpoints", run / "checkpoints")
    result = train_run(config, run, "train.overwrite=true")
    assert_identical(result.model, ref)
    assert len(_events(run, "start")) == 1 and _steps_logged(run) == [1, 2, 3, 4, 5, 6]  # nothing appended


@pytest.mark.parametrize("change", ["optim.lr=1e-3", "data.seq_len=32", "train.batch_size=2"])
def test_resume_refuses_changes_that_shape_the_steps_taken(reference, tmp_path, capsys, change):
    config, ref_dir, _ = reference
    run = tmp_path / "run"
    shutil.copytree(ref_dir, run)
    shutil.rmtree(run / "checkpoints" / "step-000006")
    before = _tree(run)
    rc, err = _cli(["--config", str(config), "--out", str(run), "--resume", change], capsys)
    key = change.split("=")[0]
    assert rc == 2 and len(err) == 1, err
    assert err[0].startswith(f"error: resume: {key} changed since step-000004 ({key} ")
    assert "--allow-config-change" in err[0]
    assert _tree(run) == before


def test_resume_with_allowed_changes_keeps_the_earlier_config(reference, tmp_path, capsys):
    config, ref_dir, _ = reference
    run = tmp_path / "run"
    shutil.copytree(ref_dir, run)
    shutil.rmtree(run / "checkpoints" / "step-000006")
    original = (run / "config.yaml").read_text()
    rc, err = _cli(
        ["--config", str(config), "--out", str(run), "--resume", "--allow-config-change", "optim.lr=1e-3"], capsys
    )
    assert rc == 0, err
    assert any(line == "resume: settings changed since step-000004: optim.lr 0.003 -> 0.001" for line in err), err
    assert (run / "config.yaml").read_text() == original  # how steps 1-4 were trained
    assert yaml.safe_load((run / "config.resume-1.yaml").read_text())["optim"]["lr"] == 1e-3
    (event,) = _events(run, "resume")
    assert event["changed"] == {"optim.lr": [3e-3, 1e-3]} and event["config"] == "config.resume-1.yaml"

    # train.steps may change without the flag; the change is listed and recorded in the next config file
    rc, err = _cli(["--config", str(config), "--out", str(run), "--resume", "optim.lr=1e-3", "train.steps=8"], capsys)
    assert rc == 0, err
    assert any(line.endswith("since step-000006: train.steps 6 -> 8") for line in err), err
    assert yaml.safe_load((run / "config.resume-2.yaml").read_text())["train"]["steps"] == 8
    assert _steps_logged(run) == [1, 2, 3, 4, 5, 6, 7, 8]
    assert (run / "config.yaml").read_text() == original


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_FSIZE semantics are Linux's")
def test_a_failed_checkpoint_write_removes_its_tmp_and_says_why(reference, tmp_path, capsys):
    """A real write failure: the kernel refuses writes past RLIMIT_FSIZE (EFBIG) as a full disk does (ENOSPC)."""
    import resource
    import signal

    config, _, _ = reference
    run = tmp_path / "run"
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the kernel kills the writer instead of failing
    # below the test model's 1.5 MB of weights, above everything else the run writes; only the soft limit, so the
    # old one can be restored
    resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, hard))
    try:
        rc, err = _cli(["--config", str(config), "--out", str(run)], capsys)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)
    assert rc == 2 and len(err) == 1, err
    assert err[0].startswith(f"error: {run / 'checkpoints' / 'step-000002'}: writing the checkpoint failed: ")
    assert "File too large" in err[0] and "removed the partial step-000002.tmp" in err[0]
    assert list((run / "checkpoints").iterdir()) == []  # no .tmp, no half checkpoint
    (failed,) = _events(run, "error")
    assert failed["step"] == 2 and "File too large" in failed["error"]
