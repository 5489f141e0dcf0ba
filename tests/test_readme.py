"""Every ```python block of README.md runs as written.

A block that talks to `r1 serve` (it builds an OpenAI client on 127.0.0.1:8000) runs against a real server in a
thread, serving the shipped base as "r1"; the address is the only thing changed. Other blocks run in an empty
working directory. A block known to be broken is listed in BROKEN with what to fix: it must fail the way it says
(strict xfail), so the entry goes once the README is fixed.
"""

from __future__ import annotations

import contextlib
import io
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
SERVER_ADDRESS = "http://127.0.0.1:8000"
# a text every block of that kind contains → (the exception it raises today, what the README must change)
BROKEN: dict[str, tuple[type[BaseException], str]] = {}

pytestmark = pytest.mark.usefixtures("one_thread")


@dataclass
class Block:
    line: int
    code: str

    @property
    def needs_server(self) -> bool:
        return SERVER_ADDRESS in self.code


def python_blocks(text: str) -> list[Block]:
    return [
        Block(text[: m.start()].count("\n") + 2, m.group(1))
        for m in re.finditer(r"^```python\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)
    ]


def params() -> list:
    out = []
    for block in python_blocks(README.read_text(encoding="utf-8")):
        marks = [
            pytest.mark.xfail(strict=True, raises=exc, reason=why)
            for key, (exc, why) in BROKEN.items()
            if key in block.code
        ]
        out.append(pytest.param(block, id=f"README.md:{block.line}", marks=marks))
    return out


@pytest.fixture(scope="module")
def server():
    from r1.assets import ASSETS
    from r1.engine import Engine
    from r1.serve.app import create_app
    from r1.serve.cli import generation_defaults, serve_in_thread

    base = ASSETS / "base-tiny"
    engine = Engine.from_pretrained(base, max_batch=4, max_len=256)
    with serve_in_thread(create_app(engine, "r1", generation_defaults(base))) as url:
        yield url


def test_the_readme_has_python_blocks():
    blocks = python_blocks(README.read_text(encoding="utf-8"))
    assert blocks and all(b.code.strip() for b in blocks)


@pytest.mark.parametrize("block", params())
def test_readme_python_block_runs(block: Block, request, tmp_path, monkeypatch):
    code = block.code
    if block.needs_server:
        code = code.replace(SERVER_ADDRESS, request.getfixturevalue("server"))
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, f"README.md:{block.line}", "exec"), {"__name__": "__readme__"})
    if "print(" in code:
        assert out.getvalue().strip(), "the block prints something"
