"""The `r1` command: a thin dispatcher over the library.

Each subcommand lives next to the code it drives, in a module with `register(subparsers)` that adds its parser
(`add_command`) and sets `func`; its numeric flags are range-checked with `check_at_least`. Modules are imported
lazily so `r1 --help` stays fast and a missing optional extra only affects its own subcommand.
"""

from __future__ import annotations

import argparse
import contextvars
import importlib
import os
import shlex
import sys
from typing import NoReturn

from r1.errors import UserError

# subcommand -> (module that registers it, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("r1.pipeline.cli", "a recipe end to end into a run folder (default: R1-Zero on the shipped base)"),
    "model": ("r1.model.cli", "inspect model presets: parameter counts, KV-cache sizes, configs"),
    "tokenizer": ("r1.tokenizer_cli", "train or inspect a byte-level BPE tokenizer with the R1 chat template"),
    "tasks": ("r1.tasks.cli", "list built-in task generators, sample items, convert local datasets"),
    "eval": ("r1.eval.cli", "R1-style evaluation: pass@1 over k samples, pass@k, cons@k, lengths"),
    "train": ("r1.train.cli", "train a stage (pretrain, sft, grpo) from a YAML config; torchrun for data parallel"),
    "chat": ("r1.chat", "chat with a model in the terminal, reasoning shown apart from the answer"),
    "serve": ("r1.serve.cli", "OpenAI-compatible HTTP server with reasoning_content"),
}


# the command line being run, while it runs: what it publishes records it (r1.train.publish.current_command)
COMMAND: contextvars.ContextVar[str | None] = contextvars.ContextVar("r1_command", default=None)


class Parser(argparse.ArgumentParser):
    """argparse's parser, except that a bad command line is one line, as every other user error is: what is wrong
    and where the options are listed, not a usage block first. Subcommands' parsers are of this class too."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def add_command(
    subparsers: argparse._SubParsersAction, name: str, description: str | None = None
) -> argparse.ArgumentParser:
    """The parser of `r1 NAME`, listed with its help from COMMANDS. A description of several lines (a module
    docstring) keeps its layout in --help; one paragraph is wrapped to the terminal, as argparse does."""
    laid_out = description is not None and "\n" in description.strip()
    formatter = argparse.RawDescriptionHelpFormatter if laid_out else argparse.HelpFormatter
    return subparsers.add_parser(name, help=COMMANDS[name][1], description=description, formatter_class=formatter)


def check_at_least(args: argparse.Namespace, **floors: float) -> None:
    """A UserError `FLAG must be >= LOW, got VALUE` for the first option below its floor, each named by its dest as
    argparse derives it (`max_len` is --max-len, `k` is -k). An option not given (None) passes; NaN fails."""
    for dest, low in floors.items():
        value = getattr(args, dest)
        if value is not None and not value >= low:
            flag = f"-{dest}" if len(dest) == 1 else f"--{dest.replace('_', '-')}"
            raise UserError(f"{flag} must be >= {low}, got {value}")


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = Parser(prog="r1", description="DeepSeek-R1, whole and readable.")
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
