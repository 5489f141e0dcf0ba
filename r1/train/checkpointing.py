"""Run-folder checkpoints that survive SIGKILL at any instant, and resume exactly.

`checkpoints/step-000120/` holds the model in HF layout (loadable by transformers), the tokenizer, optimizer state
and RNG states as safetensors (`trainer_state.safetensors`, bit-exact), `trainer_state.json` (step, data position,
python RNG, best metric) and `COMPLETE`, written last: a manifest of every file's size and SHA-256. Nothing is
pickled, so resuming never executes code from a file.

Writes go to `step-000120.tmp/` (fsynced, renamed into place, parent fsynced); rotation renames to `.trash-*` before
deleting, so a kill at any point never leaves something that looks like a checkpoint. On resume, checkpoints are tried
newest first; one that fails its manifest is skipped with a one-line warning. Hashing is what catches weights
overwritten in place with the size unchanged (the `tiny` checkpoint: ~55 ms to hash against ~250 ms to write, 2-core
AVX512 under load). A failed write removes its `.tmp` and raises a CheckpointError; older checkpoints are untouched.
"""

from __future__ import annotations

import hashlib
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

from r1.errors import CheckpointError, UserError
from r1.io import atomic_path
from r1.io import fsync_dir as _fsync_dir
from r1.io import fsync_file as _fsync_file
from r1.readers import read_json

CHECKPOINTS = "checkpoints"
COMPLETE = "COMPLETE"
STATE_TENSORS = "trainer_state.safetensors"
STATE_JSON = "trainer_state.json"
HASH = "sha256"
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
    try:
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
                files[str(f.relative_to(tmp))] = {"size": f.stat().st_size, HASH: file_hash(f)}
        manifest = tmp / COMPLETE
        manifest.write_text(json.dumps({"step": state.get("step"), "hash": HASH, "files": files}, indent=1) + "\n")
        _fsync_file(manifest)
        _fsync_dir(tmp)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError) or type(exc).__name__ == "SafetensorError":  # the disk, not the code
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            if isinstance(exc, OSError) and exc.filename:
                why += f" ({exc.filename})"
            raise CheckpointError(
                f"{target}: writing the checkpoint failed: {why}; removed the partial "
                f"{tmp.name}, earlier checkpoints are untouched"
            ) from exc
        raise
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


def file_hash(path: Path) -> str:
    """SHA-256 of a file, hex."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, HASH).hexdigest()


# ============================================================================================ read
def checkpoint_dirs(run_dir: Path) -> list[Path]:
    """The run's checkpoint directories (complete or not, intact or not), newest first."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    return [p for _, p in sorted(((step_of(p), p) for p in root.glob("step-*") if _NAME.match(p.name)), reverse=True)]


def verify(path: Path) -> None:
    """Raise CheckpointError naming `path` and what is wrong, unless it is a complete, intact checkpoint."""
    path = Path(path)
    manifest = path / COMPLETE
    if not manifest.is_file():
        raise CheckpointError(f"{path}: incomplete checkpoint (no {COMPLETE} marker: the write was interrupted)")
    try:
        files = read_json(manifest)["files"]
        if not isinstance(files, dict):
            raise TypeError("'files' is not a mapping")
    except (UserError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{path}: unreadable {COMPLETE} manifest ({exc})") from None
    for name, entry in files.items():
        f = path / name
        if not f.is_file():
            raise CheckpointError(f"{path}: missing file {name}")
        if not isinstance(entry, int | dict):
            raise CheckpointError(f"{path}: unreadable {COMPLETE} manifest (entry of {name} is {entry!r})")
        size, digest = (entry, None) if isinstance(entry, int) else (entry.get("size"), entry.get(HASH))
        if f.stat().st_size != size:
            raise CheckpointError(f"{path}: {name} is {f.stat().st_size} bytes, the manifest says {size} (truncated?)")
        if digest is not None and file_hash(f) != digest:
            raise CheckpointError(
                f"{path}: {name} does not match its {HASH} in {COMPLETE} (changed after it was written)"
            )
        if name.endswith(".safetensors"):
            try:
                with safe_open(str(f), framework="pt") as sf:
                    sf.keys()
            except Exception as exc:
                raise CheckpointError(f"{path}: {name} is not a readable safetensors file ({exc})") from None
    try:
        state = read_json(path / STATE_JSON)
    except UserError as exc:
        raise CheckpointError(f"{path}: unreadable {STATE_JSON} ({exc})") from None
    if not isinstance(state, dict) or isinstance(state.get("step"), bool) or not isinstance(state.get("step"), int):
        raise CheckpointError(f"{path}: {STATE_JSON} has no integer 'step'")


def scan(run_dir: Path) -> tuple[Path | None, list[str]]:
    """(the newest intact checkpoint or None, what is wrong with each newer one), hashing as it goes."""
    problems = []
    for p in checkpoint_dirs(run_dir):
        try:
            verify(p)
            return p, problems
        except CheckpointError as exc:
            problems.append(str(exc))
    return None, problems


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest intact checkpoint of a run; newer broken ones are skipped with a warning naming the problem."""
    latest, problems = scan(run_dir)
    for problem in problems:
        warnings.warn(f"skipping checkpoint: {problem}", stacklevel=2)
    return latest


def read_state(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(trainer_state.json, trainer_state.safetensors) of a checkpoint that `latest_checkpoint` or `verify` passed."""
    state = read_json(Path(path) / STATE_JSON)
    with safe_open(str(Path(path) / STATE_TENSORS), framework="pt") as sf:
        tensors = {k: sf.get_tensor(k) for k in sf.keys()}  # noqa: SIM118 (safe_open is not a dict)
    return state, tensors
