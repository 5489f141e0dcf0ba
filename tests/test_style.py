"""The tree is `ruff format`-formatted and `ruff check`-clean: the test command enforces the style, not a reviewer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PATHS = ["r1", "tests", "benchmarks"]


@pytest.mark.parametrize("command", [["format", "--check"], ["check"]], ids=["format", "check"])
def test_ruff(command):
    pytest.importorskip("ruff", reason="ruff is a dev dependency: pip install -e '.[dev]'")
    out = subprocess.run([sys.executable, "-m", "ruff", *command, *PATHS], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, f"ruff {' '.join(command)} {' '.join(PATHS)}:\n{out.stdout[-3000:]}{out.stderr[-1000:]}"
