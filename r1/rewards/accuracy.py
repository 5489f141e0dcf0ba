"""The accuracy reward: 1.0 iff the completion's final answer is right, else 0.0 [R1v1 §2.2.2].

The verdict is `r1.rewards.judge.judge`'s, the one the evaluator and GRPO's logged accuracy use. An open-ended item
(no reference, no verifier) earns 0.0 for every sample, so it moves no GRPO advantage; score such prompts with a
model reward (a batched scorer, see `r1.rewards.registry`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from r1.errors import UserError
from r1.rewards.judge import judge
from r1.rewards.registry import RewardFn, reward

__all__ = ["ACCURACY_MODES", "accuracy"]

ACCURACY_MODES = ("template", "auto", "answer_tag", "boxed")


def answer_mode(name: str, mode: str) -> str | None:
    """A reward's `mode` option as the judge's `answer_mode` (None: the template decides)."""
    if mode not in ACCURACY_MODES:
        raise UserError(f"reward {name!r}: mode must be one of {', '.join(ACCURACY_MODES)}, got {mode!r}")
    return None if mode == "template" else mode


@reward("accuracy", factory=True)
def accuracy(mode: str = "template") -> RewardFn:
    """1.0 iff the final answer (mode: template | auto | answer_tag | boxed) is right by the verifier or reference.

    `template` (default): where the item's template puts the answer (the tag, else the box, without one); `auto`:
    the tag, else the box. Open-ended items (no reference, no verifier) earn 0.0.
    """
    override = answer_mode("accuracy", mode)

    def accuracy_(completion: str, item: Mapping[str, Any]) -> float:
        return 1.0 if judge(completion, item, answer_mode=override).correct else 0.0

    return accuracy_
