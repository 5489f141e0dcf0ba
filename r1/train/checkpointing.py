"""Run-folder checkpoints that survive SIGKILL at any instant, and resume exactly.

A checkpoint is a directory `checkpoints/step-000120/` holding
- the model in Hugging Face layout (`config.json`, `model.safetensors`, ...), loadable by
  `r1.model.checkpoint.load_pretrained` and `transformers.AutoModelForCausalLM.from_pretrained`;
- the tokenizer files, when the run has a tokenizer, so the folder is a complete model;
- `trainer_state.safetensors`: optimizer moments and steps keyed by parameter name (`optim.<name>.exp_avg`) and
  the torch RNG states (`rng.torch`, `rng.cuda.N`), all tensors, bit-exact;
- `trainer_state.json`: step, data position, python `random` state, optimizer hyper-parameters, best metric;
- `COMPLETE`: written last, a manifest of every file and its size.
Nothing is pickled: resuming a run never executes code from a file.

Writing is atomic: everything goes to `step-000120.tmp/`, each file is fsynced, `COMPLETE` is written, the
directory is renamed into place and its parent fsynced. A kill before the rename leaves a `.tmp` directory that
the next run removes; after it, a complete checkpoint. Rotation deletes by renaming to `.trash-*` first, so a kill
mid-delete never leaves something that looks like a checkpoint.

On resume, checkpoints are tried newest first. One without `COMPLETE`, with a missing or truncated file, or with an
unreadable safetensors header is skipped with a warning naming the directory and the problem.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from r1.errors import CheckpointError
from r1.io import atomic_path
from r1.io import fsync_dir as _fsync_dir
from r1.io import fsync_file as _fsync_file

CHECKPOINTS = "checkpoints"
COMPLETE = "COMPLETE"
STATE_TENSORS = "trainer_state.safetensors"
STATE_JSON = "trainer_state.json"
_NAME = re.compile(r"^step-(\d{6,})$")


def checkpoint_dir(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINTS / f"step-{step:06d}"


def step_of(path: Path) -> int:
    m = _NAME.match(Path(path).name)
    if not m:
        raise CheckpointError(f"{path}: not a checkpoint directory name (expected step-NNNNNN)")
    return int(m.group(1))


# ============================================================================================ write
def write_checkpoint(
    target: Path,
    save_model: Callable[[Path], None],
    tensors: dict[str, torch.Tensor],
    state: dict[str, Any],
    before_complete: Callable[[], None] | None = None,
) -> Path:
    """Write one checkpoint atomically. `save_model(dir)` writes the HF files (and tokenizer) into `dir`."""
    target = Path(target)
    tmp = target.with_name(target.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    save_model(tmp)
    with atomic_path(tmp / STATE_TENSORS) as f:  # safetensors alone would make it 0600
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(f))
    (tmp / STATE_JSON).write_text(json.dumps(state, indent=1, sort_keys=True) + "\n")
    if before_complete is not None:
        before_complete()
    files = {}
    for f in sorted(tmp.rglob("*")):
        if f.is_file():
            _fsync_file(f)
            files[str(f.relative_to(tmp))] = f.stat().st_size
    manifest = tmp / COMPLETE
    manifest.write_text(json.dumps({"step": state.get("step"), "files": files}, indent=1) + "\n")
    _fsync_file(manifest)
    _fsync_dir(tmp)
    old = None
    if target.exists():  # a stale or corrupt checkpoint of the same step: move it aside, then replace
        old = target.with_name(f".trash-{target.name}")
        if old.exists():
            shutil.rmtree(old)
        os.replace(target, old)
    os.replace(tmp, target)
    _fsync_dir(target.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return target


def rotate(run_dir: Path, keep_last: int, keep: set[int] = frozenset()) -> list[Path]:
    """Delete all but the newest `keep_last` complete checkpoints (and the steps in `keep`); returns the deleted."""
    root = Path(run_dir) / CHECKPOINTS
    found = sorted((step_of(p), p) for p in root.glob("step-*") if _NAME.match(p.name))
    complete = [s for s, p in found if (p / COMPLETE).is_file()]
    newest = set(complete[-keep_last:])
    deleted = []
    for s, p in found:
        if s in newest or s in keep or (complete and s > complete[-1]):
            continue
        trash = p.with_name(f".trash-{p.name}")
        os.replace(p, trash)
        shutil.rmtree(trash, ignore_errors=True)
        deleted.append(p)
    return deleted


def clean_partial(run_dir: Path) -> None:
    """Remove what a killed writer left: `.tmp` checkpoints and `.trash-*` directories."""
    root = Path(run_dir) / CHECKPOINTS
    for p in [*root.glob("step-*.tmp"), *root.glob(".trash-*")]:
        shutil.rmtree(p, ignore_errors=True)


# ============================================================================================ read
def verify(path: Path) -> None:
    """Raise CheckpointError naming `path` and what is wrong, unless it is a complete, intact checkpoint."""
    path = Path(path)
    manifest = path / COMPLETE
    if not manifest.is_file():
        raise CheckpointError(f"{path}: incomplete checkpoint (no {COMPLETE} marker: the write was interrupted)")
    try:
        files = json.loads(manifest.read_text())["files"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{path}: unreadable {COMPLETE} manifest ({exc})") from None
    for name, size in files.items():
        f = path / name
        if not f.is_file():
            raise CheckpointError(f"{path}: missing file {name}")
        if f.stat().st_size != size:
            raise CheckpointError(f"{path}: {name} is {f.stat().st_size} bytes, the manifest says {size} (truncated?)")
        if name.endswith(".safetensors"):
            try:
                with safe_open(str(f), framework="pt") as sf:
                    sf.keys()
            except Exception as exc:
                raise CheckpointError(f"{path}: {name} is not a readable safetensors file ({exc})") from None


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest intact checkpoint of a run; newer broken ones are skipped with a warning naming the problem."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return None
    for _, p in sorted(((step_of(p), p) for p in root.glob("step-*") if _NAME.match(p.name)), reverse=True):
        try:
            verify(p)
            return p
        except CheckpointError as exc:
            warnings.warn(f"skipping checkpoint: {exc}", stacklevel=2)
    return None


def read_state(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(trainer_state.json, trainer_state.safetensors) of a verified checkpoint."""
    verify(path)
    state = json.loads((Path(path) / STATE_JSON).read_text())
    with safe_open(str(Path(path) / STATE_TENSORS), framework="pt") as sf:
        tensors = {k: sf.get_tensor(k) for k in sf.keys()}  # noqa: SIM118 (safe_open is not a dict)
    return state, tensors
