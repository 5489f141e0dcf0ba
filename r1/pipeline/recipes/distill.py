"""`r1 run --recipe distill`: distillation into dense students, as the paper's last step [R1v1 §2.4, §4.1].

Stages (`distill_stages`, which other recipes append after the model they make): prompts (reasoning prompts of the
train split and non-reasoning requests → data/prompts.jsonl), traces (the teacher samples them; the judge and the
filters keep what is correct, well-formed, reasoned where the task asks for reasoning, one language and not looping
→ distill/traces.jsonl with the filter counts), eval-teacher, then per student preset sft-PRESET (SFT from scratch
on the traces, the teacher's tokenizer) and eval-PRESET, and speed (decode tokens/s of every model).

`--compare PRESET` adds the paper's other arm [R1v1 §4.1, Table 6]: that student's own base pretrained on the
teacher's base's corpus (the r1-zero recipe's corpus and pretraining stages), R1-Zero GRPO on it over the same prompts,
both evaluated, and the compute of both arms in FLOPs (6·N·tokens for training, 2·N·tokens for sampling, N the
matmul parameters a token passes through) and wall time.

`--quick` is a seconds-long smoke run whose numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from r1.errors import UserError
from r1.io import atomic_write_text
from r1.pipeline.recipes import r1_zero
from r1.pipeline.stage import Recipe, Run, Stage
from r1.pipeline.stages.corpus import Corpus, levels
from r1.pipeline.stages.evaluate import Evaluate, num, pct
from r1.pipeline.stages.generate import FILTERS, Generate
from r1.pipeline.stages.train import Train
from r1.train.publish import MODCHAIN_EXAMPLE, ModelCard

STUDENTS = ("tiny-qwen2-xs", "tiny-qwen2-s", "tiny-qwen2", "tiny-llama")
# `--plan --scale paper`: each tiny student stands for one of the paper's, with its initial lr [R1v2 Table 6]
PAPER_STUDENTS = {"tiny-qwen2-xs": ("qwen2.5-1.5b", 1e-4), "tiny-qwen2-s": ("qwen2.5-7b", 8e-5),
                  "tiny-qwen2": ("qwen2.5-32b", 6e-5), "tiny-llama": ("llama-3.1-8b", 5e-5)}  # fmt: skip
NON_REASONING = ("general", "general_zh", "safety", "safety_zh")
PROMPTS, TRACES = "data/prompts.jsonl", "distill/traces.jsonl"
# the judge's verdict and the defect filters R1 names for its SFT data (§2.3.3): correct, readable, one language; a
# reasoning prompt's trace must reason (R1's distillation data are long chains of thought), a request need not
TRACE_FILTERS = {
    "correct": FILTERS["correct"],
    "format": FILTERS["format"],
    "complete": FILTERS["complete"],
    "reasons_if_reasoning_task": lambda s, kept=(): s["task"] in NON_REASONING or bool(s["reasons"]),
    "mixed_language": FILTERS["mixed_language"],
    "repetitive": FILTERS["repetitive"],
    "duplicate": FILTERS["duplicate"],
}


@dataclass
class Distill:
    """What distillation depends on; the defaults are the measured run's (docs/LOG.md)."""

    students: list[str] = field(default_factory=lambda: list(STUDENTS))
    prompts: int = 8192  # reasoning prompts (modchain, train split, `levels`)
    general: int = 512  # non-reasoning requests (task general, train split)
    levels: str = "2-6"
    samples: int = 2  # teacher samples per prompt, at T 1.0 (what RL samples; the filters keep the good ones)
    per_item: int = 2  # distinct kept traces per prompt
    sft_steps: int = 500
    sft_batch: int = 8  # sequences of 256 tokens, examples packed whole
    sft_lr: float = 3e-3
    eval_levels: str = "2-6"
    eval_per_level: int = 32
    eval_k: int = 8
    max_new_tokens: int = 96
    template: str = "r1-zero-short"


@dataclass
class Config(r1_zero.Config):
    """The distill recipe's settings; the inherited fields are the r1-zero recipe's, used by --compare (its corpus and
    pretraining make the student's own base, `preset` = the compared student)."""

    teacher: str = str(r1_zero.BUILTIN_BASE)
    compare: str | None = None
    distill: Distill = field(default_factory=Distill)


QUICK_DISTILL = {"students": ["tiny-qwen2-xs", "tiny-llama"], "prompts": 12, "general": 4, "samples": 2,
                 "sft_steps": 3, "eval_per_level": 2, "eval_k": 2, "max_new_tokens": 16, "eval_levels": "2-3",
                 "levels": "2-3"}  # fmt: skip


# ================================================================================================ the stages
def distill_stages(teacher: str | Path, d: Distill, prefix: str = "") -> list[Stage]:
    """The distillation stages for the teacher model folder `teacher` (absolute, or in the run folder): what
    `r1 run --recipe distill` runs and what a recipe that makes a reasoning model appends. `prefix` keeps their
    stage names and folders apart from the host recipe's."""
    p = prefix
    evaluate = evaluator(d)
    stages: list[Stage] = [
        Prompts(f"{p}prompts", d, p + PROMPTS),
        Generate(f"{p}traces", str(teacher), partial(prompt_items, d), p + TRACES, n=d.samples,
                 per_item=d.per_item, filters=TRACE_FILTERS, template=d.template, max_new_tokens=d.max_new_tokens),
        evaluate(f"{p}eval-teacher", teacher, f"{p}teacher", "the teacher"),
    ]  # fmt: skip
    tokenizer = lambda run: run.path(teacher)  # noqa: E731 - every student reads the teacher's tokens
    for student in d.students:
        folder = f"{p}students/{student}"
        card = partial(student_card, student, teacher, p)
        stages += [
            Train(f"{p}sft-{student}", "sft-tiny", partial(sft_overrides, d, student, teacher, p), f"{p}sft_{student}",
                  f"{p}sft/{student}", f"SFT of {student} on the traces", publish=(folder, card, tokenizer),
                  template=d.template, paper="r1-distill-sft", paper_overrides=paper_student(student)),
            evaluate(f"{p}eval-{student}", folder, f"{p}{student}", f"student {student}"),
        ]  # fmt: skip
    models = {"teacher": teacher, **{s: f"{p}students/{s}" for s in d.students}}
    return [*stages, Speed(f"{p}speed", models, d, p)]


def paper_student(student: str) -> tuple[str, ...]:
    """The paper-scale distillation config's overrides for the student `student` stands for (none: its own preset)."""
    preset, lr = PAPER_STUDENTS.get(student, (student, None))
    return (f"model.preset={preset}", "model.path=null", *((f"optim.lr={lr}",) if lr else ()))


def evaluator(d: Distill) -> Any:
    """Evaluate(name, model, label, title) on the held-out suite, as every model of the recipe is evaluated."""
    header = {"k": d.eval_k, "levels": d.eval_levels, "trained_levels": d.eval_levels}
    return partial(Evaluate, items=partial(heldout, d), runs=partial(eval_runs, d), trained=levels(d.eval_levels),
                   header=header, max_new_tokens=d.max_new_tokens)  # fmt: skip


class Prompts(Stage):
    """The prompts every arm uses: `prompts` modchain problems and `general` requests of the train split → JSONL."""

    def __init__(self, name: str, d: Distill, out: str) -> None:
        self.name, self.d, self.outputs = name, d, (out,)

    def run(self, run: Run) -> None:
        from r1.data.corpus import write_corpus

        items = prompt_items(self.d, run)
        write_corpus(run.path(self.outputs[0]), items)
        run.summary[self.name] = {"path": self.outputs[0], "tasks": dict(Counter(it["task"] for it in items))}


def prompt_items(d: Distill, run: Run) -> list[dict[str, Any]]:
    """The prompts of every arm (also written by the prompts stage, to inspect): seeded, so computed, not read back."""
    from r1.tasks.base import get_task

    def make() -> list[dict[str, Any]]:
        seed = run.config.seed
        items = get_task("modchain").generate(d.prompts, seed=seed, difficulty=d.levels, split="train")
        return items + (get_task("general").generate(d.general, seed=seed, split="train") if d.general else [])

    return run.memo(f"distill-prompts-{d.prompts}-{d.general}-{d.levels}", make)


def read_items(path: str, run: Run) -> list[dict[str, Any]]:
    from r1.tasks.datasets import iter_jsonl

    return [record for _, _, record in iter_jsonl(run.path(path))]


def heldout(d: Distill, run: Run) -> list[dict[str, Any]]:
    """The held-out suite: distinct eval-split modchain problems (`r1_zero.eval_items`), the same for every model."""
    return run.memo("distill-heldout", lambda: r1_zero.eval_items(d.eval_levels, d.eval_per_level, run.config.seed + 1))


def eval_runs(d: Distill, run: Run, items: list) -> dict[str, dict[str, Any]]:
    """R1's protocol (T 0.6, top-p 0.95, k samples: pass@1 is their mean, cons@k the vote) and RL's T 1.0; both score
    the language consistency of the reasoning (`language_consistency`, the mean is the table's `reward_mean`)."""
    lang = ["language_consistency"]
    return {
        "free_t0.6": dict(items=items, k=d.eval_k, temperature=0.6, top_p=0.95, template=d.template, reward_spec=lang),
        "free_t1.0": dict(items=items, k=d.eval_k, temperature=1.0, top_p=1.0, template=d.template, reward_spec=lang),
    }


def sft_overrides(d: Distill, student: str, teacher: str | Path, p: str, run: Run) -> list[str]:
    """`configs/sft-tiny.yaml` for a fresh student: its preset from scratch on the teacher's traces and tokenizer."""
    return [
        f"model={student}",
        f"data.paths=[{run.path(p + TRACES)}]",
        f"data.tokenizer={run.path(teacher)}",
        f"optim.lr={d.sft_lr}",
        "schedule.warmup_steps=20",
        f"train.steps={d.sft_steps}",
        f"train.batch_size={d.sft_batch}",
        f"train.out={run.path(f'{p}sft/{student}')}",
    ]


def student_card(student: str, teacher: str | Path, p: str, run: Run) -> ModelCard:
    t = run.summary.get(f"{p}traces", {})
    return ModelCard(
        stage="sft",
        summary=f"A `{student}` student distilled by `r1 run --recipe distill`: SFT from scratch on "
        f"{t.get('records', 0):,} traces the teacher `{run.path(teacher)}` wrote and the judge accepted.",
        base_model=str(run.path(teacher)),
        metrics={},
        notes=["**Prompt format**: the plain `r1-zero-short` prompt `User: <question> Assistant:`."],
        extra={"sft": run.summary.get(f"{p}sft_{student}", {})},
        tags=["distillation", "modchain", "tiny"],
        example=MODCHAIN_EXAMPLE,
    )


class Speed(Stage):
    """Per model: parameters, and decode tokens/s on 64 held-out prompts (one sample each, T 1.0, the run's threads);
    the distilled-model table → summary[name]."""

    def __init__(self, name: str, models: dict[str, str | Path], d: Distill, prefix: str) -> None:
        self.name, self.models, self.d, self.prefix = name, models, d, prefix
        self.outputs = (f"{prefix}distill/speed.json",)

    def plan(self, run: Run) -> Any:
        from r1.pipeline import plan

        forward = len(self.models) * (64 + 4) * self.d.max_new_tokens  # the timed prompts and the warm-up, per model
        teacher = None if run.scale == "paper" else run.path(self.models["teacher"])
        model = plan.model_from(run, teacher, plan.PAPER_MODEL if teacher is None else None)
        return plan.Plan(*model, forward=forward, note=f"decode speed of {len(self.models)} models, as the teacher")

    def run(self, run: Run) -> None:
        from r1.engine.adapters import make_generate_fn
        from r1.model.checkpoint import load_config
        from r1.model.info import model_info
        from r1.tasks import apply_template

        d = self.d
        items = [apply_template(it, d.template) for it in heldout(d, run)[:64]]
        params = {"temperature": 1.0, "top_p": 1.0, "max_new_tokens": d.max_new_tokens, "seed": run.config.seed}
        rows = {}
        for label, folder in self.models.items():
            generate = make_generate_fn(run.engine(folder))
            generate(items[:4], 1, params)  # warm-up: the first forwards pay for allocation and the thread probe
            t0 = time.perf_counter()
            tokens = sum(s["num_tokens"] for out in generate(items, 1, params) for s in out)
            info = model_info(load_config(run.path(folder)))
            rows[label] = {"folder": str(folder), "parameters": info.total, "active_parameters": info.active,
                           "decode_tokens_per_s": round(tokens / (time.perf_counter() - t0))}  # fmt: skip
        traces = read_items(self.prefix + TRACES, run) if d.students else []
        run.summary[self.name] = {"models": rows, "traces_by_task": dict(Counter(r["task"] for r in traces))}
        atomic_write_text(run.path(self.outputs[0]), json.dumps(run.summary[self.name], indent=2) + "\n")

    def report(self, run: Run) -> list[str]:
        return distilled_table(run, self.d.eval_k, self.prefix)


def distilled_table(run: Run, k: int, p: str = "") -> list[str]:
    """The paper's table of distilled models at tiny scale: the teacher, then each student (and the compared arm)."""
    s = run.summary
    speed = s.get(f"{p}speed", {}).get("models", {})
    tables = s.get("eval", {}).get("tables", {})
    g = s.get(f"{p}traces", {})
    lines = [
        "",
        "## Distilled models (held-out suite)",
        "",
        f"Teacher traces: {g.get('records', 0):,} kept of {g.get('samples', 0):,} samples "
        f"({', '.join(f'{n} {t}' for t, n in s.get(f'{p}speed', {}).get('traces_by_task', {}).items())}); "
        f"students trained from scratch on them. pass@1 is the mean over {k} samples at T 0.6, top-p 0.95 (R1's "
        f"protocol), cons@{k} the majority vote; language: share of the reasoning's words in the prompt's language; "
        "length in tokens; decode: tokens/s on 64 prompts at once.",
        "",
        f"| model | parameters | pass@1 | cons@{k} | pass@1 T=1.0 | language | length | decode tokens/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, m in speed.items():
        tab = tables.get(p + label, {}).get("trained", {})
        a, b = tab.get("free_t0.6", {}), tab.get("free_t1.0", {})
        lines.append(f"| {label} | {m['parameters']:,} | {pct(a.get('pass@1'))} | {pct(a.get(f'cons@{k}'))} | "
                     f"{pct(b.get('pass@1'))} | {pct(a.get('reward_mean'))} | {num(a.get('length_mean'))} | "
                     f"{m['decode_tokens_per_s']:,} |")  # fmt: skip
    return lines


# ================================================================================================ --compare
def compare_stages(c: Config) -> list[Stage]:
    """(b): the compared student's own base, pretrained as the teacher's base was (the r1-zero recipe's corpus and
    pretraining stage, its preset = the student, the teacher's tokenizer), then R1-Zero GRPO on the same prompts; and
    (a'), the paper's own setting (its students start from a pretrained base): SFT of that base on the traces."""
    d = c.distill
    evaluate = evaluator(d)
    teacher = lambda run: run.path(c.teacher)  # noqa: E731
    return [
        Corpus(c.corpus_docs, c.seed, c.mix, c.levels, c.template),
        Train("pretrain", "pretrain-tiny", compare_pretrain_overrides, "pretrain", "pretrain",
              publish=("base", compare_card, teacher), template=c.template),
        evaluate("eval-rl-base", "base", "rl-base", f"{c.compare}'s own base"),
        Train("r1-zero", "r1-zero-tiny", compare_rl_overrides, "r1_zero", "r1-zero", f"R1-Zero on {c.compare}",
              publish=("model", compare_card, teacher), template=c.template),
        evaluate("eval-rl", "model", "rl", f"R1-Zero on {c.compare}"),
        Train("sft-base", "sft-tiny", compare_sft_overrides, "sft_base", "sft-base", f"SFT of {c.compare}'s own base "
              "on the traces", publish=("distilled-base", compare_card, teacher), template=c.template),
        evaluate("eval-sft-base", "distilled-base", "sft-base", f"{c.compare}'s own base distilled"),
        Compute(),
    ]  # fmt: skip


def compare_pretrain_overrides(run: Run) -> list[str]:
    """The r1-zero recipe's pretraining (`r1_zero.pretrain_overrides`) with the teacher's tokenizer, so the student's
    base and the distilled student read the same tokens."""
    return [*r1_zero.pretrain_overrides(run), f"data.tokenizer={run.path(run.config.teacher)}"]


def compare_rl_overrides(run: Run) -> list[str]:
    """`configs/r1-zero-tiny.yaml` on the student's base, over the distillation prompts, with the held-out curve on
    the suite's trained levels."""
    c, d = run.config, run.config.distill
    from r1.data.corpus import write_corpus

    suite = heldout(d, run)
    write_corpus(run.path("data/heldout-rl.jsonl"), suite)
    return [
        f"model.path={run.path('base')}",
        f"data.paths=[{run.path(PROMPTS)}]",
        f"data.eval_paths=[{run.path('data/heldout-rl.jsonl')}]",
        f"grpo.template={d.template}",
        f"grpo.max_new_tokens={d.max_new_tokens}",
        f"grpo.eval_items={len(suite)}",
        f"grpo.eval_k={d.eval_k}",
        f"train.out={run.path('r1-zero')}",
        f"train.steps={c.rl_steps}",
        f"train.eval_every={c.rl_eval_every}",
    ]


def compare_sft_overrides(run: Run) -> list[str]:
    """`configs/sft-tiny.yaml` (fine-tuning a pretrained base) on the student's base and the teacher's traces."""
    d = run.config.distill
    return [
        f"model.path={run.path('base')}",
        f"data.paths=[{run.path(TRACES)}]",
        f"train.steps={d.sft_steps}",
        f"train.batch_size={d.sft_batch}",
        f"train.out={run.path('sft-base')}",
    ]


def compare_card(run: Run) -> ModelCard:
    c = run.config
    then = {"pretrain": ".", "r1-zero": ", then R1-Zero GRPO on the distillation prompts.",
            "sft": ", then SFT on the teacher's traces."}  # fmt: skip
    stage = "sft" if "sft_base" in run.summary else "r1-zero" if "r1_zero" in run.summary else "pretrain"
    return ModelCard(
        stage=stage,
        summary=f"A `{c.compare}` student's own base, pretrained by `r1 run --recipe distill --compare` on the corpus "
        f"the teacher's base was pretrained on{then[stage]}",
        metrics={},
        notes=["**Prompt format**: the plain `r1-zero-short` prompt `User: <question> Assistant:`."],
        extra={k: run.summary[k] for k in ("corpus", "pretrain", "r1_zero", "sft_base") if k in run.summary},
        tags=["r1-zero", "modchain", "tiny"],
        example=MODCHAIN_EXAMPLE,
    )


def matmul_params(folder: Path) -> int:
    """N of 6·N·tokens: the parameters a token's forward multiplies by, the head included (also when tied: the matrix
    is multiplied again), the embedding lookup and the MTP modules (not used in sampling or SFT) not."""
    from r1.model.checkpoint import load_config
    from r1.model.info import model_info

    cfg = load_config(folder)
    return model_info(cfg).active_without_embeddings + cfg.vocab_size * cfg.hidden_size


# the arms: (row, the eval label, the parts of the compute they spent); the pretraining of (a') and (b) is one run
ARMS = {
    "a": ("(a) distilled from scratch", None, ("teacher sampling", "SFT")),
    "a'": ("(a') distilled into its own base", "sft-base", ("pretraining", "teacher sampling", "SFT of the base")),
    "b": ("(b) R1-Zero on its own base", "rl", ("pretraining", "GRPO sampling", "GRPO updates")),
}


class Compute(Stage):
    """FLOPs of the arms (summary["compare"]): teacher sampling 2·N_t·(prompt + generated tokens), SFT
    6·N_s·tokens, pretraining 6·N_s·tokens, GRPO rollouts 2·N_s·tokens and its updates 6·N_s·tokens plus the
    reference's forward 2·N_s·tokens (β > 0); and the seconds of each part. Evaluations are counted on no side."""

    name = "compute"
    outputs = ("compare.json",)

    def run(self, run: Run) -> None:
        from r1.train import load_config
        from r1.train.grpo.options import resolve_options
        from r1.train.metrics import read_metrics

        def steps(folder: str) -> list[dict[str, Any]]:
            return [r for r in read_metrics(run.path(f"{folder}/metrics.jsonl")) if r.get("event") == "step"]

        c, s = run.config, run.summary
        n_t, n_s = matmul_params(run.path(c.teacher)), matmul_params(run.path("base"))
        g = s["traces"]
        rl_tokens = sum(r["tokens"] for r in steps("r1-zero"))  # prompt + completion of every rollout sample
        ref = 2 if resolve_options(load_config(run.path("r1-zero.yaml")).options).beta > 0 else 0
        tokens = {"teacher sampling": g["prompt_tokens"] + g["generated_tokens"],
                  "SFT": s[f"sft_{c.compare}"]["tokens"], "SFT of the base": s["sft_base"]["tokens"],
                  "pretraining": s["pretrain"]["tokens"],
                  "GRPO rollouts": rl_tokens}  # fmt: skip
        flops = {"teacher sampling": 2 * n_t * tokens["teacher sampling"], "SFT": 6 * n_s * tokens["SFT"],
                 "SFT of the base": 6 * n_s * tokens["SFT of the base"], "pretraining": 6 * n_s * tokens["pretraining"],
                 "GRPO sampling": 2 * n_s * rl_tokens, "GRPO updates": (6 + ref) * n_s * rl_tokens}  # fmt: skip
        # the optimizer steps' time, without the evaluations some trainings run between them
        folders = {"SFT": f"sft/{c.compare}", "SFT of the base": "sft-base", "pretraining": "pretrain",
                   "GRPO sampling": "r1-zero"}  # fmt: skip
        seconds = {"teacher sampling": g.get("seconds"), "GRPO updates": 0.0}  # GRPO's one time is under sampling
        seconds |= {name: round(sum(r["step_time"] for r in steps(f)), 1) for name, f in folders.items()}
        arms = {key: {"flops": sum(flops[p] for p in parts), "seconds": sum(seconds[p] or 0 for p in parts)}
                for key, (_, _, parts) in ARMS.items()}  # fmt: skip
        s["compare"] = {"student": c.compare, "N_teacher": n_t, "N_student": n_s, "tokens": tokens, "flops": flops,
                        "seconds": seconds, "arms": arms}  # fmt: skip
        atomic_write_text(run.path(self.outputs[0]), json.dumps(s["compare"], indent=2) + "\n")

    def report(self, run: Run) -> list[str]:
        return compare_lines(run)


def compare_lines(run: Run) -> list[str]:
    s, c = run.summary, run.config
    cmp = s.get("compare")
    if not cmp:
        return []
    k, tables = c.distill.eval_k, s["eval"]["tables"]

    def cell(label: str, run_name: str, key: str) -> str:
        return pct(tables.get(label, {}).get("trained", {}).get(run_name, {}).get(key))

    rows = []
    for key, (arm, label, _) in ARMS.items():
        label, a = label or c.compare, cmp["arms"][key]
        rows.append(f"| {arm} | {a['flops']:.3g} | {a['seconds']:.0f} | {cell(label, 'free_t0.6', 'pass@1')} | "
                    f"{cell(label, 'free_t0.6', f'cons@{k}')} | {cell(label, 'free_t1.0', 'pass@1')} |")  # fmt: skip
    ratio = cmp["arms"]["b"]["flops"] / max(cmp["arms"]["a"]["flops"], 1)
    parts = "; ".join(f"{n} {v:.3g}" for n, v in cmp["flops"].items())
    return [
        "",
        f"## Distillation vs RL on the student ({c.compare})",
        "",
        f"(a) the teacher's traces, SFT from scratch; (a') the same SFT of the student's own base (pretrained on the "
        f"teacher's base's corpus); (b) that base, then {s.get('r1_zero', {}).get('steps', '?')} R1-Zero GRPO steps on "
        f"the same prompts. (b) used {ratio:.1f}× the FLOPs of (a). FLOPs: 6·N·tokens to train, 2·N·tokens to sample "
        f"(N: {cmp['N_teacher']:,} teacher, {cmp['N_student']:,} student); {parts}. Wall time: sampling and judging "
        "the traces, and the optimizer steps (without the evaluations between them), s. Held-out pass@1 (T 0.6, "
        f"mean of {k}), cons@{k}, pass@1 at T 1.0, in %:",
        "",
        f"| arm | FLOPs | wall s | pass@1 | cons@{k} | pass@1 T=1.0 |",
        "|---|---:|---:|---:|---:|---:|",
        *rows,
    ]


# ================================================================================================ recipe
def stages(c: Config) -> list[Stage]:
    return [*distill_stages(c.teacher, c.distill), *(compare_stages(c) if c.compare else [])]


def headline(run: Run) -> list[str]:
    lines = ["*Quick smoke run: the numbers below mean nothing.*", ""] if run.config.quick else []
    return [
        *lines,
        f"**Distillation** of `{run.path(run.config.teacher)}` into {', '.join(run.config.distill.students)}.",
    ]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--teacher", help="distill: the teacher's model folder (default the shipped r1/assets/base-tiny)")
    p.add_argument("--students", help=f"distill: comma-separated student presets (default {','.join(STUDENTS)})")
    p.add_argument("--compare", metavar="PRESET", help="distill: add R1-Zero on this student's own base")


def config_from_args(args: argparse.Namespace) -> Config:
    from r1.model.config import PRESETS

    if args.base or args.from_scratch:
        raise UserError("--recipe distill takes its teacher with --teacher (--base/--from-scratch are r1-zero's)")
    out = args.out or f"runs/distill-{'quick' if args.quick else 'tiny'}-{time.strftime('%Y%m%d-%H%M%S')}"
    if Path(out).exists() and not Path(out).is_dir():
        raise UserError(f"--out {out}: is a file; the run folder must be a directory")
    teacher = Path(args.teacher).absolute() if args.teacher else r1_zero.BUILTIN_BASE
    if not (teacher / "config.json").is_file() or not (teacher / "tokenizer.json").is_file():
        raise UserError(f"--teacher {teacher}: not a model folder with its tokenizer (config.json, tokenizer.json)")
    d = Distill(**(QUICK_DISTILL if args.quick else {}))
    if args.students:
        d.students = [x.strip() for x in args.students.split(",") if x.strip()]
    for name in [*d.students, *([args.compare] if args.compare else [])]:
        if name not in PRESETS:
            raise UserError(f"student preset {name!r}: unknown; valid: {', '.join(STUDENTS)} (or any of r1 model info)")
    if args.compare and args.compare not in d.students:
        d.students.append(args.compare)  # (a) of the comparison is that student distilled
    if args.preset != "tiny":
        raise UserError("--recipe distill: the students are --students and --compare (--preset is r1-zero's)")
    chosen = r1_zero.sizes_from_args(args, r1_zero.QUICK)
    for key in ("eval_per_level", "eval_k"):  # --eval-items, --eval-k: the held-out suite's, as in r1-zero
        if getattr(args, key) is not None:
            setattr(d, key, chosen.pop(key))
    return Config(out, args.seed, args.compare or "tiny", args.quick, threads=args.threads, teacher=str(teacher),
                  compare=args.compare, distill=d, **chosen)  # fmt: skip


RECIPE = Recipe(
    name="distill",
    help="the teacher's judged traces into dense Qwen2/Llama students by SFT, the distilled-model table, and with "
    "--compare PRESET R1-Zero on that student's own base at more compute",
    stages=stages,
    add_arguments=add_arguments,
    config=config_from_args,
    headline=headline,
)
