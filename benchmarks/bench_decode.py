"""Decode throughput: r1's engine vs transformers `generate()` on the same tiny DeepSeek-V3 weights.

Both sample (temperature 1, top-p 0.95) exactly 128 new tokens after 32-token prompts (HF: min_new_tokens; r1:
ignore_eos), with batch 1, 16 and 64, interleaved and repeated; the median new tokens/s and the ratio are printed.
The weights are written once with r1's `save_pretrained` and read by both sides, so the work is the same.

    python benchmarks/bench_decode.py --repeats 3

Measured on the shared 2-core development VM while two other training jobs kept both cores busy (load ~5), so
with `--threads 1` (with 2 threads both sides collapse 5-50x from OpenMP spinning on contended cores and the ratios
are noise). Medians of 3, new tokens/s:

    batch     r1   transformers   ratio
        1    427        173       2.46x
       16   2416        927       2.61x
       64   4827       1111       4.35x

(an earlier run, load ~4: 2.51x, 3.11x, 5.09x). On an idle machine with `--threads 2`, two runs: batch 1 2.16x /
2.25x, batch 16 3.27x / 3.64x, batch 64 5.22x / 5.71x (r1 at batch 64: 12,459 / 14,934 new tokens/s).
"""

from __future__ import annotations

import argparse
import statistics
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
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-hf", action="store_true", help="time r1 only")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")

    from r1.engine import Engine, SamplingParams
    from r1.engine.testing import tiny_tokenizer
    from r1.model import Transformer, preset
    from r1.model.checkpoint import load_pretrained, save_pretrained

    tmp = tempfile.TemporaryDirectory()
    torch.manual_seed(0)
    save_pretrained(Transformer(preset("tiny", vocab_size=2048)), tmp.name)
    engine = Engine(
        load_pretrained(tmp.name),
        tiny_tokenizer(),  # only decodes the text; the prompts are ids
        max_batch=max(args.batches),
        max_len=args.prompt_len + args.new_tokens,
    )
    hf = None if args.skip_hf else _load_hf(tmp.name)
    gen = torch.Generator().manual_seed(1)
    prompts = {b: torch.randint(9, 2048, (b, args.prompt_len), generator=gen) for b in args.batches}
    params = SamplingParams(temperature=1.0, top_p=0.95, max_tokens=args.new_tokens, ignore_eos=True)

    def run_r1(b: int, rep: int) -> float:
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

    run_r1(min(args.batches), -1)  # warm-up: first-call allocations, lazy cache, kernels
    if hf is not None:
        run_hf(min(args.batches), -1)
    rates: dict[tuple[str, int], list[float]] = {}
    for rep in range(args.repeats):
        for b in args.batches:
            sides = [("r1", run_r1), ("hf", run_hf)] if hf is not None else [("r1", run_r1)]
            if rep % 2:
                sides.reverse()  # alternate who goes first, so drift in machine load hits both
            for name, fn in sides:
                r = fn(b, rep)
                rates.setdefault((name, b), []).append(r)
                print(f"  repeat {rep} batch {b:3d} {name}: {r:9.1f} new tokens/s", flush=True)

    print(f"\nnew tokens/s, median of {args.repeats} (prompt {args.prompt_len}, {args.new_tokens} new, "
          f"{args.threads} threads, tiny DeepSeek-V3, fp32)")  # fmt: skip
    print(f"{'batch':>6} {'r1':>10} {'transformers':>13} {'ratio':>7}")
    for b in args.batches:
        r1 = statistics.median(rates[("r1", b)])
        if hf is None:
            print(f"{b:>6} {r1:>10.1f}")
            continue
        h = statistics.median(rates[("hf", b)])
        print(f"{b:>6} {r1:>10.1f} {h:>13.1f} {r1 / h:>6.2f}x")
    tmp.cleanup()


def _load_hf(path: str):
    import transformers
    from transformers import AutoModelForCausalLM

    transformers.logging.set_verbosity_error()
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()


if __name__ == "__main__":
    main()
