"""The built-in pretraining corpus: worked solutions in R1 format, generated from the task library.

Why it looks the way it does (measured on the 2-core CPU with the `tiny` preset, ~3M tokens of pretraining; the
numbers are in the report of `r1 run`, the background in shared/notes/r1-zero-at-tiny-scale.md):

- One family, `modchain`: a left-to-right chain of + and * mod 10 over k distinct digits. Every step is local and
  easy, but the one-shot answer composes k-1 non-linear maps, so a tiny model answers short chains directly and
  long ones only by working the steps. That gap is what reinforcement learning later exploits: reasoning must pay
  off on the hard levels, or RL has nothing to amplify. (A linear task such as digit sums is solved directly and
  gives RL no reason to reason.) Other families are left out: the budget is the binding constraint, and every
  document of another family is one fewer for the procedure that is only just learned in time.
- Levels k = 2..6, weighted 1 : 1 : 1.5 : 2 : 2.5 toward the long chains. The hard part for the model is not the
  arithmetic (learned early) but finding the i-th operator and digit of the question at step i; it learns that one
  step position at a time, and only the longer chains teach the later positions. With uniform levels, whether the
  last positions were learned within ~3M tokens depended on the seed (2 of 4 runs fell short at levels 5-6 and RL
  then gained 2-14 points instead of 30); with this weighting both seeds tried learned every level (forced step by
  step 100% at levels 4-6). Levels 7-8 are never seen and show where the procedure stops.
- Styles, the same shares at every level: 50% direct answers (`<think>\n</think>` then the answer), 35% step by
  step inside `<think>`, 15% step by step with one slip caught by " wait, " and redone. The notes' 65/25/10 left
  the step procedure unlearned at this budget in some runs (the long form is where it is learned); at 50/35/15
  the base still answers directly about 3 times in 4 (pass@1 well below what its step-by-step mode reaches, so RL
  has room), samples the long form often enough that pass@k ≫ pass@1, and knows how to recover from a slip.
- Every response ends in the correct answer: the corpus teaches formats and procedures, never wrong conclusions.
- Train split only: problems are drawn with `split="train"`, so the held-out evaluation set (10% of problem keys,
  chosen by hash in `r1.tasks.base.split_of`) is never seen in pretraining, whatever the seed or size.
- Prompt "r1-zero-short" by default (see `PROMPT_TEMPLATES`): the R1-Zero frame without its preamble.

Records are `{"prompt", "response", "task", "level", "style", "answer"}`. `prompt` is the templated question (ends
with `Assistant:`); `response` starts with a space, so `prompt + response` is exactly the text the model should
read and the completion the evaluator sees after the prompt. The trainer computes the loss on the response only,
so the model learns to answer, not to write questions.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from r1.errors import UserError
from r1.io import atomic_write_text
from r1.readers import iter_jsonl
from r1.tasks.base import STYLES, Item, get_task
from r1.tasks.templates import PLAIN_TEMPLATES, apply_template

DEFAULT_MIX: dict[str, float] = {"direct": 0.50, "steps": 0.35, "check": 0.15}
DEFAULT_TASKS: dict[str, float] = {"modchain": 1.0}
DEFAULT_LEVELS: dict[str, str | dict[str, float]] = {"modchain": {"2": 1.0, "3": 1.0, "4": 1.5, "5": 2.0, "6": 2.5}}
DEFAULT_TEMPLATE = "r1-zero-short"

Record = dict[str, Any]
PROMPT_TEMPLATES = PLAIN_TEMPLATES  # see r1.tasks.templates


def prompt_for(item: Item, template: str = DEFAULT_TEMPLATE) -> str:
    """The prompt text for a task item in one of `PROMPT_TEMPLATES`; the completion starts after `Assistant:`.

    Training, evaluation and RL must all render prompts through this one function, or the model meets prompts
    it was never trained on.
    """
    if template not in PROMPT_TEMPLATES:
        raise UserError(f"unknown prompt template {template!r}; valid: {', '.join(PROMPT_TEMPLATES)}")
    return apply_template(item, template)["prompt"]


def _normalized(weights: Mapping[str, float], valid: tuple[str, ...] | None, what: str) -> dict[str, float]:
    if not weights:
        raise UserError(f"corpus {what}: at least one entry is needed")
    bad = [k for k in weights if valid is not None and k not in valid]
    if bad:
        raise UserError(f"corpus {what}: unknown {bad}; valid: {', '.join(valid or ())}")
    if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
        raise UserError(f"corpus {what}: weights must be >= 0 and sum to > 0, got {dict(weights)}")
    total = sum(weights.values())
    return {k: w / total for k, w in weights.items() if w > 0}


def _counts(n: int, shares: Mapping[str, float]) -> dict[str, int]:
    """Largest-remainder rounding: the counts sum to n and each is within 1 of n·share, so small corpora keep the
    stated proportions exactly instead of drifting with sampling noise."""
    raw = {k: n * s for k, s in shares.items()}
    counts = {k: int(v) for k, v in raw.items()}
    for k in sorted(raw, key=lambda k: (counts[k] - raw[k], k))[: n - sum(counts.values())]:
        counts[k] += 1
    return counts


def build_corpus(
    n_docs: int,
    seed: int = 0,
    mix: Mapping[str, float] | None = None,
    tasks: Mapping[str, float] | None = None,
    levels: Mapping[str, str | Mapping[str, float]] | None = None,
    template: str = DEFAULT_TEMPLATE,
) -> list[Record]:
    """`n_docs` seeded training records (train split only), in a seeded random order.

    template: how prompts are rendered, one of `PROMPT_TEMPLATES` (see `prompt_for`).
    mix: solution style -> share (styles of `r1.tasks.base.STYLES`); default `DEFAULT_MIX`.
    tasks: task name -> share of documents; default `DEFAULT_TASKS` (modchain only).
    levels: task name -> difficulty spec ("2-6", "mix", "3": uniform over those levels) or {level: weight}; a task
    without one uses all its levels.
    Shares are exact up to rounding, per task and per style within each task. The same arguments always give the
    same records, and a problem may appear more than once (in different styles) when its level has few problems.
    """
    if n_docs < 0:
        raise UserError(f"corpus: n_docs must be >= 0, got {n_docs}")
    if template not in PROMPT_TEMPLATES:
        raise UserError(f"corpus: unknown template {template!r}; valid: {', '.join(PROMPT_TEMPLATES)}")
    style_shares = _normalized(DEFAULT_MIX if mix is None else mix, STYLES, "mix")
    task_shares = _normalized(DEFAULT_TASKS if tasks is None else tasks, None, "tasks")
    levels = {**DEFAULT_LEVELS, **(levels or {})}
    records: list[Record] = []
    for name, count in _counts(n_docs, task_shares).items():
        task = get_task(name)
        spec = levels.get(name, "mix")
        if isinstance(spec, Mapping):  # level -> weight: exact shares per level
            level_shares = _normalized(spec, tuple(task.levels), f"levels of {name}")
            items = [
                item
                for level, n in _counts(count, level_shares).items()
                for item in task.generate(n, seed=seed, difficulty=level, split="train")
            ]
            random.Random(f"corpus-levels|{name}|{seed}").shuffle(items)
        else:
            items = task.generate(count, seed=seed, difficulty=spec, split="train")
        styles = [s for s, c in _counts(count, style_shares).items() for _ in range(c)]
        random.Random(f"corpus-styles|{name}|{seed}").shuffle(styles)
        for i, (item, style) in enumerate(zip(items, styles)):
            # seed per document: two copies of one problem in the "check" style slip at different steps
            response = task.solution(item, style=style, answer_format="tags", seed=seed * 1_000_003 + i)
            records.append(
                {
                    "prompt": prompt_for(item, template),
                    "response": " " + response,
                    "task": name,
                    "level": item["meta"]["difficulty"],
                    "style": style,
                    "answer": item["answer"],
                }
            )
    random.Random(f"corpus-order|{seed}").shuffle(records)
    return records


def corpus_texts(records: list[Record]) -> Iterator[str]:
    """Prompt + response of each record: the text a tokenizer for this corpus should be trained on."""
    for r in records:
        yield r["prompt"] + r["response"]


def write_corpus(path: str | os.PathLike[str], records: list[Record] | None = None, **kwargs: Any) -> Path:
    """Write records (or `build_corpus(**kwargs)`) as JSONL, atomically: a crash never leaves half a corpus that a
    later run would silently train on."""
    if records is None:
        records = build_corpus(**kwargs)
    elif kwargs:
        raise UserError("write_corpus: pass either records or build_corpus arguments, not both")
    return atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def read_corpus(path: str | os.PathLike[str]) -> list[Record]:
    """Records from a JSONL corpus written by `write_corpus` (a malformed line is an error naming file and line)."""
    if not Path(path).is_file():
        raise UserError(f"corpus file not found: {path}")
    return [record for _, _, record in iter_jsonl(Path(path))]
