"""Rewards: named scorers, per-sample `(completion, item) -> float` or batched `(completions, items) -> list[float]`
(a reward model), composed by weight by `build_reward` (`registry`). The one verdict they share with the evaluator
and GRPO is `r1.rewards.judge.judge` (not re-exported: `r1.rewards.judge` stays the module). Families, one module
each: `accuracy`, `format`, `language`, `length`, `repetition`, `code` (run in `sandbox`); `answers` extracts and
compares answers.
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
