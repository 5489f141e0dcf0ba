"""Fixtures for the trainer's tests: a very small V3 model and a random token corpus.

A training step of this model on 4 × 64 tokens takes a few milliseconds on one CPU thread, so tests can run
whole runs (checkpoints, resume, two processes) in seconds.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from r1.train.config import TrainConfig, apply_override, load_config

# `tiny`'s V3 ratios (MLA, 1 shared + 16 routed experts in 4 groups, MTP depth 1) at half the width, 2 layers
TINY_MODEL: dict[str, Any] = {
    "preset": "tiny",
    "vocab_size": 300,
    "hidden_size": 64,
    "intermediate_size": 128,
    "moe_intermediate_size": 32,
    "num_hidden_layers": 2,
    "q_lora_rank": 48,
    "kv_lora_rank": 32,
    "qk_nope_head_dim": 16,
    "qk_rope_head_dim": 8,
    "v_head_dim": 16,
}


def tiny_overrides(out: str | Path, **extra: Any) -> list[str]:
    """Dotted overrides for a fast run into `out`: tiny model, seq_len 64, batch 4, 6 steps, one thread."""
    base = {f"model.{k}": v for k, v in TINY_MODEL.items()}
    base.update(
        {
            "data.seq_len": 64,
            "train.batch_size": 4,
            "train.steps": 6,
            "train.threads": 1,
            "train.out": str(out),
            "schedule.warmup_steps": 2,
            "logging.progress": False,
            "logging.plots": False,
            "logging.report": False,
        }
    )
    base.update({k.replace("__", "."): v for k, v in extra.items()})
    return [f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in base.items()]


def tiny_config(out: str | Path, config_file: str | Path | None = None, **extra: Any) -> TrainConfig:
    """`tiny_overrides` as a config; keyword `section__key=value` adds overrides (`train__steps=3`)."""
    return load_config(config_file, tiny_overrides(out, **extra))


def token_corpus(
    n_docs: int = 60, vocab: int = 300, seed: int = 0, min_len: int = 10, max_len: int = 100
) -> list[dict[str, Any]]:
    """Pre-tokenized documents with a learnable pattern (each doc counts up from a random start, mod vocab)."""
    rng = random.Random(seed)
    docs = []
    for _ in range(n_docs):
        start, n = rng.randrange(9, vocab), rng.randrange(min_len, max_len)
        docs.append({"input_ids": [9 + (start + i) % (vocab - 9) for i in range(n)]})
    return docs


def write_jsonl(path: str | Path, records: list[dict[str, Any]]) -> Path:
    path = Path(path)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def write_config(path: str | Path, overrides: list[str]) -> Path:
    """A YAML config file holding dotted `key=value` overrides (what `r1 train --config` reads)."""
    d: dict[str, Any] = {}
    for o in overrides:
        apply_override(d, o)
    path = Path(path)
    path.write_text(yaml.safe_dump(d))
    return path


def train_run(config: str | Path, out: str | Path, *extra: str) -> Any:
    """Run (or, with `train.resume=true`, resume) the config into `out`; the core's TrainResult."""
    from r1.train.core import train

    return train(load_config(config, [f"train.out={out}", *extra]))


ROOT = Path(__file__).resolve().parents[1]


def torchrun(*overrides: str, nproc: int = 2) -> subprocess.CompletedProcess:
    """`r1 train` under `torchrun --standalone --nproc_per_node nproc` with these overrides, one thread per rank; the
    finished process (stdout and stderr together)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    run = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc)]
    cmd = [*run, "-m", "r1.train.cli", *overrides]
    return subprocess.run(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300
    )


def killed_runs(config: str | Path, out: Path, kills: dict[str, list[str]]) -> None:
    """Start `r1 train --config config train.out=out/NAME ARGS` for every NAME: ARGS of `kills` together (their
    interpreter start-ups overlap) and require each to die by SIGKILL (the `debug.kill_*` options in ARGS)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = {}
    for name, args in kills.items():
        cmd = [sys.executable, "-m", "r1.train.cli", "--config", str(config), f"train.out={out / name}", *args]
        procs[name] = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
    for name, p in procs.items():
        _, err = p.communicate(timeout=300)
        assert p.returncode == -9, f"{name}: exit {p.returncode}\n{err.decode(errors='replace')[-2000:]}"


def state_copy(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of every parameter and buffer, to compare runs bit for bit."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_identical(model: nn.Module, ref: dict[str, torch.Tensor]) -> None:
    """Every tensor of `model` equals `ref` exactly (torch.equal), else name the ones that differ."""
    got = state_copy(model)
    assert got.keys() == ref.keys()
    different = [k for k in ref if not torch.equal(got[k], ref[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"
