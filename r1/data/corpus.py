"""The built-in pretraining corpus: worked solutions in R1 format, generated from the task library.

Why it looks the way it does (measured; see shared/notes/r1-zero-at-tiny-scale.md):

- Main family `modchain` (a left-to-right chain of + and * mod 10 over k digits, k = 2..8). Every step is local
  and easy, but the one-shot answer composes up to 7 non-linear maps, so a tiny model answers short chains directly
  and long ones only by working the steps. That gap is what reinforcement learning later exploits: reasoning must
  pay off on the hard levels, or RL has nothing to amplify. (A linear task such as digit sums was solved directly
  and gave RL no reason to reason.)
- Natural proportions of styles, the same at every level: 65% direct answers (`<think>\\n</think>` then the
  answer), 25% step by step inside `<think>`, 10% step by step with one slip caught by " wait, " and redone. The
  base model then mostly answers directly (pass@1 well below what its step-by-step mode can reach), samples the
  long form often enough that pass@k ≫ pass@1, and already knows how to recover from a slip.
- Every response ends in the correct answer: the corpus teaches formats and procedures, never wrong conclusions.
- Train split only: problems are drawn with `split="train"`, so the held-out evaluation set (10% of problem keys,
  chosen by hash in `r1.tasks.base.split_of`) is never seen in pretraining, whatever the seed or size.

Records are `{"prompt", "response", "task", "level", "style", "answer"}`. `prompt` is the templated question
(R1-Zero: ends with `Assistant:`); `response` starts with a space, so `prompt + response` is exactly the text the
model should read and the completion the evaluator will see after the prompt. The trainer computes the loss on the
response only, so the model learns to answer, not to write questions.
"""

from __future__ import annotations

import json
import os
import random
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from r1.errors import UserError
from r1.tasks.base import STYLES, Item, get_task, question_of
from r1.tasks.templates import r1_zero_prompt

DEFAULT_MIX: dict[str, float] = {"direct": 0.65, "steps": 0.25, "check": 0.10}
DEFAULT_TASKS: dict[str, float] = {"modchain": 1.0}
DEFAULT_LEVELS: dict[str, str] = {"modchain": "2-8"}

Record = dict[str, Any]
# "r1-zero": the R1-Zero paper's prompt (a one-paragraph preamble, then `User: … Assistant:`), ~100 tokens.
# "r1-zero-short": the same conversation frame without the preamble, ~20 tokens. The preamble is a constant that a
# model trained from scratch learns nothing from, yet it is 5/6 of every document's tokens: on a 2-core CPU that
# is the difference between a base model that has learned the procedure and one that has not. The response format
# (`<think>…</think><answer>…</answer>`) is the same in both.
PROMPT_TEMPLATES = ("r1-zero", "r1-zero-short")


def prompt_for(item: Item, template: str = "r1-zero") -> str:
    """The prompt text for a task item in one of `PROMPT_TEMPLATES`; the completion starts after `Assistant:`.

    Training, evaluation and RL must all render prompts through this one function, or the model meets prompts
    it was never trained on.
    """
    question = question_of(item).strip()
    if template == "r1-zero":
        return r1_zero_prompt(question)
    if template == "r1-zero-short":
        end = "" if question[-1:] in ".?!。？！" else "."
        return f"User: {question}{end} Assistant:"
    raise UserError(f"unknown prompt template {template!r}; valid: {', '.join(PROMPT_TEMPLATES)}")


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
    levels: Mapping[str, str] | None = None,
    template: str = "r1-zero",
) -> list[Record]:
    """`n_docs` seeded training records (train split only), in a seeded random order.

    template: how prompts are rendered, one of `PROMPT_TEMPLATES` (see `prompt_for`).
    mix: solution style -> share (styles of `r1.tasks.base.STYLES`); default `DEFAULT_MIX`.
    tasks: task name -> share of documents; default `DEFAULT_TASKS` (modchain only).
    levels: task name -> difficulty spec ("2-8", "mix", "3"); a task without one uses all its levels.
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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for r in records:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_corpus(path: str | os.PathLike[str]) -> list[Record]:
    """Records from a JSONL corpus written by `write_corpus`."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
