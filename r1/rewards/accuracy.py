"""The accuracy reward: 1.0 iff the completion's final answer is right, else 0.0.

R1 checks math answers by rule, in a specified format (a box), against the reference, 1/0 [R1v1 §2.2.2; recipe §2.2];
open-r1, TRL and verl use Math-Verify for this [recipe §5 row 7]. The answer is taken by
`r1.rewards.answers.extract_answer` (last `<answer>` block or last `\\boxed{}` after `</think>`) and compared by
`answers_match`, whose module docstring lists the reward-hacking cases it refuses. Tasks whose answers are not values
(countdown: an expression that must evaluate to the target) register a verifier with
`r1.rewards.registry.register_verifier`, which is used instead.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from r1.errors import UserError
from r1.rewards.answers import AnswerMode, answers_match, extract_answer
from r1.rewards.registry import RewardFn, get_verifier, reward

__all__ = ["accuracy", "is_correct"]

_log = logging.getLogger(__name__)
_MODES = ("auto", "answer_tag", "boxed")


def is_correct(completion: str, item: Mapping[str, Any], mode: AnswerMode = "auto") -> bool:
    """Whether the completion's final answer is right for `item` (the task's verifier, else `answers_match`)."""
    pred = extract_answer(completion, mode)
    if pred is None:
        return False
    verifier = get_verifier(item.get("task"))
    if verifier is not None:
        try:
            return bool(verifier(pred, item))
        except Exception as exc:  # noqa: BLE001 - a verifier bug must not crash a training step; it is logged
            _log.warning("verifier for task %r raised on %r: %s", item.get("task"), pred[:80], exc)
            return False
    ref = item.get("answer")
    if ref is None:
        raise UserError(
            f"accuracy: item of task {item.get('task')!r} has no 'answer' and the task registers no verifier"
        )
    if isinstance(ref, list | tuple):  # several acceptable answers
        return any(answers_match(pred, str(r)) for r in ref)
    return answers_match(pred, str(ref))


@reward("accuracy", factory=True)
def accuracy(mode: AnswerMode = "auto") -> RewardFn:
    """1.0 iff the final answer (mode: auto | answer_tag | boxed) matches the reference or passes the task verifier.

    `answer_tag` counts only `<answer>…</answer>` (use it with the R1-Zero template, so that an answer outside the
    tags earns nothing); `boxed` only `\\boxed{}`; `auto` the tag, else the box.
    """
    if mode not in _MODES:
        raise UserError(f"reward 'accuracy': mode must be one of {', '.join(_MODES)}, got {mode!r}")

    def accuracy_(completion: str, item: Mapping[str, Any]) -> float:
        return 1.0 if is_correct(completion, item, mode) else 0.0

    return accuracy_
