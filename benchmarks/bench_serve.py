"""Serving throughput and latency: concurrent streaming clients against `r1 serve`'s app on loopback.

Starts the OpenAI-compatible server in this process (uvicorn in a thread, a tiny random DeepSeek-V3 model), then
runs `--requests` chat completions from `--concurrency` asyncio clients, each streaming `--max-tokens` tokens
(`ignore_eos`, so every request does the same work). Prints tokens/s over the whole run, p50/p99 of time to first
token and of request latency, and the number of failed requests (which must be 0). `--top-logprobs N` makes every
request also ask for logprobs with N alternatives per token (the cost of OpenAI's `logprobs`/`top_logprobs`).
Then what the server's `GET /metrics` says about the run: its tokens/s and, when it speculates (`--speculative`,
`--num-speculative-tokens`, as `r1 serve` takes them), the draft acceptance rate, per position, and the tokens
each verify step produced. `--model` serves a model folder (e.g. the shipped base, trained with MTP) instead.

    python benchmarks/bench_serve.py --concurrency 32 --requests 96 --max-tokens 64
    python benchmarks/bench_serve.py --top-logprobs 5
    python benchmarks/bench_serve.py --model base-tiny --concurrency 1 --requests 8 --speculative on
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time

import torch


async def one_request(client, url: str, max_tokens: int, seed: int, top_logprobs: int) -> tuple[float, float, int]:
    """(time to first token, total latency, completion tokens) of one streamed chat completion."""
    body = {
        "model": "r1",
        "messages": [{"role": "user", "content": f"Question {seed}: what is {seed} + {seed}?"}],
        "max_tokens": max_tokens,
        "ignore_eos": True,
        "seed": seed,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if top_logprobs >= 0:
        body.update(logprobs=True, top_logprobs=top_logprobs)
    logprobs = 0
    start = time.perf_counter()
    first = None
    tokens = 0
    async with client.stream("POST", url, json=body) as r:
        if r.status_code != 200:
            raise RuntimeError(f"HTTP {r.status_code}: {(await r.aread())[:200]!r}")
        async for line in r.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if "error" in chunk:
                raise RuntimeError(chunk["error"]["message"])
            if first is None and chunk.get("choices"):
                first = time.perf_counter() - start
            for c in chunk.get("choices", []):
                logprobs += len((c.get("logprobs") or {}).get("content") or [])
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
    if top_logprobs >= 0 and logprobs != tokens:
        raise RuntimeError(f"{logprobs} logprobs for {tokens} tokens")
    return first or 0.0, time.perf_counter() - start, tokens


async def drive(
    base: str, concurrency: int, total: int, max_tokens: int, deadline_s: float, top_logprobs: int = -1
) -> dict:
    import httpx

    url = base + "/v1/chat/completions"
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(total):
        queue.put_nowait(i)
    ttft, latency, errors, tokens = [], [], [], 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(timeout=deadline_s, limits=limits) as client:

        async def worker() -> None:
            nonlocal tokens
            while not queue.empty():
                i = queue.get_nowait()
                try:
                    a, b, n = await one_request(client, url, max_tokens, i, top_logprobs)
                    ttft.append(a)
                    latency.append(b)
                    tokens += n
                except Exception as exc:  # counted and shown, not raised: the report is the point
                    errors.append(repr(exc))

        start = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(concurrency))), deadline_s)
        wall = time.perf_counter() - start
    return {"ttft": ttft, "latency": latency, "errors": errors, "tokens": tokens, "wall": wall}


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--requests", type=int, default=96)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--max-batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--top-logprobs", type=int, default=-1, help="ask for logprobs with N alternatives (-1: none)")
    ap.add_argument("--deadline", type=float, default=300.0, help="seconds before the run is abandoned")
    ap.add_argument("--model", help="a model folder or shipped model name (default: a tiny random model)")
    ap.add_argument("--speculative", choices=["auto", "on", "off"], default="auto")
    ap.add_argument("--num-speculative-tokens", type=int)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    import httpx

    from r1.assets import model_path
    from r1.engine import Engine
    from r1.engine.testing import save_tiny
    from r1.serve.app import create_app
    from r1.serve.cli import serve_in_thread
    from r1.serve.metrics import parse

    tmp = tempfile.TemporaryDirectory()
    model_dir = model_path(args.model) if args.model else save_tiny(f"{tmp.name}/tiny", max_len=512)
    engine = Engine.from_pretrained(
        model_dir, max_batch=args.max_batch, max_len=512, speculative=args.speculative,
        num_speculative_tokens=args.num_speculative_tokens,
    )  # fmt: skip
    app = create_app(engine)  # served as "r1"
    with serve_in_thread(app) as base:
        asyncio.run(drive(base, 2, 2, 4, 60))  # warm-up
        before = parse(httpx.get(base + "/metrics").text)  # also starts the server's tokens/s window
        res = asyncio.run(
            drive(base, args.concurrency, args.requests, args.max_tokens, args.deadline, args.top_logprobs)
        )
        after = parse(httpx.get(base + "/metrics").text)
    tmp.cleanup()
    got = {key.split("{")[0].removeprefix("r1:"): v - before.get(key, 0.0) for key, v in after.items()}
    per_pos = [v - before.get(key, 0.0) for key, v in after.items() if "accepted_tokens_per_pos" in key]
    steps = got["decode_steps_total"]

    done = len(res["latency"])
    print(f"{done}/{args.requests} requests, {args.concurrency} concurrent streaming clients, "
          f"{args.max_tokens} tokens each, max batch {args.max_batch}, {args.threads} threads"
          + (f", logprobs with {args.top_logprobs} alternatives" if args.top_logprobs >= 0 else ""))  # fmt: skip
    print(f"throughput      {res['tokens'] / res['wall']:8.1f} tokens/s  ({res['tokens']} tokens in {res['wall']:.1f}s;"
          f" {steps:.0f} decode steps, {res['tokens'] / max(steps, 1):.1f} tokens per step)")  # fmt: skip
    print(f"time to first   p50 {pct(res['ttft'], 0.5) * 1e3:8.1f} ms   p99 {pct(res['ttft'], 0.99) * 1e3:8.1f} ms")
    print(f"latency         p50 {pct(res['latency'], 0.5):8.2f} s    p99 {pct(res['latency'], 0.99):8.2f} s"
          f"   (mean {statistics.mean(res['latency']) if res['latency'] else float('nan'):.2f} s)")  # fmt: skip
    rate = after[next(k for k in after if k.startswith("r1:generation_tokens_per_second"))]
    print(f"server metrics  {rate:8.1f} tokens/s  ({got['generation_tokens_total']:.0f} tokens, /metrics)")
    drafts = got.get("spec_decode_num_drafts_total", 0.0)
    sp = engine.speculator
    if sp is None:
        print("speculation     none (--speculative off, or the model has no MTP modules)")
    elif not drafts:
        print(f"speculation     {sp.config.mode}, k={sp.k}: no speculative rounds ran (auto: batch above its limit)")
    else:
        drafted, accepted = got["spec_decode_num_draft_tokens_total"], got["spec_decode_num_accepted_tokens_total"]
        print(f"speculation     {sp.config.mode}, k={sp.k}: acceptance {accepted / drafted:.3f} (per position "
              f"{' '.join(f'{n / drafts:.3f}' for n in per_pos)}), "
              f"{got['spec_decode_num_emitted_tokens_total'] / drafts:.2f} tokens per verify step")  # fmt: skip
    print(f"errors          {len(res['errors'])}")
    for e in res["errors"][:5]:
        print(f"  {e}")
    return 1 if res["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
