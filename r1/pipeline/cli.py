"""`r1 run`: a recipe, end to end, into one run folder (`r1.pipeline.runner`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from r1.cli import add_command
from r1.errors import UserError
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
    p.add_argument("--plan", action="store_true", help="print each stage's model, steps, tokens and FLOPs; run nothing")
    p.add_argument("--scale", choices=["tiny", "paper"], help="with --plan: this recipe's configs (tiny, the default) "
                   "or the paper-scale ones (r1/configs/r1-*.yaml, DeepSeek-V3 671B)")  # fmt: skip
    for name in RECIPES:  # the default recipe's flags first (the others share them), then each one's own
        get_recipe(name).add_arguments(p)
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    from r1.pipeline.runner import run_recipe

    recipe = get_recipe(args.recipe)
    if args.scale and not args.plan:
        raise UserError("--scale goes with --plan (it says which configs the plan counts)")
    cfg = recipe.config(args)
    if args.plan:
        from r1.pipeline.plan import plan_lines, plan_recipe

        print("\n".join(plan_lines(recipe, args.scale or "tiny", plan_recipe(recipe, cfg, args.scale or "tiny"))))
        return 0
    run_recipe(recipe, cfg, start=args.start, until=args.until)
    print(f"\nrun folder: {cfg.out}\n")
    print((Path(cfg.out) / "report.md").read_text())
    return 0
