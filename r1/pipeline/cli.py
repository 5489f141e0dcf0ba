"""`r1 run`: a recipe, end to end, into one run folder (`r1.pipeline.runner`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from r1.cli import add_command
from r1.pipeline.recipes import RECIPES, get_recipe

DEFAULT = "r1-zero"


def register(sub: argparse._SubParsersAction) -> None:
    recipe = get_recipe(DEFAULT)
    p = add_command(
        sub,
        "run",
        f"Run a recipe's stages into one run folder with report.md and summary.json. "
        f"The default recipe, {DEFAULT}: {recipe.help}. Running into the same folder again continues it.",
    )
    p.add_argument("--recipe", default=DEFAULT, choices=list(RECIPES), help=f"the job (default {DEFAULT})")
    p.add_argument("--out", default=None, help="run folder (default runs/default-<time>)")
    p.add_argument("--from", dest="start", metavar="STAGE", help="rerun from this stage (those before it are kept)")
    p.add_argument("--until", metavar="STAGE", help="stop after this stage")
    for name in RECIPES:  # the default recipe's flags are every recipe's; others may add their own
        get_recipe(name).add_arguments(p)
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    from r1.pipeline.runner import run_recipe

    recipe = get_recipe(args.recipe)
    cfg = recipe.config(args)
    run_recipe(recipe, cfg, start=args.start, until=args.until)
    print(f"\nrun folder: {cfg.out}\n")
    print((Path(cfg.out) / "report.md").read_text())
    return 0
