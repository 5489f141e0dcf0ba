"""What a model of the tiny world can do: the numbers the R1 recipe needs before (and after) RL.

Held-out items of every world task (`r1.tasks.world.heldout`), k samples at T=1 with the R1-Zero prompt the base
was pretrained with, judged by the tasks' verifiers; then per family / language / level (`r1.tasks.world.breakdown`):
pass@1 and pass@k, how often it reasons and how accurate reasoning vs direct answers are, the share of reasoning
that re-checks ("wait" / "等等") and accuracy with vs without re-checking, English mixed into reasoning on Chinese
prompts, the non-reasoning score, refusals of forbidden requests and of their look-alikes. `--forced` adds greedy
answers committed to a style by a prefill (direct; step by step), the model's best in each.

    python benchmarks/world_probe.py --model runs/world/base --out runs/world/probe-base
    python benchmarks/world_probe.py --model runs/grpo/checkpoints/step-000050 --families swaps,equation --levels 4-5
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="a model folder (weights + tokenizer), e.g. a checkpoint")
    p.add_argument("--out", default=None, help="write probe.json and samples.jsonl here")
    p.add_argument("--per-level", type=int, default=16, help="held-out items per task and level (default 16)")
    p.add_argument("--k", type=int, default=8)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--max-new-tokens", type=int, default=160)
    p.add_argument("--families", default=None, help="comma-separated families (default all)")
    p.add_argument("--levels", default=None, help="one level spec for every chosen reasoning family, e.g. 4-5")
    p.add_argument("--forced", action="store_true", help="also greedy forced-direct and forced-steps answers")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    from r1.engine import Engine
    from r1.engine.adapters import make_generate_fn
    from r1.eval.evaluate import evaluate
    from r1.tasks.world import REASONING_FAMILIES, breakdown, forced_prefill, heldout

    torch.set_num_threads(args.threads)
    families = args.families.split(",") if args.families else None
    levels = {f: args.levels for f in REASONING_FAMILIES} if args.levels else None
    items = heldout(args.per_level, seed=1, families=families, levels=levels)
    engine = Engine.from_pretrained(args.model, max_batch=64, max_len=512)
    generate = make_generate_fn(engine)
    t0 = time.perf_counter()
    result = evaluate(
        items,
        generate,
        k=args.k,
        temperature=args.temperature,
        top_p=1.0,
        max_new_tokens=args.max_new_tokens,
        template="r1-zero-short",
        seed=args.seed,
        progress=False,
    )
    free_s = time.perf_counter() - t0
    table = breakdown(result.samples, items, args.k)
    report: dict[str, Any] = {
        "model": args.model,
        "k": args.k,
        "items": len(items),
        "seconds_free": round(free_s, 1),
        "cpu": torch.backends.cpu.get_cpu_capability(),
        "threads": args.threads,
        "free": table,
    }
    if args.forced:
        report["forced"] = forced(items, engine, args, evaluate, forced_prefill)
    print_tables(report)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "probe.json").write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
        with open(out / "samples.jsonl", "w") as f:
            for s in result.samples:
                f.write(json.dumps(s, ensure_ascii=False) + "\n")
    return 0


def forced(
    items: list[dict[str, Any]], engine: Any, args: argparse.Namespace, evaluate: Any, forced_prefill: Any
) -> dict[str, dict[str, float]]:
    """Greedy pass@1 per group with the response prefilled to commit to a style."""
    from r1.data.corpus import prompt_for, task_family
    from r1.engine.adapters import make_generate_fn
    from r1.tasks.world import REASONING_FAMILIES

    base = make_generate_fn(engine)
    out: dict[str, dict[str, float]] = {}
    for style in ("direct", "steps"):
        reasoning = [it for it in items if task_family(it["task"]) in REASONING_FAMILIES]
        prompted = []
        for it in reasoning:
            pre = forced_prefill(it, style)
            prompted.append({**it, "prompt": prompt_for(it, "r1-zero-short") + pre, "meta": {**it["meta"], "pre": pre}})

        def gen(batch: list[dict[str, Any]], n: int, params: dict[str, Any]) -> list[list[dict[str, Any]]]:
            outs = base(batch, n, params)
            return [[{**s, "text": it["meta"]["pre"] + s["text"]} for s in o] for it, o in zip(batch, outs)]

        res = evaluate(
            prompted,
            gen,
            k=1,
            temperature=0.0,
            top_p=1.0,
            max_new_tokens=args.max_new_tokens,
            template=None,
            seed=args.seed,
            progress=False,
        )
        for s in res.samples:
            it = prompted[s["item"]]
            key = f"{task_family(it['task'])}/{it['meta']['lang']}/{it['meta']['difficulty']}"
            for k in (key, key.rsplit("/", 1)[0]):
                cell = out.setdefault(k, {}).setdefault(style, [0, 0])
                cell[0] += int(s["correct"])
                cell[1] += 1
    return {k: {s: c / n for s, (c, n) in v.items()} for k, v in sorted(out.items())}


def _pct(x: Any) -> str:
    return "  –" if x is None else f"{100 * x:3.0f}"


def print_tables(report: dict[str, Any]) -> None:
    k = report["k"]
    free, forced = report["free"], report.get("forced", {})
    cols = [
        "pass@1",
        f"pass@{k}",
        "reasons",
        "acc_long",
        "acc_direct",
        "wait_in_long",
        "acc_wait",
        "acc_no_wait",
        "mixing",
        "mixed_share",
    ]
    head = f"{'group':<20}{'n':>4} {'len':>5} " + " ".join(f"{c[:9]:>9}" for c in cols)
    if forced:
        head += f" {'f.direct':>9} {'f.steps':>9}"
    print(head)
    for key, row in free.items():
        line = f"{key:<20}{row['items']:>4} {row['length'] or 0:5.1f} " + " ".join(f"{_pct(row[c]):>9}" for c in cols)
        if forced:
            f = forced.get(key, {})
            line += f" {_pct(f.get('direct')):>9} {_pct(f.get('steps')):>9}"
        print(line)
    for key in ("safety/en", "safety/zh"):
        if key in free:
            row = free[key]
            print(
                f"{key}: refuses forbidden {_pct(row['refuses_forbidden'])}%, refuses look-alikes "
                f"{_pct(row['refuses_lookalike'])}%, correct {_pct(row['pass@1'])}%"
            )
    print(
        f"{report['items']} items, {report['seconds_free']} s of sampling ({report['cpu']}, {report['threads']} "
        "thread(s))",
        file=sys.stderr,
    )


if __name__ == "__main__":
    raise SystemExit(main())
