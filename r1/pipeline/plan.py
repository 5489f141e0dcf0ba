"""`r1 run --plan [--scale tiny|paper]`: what a recipe would compute, stage by stage, without running anything.

Each stage that computes with a model answers `Stage.plan(run)` with a `Plan`: the model (its parameters counted on
the meta device, `r1.model.info`; no weights are read), the optimizer steps, the tokens it trains on and the tokens
it only runs forward (sampling, reference and evaluation), and FLOPs ≈ 6·N_active per trained token + 2·N_active
per forward-only token (attention's own FLOPs, which grow with the context, are not in it). Token counts are upper
bounds: every row and completion at its length limit (`data.seq_len`, `max_new_tokens`); prompts are not counted.

`--scale paper` replaces each training stage's shipped config by its paper-scale counterpart (`Train.paper`, else
`PAPER_CONFIGS`) and each evaluation by R1's benchmark protocol (`PAPER_EVAL`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from r1.model.config import ModelConfig
from r1.pipeline.stage import Recipe, Run

# the shipped CPU config → the paper-scale config of the same stage (r1/configs/*.yaml)
PAPER_CONFIGS: dict[str, str] = {"r1-zero-tiny": "r1-zero-nature", "sft-tiny": "r1-cold-start-sft"}
# R1's evaluation [recipe.md §4]: benchmark → (questions, samples per question), 32,768 tokens at most; the sample
# counts are open-r1's reproduction of DeepSeek's numbers (LiveCodeBench left out: its question count varies)
PAPER_EVAL = {"AIME 2024": (30, 64), "MATH-500": (500, 4), "GPQA Diamond": (198, 8)}
PAPER_EVAL_TOKENS = 32768
# pretraining at the paper's scale is DeepSeek-V3's own: 14.8T tokens (V3 report, §4.2)
PAPER_PRETRAIN_TOKENS = 14_800_000_000_000
PAPER_MODEL = "deepseek-v3-671b"


@dataclass
class Plan:
    """One stage's row of the plan (see the module docstring)."""

    model: str
    cfg: ModelConfig
    config: str = "–"  # the config it would train with
    steps: int | None = None
    trained: int = 0  # tokens through forward + backward
    forward: int = 0  # tokens through forward only
    note: str = ""

    def counts(self) -> dict[str, Any]:
        from r1.model.info import model_info

        info = model_info(self.cfg)
        flops = 6 * info.active * self.trained + 2 * info.active * self.forward
        return {"model": self.model, "config": self.config, "total_params": info.total, "active_params": info.active,
                "steps": self.steps, "tokens_trained": self.trained, "tokens_forward": self.forward,
                "flops": float(flops), "note": self.note}  # fmt: skip


def model_from(run: Run, path: str | Path | None, preset: str | None = None) -> tuple[str, ModelConfig]:
    """The model a stage works on: a folder's config.json, else the preset, else the one the stage before planned
    (a folder an earlier stage would have written)."""
    from r1.model.checkpoint import load_config
    from r1.model.config import preset as make_preset

    if path is not None and (Path(path) / "config.json").is_file():
        found = (Path(path).name, load_config(path))
    elif preset is not None:
        found = (preset, make_preset(preset))
    elif "plan/model" in run.cache:
        found = run.cache["plan/model"]
    else:
        found = (PAPER_MODEL, make_preset(PAPER_MODEL)) if run.scale == "paper" else ("tiny", make_preset("tiny"))
    run.cache["plan/model"] = found
    if path is not None and found[0] != Path(path).name and preset is None:  # a folder not made yet: its shape
        return f"{Path(path).name} ({found[0]})", found[1]
    return found


def train_plan(run: Run, cfg: Any, config: str) -> Plan:
    """A `r1 train` config's steps and tokens (pretrain, sft, distill: rows × seq_len; grpo: see `grpo_tokens`)."""
    m = cfg.model
    model = model_from(run, m.path, m.preset if not (m.path and (Path(m.path) / "config.json").is_file()) else None)
    if cfg.stage != "grpo":
        trained = cfg.train.steps * cfg.train.batch_size * cfg.data.seq_len
        note = "rows × seq_len" + ("; the teacher's forward not counted" if cfg.stage == "distill" else "")
        return Plan(*model, config, cfg.train.steps, trained, 0, note)
    trained, forward, note = grpo_tokens(cfg)
    return Plan(*model, config, cfg.train.steps, trained, forward, note)


def grpo_tokens(cfg: Any) -> tuple[int, int, str]:
    """(trained, forward-only, how): every step trains batch_size completions; every rollout samples P·G of them
    (× generation rounds with dynamic sampling) and scores them under π_ref (β > 0) and the trainer (old_logprobs:
    trainer); every held-out evaluation samples eval_items × eval_k."""
    from r1.train.grpo.options import resolve_options

    o, t = resolve_options(cfg.options), cfg.train
    L, rows = o.max_new_tokens, o.prompts_per_rollout * o.group_size
    rollouts = math.ceil(t.steps / (o.epochs * max(1, rows // t.batch_size)))
    sampled = rollouts * rows * L * (o.max_gen_rounds if o.dynamic_sampling else 1)
    scored = rollouts * rows * L * ((o.beta > 0) + (o.old_logprobs == "trainer"))
    evals = 0
    if o.eval_items:
        evals = int(o.eval_at_start) + (((t.steps - 1) // t.eval_every) if t.eval_every else 0) + 1
    eval_tokens = evals * o.eval_items * o.eval_k * (o.eval_max_new_tokens or L)
    note = (f"{rollouts} rollouts of {o.prompts_per_rollout}×{o.group_size} ≤ {L} tokens; {evals} evaluations of "
            f"{o.eval_items}×{o.eval_k}")  # fmt: skip
    return t.steps * t.batch_size * L, sampled + scored + eval_tokens, note


def paper_eval_tokens() -> int:
    return sum(n * k for n, k in PAPER_EVAL.values()) * PAPER_EVAL_TOKENS


def plan_recipe(recipe: Recipe, cfg: Any, scale: str = "tiny") -> list[tuple[str, dict[str, Any] | None]]:
    """(stage name, its counts or None) for every stage of the recipe built from `cfg`."""
    run = Run(out=Path(cfg.out), config=cfg, scale=scale)
    rows = []
    for stage in recipe.stages(cfg):
        planned = stage.plan(run)
        rows.append((stage.name, planned.counts() if planned is not None else None))
    return rows


def plan_lines(recipe: Recipe, scale: str, rows: list[tuple[str, dict[str, Any] | None]]) -> list[str]:
    """The plan as a table, then the sum and each stage's note."""
    lines = [
        f"plan: recipe {recipe.name} at {scale} scale (nothing trained or read but configs; models counted on the "
        "meta device). FLOPs ≈ 6·N_active·trained + 2·N_active·forward-only tokens, at the length limits; – : no "
        "model compute.",
        "",
        "| stage | config | model | parameters (active) | steps | tokens trained | tokens forward-only | FLOPs |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    total = 0.0
    for name, r in rows:
        if r is None:
            lines.append(f"| {name} | – | – | – | – | – | – | – |")
            continue
        total += r["flops"]
        steps = "–" if r["steps"] is None else f"{r['steps']:,}"
        lines.append(
            f"| {name} | {r['config']} | {r['model']} | {_size(r['total_params'])} ({_size(r['active_params'])}) | "
            f"{steps} | {_size(r['tokens_trained'])} | {_size(r['tokens_forward'])} | {r['flops']:.2e} |"
        )
    lines += [f"| **total** | | | | | | | **{total:.2e}** |", ""]
    return lines + [f"- {name}: {r['note']}" for name, r in rows if r is not None and r["note"]]


def _size(n: int) -> str:
    for div, unit in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if n >= div:
            return f"{n / div:.2f}{unit}"
    return str(n)
