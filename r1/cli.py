"""The `r1` command: a thin dispatcher over the library.

Each subcommand lives next to the code it drives, in a module with `register(subparsers)` that adds its parser
and sets `func`. Modules are imported lazily so `r1 --help` stays fast and a missing optional extra only
affects its own subcommand.
"""

from __future__ import annotations

import argparse
import contextvars
import importlib
import os
import shlex
import sys

from r1.errors import UserError

# subcommand -> (module that registers it, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("r1.pipeline.run", "the built-in default job, end to end, into a run folder"),
    "model": ("r1.model.cli", "inspect model presets: parameter counts, KV-cache sizes, configs"),
    "tokenizer": ("r1.tokenizer_cli", "train or inspect a byte-level BPE tokenizer with the R1 chat template"),
    "tasks": ("r1.tasks.cli", "list built-in task generators, sample items, convert local datasets"),
    "eval": ("r1.eval.cli", "R1-style evaluation: pass@1 over k samples, pass@k, cons@k, lengths"),
    "train": ("r1.train.cli", "train a stage (pretrain, sft, grpo) from a YAML config; torchrun for data parallel"),
    "chat": ("r1.chat", "chat with a model in the terminal, reasoning shown apart from the answer"),
    "serve": ("r1.serve.cli", "OpenAI-compatible HTTP server with reasoning_content"),
    "quantize": ("r1.quantize_cli", "weight-only int8/int4 quantisation of a model folder (compressed-tensors)"),
}


# the command line being run, while it runs: what it publishes records it (r1.train.publish.current_command)
COMMAND: contextvars.ContextVar[str | None] = contextvars.ContextVar("r1_command", default=None)


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="r1", description="DeepSeek-R1, whole and readable.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    wanted = next((a for a in argv if not a.startswith("-")), None)
    for name, (module, help_text) in COMMANDS.items():
        if name == wanted:
            importlib.import_module(module).register(sub)
        else:
            sub.add_parser(name, help=help_text)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if not argv else 2
    token = COMMAND.set(shlex.join(["r1", *argv]))
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `r1 … | head`: the reader left; not an error
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115
        return 0
    finally:
        COMMAND.reset(token)


if __name__ == "__main__":
    sys.exit(main())
