"""R1-style evaluation of any generator: k samples per item, scored by the task's verifier, summarized per group.

The generator is a plain callable, so the project's engine, a server client, a test fake or a file of
pre-generated completions all plug in the same way:

    GenerateFn = Callable[[list[Item], int, dict], list[list[Sample | str]]]

`generate_fn(items, n, params)` receives a batch of templated items (each with "prompt" or "messages"), the number
of samples per item and the sampling parameters `{"temperature", "top_p", "max_new_tokens", "seed"}` (`seed` is the
run seed plus the batch's first item index, so batches differ but a rerun repeats). It returns, per item in order,
a list of `n` samples, each `{"text": str, "num_tokens": int, "finish_reason": "stop" | "length"}`; a plain string
is accepted as `{"text": s, "finish_reason": "stop"}`. Without `num_tokens`, lengths are counted with
`count_tokens` if given, else as whitespace-separated words (the report says which unit it used).

Correctness: the answer is `r1.rewards.answers.extract_answer(text)` (last `<answer>` block, else last `\\boxed{}`);
a built-in or reasoning-gym task judges it with its own verifier, any other task with a verifier registered in
`r1.rewards.registry`, and everything else with `answers_match` against the reference. Defaults follow the paper:
temperature 0.6, top-p 0.95 [recipe §4]; its max length is 32,768 tokens, ours defaults to 1,024 for tiny models.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from r1.eval.metrics import ItemOutcome, aggregate, cons_at_k, format_ok
from r1.tasks.base import Item, find_task, question_of
from r1.tasks.templates import apply_template

Sample = dict[str, Any]
GenerateFn = Callable[[list[Item], int, dict[str, Any]], list[list[Any]]]
Verify = Callable[[str, Item], bool]


@dataclass
class EvalResult:
    """Metrics overall, per task and per (task, difficulty), the run's config, and one record per sample."""

    config: dict[str, Any]
    overall: dict[str, Any]
    by_task: dict[str, dict[str, Any]]
    by_difficulty: list[dict[str, Any]]
    samples: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Everything but the per-sample records (those go to samples.jsonl)."""
        return {
            "config": self.config,
            "overall": self.overall,
            "by_task": self.by_task,
            "by_difficulty": self.by_difficulty,
        }


def verifier_for(task_name: str) -> Verify:
    """How answers of `task_name` are judged: its task's verifier, a registered one, or `answers_match`."""
    from r1.rewards.answers import answers_match
    from r1.rewards.registry import get_verifier

    task = find_task(task_name)
    if task is not None:
        return task.verify
    registered = get_verifier(task_name)
    if registered is not None:
        return registered
    return lambda pred, item: answers_match(pred, str(item["answer"]))


def _as_sample(raw: Any) -> Sample:
    if isinstance(raw, str):
        return {"text": raw, "num_tokens": None, "finish_reason": "stop"}
    if isinstance(raw, Mapping) and isinstance(raw.get("text"), str):
        n = raw.get("num_tokens")
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 0):
            raise ValueError(f"a sample's num_tokens must be an integer >= 0 or None, got {n!r}")
        return {
            "text": raw["text"],
            "num_tokens": raw.get("num_tokens"),
            "finish_reason": raw.get("finish_reason") or "stop",
        }
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
    count_tokens: Callable[[str], int] | None = None,
) -> EvalResult:
    """Sample `k` completions per item, judge them and report pass@1 (mean over k), pass@2..k, cons@k, format
    rate, lengths and truncation, overall, per task and per difficulty. See the module docstring for the contract.

    `template` is applied to every item ("r1-zero" or "r1"); None uses the items' own prompt/messages.
    `reward_spec` (optional) is a `build_reward` spec or a reward callable; its mean is reported as well.
    """
    from tqdm import tqdm

    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    prompts = [apply_template(item, template) if template else dict(item) for item in items]
    reward = _reward_fn(reward_spec)
    params = {"temperature": temperature, "top_p": top_p, "max_new_tokens": max_new_tokens}
    verifiers: dict[str, Verify] = {}
    outcomes: list[ItemOutcome] = []
    records: list[dict[str, Any]] = []
    exact_lengths = True
    n_correct = 0
    bar = tqdm(total=len(prompts), unit="item", desc="eval", disable=not progress, file=sys.stderr, dynamic_ncols=True)
    try:
        for start in range(0, len(prompts), batch_size):
            batch = prompts[start : start + batch_size]
            outputs = generate_fn(batch, k, {**params, "seed": seed + start})
            if len(outputs) != len(batch):
                raise ValueError(f"generate_fn returned {len(outputs)} results for {len(batch)} items")
            for offset, (item, raw_samples) in enumerate(zip(batch, outputs)):
                if len(raw_samples) != k:
                    raise ValueError(
                        f"generate_fn returned {len(raw_samples)} samples for item {start + offset}, expected {k}"
                    )
                task = str(item.get("task", "-"))
                if task not in verifiers:
                    verifiers[task] = verifier_for(task)
                samples = [_as_sample(s) for s in raw_samples]
                exact_lengths = exact_lengths and (
                    count_tokens is not None or all(s["num_tokens"] is not None for s in samples)
                )
                outcome, item_records = _judge(
                    start + offset, item, samples, template, verifiers[task], reward, count_tokens
                )
                outcomes.append(outcome)
                records += item_records
                n_correct += sum(outcome.correct)
            bar.update(len(batch))
            bar.set_postfix({"pass@1": f"{n_correct / (k * len(outcomes)):.3f}"})
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
    return _summarize(config, prompts, outcomes, records, k)


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


def _judge(
    index: int,
    item: Item,
    samples: list[Sample],
    template: str | None,
    verify: Verify,
    reward: Any,
    count_tokens: Callable[[str], int] | None,
) -> tuple[ItemOutcome, list[dict[str, Any]]]:
    """One item's samples: extracted answers, verdicts, format, lengths, rewards and the per-sample records."""
    from r1.rewards.answers import extract_answer

    preds = [extract_answer(s["text"]) for s in samples]
    correct = [p is not None and bool(verify(p, item)) for p in preds]
    formats = [format_ok(s["text"], template) for s in samples]
    lengths = [
        int(s["num_tokens"])
        if s["num_tokens"] is not None
        else count_tokens(s["text"])
        if count_tokens
        else len(s["text"].split())
        for s in samples
    ]
    rewards = _score(reward, samples, item, lengths)
    outcome = ItemOutcome(correct, cons_at_k(preds, correct), formats, lengths, [s["finish_reason"] for s in samples])
    meta = item.get("meta") or {}
    records = []
    for j, s in enumerate(samples):
        record = {
            "item": index,
            "sample": j,
            "task": str(item.get("task", "-")),
            "difficulty": str(meta.get("difficulty", "-")),
            "question": question_of(item),
            "answer": str(item.get("answer")),
            "pred": preds[j],
            "correct": correct[j],
            "format_ok": formats[j],
            "num_tokens": lengths[j],
            "finish_reason": s["finish_reason"],
            "text": s["text"],
        }
        if rewards is not None:
            record["reward"] = rewards[j]
        records.append(record)
    return outcome, records


def _score(reward: Any, samples: list[Sample], item: Item, lengths: list[int]) -> list[float] | None:
    if reward is None:
        return None
    if hasattr(reward, "score"):
        return [float(x) for x in reward.score([s["text"] for s in samples], [item] * len(samples), lengths).total]
    return [float(reward(s["text"], item)) for s in samples]


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
