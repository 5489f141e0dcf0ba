"""MTP speculative decoding vs plain decoding: same weights, same prompts, one process, interleaved rounds.

    python benchmarks/bench_spec.py                                   # the shipped base (tiny, MTP depth 1)
    python benchmarks/bench_spec.py --model runs/small-mtp/model    # `small` with MTP: r1 train --config pretrain-small

Prompts are in-distribution for a model pretrained on the built-in corpus: held-in modchain problems (levels 4-6)
in the step-by-step style, opened with their first step, so the model writes the remaining steps and the answer
(~20-30 tokens) and stops at EOS. Every configuration decodes the same prompts in chunks of `batch` requests
submitted together; every chunk runs on every configuration back to back (the order rotating), so each speedup is
a median of paired ratios that a drifting machine load hits on both sides; tok/s are totals over all repeats.

Reported per batch size and configuration: new tokens/s (prefill included: what a caller waits for), the speedup
over plain decoding, the acceptance rate of each draft position, the tokens emitted per verify step (per row), and
whether greedy outputs are token-identical to plain decoding (they must be). `auto` is the engine's default policy.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch


def prompts_for(tokenizer_engine, n: int, seed: int) -> list[list[int]]:
    from r1.data.corpus import build_corpus

    records = build_corpus(n, seed=seed, mix={"steps": 1.0}, levels={"modchain": {"4": 1.0, "5": 1.0, "6": 1.0}})
    out = []
    for r in records:
        resp = r["response"]
        first_step = resp.index("\n", resp.index("=")) + 1
        out.append(tokenizer_engine.encode(r["prompt"] + resp[:first_step], add_bos=True))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="base-tiny", help="a model folder or a shipped model name")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--k", type=int, nargs="+", default=[1, 2, 3], help="num_speculative_tokens to compare")
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--temperature", type=float, default=0.0)
    ap.add_argument("--top-p", type=float, default=1.0)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-auto", action="store_true", help="skip the `auto` policy column")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")

    from r1.assets import model_path
    from r1.engine import Engine, SamplingParams
    from r1.engine.engine import spec_config

    path = model_path(args.model)
    plain = Engine.from_pretrained(path, speculative="off", max_batch=max(args.batches))
    model, tok = plain.model, plain.tokenizer
    configs: dict[str, Engine] = {"off": plain}
    for k in args.k:
        configs[f"k={k}"] = Engine(model, tok, max_batch=max(args.batches), speculative="on", num_speculative_tokens=k)
    if not args.no_auto:
        configs["auto"] = Engine(model, tok, max_batch=max(args.batches))
    prompts = prompts_for(plain, args.prompts, seed=2024)
    params = SamplingParams(temperature=args.temperature, top_p=args.top_p, max_tokens=args.max_tokens)

    def run(engine: Engine, chunk: list[list[int]], seed0: int) -> tuple[float, list[list[int]], dict[str, int]]:
        """One chunk of requests submitted together: (seconds, tokens of each, the engine's counter deltas)."""
        before = dict(engine.stats)
        t = time.perf_counter()
        handles = [engine.submit(ids, params.with_(seed=seed0 + j), stream=False) for j, ids in enumerate(chunk)]
        engine._run_until(lambda: all(h.done() for h in handles))
        dt = time.perf_counter() - t
        outs = [h.result().samples[0].tokens for h in handles]
        return dt, outs, {key: engine.stats[key] - before.get(key, 0) for key in engine.stats}

    for eng in configs.values():  # warm-up: allocations, first-call kernels
        run(eng, prompts[:1], 0)
    names = list(configs)
    seconds: dict[tuple[str, int], float] = {}
    tokens: dict[tuple[str, int], int] = {}
    ratios: dict[tuple[str, int], list[float]] = {}  # paired: this config vs plain on the same chunk, back to back
    per_pos: dict[tuple[str, int], list[int]] = {}
    spec_totals: dict[tuple[str, int], dict[str, int]] = {}
    identical: dict[tuple[str, int], bool] = {}
    turn = 0
    for rep in range(args.repeats):
        for b in args.batches:
            for c0 in range(0, len(prompts), b):
                chunk = prompts[c0 : c0 + b]
                turn += 1
                order = names[turn % len(names) :] + names[: turn % len(names)]  # who goes first rotates
                rate, outs = {}, {}
                for name in order:
                    eng = configs[name]
                    sp = eng.speculator
                    pos_before = list(sp.accepted_per_position) if sp is not None else []
                    dt, outs[name], delta = run(eng, chunk, rep * 10_000 + c0)
                    n = sum(map(len, outs[name]))
                    rate[name] = n / dt
                    seconds[(name, b)] = seconds.get((name, b), 0.0) + dt
                    tokens[(name, b)] = tokens.get((name, b), 0) + n
                    if sp is not None:
                        acc = [x - y for x, y in zip(sp.accepted_per_position, pos_before)]
                        prev = per_pos.get((name, b), [0] * len(acc))
                        per_pos[(name, b)] = [x + y for x, y in zip(prev, acc)]
                        tot = spec_totals.setdefault((name, b), {})
                        for key, v in delta.items():
                            tot[key] = tot.get(key, 0) + v
                for name in names:
                    ratios.setdefault((name, b), []).append(rate[name] / rate["off"])
                    if args.temperature == 0:
                        identical[(name, b)] = identical.get((name, b), True) and outs[name] == outs["off"]
            line = "  ".join(f"{n} {tokens[(n, b)] / seconds[(n, b)]:.0f}" for n in names)
            print(f"  repeat {rep} batch {b:3d}: tok/s so far  {line}", flush=True)

    cap = torch.backends.cpu.get_cpu_capability()
    print(f"\n{path}: {args.prompts} prompts, temperature {args.temperature}, top-p {args.top_p}, "
          f"{args.threads} thread(s), CPU {cap}, median of {args.repeats}")  # fmt: skip
    print(f"{'batch':>5} {'config':>6} {'tok/s':>8} {'speedup':>8} {'tok/verify':>10} {'acceptance per position':>26}"
          f"{'  greedy = plain' if args.temperature == 0 else ''}")  # fmt: skip
    for b in args.batches:
        for name in names:
            r = tokens[(name, b)] / seconds[(name, b)]
            speedup = statistics.median(ratios[(name, b)])
            tot = spec_totals.get((name, b), {})
            drafts = tot.get("spec_drafts", 0)
            per_verify = f"{tot['spec_emitted_tokens'] / drafts:.2f}" if drafts else "-"
            acc = " ".join(f"{a / drafts:.3f}" for a in per_pos[(name, b)]) if drafts else "-"
            same = ("yes" if identical[(name, b)] else "NO") if (name, b) in identical else ""
            print(f"{b:>5} {name:>6} {r:>8.1f} {speedup:>7.2f}x {per_verify:>10} {acc:>26}  {same}")
    print("speedup: median over chunks of (tok/s of the config / tok/s of plain decoding), each pair run back to back")
    print(f"(auto = the engine's default: {spec_config()})")


if __name__ == "__main__":
    main()
