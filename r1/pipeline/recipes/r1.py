"""`r1 run --recipe r1`: DeepSeek-R1's recipe after R1-Zero, on the tiny world [recipe §3; Nat Fig. 2].

Base →(GRPO, rule rewards)→ R1-Zero; its correct samples on train prompts, refined into the readable format
(`r1.data.refine`, a deterministic stand-in for the paper's annotators and DeepSeek-V3) → cold-start data; SFT of
the base on it → Dev1; GRPO on Dev1 with accuracy + format + language consistency → Dev2 (`--ablation`: the same
without the language reward, which is then only measured); rejection sampling of Dev2 (k samples per train prompt,
correct ones kept, the six defect filters of `r1.data.filters`) plus non-reasoning requests answered without
reasoning (`r1.tasks.general`) → SFT data; SFT of the base on it for two epochs → Dev3. Every model is evaluated
on the world's held-out items (`world_zero.Probe`): R1-Zero and the base in the R1-Zero format (`r1-zero-short`),
Dev1–Dev3 in R1's (`r1-plain`: reasoning, then a one-line summary with the boxed answer).

The base is `r1/assets/world-tiny/` when it ships, else `--base DIR` (e.g. the base/ of `r1 run --recipe
world-zero --rl-steps 0`); `--from-scratch` pretrains one here with world-zero's stages. `--quick` is a seconds-long
smoke run on the shipped modchain base whose numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

from r1.assets import ASSETS
from r1.errors import UserError
from r1.pipeline.recipes import world_zero as wz
from r1.pipeline.recipes.r1_zero import BUILTIN_BASE, pretrain_overrides, sizes_from_args
from r1.pipeline.stage import Recipe, Run, Stage
from r1.pipeline.stages.corpus import Tokenizer
from r1.pipeline.stages.evaluate import num, pct
from r1.pipeline.stages.generate import Generate
from r1.pipeline.stages.model import Base
from r1.pipeline.stages.train import Train
from r1.train.publish import ModelCard

WORLD_BASE = ASSETS / "world-tiny"
R1_TEMPLATE = "r1-plain"
QUICK: dict[str, Any] = {"corpus_docs": 300, "steps": 3, "rl_steps": 2, "dev2_steps": 2, "rl_eval_every": 1,
                         "batch_size": 8, "warmup_steps": 1, "eval_per_level": 1, "eval_k": 2, "max_new_tokens": 32,
                         "rl_items_per_level": 2, "cold_items_per_level": 6, "cold_k": 2,
                         "rejection_items_per_level": 2, "rejection_k": 2, "general_items": 8,
                         "sft_min_steps": 1}  # fmt: skip
# the language-consistency weight of Dev2 (the paper sums it with accuracy) and of the ablation (measured, not paid)
LANGUAGE_WEIGHT = {"dev2": 1.0, "ablation": 0.0}


@dataclass
class Config:
    """The job's settings, written to config.yaml. Pretraining (only with --from-scratch) as world-zero's."""

    out: str
    seed: int = 0
    preset: str = "tiny"
    quick: bool = False
    base: str | None = None  # a base model folder; None: pretrained here (world-zero's stages)
    corpus_docs: int = 40000
    steps: int = 3000  # pretraining steps
    batch_size: int = 12
    lr: float = 1e-3
    warmup_steps: int = 50
    init_std: float = 0.02
    rl_steps: int = 40  # R1-Zero's GRPO steps
    dev2_steps: int = 40  # reasoning RL on Dev1 (and the ablation)
    ablation: bool = False
    rl_eval_every: int = 20
    rl_items_per_level: int = 1024  # GRPO prompts per task and trained level
    cold_items_per_level: int = 48  # train prompts R1-Zero is sampled on for the cold start
    cold_k: int = 4
    rejection_items_per_level: int = 48
    rejection_k: int = 4
    general_items: int = 400  # non-reasoning requests per language in Dev3's data
    sft_epochs: int = 2  # both SFT stages [R1v1 §2.3.3: two epochs]
    # ... but at least this many steps, at this lr: the summary's `\boxed{}` is new to a base pretrained on <answer>
    # tags, and 616 cold-start chats × 2 epochs (60 steps at sft-tiny's 2e-4, or at 1e-3) left it unlearned (format
    # 0%); 150 steps at 1e-3 wrote it in 95% of the samples (docs/LOG.md, session 9)
    sft_min_steps: int = 150
    sft_lr: float = 1e-3
    eval_per_level: int = 6  # held-out items per task and level
    eval_k: int = 4
    max_new_tokens: int = 160
    template: str = "r1-zero-short"  # the base's and R1-Zero's prompt; Dev1–Dev3 answer in R1_TEMPLATE
    threads: int = 1


# ================================================================================================ data
def train_items(run: Run, per_level: int, salt: int) -> list[dict[str, Any]]:
    """Train-split prompts of the reasoning families in both languages, drawn apart from GRPO's (another seed)."""
    from r1.tasks.world import rl_items

    return rl_items(per_level, seed=run.config.seed + salt)


def cold_items(run: Run) -> list[dict[str, Any]]:
    """The cold start's prompts, each with the prefill that starts a worked solution (`r1.tasks.world.forced_prefill`:
    `<think>` and the first step's words up to its first number): the paper's "prompting for detailed answers", for
    an R1-Zero that mostly answers directly (docs/LOG.md, session 9)."""
    from r1.data.corpus import prompt_for
    from r1.tasks.world import forced_prefill

    c, out = run.config, []
    for item in train_items(run, c.cold_items_per_level, salt=1):
        prefill = forced_prefill(item, "steps")
        meta = {**item["meta"], "template": c.template, "prefill": prefill}
        out.append({**item, "prompt": prompt_for(item, c.template) + prefill, "meta": meta})
    return out


class Refine(Stage):
    """Cold-start data: each kept R1-Zero sample of `source` in the readable format (`r1.data.refine`): its own
    lines when they work the item's steps and can be put in one language, else the annotator's rewrite → `out`."""

    def __init__(self, name: str, source: str, out: str) -> None:
        self.name, self.source, self.out = name, source, out
        self.inputs, self.outputs = (source,), (out,)

    def run(self, run: Run) -> None:
        from collections import Counter

        from r1.data.corpus import read_corpus, write_corpus
        from r1.data.refine import refine, rewrite

        records, kept, counts = read_corpus(run.path(self.source)), [], Counter()
        for r in records:
            sample = r["messages"][1]["content"]
            text = refine(sample, r)
            counts["own lines" if text is not None else "rewritten", r["meta"].get("lang", "en")] += 1
            text = text if text is not None else rewrite(sample, r)
            kept.append({**r, "messages": [r["messages"][0], {"role": "assistant", "content": text}]})
        if not kept:
            raise UserError(f"{self.name}: {self.source} is empty: R1-Zero got no train prompt right")
        write_corpus(run.path(self.out), kept)
        run.summary[self.name] = {"path": self.out, "samples": len(records),
                                  **{f"{how}/{lang}": n for (how, lang), n in sorted(counts.items())}}  # fmt: skip

    def report(self, run: Run) -> list[str]:
        r = run.summary.get(self.name)
        if not r:
            return []
        parts = ", ".join(f"{n} {key.replace('/', ' in ')}" for key, n in r.items() if "/" in key)
        return [f"**Refined** (`{r['path']}`): {r['samples']} kept samples in the readable format: {parts} (own "
                "lines: the sample's reasoning, translated line by line into the prompt's language where the world "
                "wrote English; rewritten: the sample's reasoning did not work the item's steps or stayed mixed, "
                "so the stand-in annotator wrote the item's worked solution in the sample's style; "
                "`r1.data.refine`)."]  # fmt: skip


class SFTData(Stage):
    """Dev3's data: the rejection-sampled reasoning records plus non-reasoning requests answered without reasoning
    (the task's own answer after an empty think block, in R1's summary format) → `out`."""

    name = "sft-data"

    def __init__(self, source: str, out: str) -> None:
        self.source, self.out = source, out
        self.inputs, self.outputs = (source,), (out,)

    def run(self, run: Run) -> None:
        import random

        from r1.data.corpus import read_corpus, write_corpus
        from r1.tasks.base import get_task, question_of

        reasoning = read_corpus(run.path(self.source))
        general = []
        for name in ("general", "general_zh"):
            task = get_task(name)
            for item in task.generate(run.config.general_items, seed=run.config.seed + 3, split="train"):
                answer = task.solution(item, answer_format="boxed")
                messages = [{"role": "user", "content": question_of(item)}, {"role": "assistant", "content": answer}]
                general.append({"messages": messages, "task": name, "answer": item["answer"], "meta": item["meta"]})
        records = reasoning + general
        random.Random(run.config.seed).shuffle(records)
        write_corpus(run.path(self.out), records)
        run.summary[self.name] = {"path": self.out, "reasoning": len(reasoning), "non_reasoning": len(general)}

    def report(self, run: Run) -> list[str]:
        d = run.summary.get(self.name)
        return (
            [
                f"**Dev3's SFT data** (`{d['path']}`): {d['reasoning']} rejection-sampled reasoning samples + "
                f"{d['non_reasoning']} non-reasoning requests answered without reasoning."
            ]
            if d
            else []
        )


class FilterCheck(Stage):
    """Each defect filter's precision and recall on this run's own kept samples of `source`, clean and with each
    defect injected (`r1.data.filter_check.cases_from`) → summary["filter-check"]."""

    name = "filter-check"

    def __init__(self, source: str, n_defective: int = 50) -> None:
        self.source, self.n_defective = source, n_defective
        self.inputs = (source,)

    def run(self, run: Run) -> None:
        from r1.data.corpus import read_corpus
        from r1.data.filter_check import cases_from, measure

        records = read_corpus(run.path(self.source))
        table = measure(cases=cases_from(records, R1_TEMPLATE, self.n_defective, run.config.seed)) if records else {}
        run.summary[self.name] = {"clean": len(records), "per_defect": min(self.n_defective, len(records)), **table}

    def report(self, run: Run) -> list[str]:
        r = run.summary.get(self.name, {})
        rows = [(k, v) for k, v in r.items() if isinstance(v, dict)]
        if not rows:
            return []
        lines = [
            "",
            f"**The filters on this run's own samples**: {r['clean']} kept samples of `{self.source}` as "
            f"they are, and {r['per_defect']} with each defect injected (`r1.data.filter_check.cases_from`; "
            "precision can only fall below 1 by refusing a clean sample, which passed the filters when kept: "
            "`benchmarks/bench_filters.py` measures it on near misses).",
            "",
            "| filter | precision | recall | refused defective | missed |",
            "|---|---:|---:|---:|---:|",
        ]
        return lines + [f"| {k} | {v['precision']:.3f} | {v['recall']:.3f} | {v['tp']} | {v['fn']} |" for k, v in rows]


def epoch_steps(
    run: Run, data: str, epochs: int, expected: Callable[[Run], int], batch_size: int = 8, seq_len: int = 256
) -> int:
    """Optimizer steps for `epochs` passes over `data` as stage sft packs it (the shipped sft-tiny's rows). Before the
    data exist (`r1 run --plan`): the upper bound of `expected(run)` examples, one row each."""
    import math

    from r1.data.corpus import read_corpus
    from r1.data.packing import BatchStream
    from r1.tokenizer import Tokenizer as BPE
    from r1.train.sft import render_conversation

    if not run.path(data).is_file():
        return max(1, epochs * math.ceil(expected(run) / batch_size))
    tok = BPE.load(base_path(run))
    examples = [render_conversation(r["messages"], tok) for r in read_corpus(run.path(data))]
    stream = BatchStream(
        examples,
        batch_size=batch_size,
        seed=0,
        shuffle=True,
        seq_len=seq_len,
        pad_id=0,
        batching="pack",
        split_documents=False,
    )
    return max(1, epochs * stream.steps_per_epoch)


# ================================================================================================ stages
def base_path(run: Run) -> Path:
    return run.path(Path(run.config.base).absolute() if run.config.base else Path("base"))


def sft_overrides(run: Run, data: str, folder: str, expected: Callable[[Run], int]) -> list[str]:
    """`sft-tiny` from the base on `data` (at most `expected(run)` examples) for `sft_epochs` epochs (at least
    `sft_min_steps`) at `sft_lr`."""
    c = run.config
    steps = max(epoch_steps(run, data, c.sft_epochs, expected), c.sft_min_steps)
    return [
        f"optim.lr={c.sft_lr}",
        f"model.path={base_path(run)}",
        f"data.paths=[{run.path(data)}]",
        f"train.out={run.path(folder)}",
        f"train.steps={steps}",
        f"schedule.warmup_steps={min(10, steps // 10)}",
    ]


def rl_overrides(run: Run, model: str, folder: str, language: float | None) -> list[str]:
    """World-zero's GRPO from `model`: R1-Zero's rewards (language None), or R1's stage-2 rewards in R1's format,
    the language-consistency reward at weight `language` [Nat Methods Eq. 7: summed with accuracy]."""
    c = run.config
    if language is None:
        return wz.rl_overrides(run, base_path(run), folder, c.rl_steps)
    fmt = "boxed_format: {weight: 0.1, require_reasoning: true}"  # R1's format: a reasoning process, then a summary
    reward = f"{{accuracy: {{mode: boxed}}, {fmt}, language_consistency: {language}}}"
    return [*wz.rl_overrides(run, model, folder, c.dev2_steps, R1_TEMPLATE), f"grpo.reward={reward}"]


def card(run: Run, stage: str, label: str, text: str) -> ModelCard:
    cell = run.summary.get("world", {}).get(label, {}).get("all-reasoning", {})
    template = run.config.template if label == "r1-zero" else R1_TEMPLATE
    return ModelCard(
        stage=stage,
        summary=f"{text}, made by `r1 run --recipe r1` on the tiny world (English and Chinese).",
        metrics={"held-out pass@1, reasoning families, %": round(100 * cell["pass@1"], 1)} if cell else {},
        notes=[f"**Prompt format**: the plain `{template}` prompt `User: <question> Assistant:`."],
        extra={"config": asdict(run.config)},
        tags=["tiny-world", "tiny", stage],
        example=wz.EXAMPLE,
    )


MODELS = {  # label -> (card stage, title, what it is)
    "r1-zero": ("r1-zero", "R1-Zero", "R1-Zero: GRPO with rule rewards on the base, no SFT"),
    "dev1": ("sft", "Dev1 SFT", "Dev1: the base after SFT on the refined cold-start data"),
    "dev2": ("grpo", "Dev2", "Dev2: Dev1 after reasoning RL with accuracy, format and language-consistency rewards"),
    "ablation": ("grpo", "Ablation", "the ablation: Dev1 after reasoning RL without the language-consistency reward"),
    "dev3": ("sft", "Dev3 SFT", "Dev3: the base after SFT on rejection-sampled Dev2 data and non-reasoning data"),
}


def model_stages(label: str, config: str, overrides: Any, template: str, prepare: Any = None) -> list[Stage]:
    """Train `label` and publish it to models/<label>, then its held-out probe."""
    stage, title, text = MODELS[label]
    publish = (f"models/{label}", lambda run: card(run, stage, label, text), base_path)
    train = Train(label, config, overrides, label.replace("-", "_"), label, title, prepare, publish, template)
    return [train, wz.Probe(f"eval-{label}", f"models/{label}", label, template=template)]


def stages(c: Config) -> list[Stage]:
    from r1.data.filters import DEFECT_FILTERS

    pretraining = [
        wz.WorldCorpus(),
        Tokenizer(vocab_size=2048),
        Train("pretrain", "pretrain-tiny", pretrain_overrides, "pretrain", "pretrain"),
    ]
    base = Base(str(Path(c.base).absolute()) if c.base else None, wz.base_card, c.template, c.preset)

    def rl(label: str, language: float) -> list[Stage]:
        overrides = partial(rl_overrides, model="models/dev1", folder=label, language=language)
        return model_stages(label, "r1-zero-tiny", overrides, R1_TEMPLATE)

    def sft(label: str, data: str, expected: Callable[[Run], int]) -> list[Stage]:
        overrides = partial(sft_overrides, data=data, folder=label, expected=expected)
        return model_stages(label, "sft-tiny", overrides, R1_TEMPLATE)

    def kept(items: Callable[[Run], list], run: Run) -> int:  # a Generate stage keeps ≤ 2 samples per item
        return 2 * len(items(run))

    rejection_items = partial(train_items, per_level=c.rejection_items_per_level, salt=2)

    def generate(
        name: str, model: str, items: Any, out: str, k: int, filters: list[str], template: str | None
    ) -> Generate:
        return Generate(name, model, items, out, k, 2, filters, template, max_new_tokens=c.max_new_tokens)

    r1_zero = partial(rl_overrides, model="", folder="r1-zero", language=None)
    return [
        *(pretraining if c.base is None else []),
        base,
        wz.Probe("eval-base", Path(base.folder), "base"),
        *model_stages("r1-zero", "r1-zero-tiny", r1_zero, c.template, wz.write_rl_data),
        generate(
            "cold-start-samples",
            "models/r1-zero",
            cold_items,
            "data/cold-start-raw.jsonl",
            c.cold_k,
            ["correct", "complete", "reasons"],
            None,
        ),  # fmt: skip
        Refine("cold-start", "data/cold-start-raw.jsonl", "data/cold-start.jsonl"),
        *sft("dev1", "data/cold-start.jsonl", partial(kept, cold_items)),
        *rl("dev2", LANGUAGE_WEIGHT["dev2"]),
        *(rl("ablation", LANGUAGE_WEIGHT["ablation"]) if c.ablation else []),
        generate(
            "rejection",
            "models/dev2",
            rejection_items,
            "data/rejection.jsonl",
            c.rejection_k,
            ["correct", *DEFECT_FILTERS],
            R1_TEMPLATE,
        ),  # fmt: skip
        FilterCheck("data/rejection.jsonl"),
        SFTData("data/rejection.jsonl", "data/sft-dev3.jsonl"),
        *sft("dev3", "data/sft-dev3.jsonl", lambda run: kept(rejection_items, run) + 2 * c.general_items),
        StageReport(),
    ]


# ================================================================================================ report
ORDER = ("base", "r1-zero", "dev1", "dev2", "ablation", "dev3")


def stage_rows(run: Run) -> list[tuple[str, dict[str, Any]]]:
    world = run.summary.get("world", {})
    return [(label, world[label]) for label in ORDER if label in world]


def consistency(table: dict[str, Any]) -> float | None:
    mixing = table.get("all-reasoning:zh", {}).get("mixing")
    return None if mixing is None else 1.0 - mixing


def stage_table(run: Run) -> list[str]:
    """The per-stage table: one row per model, from its held-out probe (`r1.tasks.world.breakdown`)."""
    k = run.config.eval_k
    head = (
        f"| stage | pass@1 | cons@{k} | pass@1 en | pass@1 zh | cons@{k} en | cons@{k} zh | language "
        "consistency (zh) | zh samples mixing | summary | format | non-reasoning | length | reasons | wait |"
    )
    lines = [head, "|---|" + "---:|" * (head.count("|") - 2)]
    for label, t in stage_rows(run):
        a, en, zh = t.get("all-reasoning", {}), t.get("all-reasoning:en", {}), t.get("all-reasoning:zh", {})
        g = t.get("general", {})
        cells = [
            a.get("pass@1"),
            a.get(f"cons@{k}"),
            en.get("pass@1"),
            zh.get("pass@1"),
            en.get(f"cons@{k}"),
            zh.get(f"cons@{k}"),
            consistency(t),
            zh.get("mixed_share"),
            a.get("summary"),
            a.get("format"),
            g.get("pass@1"),
        ]
        lines.append(
            f"| {label} | " + " | ".join(pct(x) for x in cells) + f" | {num(a.get('length'))} | "
            f"{pct(a.get('reasons'))} | {pct(a.get('wait'))} |"
        )
    return lines


def level_table(run: Run) -> list[str]:
    """pass@1 / cons@k per level (over the reasoning families), per stage."""
    rows = stage_rows(run)
    k = run.config.eval_k
    levels = sorted({key.split(" ")[-1] for _, t in rows for key in t if key.startswith("all-reasoning:level ")})
    lines = ["| stage | " + " | ".join(f"level {lv}" for lv in levels) + " |", "|---|" + "---:|" * len(levels)]
    for label, t in rows:
        cells = [t.get(f"all-reasoning:level {lv}", {}) for lv in levels]
        lines.append(
            f"| {label} | " + " | ".join(f"{pct(x.get('pass@1'))} / {pct(x.get(f'cons@{k}'))}" for x in cells) + " |"
        )
    return lines


def side_by_side(run: Run, n: int = 2) -> list[str]:
    """The first sample of the same held-out questions (the first `n` reasoning items per language) per stage."""
    from r1.data.corpus import task_family
    from r1.tasks.world import REASONING_WORLD

    items = wz.heldout(run)
    picked = []
    for lang in ("en", "zh"):
        idx = [
            i
            for i, it in enumerate(items)
            if task_family(it["task"]) in REASONING_WORLD
            and it["meta"].get("lang") == lang
            and it["meta"]["difficulty"] in ("2", "3")
        ]
        picked += idx[:: max(1, len(idx) // n)][:n]
    rows = stage_rows(run)
    texts: dict[str, dict[int, str]] = {}
    for label, _ in rows:
        path = run.path(f"eval/{label}/samples.jsonl")
        if path.is_file():
            recs = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
            texts[label] = {r["item"]: r["text"] for r in recs if r["sample"] == 0}
    show = lambda s: s.strip().replace("|", "\\|").replace("\n", "<br>")  # noqa: E731
    lines = ["| question | " + " | ".join(label for label, _ in rows) + " |", "|---|" + "---|" * len(rows)]
    for i in picked:
        cells = [show(texts.get(label, {}).get(i, "")) for label, _ in rows]
        lines.append(
            f"| {show(items[i]['meta']['question'])} (answer {items[i]['answer']}) | " + " | ".join(cells) + " |"
        )
    return lines


class StageReport(Stage):
    """The per-stage plots: one bar chart with a bar per stage for each headline metric, and the RL curves."""

    name = "report"
    outputs = ("plots/stages.png",)

    def run(self, run: Run) -> None:
        from r1.train.metrics import read_metrics
        from r1.train.report import Plot, bars, draw

        k = run.config.eval_k
        rows = stage_rows(run)
        metrics = {
            "pass@1 en": lambda t: t.get("all-reasoning:en", {}).get("pass@1"),
            "pass@1 zh": lambda t: t.get("all-reasoning:zh", {}).get("pass@1"),
            f"cons@{k}": lambda t: t.get("all-reasoning", {}).get(f"cons@{k}"),
            "language consistency (zh)": consistency,
            "summary present": lambda t: t.get("all-reasoning", {}).get("summary"),
            "non-reasoning": lambda t: t.get("general", {}).get("pass@1"),
        }
        values = {name: [f(t) for _, t in rows] for name, f in metrics.items()}
        bars(run.path("plots/stages.png"), "Held-out, per stage", [label for label, _ in rows], values)
        curves: dict[str, tuple[list, list]] = {}
        consistency_curves: dict[str, tuple[list, list]] = {}
        for label in ("r1-zero", "dev2", "ablation"):
            rl = run.summary.get(label.replace("-", "_"))
            if rl:
                pts = [(p["step"], p["pass@1"]) for p in rl["curve"] if "pass@1" in p]
                curves[label] = ([s for s, _ in pts], [v for _, v in pts])
                key = "reward/language_consistency"
                recs = [r for r in read_metrics(run.path(f"{label}/metrics.jsonl")) if key in r]
                consistency_curves[label] = ([r["step"] for r in recs], [r[key] for r in recs])
        draw(
            run.path("plots"),
            [],
            [
                Plot("rl_heldout.png", "Held-out pass@1 during RL", curves, "pass@1"),
                Plot("rl_language.png", "Language consistency of the rollouts during RL", consistency_curves, "share"),
            ],
        )

    def report(self, run: Run) -> list[str]:
        plots = [p for p in ("stages", "rl_heldout", "rl_language") if run.path(f"plots/{p}.png").is_file()]
        return ["", "## Plots", "", *[f"![{p}](plots/{p}.png)" for p in plots]]


def headline(run: Run) -> list[str]:
    c = run.config
    lines = ["*Quick smoke run: the numbers below mean nothing.*", ""] if c.quick else []
    if not stage_rows(run):
        return lines
    lines += [
        "## Per stage (held-out)",
        "",
        f"The world's held-out items ({c.eval_per_level} per task and level), {c.eval_k} samples each at T=1.0. "
        "Reasoning families (modchain, swaps, mystery) in English and Chinese; *language consistency*: the share of "
        "Chinese words in the reasoning on Chinese prompts (the reward's measure), *mixing*: the share of Chinese "
        "reasoning samples with any English; *summary*: a sentence after the reasoning, not only a bare answer; "
        "*non-reasoning*: pass@1 on the general requests; *wait*: share of samples that re-check. The base and "
        f"R1-Zero answer in the R1-Zero format (`{c.template}`), Dev1–Dev3 in R1's (`{R1_TEMPLATE}`). In %, "
        "length in tokens.",
        "",
        *stage_table(run),
        "",
        f"pass@1 / cons@{c.eval_k} per level (reasoning families together):",
        "",
        *level_table(run),
        "",
        "Sample completions (the first sample of each model on the same held-out questions):",
        "",
        *side_by_side(run),
        "",
    ]
    return lines


# ================================================================================================ command line
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ablation", action="store_true", help="(recipe r1) also run Dev2 without the language reward")
    p.add_argument(
        "--dev2-steps", type=int, default=None, help=f"(recipe r1) Dev2's GRPO steps (default {Config.dev2_steps})"
    )


def config_from_args(args: argparse.Namespace) -> Config:
    out = args.out or f"runs/r1-{'quick' if args.quick else 'recipe'}-{time.strftime('%Y%m%d-%H%M%S')}"
    if Path(out).exists() and not Path(out).is_dir():
        raise UserError(f"--out {out}: is a file; the run folder must be a directory")
    chosen = sizes_from_args(args, QUICK)
    if args.dev2_steps is not None:
        if args.dev2_steps < 1:
            raise UserError(f"--dev2-steps must be >= 1, got {args.dev2_steps}")
        chosen["dev2_steps"] = args.dev2_steps
    if args.base and args.from_scratch:
        raise UserError("--base and --from-scratch exclude each other: one gives the base, the other trains it")
    base = args.base
    if base is None and not args.from_scratch:
        if args.quick:
            base = str(BUILTIN_BASE)  # seconds, not minutes: a base that answers some modchain prompts
        elif (WORLD_BASE / "model.safetensors").is_file():
            base = str(WORLD_BASE)
        else:
            raise UserError(
                f"no world base is shipped yet ({WORLD_BASE}): give --base DIR (the base/ of `r1 run "
                "--recipe world-zero --rl-steps 0`) or --from-scratch"
            )
    if base is not None and not (Path(base) / "config.json").is_file():
        raise UserError(f"--base {base}: not a model folder (no config.json)")
    return Config(
        out, args.seed, args.preset, args.quick, base=base, ablation=args.ablation, threads=args.threads, **chosen
    )


RECIPE = Recipe(
    name="r1",
    help="DeepSeek-R1 after R1-Zero on the tiny world: R1-Zero, cold start (Dev1), reasoning RL with language "
    "consistency (Dev2), rejection sampling + SFT (Dev3), each evaluated on held-out items",
    stages=stages,
    add_arguments=add_arguments,
    config=config_from_args,
    headline=headline,
)
