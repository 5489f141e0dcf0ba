"""Optional adapter: reasoning-gym datasets as tasks named `rg:NAME` (e.g. `rg:leg_counting`).

reasoning-gym (https://github.com/open-thought/reasoning-gym) is not a dependency; install it to use this. Its API:
`reasoning_gym.create_dataset(name, size=, seed=)` returns an indexable dataset whose entries are dicts with
"question", "answer" and "metadata", and `dataset.score_answer(answer=, entry=)` returns a score in [0, 1]. We
count an answer correct when the score is 1 (partial credit is not correctness).

Difficulty is fixed by each dataset's own config, so `difficulty` is recorded but ignored. The train/eval split
uses the same question hash as the built-in tasks (`r1.tasks.base.split_of`): the dataset is over-generated and
filtered, so held-out questions never appear in training items.
"""

from __future__ import annotations

import functools
import random
from typing import Any

from r1.errors import UserError
from r1.tasks.base import SPLITS, Item, Task, register_prefix, split_of

INSTALL_HINT = "reasoning-gym is not installed: pip install reasoning-gym"


def _module() -> Any:
    try:
        import reasoning_gym
    except ImportError:
        raise UserError(INSTALL_HINT) from None
    return reasoning_gym


@functools.lru_cache(maxsize=64)
def _dataset(name: str, size: int, seed: int) -> Any:
    try:
        return _module().create_dataset(name, size=size, seed=seed)
    except UserError:
        raise
    except Exception as exc:  # unknown names and bad configs surface as assorted exception types
        raise UserError(f"reasoning-gym dataset {name!r}: {exc}") from None


class ReasoningGymTask(Task):
    """One reasoning-gym dataset; items carry the original entry in meta.rg_entry for its scorer."""

    levels = ("-",)
    default_level = "-"
    knobs = "set by the reasoning-gym dataset config"

    def __init__(self, dataset: str) -> None:
        _module()
        self.dataset = dataset
        self.name = f"rg:{dataset}"
        self.description = f"reasoning-gym dataset {dataset}"

    def make(self, rng: random.Random, level: str) -> Item:  # pragma: no cover - generate() is overridden
        raise NotImplementedError

    def levels_for(self, difficulty: int | str | None) -> list[str]:
        return ["-"]

    def generate(self, n: int, seed: int = 0, difficulty: int | str | None = None, split: str = "train") -> list[Item]:
        if split not in SPLITS:
            raise UserError(f"task {self.name}: split {split!r} is not valid; expected one of {', '.join(SPLITS)}")
        size = n if split == "all" else 20 * n + 100
        data = _dataset(self.dataset, size, seed)
        items: list[Item] = []
        for index in range(size):
            if len(items) == n:
                break
            entry = data[index]
            question = str(entry["question"])
            item_split = split_of(question)
            if split != "all" and item_split != split:
                continue
            meta = {
                "question": question,
                "difficulty": "-",
                "seed": seed,
                "index": index,
                "split": item_split,
                "rg_entry": {
                    "question": entry["question"],
                    "answer": entry["answer"],
                    "metadata": entry.get("metadata", {}),
                },
            }
            items.append({"prompt": question, "answer": str(entry["answer"]), "task": self.name, "meta": meta})
        if len(items) < n:
            raise UserError(f"task {self.name}: found only {len(items)} {split} items among {size} generated")
        return items

    def verify(self, pred: str, item: Item) -> bool:
        entry = item["meta"]["rg_entry"]
        scorer = _dataset(self.dataset, 1, int(item["meta"].get("seed", 0)))
        try:
            return float(scorer.score_answer(answer=pred, entry=entry)) >= 1.0 - 1e-9
        except Exception:  # a scorer crashing on odd model output means the answer is wrong, not a failed eval
            return False


@functools.cache
def reasoning_gym_task(dataset: str) -> ReasoningGymTask:
    """The task for reasoning-gym dataset `dataset`; a UserError when reasoning-gym is not installed."""
    return ReasoningGymTask(dataset)


register_prefix("rg:", reasoning_gym_task)
