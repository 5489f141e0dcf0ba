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

from r1.cli import add_command, check_at_least
from r1.dtypes import DTYPE_CHOICES, DTYPE_HELP
from r1.errors import UserError
from r1.serve import DEFAULT_BODY_TIMEOUT, DEFAULT_MAX_BODY
from r1.serve.logprobs import LOGPROBS_MODES

DEFAULT_NAME = "r1"  # what the README's client example sends, whatever the run folder is called


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `r1 serve`."""
    p = add_command(
        subparsers, "serve", "Serve /v1/chat/completions, /v1/completions, /v1/models and /health for one model."
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
    p.add_argument(
        "--max-body-bytes", type=int, default=DEFAULT_MAX_BODY, help="larger request bodies get 413 (default 1 MiB)"
    )
    p.add_argument(
        "--body-timeout",
        type=float,
        default=DEFAULT_BODY_TIMEOUT,
        metavar="SECONDS",
        help=f"a request body not received in full this long after its headers gets 408 and its connection is "
        f"closed (default {DEFAULT_BODY_TIMEOUT:g})",
    )
    p.add_argument(
        "--threads",
        type=int,
        help="torch CPU threads, for every forward (default: the engine chooses per forward: 1 where more do not pay)",
    )
    add_speculative_args(p)
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    p.set_defaults(func=run)


def add_speculative_args(p: argparse.ArgumentParser) -> None:
    """`--speculative` and `--num-speculative-tokens` (vLLM's name), shared by `r1 serve` and `r1 chat`."""
    from r1.engine.speculative import SPEC_MODES

    p.add_argument(
        "--speculative",
        choices=SPEC_MODES,
        default="auto",
        help="MTP self-speculative decoding: auto (default: on at small batch for models with MTP modules), on, off",
    )
    p.add_argument(
        "--num-speculative-tokens",
        type=int,
        metavar="K",
        help="tokens the MTP modules draft per step (default 1); outputs keep the model's distribution",
    )


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


def check_args(args: argparse.Namespace) -> None:
    """Every number in range, before the model is loaded."""
    if not 0 < args.port < 65536:
        raise UserError(f"--port must be in [1, 65535], got {args.port}")
    check_at_least(args, max_batch=1, max_len=2, max_body_bytes=1, threads=1)
    if not args.body_timeout > 0:  # NaN too
        raise UserError(f"--body-timeout must be > 0 seconds, got {args.body_timeout}")


def listen(host: str, port: int) -> socket.socket:
    """The server's listening socket, bound before the model loads: a port in use is one line, not a log block."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.socket(family, socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise UserError(f"--host {host}: cannot resolve it ({exc})") from None
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UserError(f"--port {port}: cannot listen on {host}:{port} ({exc.strerror or exc})") from None
    return sock


def warm_up(engine: Any, model_dir: str) -> None:
    """Generate one token, so a model that cannot run is an error now rather than a healthy-looking server whose
    every request fails."""
    import math

    from r1.engine.sampling import SamplingParams

    prompt = [engine.tokenizer.bos_id if engine.tokenizer.bos_id is not None else 0]
    try:
        (done,) = engine.generate([prompt], SamplingParams(max_tokens=1, seed=0))
    except Exception as exc:
        why = f"{type(exc).__name__}: {exc}"
        raise UserError(f"{model_dir}: the model cannot generate ({why}); not serving it") from None
    logprobs = done.samples[0].model_logprobs
    if not logprobs or not all(math.isfinite(x) for x in logprobs):
        raise UserError(f"{model_dir}: the model's outputs are not finite numbers (NaN or infinite weights?); not "
                        "serving it")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    import torch
    import uvicorn

    from r1.engine.engine import Engine
    from r1.serve.app import create_app

    check_args(args)
    names = served_names(args.served_model_name, args.model)
    defaults = generation_defaults(args.model)
    if args.threads:
        torch.set_num_threads(args.threads)
    sock = listen(args.host, args.port)
    with sock:
        engine = Engine.from_pretrained(
            args.model, dtype=args.dtype, max_batch=args.max_batch, max_len=args.max_len,
            speculative=args.speculative, num_speculative_tokens=args.num_speculative_tokens,
            threads=args.threads or None,
        )  # fmt: skip
        warm_up(engine, args.model)
        app = create_app(engine, names, defaults, args.max_body_bytes, args.logprobs_mode, args.body_timeout)
        sp = engine.speculator
        spec = f", speculative {sp.config.mode} with k={sp.k}" if sp is not None else ""
        print(f"serving {', '.join(names)} on http://{args.host}:{args.port}/v1 (max batch {args.max_batch}, "
              f"context {engine.max_len}{spec})", flush=True)  # fmt: skip
        config = uvicorn.Config(app, log_level=args.log_level)
        uvicorn.Server(config).run(sockets=[sock])
    return 0
