"""`r1 serve --model DIR`: the OpenAI-compatible server (see `app.py`) on uvicorn."""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from r1.dtypes import DTYPE_CHOICES, DTYPE_HELP
from r1.errors import UserError
from r1.serve.logprobs import LOGPROBS_MODES

DEFAULT_NAME = "r1"  # what the README's client example sends, whatever the run folder is called


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `r1 serve`."""
    p = subparsers.add_parser(
        "serve",
        help="serve a model over an OpenAI-compatible HTTP API (with reasoning_content)",
        description="Serve /v1/chat/completions, /v1/completions, /v1/models and /health for one model.",
    )
    p.add_argument("--model", required=True, metavar="DIR", help="model directory (weights + tokenizer files)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="default 8000")
    p.add_argument("--max-batch", type=int, default=32, help="sequences decoded together (default 32)")
    p.add_argument("--max-len", type=int, help="context length in tokens (default: the model's, at most 4096)")
    p.add_argument(
        "--served-model-name",
        nargs="+",
        metavar="NAME",
        help=f"the `model` names clients may send; responses carry the first (default: {DEFAULT_NAME!r} and the "
        "model directory's name)",
    )
    p.add_argument("--dtype", choices=DTYPE_CHOICES, default="auto", help=DTYPE_HELP)
    p.add_argument(
        "--logprobs-mode",
        choices=LOGPROBS_MODES,
        default="raw_logprobs",
        help="what `logprobs` report: the model's distribution (raw_logprobs, the default, as vLLM's) or the one "
        "each token was sampled from, after temperature/top-k/top-p (processed_logprobs)",
    )
    p.add_argument("--max-body-bytes", type=int, default=1 << 20, help="larger request bodies get 413 (1 MiB)")
    p.add_argument(
        "--threads",
        type=int,
        help="torch CPU threads, for every forward (default: torch's count, which "
        "the engine lowers to 1 for forwards too small to share)",
    )
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    p.set_defaults(func=run)


def served_names(given: list[str] | None, model_dir: str | Path) -> list[str]:
    """The names the server answers to: those given, else "r1" and the model directory's name (as vLLM's default)."""
    if given:
        bad = next((n for n in given if not n.strip()), None)
        if bad is not None:
            raise UserError(f"--served-model-name {bad!r}: a name must not be empty")
        return list(dict.fromkeys(given))
    return list(dict.fromkeys([DEFAULT_NAME, Path(model_dir).resolve().name]))


def generation_defaults(model_dir: str | Path) -> dict[str, Any]:
    """temperature/top_p/top_k from the model's generation_config.json (what clients get when they send none)."""
    f = Path(model_dir) / "generation_config.json"
    if not f.is_file():
        return {}
    try:
        cfg = json.loads(f.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{f}: cannot read ({exc})") from None
    if not cfg.get("do_sample", True):
        return {"temperature": 0.0}
    return {k: cfg[k] for k in ("temperature", "top_p", "top_k") if isinstance(cfg.get(k), (int, float))}


@contextlib.contextmanager
def serve_in_thread(app: Any, host: str = "127.0.0.1", timeout: float = 20.0) -> Iterator[str]:
    """Run `app` on uvicorn in a daemon thread on a free port (tests, benchmarks, notebooks); yields the base URL and
    stops the server on exit. Raises if it has not started within `timeout` seconds."""
    import uvicorn

    with socket.socket() as s:
        s.bind((host, 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + timeout
    while not server.started:
        if time.time() > deadline or not thread.is_alive():
            raise RuntimeError(f"the server did not start on {host}:{port} within {timeout:g} s")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def run(args: argparse.Namespace) -> int:
    import torch
    import uvicorn

    from r1.engine.engine import Engine
    from r1.serve.app import create_app

    if not 0 < args.port < 65536:
        raise UserError(f"--port {args.port}: must be in [1, 65535]")
    if args.threads:
        torch.set_num_threads(args.threads)
    engine = Engine.from_pretrained(
        args.model, dtype=args.dtype, max_batch=args.max_batch, max_len=args.max_len, threads=args.threads or None
    )
    names = served_names(args.served_model_name, args.model)
    app = create_app(engine, names, generation_defaults(args.model), args.max_body_bytes, args.logprobs_mode)
    print(f"serving {', '.join(names)} on http://{args.host}:{args.port}/v1 (max batch {args.max_batch}, "
          f"context {engine.max_len})")  # fmt: skip
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0
