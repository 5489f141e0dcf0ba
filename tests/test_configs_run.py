"""Every shipped config runs as its comment documents it, shortened by overrides, from a directory that is not the
checkout; each run publishes `model/` with its own card and provenance."""

from __future__ import annotations

import json
import os
import shlex
import stat
from pathlib import Path

import pytest
import yaml

from r1.assets import CONFIGS, config_names
from r1.cli import main as cli
from r1.train.publish import verify_provenance

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[1]
FAST = ["train.steps=2", "train.threads=1", "checkpoint.every=0", "logging.progress=false", "logging.plots=false"]
SMALL_GRPO = [
    "grpo.prompts_per_rollout=2",
    "grpo.group_size=4",
    "train.batch_size=8",
    "grpo.max_new_tokens=12",
    "grpo.train_items=8",
    "grpo.eval_items=2",
    "grpo.eval_k=2",
    "train.eval_every=0",
    "train.dtype=fp32",  # bf16 autocast is slow on CPUs without AVX-512 BF16; the recipe itself is unchanged
]
PAPER_SFT = ["train.batch_size=2", "data.seq_len=256", "train.dtype=fp32"]
# name → (the documented command's own overrides, the overrides that make it a seconds-long run)
DOCUMENTED = {
    "pretrain-tiny": ([], ["data.builtin=200", "train.batch_size=2", "data.seq_len=64"]),
    "pretrain-small": ([], ["data.builtin=200", "train.batch_size=2", "data.seq_len=64"]),
    "sft-tiny": ([], ["train.batch_size=2"]),
    "distill-tiny": ([], ["train.batch_size=2", "distill.max_new_tokens=8"]),
    "r1-zero-tiny": ([], SMALL_GRPO),
    "r1-zero-nature": (["model.path=base-tiny"], SMALL_GRPO),  # documented: model.path=/path/to/base
    # the R1 stages at the paper's scale: documented with the paths of real data, here the shipped model and data
    "r1-cold-start-sft": (["model.path=base-tiny", "data.paths=[r1/assets/sft-tiny.jsonl]"], PAPER_SFT),
    "r1-reasoning-rl": (["model.path=base-tiny", "data.paths=[]", "data.eval_paths=[]"], SMALL_GRPO),
    "r1-rejection-sft": (["model.path=base-tiny", "data.paths=[r1/assets/sft-tiny.jsonl]"], PAPER_SFT),
    "r1-all-scenario-rl": (["model.path=base-tiny", "data.paths=[]", "data.eval_paths=[]"], SMALL_GRPO),
    "r1-distill-sft": (["model.path=base-tiny", "data.paths=[r1/assets/sft-tiny.jsonl]"], PAPER_SFT),
}


def test_every_shipped_config_is_covered():
    assert sorted(DOCUMENTED) == config_names()


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_config_runs_as_documented(name, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # not the checkout: shipped paths must resolve anyway
    documented, fast = DOCUMENTED[name]
    out = tmp_path / "run"
    config = REPO / "configs" / f"{name}.yaml"  # the path the comments give, through the checkout's link
    umask = os.umask(0o022)
    try:
        assert cli(["train", "--config", str(config), *documented, *fast, *FAST, f"train.out={out}"]) == 0
    finally:
        os.umask(umask)
    modes = {str(p.relative_to(out)): stat.S_IMODE(p.stat().st_mode) for p in out.rglob("*") if p.is_file()}
    assert modes == dict.fromkeys(modes, 0o644)  # checkpoints, trainer state and model/ alike: readable by others
    assert f"model: {out / 'model'}" in capsys.readouterr().out
    shipped = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())
    ran = yaml.safe_load((out / "config.yaml").read_text())
    for section in ("optim", "schedule"):  # what the file says is what ran (the overrides above touch neither)
        for key, value in (shipped.get(section) or {}).items():
            assert ran[section][key] == value, f"{section}.{key}"
    model = out / "model"
    verify_provenance(model)
    made = json.loads((model / "provenance.json").read_text())
    assert made["stage"] == shipped["stage"] and made["metrics"]["steps"] == 2
    assert made["command"] == f"r1 train --config {config} " + shlex.join(
        [*documented, *fast, *FAST, f"train.out={out}"]
    )
    meta = yaml.safe_load((model / "README.md").read_text().split("---\n")[1])
    assert meta["pipeline_tag"] == "text-generation" and shipped["stage"] in meta["tags"]
    assert made["config"]["model"]["path"] == ran["model"]["path"]
    if ran["model"]["path"]:
        assert Path(ran["model"]["path"]).is_dir() and made["base_model"] == "r1/assets/base-tiny"  # shipped: by name
        assert "`r1/assets/base-tiny`" in (model / "README.md").read_text()
