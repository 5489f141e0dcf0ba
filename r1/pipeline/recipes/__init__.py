"""Recipes: the stages of one job, built from its settings (`r1 run --recipe NAME`)."""

from __future__ import annotations

import importlib

from r1.pipeline.stage import Recipe

# recipe name -> module defining RECIPE; imported when run
RECIPES: dict[str, str] = {
    "r1-zero": "r1.pipeline.recipes.r1_zero",
    "world-zero": "r1.pipeline.recipes.world_zero",
    "distill": "r1.pipeline.recipes.distill",
    "r1": "r1.pipeline.recipes.r1",
}


def get_recipe(name: str) -> Recipe:
    return importlib.import_module(RECIPES[name]).RECIPE
