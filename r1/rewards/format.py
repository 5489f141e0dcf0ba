"""Format rewards: `format` (R1-Zero tags), `boxed_format` (R1 chat usage) and `tag_count` (open-r1's 0.25 a tag).

The pre-fill pitfall: open-r1's `format_reward` regex demands the completion start with `<think>`, so with a
template that puts `<think>` in the prompt it is 0 forever (open-r1 #235). Here every format reward takes
`think_prefilled`: `True` judges `"<think>" + completion` (a repeated opener fails), `False` needs the completion to
open it, `None` decides per item (a `prompt` ending in `<think>`, else `meta.think_prefilled`; chat `messages`
accept both). Any whitespace around and between the blocks is accepted, nothing else. The rules are the judge's
(`tags_format_ok`, `boxed_format_ok`), so the evaluator's format rate and GRPO's `format_rate` are these rewards.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from r1.errors import UserError
from r1.rewards.judge import boxed_format_ok, full_text, tags_format_ok, think_prefilled_for
from r1.rewards.registry import RewardFn, reward
from r1.rewards.text import ANSWER_CLOSE, ANSWER_OPEN, THINK_CLOSE, THINK_OPEN

__all__ = ["boxed_format", "format_reward", "tag_count", "think_prefilled_for"]

_TAGS = (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE)


def _prefilled(item: Mapping[str, Any], think_prefilled: bool | None) -> bool | None:
    """The option, else what the item says (None: it cannot tell, and both forms are accepted)."""
    return think_prefilled if think_prefilled is not None else think_prefilled_for(item)


def _check_options(name: str, think_prefilled: Any, require_reasoning: Any) -> None:
    if think_prefilled is not None and not isinstance(think_prefilled, bool):
        raise UserError(f"reward {name!r}: think_prefilled must be true, false or null, got {think_prefilled!r}")
    if not isinstance(require_reasoning, bool):
        raise UserError(f"reward {name!r}: require_reasoning must be true or false, got {require_reasoning!r}")


@reward("format", factory=True)
def format_reward(think_prefilled: bool | None = None, require_reasoning: bool = False) -> RewardFn:
    """1.0 iff exactly `<think>…</think>` then `<answer>…</answer>` with a non-empty answer, nothing else around.

    `require_reasoning=True` also demands a non-empty think block (R1-Zero itself allows an empty one; R1's usage
    notes say models sometimes skip thinking, which this prices).
    """
    return _scorer("format", tags_format_ok, think_prefilled, require_reasoning)


@reward("boxed_format", factory=True)
def boxed_format(think_prefilled: bool | None = None, require_reasoning: bool = False) -> RewardFn:
    """1.0 iff one `<think>…</think>` block, then a summary containing a non-empty `\\boxed{…}` (R1 chat usage)."""
    return _scorer("boxed_format", boxed_format_ok, think_prefilled, require_reasoning)


def _scorer(
    name: str, judge: Callable[[str, bool | None, bool], bool], think_prefilled: bool | None, require_reasoning: bool
) -> RewardFn:
    """1.0 when the judge's rule accepts the completion under the item's pre-fill, else 0.0."""
    _check_options(name, think_prefilled, require_reasoning)

    def score(completion: str, item: Mapping[str, Any]) -> float:
        return 1.0 if judge(completion, _prefilled(item, think_prefilled), require_reasoning) else 0.0

    return score


@reward("tag_count", factory=True)
def tag_count(think_prefilled: bool | None = None) -> RewardFn:
    """0.25 for each of `<think>`, `</think>`, `<answer>`, `</answer>` that appears exactly once (open-r1 shaping).

    Unlike open-r1 the surrounding newlines are not required (see the module docstring on exact-match pitfalls).
    """
    _check_options("tag_count", think_prefilled, False)

    def tag_count_(completion: str, item: Mapping[str, Any]) -> float:
        text = full_text(completion, _prefilled(item, think_prefilled))
        return 0.25 * sum(text.count(tag) == 1 for tag in _TAGS)

    return tag_count_
