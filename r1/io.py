"""Atomic file writes (a reader sees the old file or the new one, never half of one) and strict-option errors.

Each write goes to a temp file beside the target, is fsynced, renamed over it, and the directory fsynced so the
rename survives a power cut; on error the target is left as it was. The result gets a new file's mode (0666 minus the
umask), not `mkstemp`'s 0600: model files must be readable by whoever else loads them. Every config section reports
an unknown key with `check_keys` and a bad value with `need`, so all of them read alike.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import secrets
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from r1.errors import ConfigError


def atomic_write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> Path:
    """Write `text` to `path` atomically (parent folders are created); returns the path."""
    return atomic_write_bytes(path, text.encode(encoding))


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write `data` to `path` atomically (parent folders are created); returns the path."""
    with atomic_path(path) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    return Path(path)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temp path beside `path` for the caller to write (e.g. `safetensors.torch.save_file(tensors, tmp)`); on a
    clean exit it gets normal permissions, is fsynced and renamed to `path`."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        fsync_file(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(target.parent)


def fsync_file(path: str | os.PathLike[str]) -> None:
    """Flush a written file's data to disk."""
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Flush a directory's entries (a rename or a new file in it) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _umask() -> int:
    """The process umask. Linux reports it in /proc; elsewhere it can only be read by setting it (and back)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# ============================================================================================== strict options
def check_keys(given: Iterable[Any], valid: Sequence[str], where: str = "") -> None:
    """Every key of a config section must be one of `valid`: an unknown one is a ConfigError that suggests the
    closest valid key and lists them all (a mistyped key silently ignored trains the wrong model for hours)."""
    for key in given:
        if key not in valid:
            close = difflib.get_close_matches(str(key), valid, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            full, section = (f"{where}.{key}", f"in {where}") if where else (str(key), "at the top level")
            raise ConfigError(f"unknown key {full!r}{hint} valid keys {section}: {', '.join(valid)}")


def need(ok: bool, key: str, value: Any, rule: str) -> None:
    """A value check of a config field: `key=value: rule` as a ConfigError when not `ok`."""
    if not ok:
        raise ConfigError(f"{key}={value!r}: {rule}")
