"""Rewards: named scorers, pure per-sample functions `(completion, item) -> float` or batched stateful ones
`(completions, items) -> list[float]` (a reward model), composed by weights by `build_reward` (see `registry`).

`r1.rewards.judge.judge` gives the one verdict per (completion, item) that the rule rewards, the evaluator and GRPO's
statistics share: extracted answer, correct (None for an open-ended item), format, reasoning / summary, reasons,
reflects. (The function is not re-exported here: `r1.rewards.judge` stays the module.)

Families, one module each: `accuracy` (answers checked by rule or by a task's verifier), `format` (`format`,
`boxed_format`, `tag_count`), `language` (`language_consistency`, R1 stage 2), `length` (`cosine_length`,
`soft_overlong`), `repetition`, `code` (programs run in `sandbox`). `answers` holds answer extraction and
comparison, shared with evaluation.
"""

from r1.rewards import accuracy, code, format, language, length, repetition  # noqa: F401 - registers the rewards
from r1.rewards.answers import answers_match, extract_answer, normalize_answer
from r1.rewards.judge import REFLECTION_WORDS, Verdict
from r1.rewards.registry import (
    CompositeReward,
    RewardBatch,
    available_rewards,
    build_reward,
    get_reward,
    get_verifier,
    register_verifier,
    reward,
    reward_help,
)

__all__ = [
    "REFLECTION_WORDS",
    "CompositeReward",
    "RewardBatch",
    "Verdict",
    "answers_match",
    "available_rewards",
    "build_reward",
    "extract_answer",
    "get_reward",
    "get_verifier",
    "normalize_answer",
    "register_verifier",
    "reward",
    "reward_help",
]
