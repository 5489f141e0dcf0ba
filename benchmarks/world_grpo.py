"""R1-Zero on the tiny world: GRPO from a world base on its reasoning families, both languages.

Train items: the train split of every reasoning task (English and Chinese) at the levels the base was pretrained on
(`r1.tasks.world.rl_items`); held-out items: the eval split at the same levels (`r1.tasks.world.heldout`). Then
`r1 train --config r1-zero-tiny` with those files and the settings `r1 run` uses (16 prompts × 8 samples at T 1,
reward = accuracy in <answer> + 0.1 format, lr 2e-4, β 1e-3), a checkpoint every `--save-every` steps.

    python benchmarks/world_grpo.py --base runs/world-a/pretrain/checkpoints/step-010000 --out runs/world-a-rl
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--train-items", type=int, default=1024, help="per task and level")
    p.add_argument("--eval-per-level", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, default=160)
    p.add_argument("--families", default="modchain,swaps,mystery")
    p.add_argument("--save-every", type=int, default=25)
    p.add_argument("--eval-every", type=int, default=25)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--set", action="append", default=[], help="extra dotted overrides for r1 train")
    args = p.parse_args(argv)

    from r1.assets import config_path
    from r1.data.corpus import write_corpus
    from r1.tasks.world import heldout, rl_items, trained_levels
    from r1.train import load_config, train

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    families = args.families.split(",")
    train_items = rl_items(args.train_items, seed=args.seed, families=families)
    levels = {f: f"{trained_levels(f)[0]}-{trained_levels(f)[-1]}" for f in families}
    eval_items = heldout(args.eval_per_level, seed=1, families=families, levels=levels)
    write_corpus(out / "train.jsonl", train_items)
    write_corpus(out / "heldout.jsonl", eval_items)
    cfg = load_config(
        config_path("r1-zero-tiny"),
        [
            f"model.path={args.base}",
            f"data.paths=[{out / 'train.jsonl'}]",
            f"data.eval_paths=[{out / 'heldout.jsonl'}]",
            "grpo.template=r1-zero-short",
            f"grpo.max_new_tokens={args.max_new_tokens}",
            f"grpo.eval_items={len(eval_items)}",
            "grpo.eval_k=8",
            "grpo.eval_temperature=1.0",
            "grpo.eval_top_p=1.0",
            f"optim.lr={args.lr}",
            f"train.out={out / 'run'}",
            f"train.steps={args.steps}",
            f"train.seed={args.seed}",
            f"train.threads={args.threads}",
            f"train.eval_every={args.eval_every}",
            "train.dtype=fp32",
            "train.resume=false",
            f"checkpoint.every={args.save_every}",
            "checkpoint.keep_last=20",
            "checkpoint.final=true",
            "logging.progress=false",
            *args.set,
        ],
    )
    result = train(cfg)
    print(
        json.dumps(
            {
                "steps": result.steps,
                "seconds": round(result.seconds, 1),
                "checkpoint": str(result.checkpoint),
                "train_items": len(train_items),
                "eval_items": len(eval_items),
            },
            indent=1,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
