"""`r1 train`: run or resume one training stage from a YAML config, with dotted overrides.

r1 train --config configs/pretrain-tiny.yaml optim.lr=3e-4 train.steps=200
r1 train --config configs/pretrain-tiny.yaml --resume          # continue from the newest intact checkpoint
r1 train --config configs/pretrain-tiny.yaml --overwrite       # start over, deleting the earlier run there
torchrun --nproc_per_node 2 -m r1 train --config configs/pretrain-tiny.yaml   # data parallel (FSDP2)
r1 train --config configs/sft-tiny.yaml --print-config          # the resolved config, nothing run
r1 train --config configs/r1-zero-tiny.yaml                     # GRPO (R1-Zero) on the shipped base
"""

from __future__ import annotations

import argparse
import sys

from r1.cli import add_command


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "train", __doc__)
    p.add_argument(
        "--config", metavar="YAML", help="a config file, or a shipped config by name (pretrain-tiny, sft-tiny, ...)"
    )
    p.add_argument(
        "--resume", action="store_true", help="continue the run in train.out from its newest intact checkpoint"
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="start over in a run folder that holds an earlier run, deleting its checkpoints and metrics",
    )
    p.add_argument(
        "--allow-config-change",
        action="store_true",
        help="resume even though settings that shaped the earlier steps (data, batch, model, optimizer) "
        "changed; the earlier config stays in config.yaml, the new one goes to config.resume-N.yaml",
    )
    p.add_argument("--out", metavar="DIR", help="the run folder (same as train.out=DIR)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. optim.lr=3e-4")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from r1.train.config import load_config

    overrides = list(args.overrides)
    if args.out:
        overrides.append(f"train.out={args.out}")
    if args.resume:
        overrides.append("train.resume=true")
    if args.overwrite:
        overrides.append("train.overwrite=true")
    if args.allow_config_change:
        overrides.append("train.allow_config_change=true")
    cfg = load_config(args.config, overrides)
    if args.print_config:
        print(cfg.to_yaml(), end="")
        return 0
    from r1.train.core import train

    result = train(cfg)
    if result.model is not None and _is_main():
        parts = [f"{result.steps} steps", f"{result.tokens:,} tokens", f"{result.seconds:.1f}s"]
        if result.final_loss is not None:
            parts.append(f"final loss {result.final_loss:.4f}")
        for key, name in (("eval_loss", "eval loss"), ("eval_pass@1", "held-out pass@1")):
            if key in result.evaluation:
                parts.append(f"{name} {result.evaluation[key]:.4f}")
        print(f"trained: {', '.join(parts)}")
        print(f"run folder: {result.run_dir} (report.md, metrics.jsonl, checkpoints/)")
        if result.checkpoint:
            print(f"checkpoint: {result.checkpoint}")
        if result.model_dir:
            print(f"model: {result.model_dir} (weights, tokenizer, README.md model card, provenance.json)")
    return 0


def _is_main() -> bool:
    import os

    return os.environ.get("RANK", "0") == "0"


def main(argv: list[str] | None = None) -> int:
    """`python -m r1.train.cli ...` works before the top-level `r1` CLI knows the subcommand."""
    from r1.errors import UserError

    parser = argparse.ArgumentParser(prog="r1")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["train", *(sys.argv[1:] if argv is None else argv)])
    try:
        return args.func(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
