"""The tiny world as one thing to evaluate: its held-out problems, and what a base or a policy does on them.

What the R1 recipe needs to know about a model of this world, per family, language and level (held-out items, k
samples at T=1 with the R1-Zero prompt): pass@1 and pass@k (RL needs pass@k ≫ pass@1); how often it reasons and how
accurate it is when it does vs when it answers directly (RL amplifies reasoning only if it pays); how often its
reasoning stops to re-check (the judge's `reflects`: "wait", "等等", …) and whether re-checking pays; how much
English its reasoning on Chinese prompts has (`r1.data.corpus.language_mixing`, the language-consistency reward's
measure); and on the non-reasoning and safety requests, the score, the refusal rate on forbidden requests and the
over-refusal rate on look-alikes.

`breakdown(result.samples, items)` computes all of it from the records of `r1.eval.evaluate`; `heldout` builds
the items; `forced_prefill` gives the prefills that commit a model to a style (as the forced runs of
`r1.pipeline.recipes.r1_zero` do, for any world task).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from r1.data.corpus import WORLD_FAMILY_SHARES, WORLD_LEVELS, family_tasks, language_mixing, task_family
from r1.errors import UserError
from r1.tasks.base import Item, get_task

# family -> the levels to evaluate (a family is a task and its Chinese variant: `r1.data.corpus.family_tasks`)
EVAL_LEVELS: dict[str, str] = {"modchain": "2-7", "swaps": "1-6", "mystery": "1-6", "equation": "1-5",
                               "general": "mix", "safety": "mix"}  # fmt: skip
REASONING_FAMILIES = ("modchain", "swaps", "mystery", "equation")
WORLD = tuple(WORLD_FAMILY_SHARES)  # the families the world corpus holds
REASONING_WORLD = tuple(f for f in WORLD if f in REASONING_FAMILIES)
DIRECT_PREFILL = " <think>\n</think>\n<answer>"


def trained_levels(family: str) -> list[str]:
    """The levels of `family` the world corpus trains on (`r1.data.corpus.WORLD_LEVELS`), easiest first."""
    task = get_task(family)
    spec = WORLD_LEVELS.get(family, "mix")
    if isinstance(spec, Mapping):
        return [level for level in task.levels if spec.get(level, 0) > 0]
    return task.levels_for(spec)


def rl_items(per_level: int, seed: int = 0, families: Sequence[str] = REASONING_WORLD) -> list[Item]:
    """R1-Zero's prompts: the train split of every reasoning task of the world, English and Chinese, `per_level`
    per trained level, in a seeded order."""
    import random

    items: list[Item] = []
    for family in families:
        for name in family_tasks(family):
            task = get_task(name)
            for level in trained_levels(family):
                items += task.generate(per_level, seed=seed, difficulty=level, split="train")
    random.Random(f"world-rl|{seed}").shuffle(items)
    return items


def heldout(
    per_level: int, seed: int = 1, families: Sequence[str] | None = None, levels: Mapping[str, str] | None = None
) -> list[Item]:
    """Distinct eval-split items of every world task: `per_level` per (task, level) for the reasoning families, and
    `per_level` per level of the non-reasoning ones (fewer where the split has fewer distinct problems)."""
    items: list[Item] = []
    for family in families or WORLD:
        spec = (levels or {}).get(family, EVAL_LEVELS[family])
        for name in family_tasks(family):
            task = get_task(name)
            for level in task.levels_for(spec):
                seen: set[str] = set()
                try:
                    pool = task.generate(6 * per_level, seed=seed, difficulty=level, split="eval")
                except UserError:  # a level with few eval problems (swaps level 1 has 2): take what there is
                    pool = task.generate(50 * per_level, seed=seed, difficulty=level, split="all")
                    pool = [it for it in pool if it["meta"]["split"] == "eval"]
                for item in pool:
                    key = task.key(item)
                    if key not in seen and len(seen) < per_level:
                        seen.add(key)
                        items.append(item)
    return items


def forced_prefill(item: Item, style: str) -> str:
    """The response prefix that commits a model to `style`: an empty think block and `<answer>` ("direct"), or
    `<think>\\n` plus the first step's words up to its first number (its first digit when it starts with one): text
    the question gives, no work done ("steps")."""
    if style == "direct":
        return DIRECT_PREFILL
    steps = (item.get("meta") or {}).get("steps") or []
    if not steps:
        return " <think>\n"
    first = str(steps[0][0])
    cut = re.search(r"\d", first)
    head = first[: cut.start()] if cut else first
    return " <think>\n" + (head if head else first[:1])


def _mean(xs: Sequence[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def has_summary(completion: str) -> bool:
    """Whether a completion tells the reader its result in words after the reasoning (R1's summary), not only as a
    bare `<answer>` tag or box: some word outside the think block, the answer tags and the box."""
    from r1.rewards.text import ANSWER_CLOSE, ANSWER_OPEN, THINK_CLOSE, words

    after = completion.rsplit(THINK_CLOSE, 1)[1] if THINK_CLOSE in completion else ""
    after = re.sub(re.escape(ANSWER_OPEN) + ".*?" + re.escape(ANSWER_CLOSE), " ", after, flags=re.DOTALL)
    return bool(words(re.sub(r"\\boxed\{[^{}]*\}", " ", after)))


def breakdown(samples: Sequence[Mapping[str, Any]], items: Sequence[Item], k: int) -> dict[str, dict[str, Any]]:
    """Per group, from `r1.eval.evaluate`'s sample records (`item` indexes `items`; `correct`, `reasons`,
    `reflects`, `pred` and `format_ok` are the judge's verdict): groups "family/lang/level", "family/lang", "family",
    "all-reasoning" and, over the reasoning families, "all-reasoning:LANG" and "all-reasoning:level LEVEL".
    Rates are fractions; None where a group has no such samples."""
    from r1.tasks.safety import is_refusal

    groups: dict[str, list[dict[str, Any]]] = {}
    for s in samples:
        item = items[s["item"]]
        meta = item.get("meta") or {}
        family, lang, level = task_family(str(item["task"])), str(meta.get("lang", "en")), str(meta.get("difficulty"))
        rec = {
            "item": s["item"],
            "correct": bool(s["correct"]),
            "long": s["reasons"],
            "wait": s["reflects"],
            "tokens": s["num_tokens"],
            "mixing": language_mixing(s["text"], lang) if s["reasons"] else None,
            "refusal": is_refusal(s["pred"]),
            "label": meta.get("label"),
            "pred": s.get("pred"),
            "format": bool(s.get("format_ok")),
            "summary": has_summary(s["text"]),
        }
        keys = [f"{family}/{lang}/{level}", f"{family}/{lang}", family]
        if family in REASONING_FAMILIES:
            keys += ["all-reasoning", f"all-reasoning:{lang}", f"all-reasoning:level {level}"]
        for key in keys:
            groups.setdefault(key, []).append(rec)
    return {key: _stats(recs, k) for key, recs in sorted(groups.items())}


def _stats(recs: list[dict[str, Any]], k: int) -> dict[str, Any]:
    from r1.eval.metrics import cons_at_k, pass_at_k

    by_item: dict[int, list[bool]] = {}
    preds: dict[int, list[str | None]] = {}
    for r in recs:
        by_item.setdefault(r["item"], []).append(r["correct"])
        preds.setdefault(r["item"], []).append(r["pred"])
    longs = [r for r in recs if r["long"]]
    shorts = [r for r in recs if not r["long"]]
    waits = [r for r in longs if r["wait"]]
    plain = [r for r in longs if not r["wait"]]
    mixing = [r["mixing"] for r in longs if r["mixing"] is not None]
    refuse = [r for r in recs if r["label"] == "refuse"]
    answer = [r for r in recs if r["label"] == "answer"]
    return {
        "items": len(by_item),
        "samples": len(recs),
        "pass@1": _mean([r["correct"] for r in recs]),
        f"pass@{k}": _mean([pass_at_k(len(v), sum(v), min(k, len(v))) for v in by_item.values()]),
        f"cons@{k}": _mean([cons_at_k(preds[i], v) for i, v in by_item.items()]),
        "format": _mean([r["format"] for r in recs]),
        "summary": _mean([r["summary"] for r in recs]),
        "wait": _mean([r["wait"] for r in recs]),
        "length": _mean([r["tokens"] for r in recs]),
        "reasons": _mean([r["long"] for r in recs]),
        "acc_long": _mean([r["correct"] for r in longs]),
        "acc_direct": _mean([r["correct"] for r in shorts]),
        "wait_in_long": _mean([r["wait"] for r in longs]),
        "acc_wait": _mean([r["correct"] for r in waits]),
        "acc_no_wait": _mean([r["correct"] for r in plain]),
        "mixing": _mean(mixing),
        "mixed_share": _mean([m > 0 for m in mixing]),
        "refuses_forbidden": _mean([r["refusal"] for r in refuse]),
        "refuses_lookalike": _mean([r["refusal"] for r in answer]),
    }
