"""r1.io, the one atomic writer: normal permissions, nothing left behind on failure, and every writer in r1 uses it."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from r1.io import atomic_path, atomic_write_bytes, atomic_write_text

PACKAGE = Path(__file__).resolve().parents[1] / "r1"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask():
    """Set a umask for one test and restore the previous one."""
    before = os.umask(0o022)
    yield lambda m: os.umask(m)
    os.umask(before)


def test_files_get_normal_permissions_honouring_the_umask(tmp_path, umask):
    umask(0o022)
    text = atomic_write_text(tmp_path / "a" / "config.json", "{}\n")  # parent folders are created
    data = atomic_write_bytes(tmp_path / "b.bin", b"\x00\x01")
    with atomic_path(tmp_path / "w.safetensors") as tmp:
        save_file({"x": torch.ones(2)}, tmp)
    assert [mode(p) for p in (text, data, tmp_path / "w.safetensors")] == [0o644] * 3
    assert text.read_text() == "{}\n" and data.read_bytes() == b"\x00\x01"
    assert torch.equal(load_file(tmp_path / "w.safetensors")["x"], torch.ones(2))
    umask(0o077)  # a user who asks for private files gets them
    assert mode(atomic_write_text(tmp_path / "private.txt", "x")) == 0o600
    umask(0o002)
    assert mode(atomic_write_text(tmp_path / "group.txt", "x")) == 0o664


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path):
    target = atomic_write_text(tmp_path / "state.json", "old")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]
    atomic_write_text(target, "new")  # and a later write replaces it
    assert target.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_model_and_tokenizer_files_are_world_readable(tmp_path, umask):
    from r1.engine.testing import save_tiny

    umask(0o022)
    folder = save_tiny(tmp_path / "m")
    files = sorted(p for p in folder.iterdir() if p.is_file())
    assert {p.name for p in files} >= {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"}
    assert {p.name: mode(p) for p in files} == {p.name: 0o644 for p in files}


def test_no_other_atomic_writer_is_left_in_the_package():
    """One writer: temp files and renames for single files live in r1/io.py only. (checkpointing.py renames whole
    checkpoint directories, which is another operation.)"""
    allowed = {PACKAGE / "io.py", PACKAGE / "train" / "checkpointing.py"}
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path in allowed:
            continue
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#")[0]
            if re.search(r"mkstemp|NamedTemporaryFile|os\.replace\(|\.replace\(path\)|\.tmp\"|\.tmp'", code):
                offenders.append(f"{path.relative_to(PACKAGE.parent)}:{lineno}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
