"""Helpers for the tests that serve a model: `r1 serve` as a user runs it, and waiting for an engine to drain."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx

from r1.engine import Engine


@contextlib.contextmanager
def r1_serve(model: str, *args: str, ready_within: float = 120.0) -> Iterator[str]:
    """`python -m r1 serve --model MODEL ARGS` on a free port, yielding its base URL once /health answers 200."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "r1", "serve", "--model", model, "--port", str(port), *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.time() + ready_within
        while True:
            assert proc.poll() is None, proc.stdout.read()
            try:
                if httpx.get(base + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.time() < deadline, "r1 serve did not come up"
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        proc.wait(20)


def wait_idle(engine: Engine, within: float) -> bool:
    """Whether the engine has no active or pending request within `within` seconds (a cancelled request's slot)."""
    deadline = time.time() + within
    while time.time() < deadline:
        if engine.num_active() == 0 and engine.num_pending() == 0:
            return True
        time.sleep(0.01)
    return False
