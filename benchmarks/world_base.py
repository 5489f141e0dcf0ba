"""Pretrain a `tiny` base on the tiny world's corpus, for experiments on the world's mix.

Corpus (`r1.data.corpus.build_world_corpus`, settings overridable as JSON), a byte-level BPE trained on it, then
`pretrain-tiny` (loss on responses, length-bucketed batches, cosine lr, fp32, 1 thread). Leaves
`<out>/pretrain/checkpoints/step-N/`, a complete model folder for `benchmarks/world_probe.py` and
`benchmarks/world_grpo.py`. `r1 run --recipe world-zero` makes a base the same way inside a run folder, with its card.

    python benchmarks/world_base.py --out runs/world-a --docs 40000 --steps 3000
    python benchmarks/world_base.py --out runs/world-b --corpus '{"english": {"phrases": 0.2, "switch": 0.2}}'
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

import torch


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--docs", type=int, default=40000)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch-size", type=int, default=12)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--save-every", type=int, default=0, help="also keep a checkpoint every N steps (0: final only)")
    p.add_argument("--corpus", default="{}", help="JSON overrides of r1.data.corpus.WORLD (tasks, levels, mix, ...)")
    p.add_argument("--family-shares", default=None, help="JSON family -> share (r1.data.corpus.world_tasks)")
    args = p.parse_args(argv)

    from r1.assets import config_path
    from r1.data.corpus import build_world_corpus, corpus_texts, world_tasks, write_corpus
    from r1.tokenizer import Tokenizer
    from r1.train import load_config, train

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    overrides = json.loads(args.corpus)
    if args.family_shares:
        overrides["tasks"] = world_tasks(json.loads(args.family_shares))
    t0 = time.perf_counter()
    records = build_world_corpus(args.docs, seed=args.seed, **overrides)
    write_corpus(out / "corpus.jsonl", records)
    tok = Tokenizer.train(corpus_texts(records), vocab_size=2048)
    tok.save(out / "tokenizer")
    summary = {
        "corpus_overrides": overrides,
        "documents": len(records),
        "tasks": dict(sorted(Counter(r["task"] for r in records).items())),
        "styles": dict(sorted(Counter(r["style"] for r in records).items())),
        "english": dict(sorted(Counter(r["english"] for r in records if r["lang"] == "zh").items())),
        "vocab_size": tok.vocab_size,
        "tokens_per_doc": round(sum(len(tok.encode(r["prompt"] + r["response"])) for r in records[:3000]) / 3000, 1),
        "corpus_seconds": round(time.perf_counter() - t0, 1),
    }
    print(json.dumps(summary, indent=1, ensure_ascii=False), flush=True)
    cfg = load_config(
        config_path("pretrain-tiny"),
        [
            "model.preset=tiny",
            "model.initializer_range=0.02",
            f"data.paths=[{out / 'corpus.jsonl'}]",
            "data.builtin=0",
            f"data.tokenizer={out / 'tokenizer'}",
            "data.loss_on=response",
            "data.batching=bucket",
            "data.seq_len=256",
            f"optim.lr={args.lr}",
            "schedule.kind=cosine",
            f"schedule.warmup_steps={args.warmup}",
            "schedule.min_lr_ratio=0.1",
            f"train.out={out / 'pretrain'}",
            f"train.steps={args.steps}",
            f"train.batch_size={args.batch_size}",
            "train.micro_batch_size=0",
            "train.log_every=10",
            f"train.seed={args.seed}",
            f"train.threads={args.threads}",
            "train.dtype=fp32",
            "train.device=cpu",
            "train.resume=false",
            f"checkpoint.every={args.save_every}",
            "checkpoint.keep_last=10",
            "checkpoint.final=true",
            "checkpoint.publish=false",
            "logging.progress=false",
            "logging.plots=false",
            "logging.report=false",
        ],
    )
    result = train(cfg)
    summary.update(
        {
            "steps": result.steps,
            "tokens": result.tokens,
            "seconds": round(result.seconds, 1),
            "tokens_per_s": round(result.tokens / max(result.seconds, 1e-9)),
            "final_loss": result.final_loss,
            "checkpoint": str(result.checkpoint),
            "cpu": torch.backends.cpu.get_cpu_capability(),
            "threads": args.threads,
        }
    )
    (out / "base.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False) + "\n")
    print(
        json.dumps(
            {k: summary[k] for k in ("steps", "tokens", "seconds", "tokens_per_s", "final_loss", "checkpoint")},
            indent=1,
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
