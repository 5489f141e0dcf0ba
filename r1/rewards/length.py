"""Length-shaped rewards: `cosine_length` and `soft_overlong`.

* `cosine_length` [arXiv 2502.03373; open-r1's `get_cosine_scaled_reward`]: r = lo + (hi − lo)·(1 + cos(πp))/2 with
  p = min(L / max_len, 1) and hi the value at length 0, so correct answers decay from `max_value_correct` and wrong
  ones rise to `max_value_wrong` (a long wrong attempt is punished less than a short guess). Unlike open-r1, p is
  clipped at 1 (lengths past `max_len` keep the end value) and L counts tokens, not characters.
* `soft_overlong` [DAPO Eq. 13; TRL]: 0 up to L_max − L_cache, linear down to −1 across the buffer, −1 beyond.

Both need token counts (`CompositeReward.score(..., lengths=…)`); without them `estimate_tokens` is a rough stand-in.
`max_len` defaults to `item["meta"]["max_new_tokens"]`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from r1.errors import UserError
from r1.rewards.accuracy import answer_mode
from r1.rewards.judge import judge
from r1.rewards.registry import RewardFn, reward
from r1.rewards.text import item_meta

__all__ = ["cosine_length", "estimate_tokens", "soft_overlong"]

_TOKEN_RE = re.compile(r"[A-Za-z\u00c0-\u024f]+|\d+|[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]|[^\W\d_]+|[^\w\s]")


def estimate_tokens(text: str) -> int:
    """Approximate token count (see module docstring): used only when real token counts are not given."""
    return len(_TOKEN_RE.findall(text))


def _max_len(name: str, configured: int | None, item: Mapping[str, Any]) -> int:
    if configured is not None:
        return configured
    value = item_meta(item).get("max_new_tokens")
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    raise UserError(f"reward {name!r} needs max_len, or max_new_tokens in the item's meta")


def _positive_int_or_none(name: str, param: str, value: Any) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
        raise UserError(f"reward {name!r}: {param} must be a positive integer, got {value!r}")


@reward("cosine_length", factory=True, uses_length=True)
def cosine_length(
    min_value_wrong: float = -1.0,
    max_value_wrong: float = -0.5,
    min_value_correct: float = 0.5,
    max_value_correct: float = 1.0,
    max_len: int | None = None,
    mode: str = "template",
) -> RewardFn:
    """Correct: max_value_correct → min_value_correct as length → max_len; wrong: min_value_wrong → max_value_wrong.

    Correct is the judge's verdict, the answer taken as `mode` says (as for `accuracy`; open-ended items are wrong).
    """
    _positive_int_or_none("cosine_length", "max_len", max_len)
    override = answer_mode("cosine_length", mode)
    if min_value_wrong > max_value_wrong:
        raise UserError(
            f"reward 'cosine_length': min_value_wrong {min_value_wrong} > max_value_wrong {max_value_wrong}"
        )
    if min_value_correct > max_value_correct:
        raise UserError(
            f"reward 'cosine_length': min_value_correct {min_value_correct} > max_value_correct {max_value_correct}"
        )

    def cosine_length_(completion: str, item: Mapping[str, Any], length: int | None = None) -> float:
        limit = _max_len("cosine_length", max_len, item)
        n = estimate_tokens(completion) if length is None else length
        progress = min(max(n / limit, 0.0), 1.0)
        if judge(completion, item, answer_mode=override).correct:
            start, end = max_value_correct, min_value_correct
        else:
            start, end = min_value_wrong, max_value_wrong
        return end + 0.5 * (start - end) * (1.0 + math.cos(math.pi * progress))

    return cosine_length_


@reward("soft_overlong", factory=True, uses_length=True)
def soft_overlong(max_len: int | None = None, buffer: int | None = None) -> RewardFn:
    """DAPO soft overlong punishment: 0 to max_len − buffer, linear to −1 at max_len, −1 beyond.

    `buffer` defaults to a fifth of max_len (DAPO: 4,096 of 20,480).
    """
    _positive_int_or_none("soft_overlong", "max_len", max_len)
    _positive_int_or_none("soft_overlong", "buffer", buffer)
    if max_len is not None and buffer is not None and buffer > max_len:
        raise UserError(f"reward 'soft_overlong': buffer {buffer} must not exceed max_len {max_len}")

    def soft_overlong_(completion: str, item: Mapping[str, Any], length: int | None = None) -> float:
        limit = _max_len("soft_overlong", max_len, item)
        cache = min(buffer, limit) if buffer is not None else max(1, round(limit / 5))
        n = estimate_tokens(completion) if length is None else length
        if n <= limit - cache:
            return 0.0
        if n <= limit:
            return (limit - cache - n) / cache
        return -1.0

    return soft_overlong_
