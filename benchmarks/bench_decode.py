"""Decode throughput: r1's engine vs transformers `generate()` on the same tiny DeepSeek-V3 weights.

Both sample (temperature 1, top-p 0.95) exactly 128 new tokens after 32-token prompts (HF: min_new_tokens; r1:
ignore_eos), with batch 1, 16 and 64, at each thread count of `--threads` (torch.set_num_threads for the process:
transformers runs on it, r1's engine chooses per forward up to it). Everything is interleaved in one process and
repeated: every repeat runs each thread count, batch and side once, alternating which side goes first, so drift
in machine load hits all of them; the median new tokens/s and the ratio are printed, with the CPU capability and
the load average. `--pinned` also times r1 with `Engine(threads=N)`, every forward on the process's N threads, as
the engine ran before it chose per forward. The weights are written once with r1's `save_pretrained` and read by
both sides, so the work is the same.

    python benchmarks/bench_decode.py --repeats 3 --threads 1,2 [--pinned]

Measured on the shared 2-core AVX512 VM, see the report of issue 17.4 (docs/LOG.md).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 16, 64])
    ap.add_argument("--prompt-len", type=int, default=32)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", default="1,2", help="comma-separated torch thread counts to sweep (default 1,2)")
    ap.add_argument("--pinned", action="store_true", help="also time r1 with Engine(threads=N) (no per-forward choice)")
    ap.add_argument("--skip-hf", action="store_true", help="time r1 only")
    args = ap.parse_args()
    sweep = [int(t) for t in args.threads.split(",")]
    warnings.filterwarnings("ignore")

    from r1.engine import Engine, SamplingParams
    from r1.engine.testing import tiny_tokenizer
    from r1.model import Transformer, preset
    from r1.model.checkpoint import load_pretrained, save_pretrained

    tmp = tempfile.TemporaryDirectory()
    torch.manual_seed(0)
    save_pretrained(Transformer(preset("tiny", vocab_size=2048)), tmp.name)
    model = load_pretrained(tmp.name)
    kw = dict(max_batch=max(args.batches), max_len=args.prompt_len + args.new_tokens)
    engines = {"r1": Engine(model, tiny_tokenizer(), **kw)}  # the tokenizer only decodes text; prompts are ids
    if args.pinned:
        engines.update({f"r1@{t}": Engine(model, tiny_tokenizer(), threads=t, **kw) for t in sweep})
    hf = None if args.skip_hf else _load_hf(tmp.name)
    gen = torch.Generator().manual_seed(1)
    prompts = {b: torch.randint(9, 2048, (b, args.prompt_len), generator=gen) for b in args.batches}
    params = SamplingParams(temperature=1.0, top_p=0.95, max_tokens=args.new_tokens, ignore_eos=True)

    def run_r1(engine: Engine, b: int, rep: int) -> float:
        ids = prompts[b].tolist()
        t = time.perf_counter()
        out = engine.generate(ids, [params.with_(seed=rep * 1000 + i) for i in range(b)])
        dt = time.perf_counter() - t
        assert all(len(c.samples[0].tokens) == args.new_tokens for c in out)
        return b * args.new_tokens / dt

    def run_hf(b: int, rep: int) -> float:
        ids = prompts[b]
        torch.manual_seed(rep)
        t = time.perf_counter()
        with torch.inference_mode():
            out = hf.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                do_sample=True,
                temperature=1.0,
                top_p=0.95,
                top_k=0,
                max_new_tokens=args.new_tokens,
                min_new_tokens=args.new_tokens,
                pad_token_id=2,
            )
        dt = time.perf_counter() - t
        assert out.shape[1] == args.prompt_len + args.new_tokens
        return b * args.new_tokens / dt

    def sides(threads: int) -> list[tuple[str, object]]:
        out = [("r1", lambda b, rep: run_r1(engines["r1"], b, rep))]
        if args.pinned:
            out.append(("r1 pinned", lambda b, rep: run_r1(engines[f"r1@{threads}"], b, rep)))
        if hf is not None:
            out.append(("transformers", run_hf))
        return out

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load0 = os.getloadavg()
    print(f"CPU capability {torch.backends.cpu.get_cpu_capability()}, {cores} cores, torch {torch.__version__}, "
          f"load average {load0[0]:.1f} at the start", flush=True)  # fmt: skip
    for t in sweep:  # warm-up: first-call allocations, lazy cache, kernels, the engine's thread probe
        torch.set_num_threads(t)
        for _, fn in sides(t):
            fn(min(args.batches), -1)
    rates: dict[tuple[int, str, int], list[float]] = {}
    for rep in range(args.repeats):
        for t in sweep:
            torch.set_num_threads(t)
            for b in args.batches:
                order = sides(t)
                if rep % 2:
                    order.reverse()  # alternate who goes first, so drift in machine load hits every side
                for name, fn in order:
                    r = fn(b, rep)
                    rates.setdefault((t, name, b), []).append(r)
                    print(f"  repeat {rep} threads {t} batch {b:3d} {name:>12}: {r:9.1f} new tokens/s", flush=True)
    load1 = os.getloadavg()

    print(f"\nnew tokens/s, median of {args.repeats} (prompt {args.prompt_len}, {args.new_tokens} new, tiny "
          f"DeepSeek-V3, fp32; CPU {torch.backends.cpu.get_cpu_capability()}, {cores} cores; load average "
          f"{load0[0]:.1f} -> {load1[0]:.1f})")  # fmt: skip
    names = [n for n, _ in sides(sweep[0])]
    head = f"{'threads':>7} {'batch':>6}" + "".join(f" {n:>13}" for n in names)
    if hf is not None:
        head += "".join(f" {n + '/hf':>16}" for n in names if n != "transformers")
    print(head)
    for t in sweep:
        for b in args.batches:
            med = {n: statistics.median(rates[(t, n, b)]) for n in names}
            line = f"{t:>7} {b:>6}" + "".join(f" {med[n]:>13.1f}" for n in names)
            if hf is not None:
                line += "".join(f" {med[n] / med['transformers']:>15.2f}x" for n in names if n != "transformers")
            print(line)
    for t in sweep[1:]:  # the engine's promise: more threads never cost it throughput
        ratios = ", ".join(
            f"batch {b} {statistics.median(rates[(t, 'r1', b)]) / statistics.median(rates[(sweep[0], 'r1', b)]):.2f}x"
            for b in args.batches
        )
        print(f"r1 on {t} threads vs {sweep[0]}: {ratios}")
    sys.stdout.flush()
    tmp.cleanup()


def _load_hf(path: str):
    import transformers
    from transformers import AutoModelForCausalLM

    transformers.logging.set_verbosity_error()
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()


if __name__ == "__main__":
    main()
