"""`r1 run --recipe world-zero`: the tiny world's base (shipped, or made here) and R1-Zero on it, apart from the default
job."""

from __future__ import annotations

import argparse
import hashlib
import json
from dataclasses import asdict

import pytest

from r1.cli import build_parser
from r1.cli import main as cli
from r1.errors import UserError
from r1.pipeline.cli import DEFAULT
from r1.pipeline.recipes import RECIPES, get_recipe
from r1.pipeline.recipes.r1_zero import BUILTIN_BASE
from r1.pipeline.recipes.world_zero import BUILTIN_WORLD, Config, probe_lines, rl_heldout, stages
from r1.pipeline.stage import Run
from r1.tasks.world import breakdown, heldout
from r1.train.publish import verify_provenance


def _args(*flags: str) -> argparse.Namespace:
    argv = ["run", "--recipe", "world-zero", *flags]
    return build_parser(argv).parse_args(argv)  # the real `r1 run` parser


def test_world_zero_is_a_recipe_but_not_the_default_and_starts_from_the_shipped_world_base(tmp_path) -> None:
    assert DEFAULT == "r1-zero" and "world-zero" in RECIPES
    recipe = get_recipe("world-zero")
    cfg = recipe.config(_args("--out", str(tmp_path / "w"), "--rl-steps", "0", "--eval-items", "2"))
    assert cfg.base == str(BUILTIN_WORLD) and [s.name for s in stages(cfg)] == ["base", "probe-base"]
    cfg = recipe.config(_args("--out", str(tmp_path / "w"), "--from-scratch", "--steps", "7", "--rl-steps", "0"))
    assert (cfg.base, cfg.steps, cfg.rl_steps, cfg.corpus_docs) == (None, 7, 0, Config.corpus_docs)
    names = [s.name for s in stages(cfg)]
    assert names == ["corpus", "tokenizer", "pretrain", "base", "probe-base"]
    cfg.rl_steps = 5
    assert [s.name for s in stages(cfg)][-2:] == ["r1-zero", "probe"]
    assert recipe.config(_args("--base", str(BUILTIN_BASE))).base == str(BUILTIN_BASE)
    with pytest.raises(UserError, match="--steps and --docs shape the base: add --from-scratch"):
        recipe.config(_args("--steps", "7"))
    with pytest.raises(UserError, match="exclude each other"):
        recipe.config(_args("--base", str(BUILTIN_BASE), "--from-scratch"))
    with pytest.raises(UserError, match="--docs must be >= 1, got 0"):
        recipe.config(_args("--docs", "0"))
    with pytest.raises(UserError, match="--threads must be >= 1"):
        recipe.config(_args("--threads", "0"))


def test_the_shipped_world_base_is_what_its_provenance_says() -> None:
    verify_provenance(BUILTIN_WORLD)  # every file's sha256, the card included
    made = json.loads((BUILTIN_WORLD / "provenance.json").read_text())
    assert made["command"].startswith("r1 run --recipe world-zero --from-scratch --rl-steps 0") and made["commit"]
    # today's defaults are the settings that made it (what --from-scratch rebuilds)
    defaults = {k: v for k, v in asdict(Config("out")).items() if k not in ("out", "base", "rl_steps")}
    assert {k: made["config"][k] for k in defaults} == defaults and made["config"].get("base") is None
    assert made["corpus"]["documents"] == Config.corpus_docs and made["pretrain"]["steps"] == Config.steps
    assert (BUILTIN_WORLD / "model.safetensors").stat().st_size < 13 * 2**20  # small enough to ship in the package


def test_rl_heldout_is_the_probe_items_of_the_trained_reasoning_levels(tmp_path) -> None:
    run = Run(out=tmp_path, config=Config(str(tmp_path), eval_per_level=2))
    items = rl_heldout(run)
    assert items and {i["task"] for i in items} == {"modchain", "modchain_zh", "swaps", "swaps_zh", "mystery",
                                                    "mystery_zh"}  # fmt: skip
    assert {i["meta"]["difficulty"] for i in items if i["task"] == "modchain"} == {"2", "3", "4", "5"}
    probe = heldout(2, seed=1)
    assert all(i in probe for i in items)


def test_probe_lines_show_a_row_per_family_and_language() -> None:
    items = [it for it in heldout(1, seed=1, families=["swaps", "safety"])]
    samples = [{"item": i, "correct": i % 2 == 0, "reasons": i % 3 == 0, "reflects": False, "num_tokens": 5,
                "text": "<think>\n</think>\n<answer>1</answer>", "pred": "1"} for i in range(len(items))]  # fmt: skip
    lines = probe_lines(breakdown(samples, items, 4), 4, "base")
    rows = [line.split(" | ")[0].lstrip("| ") for line in lines if line.startswith("| ") and "/" in line[:12]]
    assert rows == ["safety/en", "safety/zh", "swaps/en", "swaps/zh"]


@pytest.mark.slow
def test_a_quick_from_scratch_world_run_leaves_a_probed_base_and_model_and_the_shipped_bases_unchanged(
    tmp_path,
) -> None:
    shipped = {
        d: hashlib.sha256((d / "model.safetensors").read_bytes()).hexdigest() for d in (BUILTIN_BASE, BUILTIN_WORLD)
    }
    out = tmp_path / "quick"
    assert cli(["run", "--recipe", "world-zero", "--from-scratch", "--quick", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    for label in ("base", "r1-zero"):
        table = summary["world"][label]
        assert {"modchain/zh", "swaps/en", "mystery/zh", "general/en", "safety/zh", "all-reasoning"} <= set(table)
    records = [json.loads(line) for line in (out / "data/corpus.jsonl").read_text().splitlines()]
    assert {r["task"] for r in records} >= {"swaps_zh", "mystery", "general_zh", "safety"}
    report = (out / "report.md").read_text()
    assert "**Held-out probe of `base`**" in report and "**Held-out probe of `r1-zero`**" in report
    made = json.loads((out / "base" / "provenance.json").read_text())
    assert "--recipe world-zero" in made["command"] and made["corpus"]["documents"] == 300
    assert (out / "model" / "model.safetensors").is_file()
    assert {d: hashlib.sha256((d / "model.safetensors").read_bytes()).hexdigest() for d in shipped} == shipped
