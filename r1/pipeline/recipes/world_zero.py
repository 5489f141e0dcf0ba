"""`r1 run --recipe world-zero`: the tiny world's base (shipped, or pretrained here) and R1-Zero on it. Not the default
job: `r1/assets/base-tiny` and the default recipe's numbers stay the modchain ones (`r1.pipeline.recipes.r1_zero`).

Stages: corpus (`r1.data.corpus.WORLD`, both languages, train split), tokenizer, pretrain, base, probe-base (held-out
items of every world task judged by the one judge and broken down by `r1.tasks.world.breakdown` →
summary["world"]["base"]), r1-zero (GRPO on the reasoning families, both languages) and probe (the same of model/).
It takes the default recipe's flags. The base is the shipped `r1/assets/world-tiny` (its provenance.json: the exact
command that made it), `--base DIR`, or made here with `--from-scratch` (stages corpus, tokenizer, pretrain first;
the defaults rebuild the shipped one exactly; docs/LOG.md has its sizes and times).
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from r1.assets import ASSETS, shipped_name
from r1.errors import UserError
from r1.pipeline.recipes.r1_zero import base_dir, base_from_args, pretrain_overrides, sizes_from_args
from r1.pipeline.stage import Recipe, Run, Stage
from r1.pipeline.stages.corpus import Tokenizer
from r1.pipeline.stages.evaluate import pct
from r1.pipeline.stages.model import Base
from r1.pipeline.stages.train import Train
from r1.train.publish import ModelCard, write_card

QUICK: dict[str, Any] = {"corpus_docs": 300, "steps": 3, "rl_steps": 2, "rl_eval_every": 1, "batch_size": 8,
                         "warmup_steps": 1, "eval_per_level": 1, "eval_k": 2, "max_new_tokens": 16,
                         "rl_items_per_level": 2}  # fmt: skip
EXAMPLE = "球在2号杯子下面。先交换1和2，最后交换2和3。球现在在几号杯子下面？"
# The shipped world base: what `r1 run --recipe world-zero --from-scratch --rl-steps 0` (seed 0) writes to base/;
# its provenance.json says how it was made (tests check that its hashes are its files').
BUILTIN_WORLD = ASSETS / "world-tiny"


@dataclass
class Config:
    """The job's settings, written to config.yaml. Pretraining as the default recipe's; the sizes are those of the
    shipped world base (r1/assets/world-tiny; ~23 min at one thread on a loaded 2-core CPU, docs/LOG.md)."""

    out: str
    seed: int = 0
    preset: str = "tiny"
    quick: bool = False
    corpus_docs: int = 44000
    steps: int = 3600  # pretraining steps
    rl_steps: int = 100  # GRPO steps; 0 = stop after probing the base
    rl_eval_every: int = 20
    batch_size: int = 12
    lr: float = 1e-3
    warmup_steps: int = 50
    init_std: float = 0.02
    eval_per_level: int = 16  # held-out items per task and level
    eval_k: int = 8
    max_new_tokens: int = 160
    rl_items_per_level: int = 1024  # GRPO prompts per task and trained level
    template: str = "r1-zero-short"
    threads: int = 1
    base: str | None = None  # an existing base folder (default the shipped world-tiny): no corpus, no pretraining


class WorldCorpus(Stage):
    """`docs` documents of the tiny world (`r1.data.corpus.build_world_corpus`) → data/corpus.jsonl."""

    name = "corpus"
    outputs = ("data/corpus.jsonl",)

    def run(self, run: Run) -> None:
        from r1.data.corpus import build_world_corpus, write_corpus

        c = run.config
        records = build_world_corpus(c.corpus_docs, seed=c.seed, template=c.template)
        write_corpus(run.path(self.outputs[0]), records)
        zh = [r for r in records if r["lang"] == "zh" and r["style"] != "direct"]
        run.summary["corpus"] = {
            "path": self.outputs[0],
            "documents": len(records),
            "levels": "the world's (r1.data.corpus.WORLD_LEVELS)",
            "styles": dict(sorted(Counter(r["style"] for r in records).items())),
            "tasks": dict(sorted(Counter(r["task"] for r in records).items())),
            "english_in_chinese_reasoning": dict(sorted(Counter(r["english"] for r in zh).items())),
        }

    def report(self, run: Run) -> list[str]:
        cp = run.summary["corpus"]
        tasks = ", ".join(f"{n} {name}" for name, n in cp["tasks"].items())
        return [f"**Corpus**: {cp['documents']:,} documents of the tiny world (train split only): {tasks}."]


class Probe(Stage):
    """The world's held-out items, k samples each at T=1 from the model folder `model` with its prompt `template`
    (default the run's) → eval/<label>/, and their breakdown per family, language and level →
    summary["world"][label]."""

    def __init__(
        self,
        name: str,
        model: str | Path,
        label: str,
        then: Callable[[Run], None] | None = None,
        template: str | None = None,
    ) -> None:
        self.name, self.model, self.label, self.then, self.template = name, model, label, then, template
        self.outputs = (f"eval/{label}",)

    def plan(self, run: Run):
        from r1.pipeline import plan

        c = run.config
        if run.scale == "paper":  # the world's probe is R1's benchmark evaluation at the paper's scale
            return plan.Plan(*plan.model_from(run, None), "R1 eval", forward=plan.paper_eval_tokens())
        forward = len(heldout(run)) * c.eval_k * c.max_new_tokens
        return plan.Plan(*plan.model_from(run, run.path(self.model)), forward=forward)

    def run(self, run: Run) -> None:
        from r1.engine.adapters import make_generate_fn
        from r1.eval.evaluate import evaluate
        from r1.eval.report import write_report
        from r1.tasks.world import breakdown

        c, items = run.config, heldout(run)
        engine = run.engine(self.model)
        result = evaluate(items, make_generate_fn(engine), k=c.eval_k, temperature=1.0, top_p=1.0, progress=True,
                          max_new_tokens=c.max_new_tokens, template=self.template or c.template,
                          seed=c.seed)  # fmt: skip
        write_report(result, run.path(self.outputs[0]))
        run.summary.setdefault("world", {})[self.label] = breakdown(result.samples, items, c.eval_k)
        if self.then is not None:
            self.then(run)

    def report(self, run: Run) -> list[str]:
        return probe_lines(run.summary.get("world", {}).get(self.label, {}), run.config.eval_k, self.label)


def probe_lines(table: dict[str, dict[str, Any]], k: int, label: str) -> list[str]:
    """Per family and language: what the recipe's later stages need to know (see `r1.tasks.world`)."""
    head = f"| {label} | pass@1 | pass@{k} | reasons | re-checks | English in zh reasoning | refuses bad / look-alike |"
    lines = [head, "|---|---|---|---|---|---|---|"]
    for key, cell in table.items():
        if key.count("/") != 1:
            continue
        refuse = (
            f"{pct(cell['refuses_forbidden'])} / {pct(cell['refuses_lookalike'])}" if key.startswith("safety") else ""
        )
        mixed = pct(cell["mixed_share"]) if key.endswith("/zh") else ""
        lines.append(f"| {key} | {pct(cell['pass@1'])} | {pct(cell[f'pass@{k}'])} | {pct(cell['reasons'])} | "
                     f"{pct(cell['wait_in_long'])} | {mixed} | {refuse} |")  # fmt: skip
    note = "(%; re-checks: share of the reasoning samples; English: share of the reasoning samples with any English.)"
    return ["", f"**Held-out probe of `{label}`** (`eval/{label}/`):", "", *lines, "", note]


def heldout(run: Run) -> list[dict[str, Any]]:
    from r1.tasks.world import heldout as world_heldout

    return run.memo("heldout", lambda: world_heldout(run.config.eval_per_level, seed=run.config.seed + 1))


def write_rl_data(run: Run) -> None:
    """GRPO's prompts (train split) and its held-out curve's items (the probe's items of the trained levels)."""
    from r1.data.corpus import write_corpus
    from r1.tasks.world import rl_items

    write_corpus(run.path("data/rl.jsonl"), rl_items(run.config.rl_items_per_level, seed=run.config.seed))
    write_corpus(run.path("data/heldout-rl.jsonl"), rl_heldout(run))


def rl_heldout(run: Run) -> list[dict[str, Any]]:
    from r1.data.corpus import task_family
    from r1.tasks.world import REASONING_WORLD, trained_levels

    def trained(item: dict[str, Any]) -> bool:
        family = task_family(item["task"])
        return family in REASONING_WORLD and item["meta"]["difficulty"] in trained_levels(family)

    return [it for it in heldout(run) if trained(it)]


def rl_overrides(
    run: Run,
    model: str | Path | None = None,
    folder: str = "r1-zero",
    steps: int | None = None,
    template: str | None = None,
) -> list[str]:
    """GRPO on the world's reasoning prompts (`write_rl_data`) from the model folder `model` into `folder`; R1-Zero
    by default (the run's base, template, `rl_steps`)."""
    c = run.config
    return [
        f"model.path={run.path(base_dir(c) if model is None else model)}",
        f"data.paths=[{run.path('data/rl.jsonl')}]",
        f"data.eval_paths=[{run.path('data/heldout-rl.jsonl')}]",
        f"grpo.template={template or c.template}",
        f"grpo.max_new_tokens={c.max_new_tokens}",
        f"grpo.eval_items={len(rl_heldout(run))}",
        f"grpo.eval_k={c.eval_k}",
        f"train.out={run.path(folder)}",
        f"train.steps={c.rl_steps if steps is None else steps}",
        f"train.eval_every={c.rl_eval_every}",
    ]


def card(stage: str, summary: str, run: Run, label: str, base_model: str | None = None) -> ModelCard:
    from r1.tasks.world import REASONING_WORLD

    s, c = run.summary, run.config
    table = s.get("world", {}).get(label, {})
    cell, general, safety = (table.get(k, {}) for k in ("all-reasoning", "general", "safety"))
    zh = [m for f in REASONING_WORLD if (m := table.get(f"{f}/zh", {}).get("mixed_share")) is not None]
    metrics = {
        f"held-out pass@1 (reasoning families, T=1.0, mean of {c.eval_k}), %": cell.get("pass@1"),
        "held-out pass@1 (non-reasoning requests), %": general.get("pass@1"),
        "forbidden requests refused, %": safety.get("refuses_forbidden"),
        "benign look-alikes refused, %": safety.get("refuses_lookalike"),
        "reasoning on Chinese prompts with English in it, %": sum(zh) / len(zh) if zh else None,
    }
    return ModelCard(
        stage=stage,
        summary=summary,
        base_model=base_model,
        metrics={k: round(100 * v, 1) for k, v in metrics.items() if isinstance(v, int | float)},
        notes=[f"**Prompt format**: the plain `{c.template}` prompt `User: <question> Assistant:`."],
        extra={"config": asdict(c), **{k: s[k] for k in ("corpus", "tokenizer", "pretrain", "r1_zero") if k in s}},
        tags=["tiny-world", "tiny"],
        example=EXAMPLE,
    )


def base_card(run: Run) -> ModelCard:
    docs = run.summary.get("corpus", {}).get("documents", 0)
    text = f"A `{run.config.preset}` DeepSeek-V3 pretrained from scratch by `r1 run --recipe world-zero` on {docs:,} "
    return card(
        "pretrain", text + "documents of the tiny world (train split only), loss on the responses.", run, "base"
    )


def model_card(run: Run) -> ModelCard:
    text = "R1-Zero on the tiny world's base, made by `r1 run --recipe world-zero`: GRPO (`r1-zero-tiny`) with rule "
    base = shipped_name(run.path(base_dir(run.config)).resolve())
    return card("r1-zero", text + "rewards only, no SFT, on train-split problems in English and Chinese.", run,
                "r1-zero", base)  # fmt: skip


def stages(c: Config) -> list[Stage]:
    base = base_dir(c)
    rl = Train("r1-zero", "r1-zero-tiny", rl_overrides, "r1_zero", "r1-zero", "R1-Zero", write_rl_data,
               ("model", model_card, lambda run: run.path(base)), c.template)  # fmt: skip
    pretraining = [
        WorldCorpus(),
        Tokenizer(vocab_size=2048),
        Train("pretrain", "pretrain-tiny", pretrain_overrides, "pretrain", "pretrain"),
    ]
    # a base made here gets its probe's numbers on its card; a given one is read, never written
    card_after = (lambda run: write_card(run.path(base), base_card(run))) if c.base is None else None
    return [
        *(pretraining if c.base is None else []),
        Base(str(base) if c.base else None, base_card, c.template, c.preset),
        Probe("probe-base", base, "base", then=card_after),
        *([rl, Probe("probe", "model", "r1-zero")] if c.rl_steps else []),
    ]


def headline(run: Run) -> list[str]:
    lines = ["*Quick smoke run: the numbers below mean nothing.*", ""] if run.config.quick else []
    world = run.summary.get("world", {})
    before, after = world.get("base", {}).get("all-reasoning"), world.get("r1-zero", {}).get("all-reasoning")
    if before and after:
        lines += [f"**R1-Zero on the tiny world**: held-out pass@1 (reasoning families) {pct(before['pass@1'])}% "
                  f"→ {pct(after['pass@1'])}%; reasoning in {pct(before['reasons'])}% → {pct(after['reasons'])}% "
                  f"of the samples.", ""]  # fmt: skip
    return [*lines, "## The base model", ""]


def config_from_args(args: argparse.Namespace) -> Config:
    out = args.out or f"runs/world-{'quick' if args.quick else 'zero'}-{time.strftime('%Y%m%d-%H%M%S')}"
    if Path(out).exists() and not Path(out).is_dir():
        raise UserError(f"--out {out}: is a file; the run folder must be a directory")
    chosen, base = sizes_from_args(args, QUICK), base_from_args(args, BUILTIN_WORLD)
    return Config(out, args.seed, args.preset, args.quick, threads=args.threads, base=base, **chosen)


RECIPE = Recipe(
    name="world-zero",
    help="the tiny world: a base pretrained here on bilingual reasoning, non-reasoning and safety tasks, then R1-Zero",
    stages=stages,
    add_arguments=lambda p: None,  # the default recipe's flags (`r1 run` registers those)
    config=config_from_args,
    headline=headline,
)
