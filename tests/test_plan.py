"""`r1 run --plan`: each stage's model, steps, tokens and FLOPs, from the configs alone (no weights read, nothing
trained), at the recipe's own scale and at the paper's."""

from __future__ import annotations

import argparse
import math
import shutil

import pytest

from r1.assets import ASSETS
from r1.cli import main as cli
from r1.model.config import preset
from r1.model.info import model_info
from r1.pipeline.plan import PAPER_EVAL, PAPER_EVAL_TOKENS, plan_recipe
from r1.pipeline.recipes import RECIPES, get_recipe
from r1.pipeline.recipes.distill import PAPER_STUDENTS
from r1.pipeline.recipes.r1_zero import heldout
from r1.pipeline.stage import Run
from r1.train.config import load_config
from r1.train.grpo.options import resolve_options


def _config(tmp_path, *argv: str):
    """The default recipe's settings on a base folder that holds its config.json and nothing else: reading
    weights would fail."""
    base = tmp_path / "base"
    base.mkdir()
    shutil.copy(ASSETS / "base-tiny" / "config.json", base)
    parser = argparse.ArgumentParser()
    get_recipe("r1-zero").add_arguments(parser)
    args = parser.parse_args(["--base", str(base), *argv])
    args.out = str(tmp_path / "run")
    return get_recipe("r1-zero"), get_recipe("r1-zero").config(args)


def test_tiny_plan_is_the_stage_configs(tmp_path):
    recipe, cfg = _config(tmp_path)
    rows = dict(plan_recipe(recipe, cfg, "tiny"))
    assert list(rows) == ["base", "eval-base", "r1-zero", "eval"]
    stage = {s.name: s for s in recipe.stages(cfg)}["r1-zero"]
    train_cfg = stage.config(Run(out=tmp_path / "run", config=cfg))
    o = resolve_options(train_cfg.options)
    r = rows["r1-zero"]
    assert r["steps"] == train_cfg.train.steps == 100 and r["config"] == "r1-zero-tiny"
    assert r["tokens_trained"] == train_cfg.train.steps * train_cfg.train.batch_size * o.max_new_tokens
    # forward only: every rollout's P·G completions twice (sampled, then scored by the β > 0 reference), and the
    # held-out evaluations at the start, every eval_every steps and at the end
    rollout = train_cfg.train.steps * o.prompts_per_rollout * o.group_size * o.max_new_tokens
    evals = 1 + (train_cfg.train.steps - 1) // train_cfg.train.eval_every + 1
    assert r["tokens_forward"] == 2 * rollout + evals * o.eval_items * o.eval_k * o.max_new_tokens
    assert r["active_params"] < r["total_params"] < 3_000_000  # the tiny MoE: a fraction of it active
    assert r["flops"] == 6 * r["active_params"] * r["tokens_trained"] + 2 * r["active_params"] * r["tokens_forward"]
    # the evaluation: 4 runs over the held-out items (2 sampled with k each, 2 greedy), ≤ max_new_tokens each
    items = len(heldout(Run(out=tmp_path / "run", config=cfg)))
    assert rows["eval"]["tokens_forward"] == (2 * cfg.eval_k + 2) * items * cfg.max_new_tokens
    assert rows["base"]["tokens_trained"] == rows["base"]["flops"] == 0
    assert not (tmp_path / "run").exists()  # planning writes nothing


def test_tiny_plan_counts_pretraining_rows(tmp_path):
    recipe = get_recipe("r1-zero")
    parser = argparse.ArgumentParser()
    recipe.add_arguments(parser)
    args = parser.parse_args(["--from-scratch", "--steps", "300"])
    args.out = str(tmp_path / "run")
    cfg = recipe.config(args)
    rows = dict(plan_recipe(recipe, cfg, "tiny"))
    assert rows["corpus"] is None and rows["tokenizer"] is None  # no model compute
    pre = {s.name: s for s in recipe.stages(cfg)}["pretrain"].config(Run(out=tmp_path / "run", config=cfg))
    assert rows["pretrain"]["steps"] == 300
    assert rows["pretrain"]["tokens_trained"] == 300 * pre.train.batch_size * pre.data.seq_len
    assert rows["r1-zero"]["model"] == "base (tiny)"  # the folder the pretraining stage would publish, its shape


def test_paper_plan_is_deepseek_v3_on_the_paper_configs(tmp_path, capsys):
    recipe, cfg = _config(tmp_path)
    rows = dict(plan_recipe(recipe, cfg, "paper"))
    for r in rows.values():  # 671B in all, 37B active per token
        assert (round(r["total_params"] / 1e9, 2), round(r["active_params"] / 1e9, 2)) == (671.03, 37.55)
    r, nature = rows["r1-zero"], load_config("r1-zero-nature")
    assert r["config"] == "r1-zero-nature" and r["steps"] == 10400
    assert r["tokens_trained"] == 10400 * 512 * 32768 == nature.train.steps * nature.train.batch_size * 32768
    assert math.isclose(rows["r1-zero"]["flops"], 6.66e22, rel_tol=0.005)  # with sampling and the reference
    assert rows["eval"]["tokens_forward"] == sum(n * k for n, k in PAPER_EVAL.values()) * PAPER_EVAL_TOKENS
    assert cli(["run", "--plan", "--scale", "paper", "--base", str(tmp_path / "base")]) == 0
    out = capsys.readouterr().out
    assert "| r1-zero | r1-zero-nature | deepseek-v3-671b | 671.03B (37.55B) | 10,400 | 174.48B |" in out
    assert f"**{sum(r['flops'] for r in rows.values()):.2e}**" in out


def test_scale_needs_plan(capsys):
    assert cli(["run", "--scale", "paper"]) != 0
    assert "error: --scale goes with --plan" in capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_recipe_plans_every_stage_that_runs_a_model(name, tmp_path):
    recipe, parser = get_recipe(name), argparse.ArgumentParser()
    for each in RECIPES:  # `r1 run`'s options: every recipe's (r1.pipeline.cli)
        get_recipe(each).add_arguments(parser)
    base = {"r1": ["--base", str(ASSETS / "base-tiny")]}  # a folder with a config.json: all a plan reads of it
    args = parser.parse_args(base.get(name, []))
    args.out = str(tmp_path / "run")
    cfg = recipe.config(args)
    # the stages that write data or the report and run no model
    data_stages = ("corpus", "tokenizer", "prompts", "cold-start", "filter-check", "sft-data", "report")
    for scale in ("tiny", "paper"):
        rows = plan_recipe(recipe, cfg, scale)
        assert [n for n, r in rows if r is None] == [n for n in data_stages if n in dict(rows)]
        if scale == "paper":  # V3 671B (37.55B active); distillation's students are the paper's dense ones
            students = {
                "sft-" + s: round(model_info(preset(p)).active / 1e9, 2) for s, (p, _) in PAPER_STUDENTS.items()
            }
            for stage, r in rows:
                if r is not None:
                    student = stage.removeprefix("eval-").removeprefix("sft-")  # its SFT and its evaluation
                    assert round(r["active_params"] / 1e9, 2) == students.get("sft-" + student, 37.55), stage


def test_generate_plans_its_samples(tmp_path):
    from r1.pipeline.recipes.r1_zero import Config
    from r1.pipeline.stages.generate import Generate

    gen = Generate("traces", "model", lambda run: heldout(run)[:10], "data/traces.jsonl", n=4, max_new_tokens=32)
    run = Run(out=tmp_path, config=Config(out=str(tmp_path)))
    assert gen.plan(run).counts()["tokens_forward"] == 10 * 4 * 32
    paper = gen.plan(Run(out=tmp_path, config=run.config, scale="paper")).counts()
    assert paper["tokens_forward"] == gen.paper_samples * PAPER_EVAL_TOKENS and paper["tokens_trained"] == 0
