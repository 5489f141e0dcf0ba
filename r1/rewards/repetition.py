"""The n-gram repetition penalty, against R1-Zero's "endless repetition" [R1v1 §2.2.4; recipe §2.3].

From Demystifying Long CoT (arXiv 2502.03373, App. C.2) as implemented in open-r1's `get_repetition_penalty_reward`
[OR1 rewards.py]: penalty = (1 − distinct n-grams / total n-grams) · max_penalty, 0 for completions shorter than n
words. open-r1 segments Chinese with jieba; we use the dictionary-free segmentation of `r1.rewards.text.words`
(each CJK character is a word), so n-grams of Chinese are character n-grams. Tags are ignored; numbers count.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from r1.errors import UserError
from r1.rewards.registry import RewardFn, reward
from r1.rewards.text import words

__all__ = ["ngrams", "repeated_share", "repetition", "repetition_ratio"]


def ngrams(w: Sequence[str], n: int) -> list[tuple[str, ...]]:
    """The n-grams of a word list, in order (none when it has fewer than `n` words)."""
    return list(zip(*(w[i:] for i in range(n))))


def repeated_share(grams: Sequence[tuple[str, ...]]) -> float:
    """1 − distinct/total of a run of n-grams (0.0 for none)."""
    return 1.0 - len(set(grams)) / len(grams) if grams else 0.0


def repetition_ratio(text: str, ngram_size: int) -> float:
    """1 − distinct/total n-grams of `text`'s words (0.0 when it has fewer than `ngram_size` words)."""
    return repeated_share(ngrams(words(text), ngram_size))


@reward("repetition", factory=True)
def repetition(ngram_size: int = 3, max_penalty: float = -1.0) -> RewardFn:
    """(1 − distinct/total n-grams) · max_penalty; max_penalty must be ≤ 0."""
    if isinstance(ngram_size, bool) or not isinstance(ngram_size, int) or ngram_size < 1:
        raise UserError(f"reward 'repetition': ngram_size must be a positive integer, got {ngram_size!r}")
    if isinstance(max_penalty, bool) or not isinstance(max_penalty, int | float) or max_penalty > 0:
        raise UserError(f"reward 'repetition': max_penalty must be a number <= 0, got {max_penalty!r}")

    def repetition_(completion: str, item: Mapping[str, Any]) -> float:
        ratio = repetition_ratio(completion, ngram_size)
        return ratio * max_penalty if ratio else 0.0

    return repetition_
