"""R1-style evaluation of any generator: k samples per item, scored by the task's verifier, summarized per group.

The generator is a plain callable (`GenerateFn`): `generate_fn(items, n, params)` gets templated items, the samples
per item and `{"temperature", "top_p", "max_new_tokens", "seed"}` (`seed` = run seed + the batch's first index, so
batches differ but a rerun repeats) and returns per item `n` samples `{"text", "num_tokens", "finish_reason"}` or
plain strings. Without `num_tokens`, lengths are counted as words (the report says which).

Every sample is judged by `r1.rewards.judge.judge` under the template (given, else the item's `meta.template`).
Items without a reference or verifier have no accuracy verdict: they count in `n_open`, not in pass@k / cons@k.
Rewards are scored one generation batch at a time, so a batched scorer runs once per batch. Defaults follow the
paper (T 0.6, top-p 0.95); max length 1,024 tokens (the paper's is 32,768).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from r1.eval.metrics import ItemOutcome, aggregate, cons_at_k
from r1.rewards.judge import REFLECTION_WORDS, Verdict, judge
from r1.tasks.base import Item, question_of
from r1.tasks.templates import apply_template

Sample = dict[str, Any]
GenerateFn = Callable[[list[Item], int, dict[str, Any]], list[list[Any]]]


@dataclass
class EvalResult:
    """Metrics overall, per task and per (task, difficulty), the run's config, one record per sample, and the
    judge's verdict on each sample (in the same order; not written to files, the records carry their fields)."""

    config: dict[str, Any]
    overall: dict[str, Any]
    by_task: dict[str, dict[str, Any]]
    by_difficulty: list[dict[str, Any]]
    samples: list[dict[str, Any]] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Everything but the per-sample records (those go to samples.jsonl)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("samples", "verdicts")}


def _as_sample(raw: Any) -> Sample:
    if isinstance(raw, str):
        return {"text": raw, "num_tokens": None, "finish_reason": "stop"}
    if isinstance(raw, Mapping) and isinstance(raw.get("text"), str):
        n = raw.get("num_tokens")
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 0):
            raise ValueError(f"a sample's num_tokens must be an integer >= 0 or None, got {n!r}")
        return {"text": raw["text"], "num_tokens": n, "finish_reason": raw.get("finish_reason") or "stop"}
    raise ValueError(f"a sample must be a str or a dict with a 'text' string, got {type(raw).__name__}: {raw!r:.80}")


def _reward_fn(reward_spec: Any) -> Any:
    if reward_spec is None or callable(reward_spec) or hasattr(reward_spec, "score"):
        return reward_spec
    from r1.rewards.registry import build_reward

    return build_reward(reward_spec)


def evaluate(
    items: Sequence[Item],
    generate_fn: GenerateFn,
    k: int = 8,
    temperature: float = 0.6,
    top_p: float = 0.95,
    max_new_tokens: int = 1024,
    template: str | None = "r1-zero",
    seed: int = 0,
    reward_spec: Any = None,
    progress: bool = True,
    batch_size: int = 16,
    reflection_words: Sequence[str] | None = None,
) -> EvalResult:
    """Sample `k` completions per item, judge them, report the metrics overall, per task and per difficulty.

    `template` is applied to every item; None uses the items' own prompts (judged by their `meta.template`).
    `reward_spec`: a `build_reward` spec or a reward callable, whose mean is reported too.
    """
    from tqdm import tqdm

    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    prompts = [apply_template(item, template) if template else dict(item) for item in items]
    reward = _reward_fn(reward_spec)
    params = {"temperature": temperature, "top_p": top_p, "max_new_tokens": max_new_tokens}
    words = tuple(REFLECTION_WORDS if reflection_words is None else reflection_words)
    outcomes: list[ItemOutcome] = []
    records: list[dict[str, Any]] = []
    verdicts: list[Verdict] = []
    exact_lengths = True
    n_correct = n_judged = 0
    bar = tqdm(total=len(prompts), unit="item", desc="eval", disable=not progress, file=sys.stderr, dynamic_ncols=True)
    try:
        for start in range(0, len(prompts), batch_size):
            batch = prompts[start : start + batch_size]
            outputs = generate_fn(batch, k, {**params, "seed": seed + start})
            if len(outputs) != len(batch):
                raise ValueError(f"generate_fn returned {len(outputs)} results for {len(batch)} items")
            for offset, raw_samples in enumerate(outputs):
                if len(raw_samples) != k:
                    raise ValueError(
                        f"generate_fn returned {len(raw_samples)} samples for item {start + offset}, expected {k}"
                    )
            samples = [[_as_sample(s) for s in raw_samples] for raw_samples in outputs]
            flat = [s for item_samples in samples for s in item_samples]
            exact_lengths &= all(s["num_tokens"] is not None for s in flat)
            lengths = [_length(s) for s in flat]
            rewards = _score(reward, [s["text"] for s in flat], [item for item in batch for _ in range(k)], lengths)
            for offset, (item, item_samples) in enumerate(zip(batch, samples)):
                rows = slice(offset * k, (offset + 1) * k)
                item_rewards = None if rewards is None else rewards[rows]
                outcome, item_records, item_verdicts = _judge(
                    start + offset, item, item_samples, lengths[rows], item_rewards, template, words
                )
                outcomes.append(outcome)
                records += item_records
                verdicts += item_verdicts
                if outcome.judged:
                    n_correct, n_judged = n_correct + sum(outcome.correct), n_judged + k
            bar.update(len(batch))
            if n_judged:
                bar.set_postfix({"pass@1": f"{n_correct / n_judged:.3f}"})
    finally:
        bar.close()

    config = {
        "k": k,
        "temperature": temperature,
        "top_p": top_p,
        "max_new_tokens": max_new_tokens,
        "template": template,
        "seed": seed,
        "n_items": len(prompts),
        "length_unit": "tokens" if exact_lengths else "words",
        "reward_spec": _describe(reward_spec),
    }
    result = _summarize(config, prompts, outcomes, records, k)
    result.verdicts = verdicts
    return result


def health_warning(result: EvalResult, other_templates: Sequence[str] = ()) -> str | None:
    """One line when the numbers point at the prompt rather than the model: most samples ran into the length limit,
    or not one has an answer to extract. Both are what a model asked in a format it was not trained on does."""
    samples = result.samples
    if not samples:
        return None
    c = result.config
    hit = sum(s["finish_reason"] == "length" for s in samples) / len(samples)
    try_ = " or ".join(f"--template {t}" for t in other_templates) or "another template"
    cause = f"the prompt format (template {c.get('template')}) may not be the one this model was trained on; try {try_}"
    if hit > 0.5:
        return f"{100 * hit:.0f}% of samples hit max_new_tokens ({c.get('max_new_tokens')}): {cause}"
    if not any(s["pred"] is not None for s in samples):
        return f"none of the {len(samples)} samples has an answer to extract (<answer> or \\boxed{{}}): {cause}"
    return None


def _length(sample: Sample) -> int:
    return len(sample["text"].split()) if sample["num_tokens"] is None else int(sample["num_tokens"])


def _judge(
    index: int,
    item: Item,
    samples: list[Sample],
    lengths: list[int],
    rewards: list[float] | None,
    template: str | None,
    reflection_words: tuple[str, ...],
) -> tuple[ItemOutcome, list[dict[str, Any]], list[Verdict]]:
    """One item's samples: the judge's verdicts, the outcome the metrics need and the per-sample records."""
    verdicts = [
        judge(s["text"], item, template, finish_reason=s["finish_reason"], reflection_words=reflection_words)
        for s in samples
    ]
    preds = [v.answer for v in verdicts]
    correct = [v.correct for v in verdicts]
    judged = all(c is not None for c in correct)
    cons = cons_at_k(preds, [bool(c) for c in correct]) if judged else None
    outcome = ItemOutcome(
        correct, cons, [v.format_ok for v in verdicts], lengths, [s["finish_reason"] for s in samples]
    )
    meta = item.get("meta") or {}
    ref = item.get("answer")
    records = []
    for j, (s, v) in enumerate(zip(samples, verdicts)):
        record = {
            "item": index,
            "sample": j,
            "task": str(item.get("task", "-")),
            "difficulty": str(meta.get("difficulty", "-")),
            "question": question_of(item),
            "answer": None if ref is None else str(ref),
            "pred": v.answer,
            "correct": v.correct,
            "format_ok": v.format_ok,
            "reasons": v.reasons,
            "reflects": v.reflects,
            "num_tokens": lengths[j],
            "finish_reason": s["finish_reason"],
            "text": s["text"],
        }
        if rewards is not None:
            record["reward"] = rewards[j]
        records.append(record)
    return outcome, records, verdicts


def _score(reward: Any, texts: list[str], items: list[Item], lengths: list[int]) -> list[float] | None:
    """A generation batch's rewards in one call (a composite scores its batched components once)."""
    if reward is None:
        return None
    if hasattr(reward, "score"):
        return [float(x) for x in reward.score(texts, items, lengths).total]
    return [float(reward(text, item)) for text, item in zip(texts, items)]


def _describe(reward_spec: Any) -> Any:
    if reward_spec is None or isinstance(reward_spec, str | int | float | list | dict):
        return reward_spec
    return repr(reward_spec)


def _summarize(
    config: dict[str, Any], items: list[Item], outcomes: list[ItemOutcome], records: list[dict[str, Any]], k: int
) -> EvalResult:
    by_task: dict[str, list[int]] = {}
    by_diff: dict[tuple[str, str], list[int]] = {}
    for i, item in enumerate(items):
        task = str(item.get("task", "-"))
        diff = str((item.get("meta") or {}).get("difficulty", "-"))
        by_task.setdefault(task, []).append(i)
        by_diff.setdefault((task, diff), []).append(i)

    rewards: dict[int, list[float]] = {}
    for r in records:
        if "reward" in r:
            rewards.setdefault(r["item"], []).append(r["reward"])

    def metrics(indices: list[int]) -> dict[str, Any]:
        out = aggregate([outcomes[i] for i in indices], k)
        if rewards:
            values = [x for i in indices for x in rewards.get(i, [])]
            out["reward_mean"] = sum(values) / len(values) if values else 0.0
        return out

    overall = metrics(list(range(len(items))))
    tasks = {task: metrics(idx) for task, idx in sorted(by_task.items())}
    diffs = [
        {"task": task, "difficulty": diff, **metrics(idx)}
        for (task, diff), idx in sorted(by_diff.items(), key=lambda kv: (kv[0][0], _level_key(kv[0][1])))
    ]
    return EvalResult(config=config, overall=overall, by_task=tasks, by_difficulty=diffs, samples=records)


def _level_key(level: str) -> tuple[int, float, str]:
    try:
        return (0, float(level), level)
    except ValueError:
        return (1, 0.0, level)
