"""`r1 run --recipe r1-zero` (the default): R1-Zero on a laptop CPU (docs/architecture.md, "The main job").

Stages: corpus, tokenizer, pretrain (only with --from-scratch), base, eval-base (held-out problems at T=1.0, what RL
samples, and T=0.6/top-p 0.95, R1's setting, plus two forced styles: does reasoning pay?), r1-zero (GRPO with
`r1-zero-tiny`) and eval (the same evaluation of the result).

Forcing a style. In the corpus the first token after `<think>\\n` decides the style: `</think>` for a direct
answer, the chain's first digit for step-by-step work. So "forced direct" prefills `<think>\\n</think>\\n<answer>`
and "forced step by step" `<think>\\n` plus the question's first digit (a copy of given text, no work done), both
greedy: the model's best answer in that style.

About 3 minutes on a 2-core CPU from the shipped base, 11 with --from-scratch; `--quick` is a seconds-long smoke run
whose numbers mean nothing.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from r1.assets import ASSETS
from r1.cli import check_at_least
from r1.errors import UserError
from r1.pipeline.stage import Recipe, Run, Stage
from r1.pipeline.stages.corpus import Corpus, Tokenizer, level_label, levels
from r1.pipeline.stages.evaluate import Evaluate, amplify_check, before_after, num, pct, signed
from r1.pipeline.stages.model import Base
from r1.pipeline.stages.train import Train
from r1.train.publish import MODCHAIN_EXAMPLE, ModelCard, write_card

# A seconds-long smoke run: its numbers mean nothing (the full run's settings are Config's defaults)
QUICK: dict[str, Any] = {"corpus_docs": 200, "levels": "2-3", "mix": {"direct": 0.65, "steps": 0.25, "check": 0.10},
                         "eval_levels": "2-4", "steps": 3, "rl_steps": 2, "rl_eval_every": 1, "batch_size": 8,
                         "warmup_steps": 1, "eval_per_level": 2, "eval_k": 2, "max_new_tokens": 16}  # fmt: skip
# The built-in base: what `r1 run --from-scratch --rl-steps 0` (seed 0) writes to base/, shipped so that the main
# job does not depend on pretraining luck (docs/LOG.md: with other seeds the same recipe learned the long chains
# less well and R1-Zero then gained 6 points instead of 30). provenance.json says how it was made.
BUILTIN_BASE = ASSETS / "base-tiny"
FORCED_PREFILL = {"direct": " <think>\n</think>\n<answer>", "steps": " <think>\n"}


@dataclass
class Config:
    """Everything the job depends on, written to config.yaml so a run folder says how it was made. The defaults are
    the full run's, chosen by measurement (docs/LOG.md); more of the long chains in the corpus, because the last step
    positions are learned only from them, and with uniform levels whether they were learned depended on the seed."""

    out: str
    seed: int = 0
    preset: str = "tiny"
    quick: bool = False
    corpus_docs: int = 80000
    levels: str | dict[str, float] = field(default_factory=lambda: {"2": 1.0, "3": 1.0, "4": 1.5, "5": 2.0, "6": 2.5})
    mix: dict[str, float] = field(default_factory=lambda: {"direct": 0.5, "steps": 0.35, "check": 0.15})
    eval_levels: str = "2-8"
    steps: int = 6000  # pretraining steps
    rl_steps: int = 100  # GRPO steps; 0 = stop after evaluating the base
    rl_eval_every: int = 20
    base: str | None = None  # an existing base model folder: skip corpus, tokenizer and pretraining
    batch_size: int = 12
    lr: float = 1e-3
    warmup_steps: int = 50
    eval_per_level: int = 64
    eval_k: int = 8
    max_new_tokens: int = 96
    template: str = "r1-zero-short"
    init_std: float = 0.02
    threads: int = 1  # the measured run used 1 thread: on a shared 2-core machine 2 OpenMP threads can collapse


def stages(c: Config) -> list[Stage]:
    base = base_dir(c)
    header = {"k": c.eval_k, "levels": c.eval_levels, "trained_levels": level_label(c.levels)}
    evaluate = partial(
        Evaluate,
        items=heldout,
        runs=eval_runs,
        trained=levels(c.levels),
        header=header,
        max_new_tokens=c.max_new_tokens,
    )
    pretraining = [
        Corpus(c.corpus_docs, c.seed, c.mix, c.levels, c.template),
        Tokenizer(vocab_size=2048),
        Train("pretrain", "pretrain-tiny", pretrain_overrides, "pretrain", "pretrain"),
    ]
    publish = ("model", model_card, lambda run: run.path(base))
    rl = [
        Train(
            "r1-zero", "r1-zero-tiny", rl_overrides, "r1_zero", "r1-zero", "R1-Zero", write_heldout, publish, c.template
        ),
        evaluate("eval", "model", "r1-zero", "after R1-Zero", then=write_model_card),
    ]
    return [
        *(pretraining if c.base is None else []),
        Base(str(base) if c.base else None, base_card, c.template, c.preset),
        evaluate("eval-base", base, "base", "base model", then=after_base_eval),
        *(rl if c.rl_steps else []),
    ]


def pretrain_overrides(run: Run) -> list[str]:
    """How this job pretrains, beyond `configs/pretrain-tiny.yaml`: its corpus and tokenizer, the tuned settings."""
    c = run.config
    return [
        f"model.preset={c.preset}",
        f"model.initializer_range={c.init_std}",
        "data.builtin=0",
        f"data.paths=[{run.path('data/corpus.jsonl')}]",
        f"data.tokenizer={run.path('tokenizer')}",
        "data.batching=bucket",
        f"optim.lr={c.lr}",
        f"schedule.warmup_steps={c.warmup_steps}",
        f"train.out={run.path('pretrain')}",
        f"train.steps={c.steps}",
        f"train.batch_size={c.batch_size}",
    ]


def rl_overrides(run: Run) -> list[str]:
    """`configs/r1-zero-tiny.yaml` (its settings are the `r1-zero-tiny` preset's) with what this run decides: the
    base, the corpus levels, the held-out problems, lengths and budget."""
    c = run.config
    return [
        f"model.path={run.path(base_dir(c))}",
        f"data.eval_paths=[{run.path(HELDOUT)}]",
        f"grpo.difficulty={level_label(c.levels)}",
        f"grpo.template={c.template}",
        f"grpo.max_new_tokens={c.max_new_tokens}",
        f"grpo.eval_items={len(heldout_trained(run))}",
        f"grpo.eval_k={c.eval_k}",
        f"train.out={run.path('r1-zero')}",
        f"train.steps={c.rl_steps}",
        f"train.eval_every={c.rl_eval_every}",
    ]


def base_dir(c: Config) -> Path:
    """The base: a given folder (absolute), or base/ of the run folder (relative to it)."""
    return Path(c.base).absolute() if c.base else Path("base")


# ================================================================================================ held-out items
HELDOUT = "data/heldout.jsonl"


def eval_items(levels_spec: str, per_level: int, seed: int) -> list[dict[str, Any]]:
    """Distinct held-out modchain problems, `per_level` per level (fewer where a level has fewer eval problems:
    level 2 has only about 18), so a small level is not counted several times over."""
    from r1.tasks.base import get_task

    task = get_task("modchain")
    items: list[dict[str, Any]] = []
    for level in task.levels_for(levels_spec):
        seen: set[str] = set()
        for item in task.generate(4 * per_level, seed=seed, difficulty=level, split="eval"):
            q = item["meta"]["question"]
            if q not in seen and len(seen) < per_level:
                seen.add(q)
                items.append(item)
    return items


def heldout(run: Run) -> list[dict[str, Any]]:
    """The held-out problems every evaluation of the job uses (eval split, `eval_per_level` per level)."""
    c = run.config
    return run.memo("heldout", lambda: eval_items(c.eval_levels, c.eval_per_level, seed=c.seed + 1))


def heldout_trained(run: Run) -> list[dict[str, Any]]:
    """The held-out problems of the corpus levels: RL's held-out curve, the same items as the tables' rows."""
    keep = set(levels(run.config.levels))
    return [it for it in heldout(run) if it["meta"]["difficulty"] in keep]


def write_heldout(run: Run) -> None:
    from r1.data.corpus import write_corpus

    write_corpus(run.path(HELDOUT), heldout_trained(run))


def prompted(items: list[dict[str, Any]], template: str, style: str | None = None) -> list[dict[str, Any]]:
    """Items with their prompt rendered as in the corpus; with `style`, plus a prefill that commits the model to
    that style (see the module docstring), remembered in meta.prefill."""
    from r1.data.corpus import prompt_for

    out = []
    for item in items:
        prefill = ""
        if style is not None:
            prefill = FORCED_PREFILL[style]
            if style == "steps":
                prefill += item["meta"]["steps"][0][0][0]  # the chain's first digit: copied, not computed
        meta = {**item["meta"], "question": item["meta"]["question"], "template": template, "prefill": prefill}
        out.append({**item, "prompt": prompt_for(item, template) + prefill, "meta": meta})
    return out


def eval_runs(run: Run, items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Free sampling renders the template itself (so format is judged against it); forced styles carry a prefill."""
    c = run.config
    return {
        "free_t1.0": dict(items=items, k=c.eval_k, temperature=1.0, top_p=1.0, template=c.template),
        "free_t0.6": dict(items=items, k=c.eval_k, temperature=0.6, top_p=0.95, template=c.template),
        "forced_direct": dict(items=prompted(items, c.template, "direct"), k=1, temperature=0.0, top_p=1.0),
        "forced_steps": dict(items=prompted(items, c.template, "steps"), k=1, temperature=0.0, top_p=1.0),
    }


def after_base_eval(run: Run, table: dict[str, Any]) -> None:
    if run.config.base is None:  # a base made here: its card gets the numbers
        write_card(run.path("base"), base_card(run))
    run.summary["amplify"] = verdict = amplify_check(table["trained"]["free_t1.0"], run.config.eval_k)
    print(f"      {verdict['text']}", flush=True)


def write_model_card(run: Run, table: dict[str, Any]) -> None:
    write_card(run.path("model"), model_card(run))


# ================================================================================================ cards, report
def base_card(run: Run) -> ModelCard:
    """The card of a base/ made here: how it was pretrained and, once evaluated, what it can do."""
    s, c = run.summary, run.config
    p, corpus = s.get("pretrain", {}), s.get("corpus", {})
    metrics = {"pretraining steps": p.get("steps"), "tokens": p.get("tokens"), "final loss": p.get("final_lm_loss")}
    metrics.update(_heldout_metrics(s, "base"))
    return ModelCard(
        stage="pretrain",
        summary=f"A `{c.preset}` DeepSeek-V3 pretrained from scratch by `r1 run` on {corpus.get('documents', 0):,} "
        f"worked modchain solutions in R1 format (levels {corpus.get('levels')}, train split only), loss on the "
        "responses: the base that R1-Zero starts from.",
        metrics={k: v for k, v in metrics.items() if v is not None},
        notes=_notes(c),
        extra={"config": asdict(c), **{k: s[k] for k in ("corpus", "tokenizer", "pretrain") if k in s}},
        tags=["modchain", "tiny"],
        example=MODCHAIN_EXAMPLE,
    )


def model_card(run: Run) -> ModelCard:
    """The card of model/: R1-Zero from the base, its training and, once evaluated, held-out results."""
    s, c = run.summary, run.config
    rl = s.get("r1_zero", {})
    metrics = {"GRPO steps": rl.get("steps"), "reward (last step)": rl.get("last", {}).get("reward")}
    metrics.update(_heldout_metrics(s, "r1-zero"))
    before = _heldout_metrics(s, "base")
    metrics.update({f"base model's {k}": v for k, v in before.items() if k.startswith("held-out pass@1")})
    base = run.path(base_dir(c))
    return ModelCard(
        stage="r1-zero",
        summary="R1-Zero at tiny scale, made by `r1 run`: GRPO (preset `r1-zero-tiny`) with rule rewards only (the "
        "right answer inside `<answer>` + 0.1 for the format), no SFT, on train-split modchain problems of levels "
        f"{level_label(c.levels)}.",
        base_model="r1/assets/base-tiny" if base.resolve() == BUILTIN_BASE.resolve() else str(base),
        metrics={k: v for k, v in metrics.items() if v is not None},
        notes=_notes(c),
        extra={"config": asdict(c), "r1_zero": {k: v for k, v in rl.items() if k != "curve"}},
        tags=["grpo", "modchain", "tiny"],
        example=MODCHAIN_EXAMPLE,
    )


def _notes(c: Config) -> list[str]:
    notes = [
        f"**Prompt format**: the plain `{c.template}` prompt `User: <question> Assistant:`; the chat template in "
        "tokenizer_config.json renders chats that way, so `r1 chat`, `r1 serve`, `r1 eval` and transformers ask it "
        "in its own format."
    ]
    return notes + (["**A quick smoke run (`--quick`)**: its numbers mean nothing."] if c.quick else [])


def _heldout_metrics(s: dict[str, Any], name: str) -> dict[str, Any]:
    table = s.get("eval", {}).get("tables", {}).get(name)
    if not table:
        return {}
    e, cell = s["eval"], table["trained"]["free_t1.0"]
    k, where = e["k"], f"levels {e['trained_levels']}, T=1.0"
    rates = {f"held-out pass@1 ({where}, mean of {k}), %": cell.get("pass@1")}
    if k > 1:
        rates[f"held-out pass@{k} ({where}), %"] = cell.get(f"pass@{k}")
    rates.update({"answers that reason, %": cell.get("think_share"), "format, %": cell.get("format_rate")})
    return {key: round(100 * v, 1) for key, v in rates.items() if isinstance(v, int | float)}


def headline(run: Run) -> list[str]:
    """The R1-Zero result first: before → after, whether the base had something to amplify, the table."""
    s, c = run.summary, run.config
    lines = ["*Quick smoke run: the numbers below mean nothing.*", ""] if c.quick else []
    e = s.get("eval", {})
    tables = e.get("tables", {})
    if "base" in tables and "r1-zero" in tables:
        before, after = tables["base"]["trained"]["free_t1.0"], tables["r1-zero"]["trained"]["free_t1.0"]
        rl, k = s.get("r1_zero", {}), e["k"]
        lines += [
            f"**R1-Zero on the built-in default**: {rl.get('steps', '?')} GRPO steps ({rl.get('seconds', 0):.0f} s) "
            f"with rule rewards only took held-out pass@1 (levels {e['trained_levels']}, mean over {k} "
            f"samples at T=1.0) from **{pct(before.get('pass@1'))}% to {pct(after.get('pass@1'))}%** "
            f"({signed(after.get('pass@1'), before.get('pass@1'))} points; the base's pass@{k} was "
            f"{pct(before.get(f'pass@{k}'))}%). Mean response length {num(before.get('length_mean'))} → "
            f"{num(after.get('length_mean'))} tokens; the model reasons in {pct(before.get('think_share'))}% → "
            f"{pct(after.get('think_share'))}% of its answers; format rate {pct(after.get('format_rate'))}%.",
            "",
        ]
    if "amplify" in s:
        lines += [f"**Before RL**: {s['amplify']['text']}", ""]
    if "base" in tables and "r1-zero" in tables:
        lines += before_after(e, tables["base"], tables["r1-zero"], "R1-Zero")
    return [*lines, "", "## The base model", ""]


def footer(run: Run) -> list[str]:
    tables = run.summary.get("eval", {}).get("tables", {})
    final = run.path("model" if "r1-zero" in tables else base_dir(run.config))
    return ["", f"Next: `r1 chat --model {final}` to talk to it; `r1 serve --model {final}` for the API."]


# ================================================================================================ command line
SIZES = {"steps": "pretraining steps", "rl_steps": "R1-Zero GRPO steps (0: base only)", "corpus_docs": "corpus "
         "documents", "eval_per_level": "held-out problems per level", "eval_k": "samples per problem"}  # fmt: skip
FLAGS = {"corpus_docs": "--docs", "eval_per_level": "--eval-items"}  # the others are their field's name


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--preset", default="tiny", help="model preset (default tiny)")
    for key, text in SIZES.items():
        flag = FLAGS.get(key, "--" + key.replace("_", "-"))
        p.add_argument(flag, dest=key, type=int, default=None, help=f"{text} (default {getattr(Config, key)})")
    p.add_argument("--base", help="start from this base model folder instead of the built-in one (r1/assets/base-tiny)")
    scratch = "make the base here: corpus, tokenizer and pretraining (~8 min more); --quick implies it"
    p.add_argument("--from-scratch", action="store_true", help=scratch)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--quick", action="store_true", help="a seconds-long smoke run (tests); its numbers mean nothing")


def sizes_from_args(args: argparse.Namespace, quick: dict[str, Any]) -> dict[str, Any]:
    """The sizes the flags set (`SIZES`; with --quick, `quick` first), checked, with --seed and --threads."""
    check_at_least(args, threads=1)
    if not 0 <= args.seed < 2**32:
        raise UserError(f"--seed must be in 0 .. 2**32 - 1, got {args.seed}")
    chosen = dict(quick) if args.quick else {}
    for key in SIZES:
        least, value = int(key != "rl_steps"), getattr(args, key)
        if value is not None and value < least:
            raise UserError(f"{FLAGS.get(key, '--' + key.replace('_', '-'))} must be >= {least}, got {value}")
        chosen.update({key: value} if value is not None else {})
    return chosen


def config_from_args(args: argparse.Namespace) -> Config:
    out = args.out or f"runs/{'quick' if args.quick else 'default'}-{time.strftime('%Y%m%d-%H%M%S')}"
    if Path(out).exists() and not Path(out).is_dir():
        raise UserError(f"--out {out}: is a file; the run folder must be a directory")
    chosen = sizes_from_args(args, QUICK)
    return Config(out, args.seed, args.preset, args.quick, base=base_from_args(args, BUILTIN_BASE),
                  threads=args.threads, **chosen)  # fmt: skip


def base_from_args(args: argparse.Namespace, builtin: Path) -> str | None:
    """The base folder a run starts from: --base, else the shipped `builtin`; None: made here (--from-scratch,
    --quick)."""
    if args.base and args.from_scratch:
        raise UserError("--base and --from-scratch exclude each other: one gives the base, the other trains it")
    if args.base or args.from_scratch or args.quick:
        return args.base
    if args.preset != "tiny" or args.steps is not None or args.corpus_docs is not None:
        raise UserError("--preset, --steps and --docs shape the base: add --from-scratch to train one")
    if not (builtin / "model.safetensors").is_file():
        raise UserError(f"the built-in base is missing ({builtin}): run with --from-scratch")
    return str(builtin)


RECIPE = Recipe(
    name="r1-zero",
    help="R1-Zero on a laptop: GRPO with rule rewards on the shipped tiny DeepSeek-V3 base (or one pretrained here "
    "with --from-scratch), evaluated before and after on held-out problems (about 3 minutes on a 2-core CPU, 11 with "
    "--from-scratch)",
    stages=stages,
    add_arguments=add_arguments,
    config=config_from_args,
    headline=headline,
    footer=footer,
)
