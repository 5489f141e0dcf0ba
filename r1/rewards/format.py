"""Format rewards: `format` (R1-Zero tags), `boxed_format` (R1 chat usage) and `tag_count` (partial credit).

Sources. R1-Zero's format reward requires the reasoning inside `<think>…</think>` and the answer inside
`<answer>…</answer>` [R1v1 §2.2.2, Table 1; Nat Methods Eq. 4]. R1's chat usage instead pre-fills `<think>\\n`, and
asks for the final answer in `\\boxed{}` in the summary after `</think>` [R1-README §6]. `tag_count` is open-r1's
shaping reward, 0.25 per tag [OR1 rewards.py `tag_count_reward`].

The pre-fill pitfall. open-r1's `format_reward` is an exact regex `^<think>\\n.*?\\n</think>\\n<answer>…$`; with a
chat template that puts `<think>` in the prompt the completion never starts with `<think>`, so the reward is 0
forever (open-r1 #235; recipe §6 item 6). Here every format reward takes `think_prefilled`:

* `True`: the prompt ends with `<think>`; the completion is judged as `"<think>" + completion` (so a completion that
  opens `<think>` again has a repeated tag and fails).
* `False`: the completion must open `<think>` itself.
* `None` (default): decided per item. A `prompt` string ending in `<think>` means pre-filled, any other `prompt`
  string means not; `item["meta"]["think_prefilled"]` decides otherwise; when neither says (chat `messages`, whose
  template is applied later), both forms are accepted.

We also accept any whitespace around and between the blocks (the open-r1 regex demands exact newlines, another way to
be stuck at 0), but nothing else: no text outside the blocks, each tag exactly once, no nesting.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from r1.errors import UserError
from r1.rewards.answers import last_boxed
from r1.rewards.registry import RewardFn, reward
from r1.rewards.text import ANSWER_CLOSE, ANSWER_OPEN, THINK_CLOSE, THINK_OPEN, item_meta

__all__ = ["boxed_format", "format_reward", "tag_count", "think_prefilled_for"]

_FORMAT_RE = re.compile(r"\s*<think>(.*?)</think>\s*<answer>(.*?)</answer>\s*", re.DOTALL)
_BOXED_FORMAT_RE = re.compile(r"\s*<think>(.*?)</think>(.*)", re.DOTALL)
_TAGS = (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE)


def think_prefilled_for(item: Mapping[str, Any]) -> bool | None:
    """Whether the item's prompt already ends with `<think>` (None: cannot tell; see the module docstring)."""
    prompt = item.get("prompt") if isinstance(item, Mapping) else None
    if isinstance(prompt, str):
        return prompt.rstrip().endswith(THINK_OPEN)
    flag = item_meta(item).get("think_prefilled")
    return flag if isinstance(flag, bool) else None


def _full_text(completion: str, item: Mapping[str, Any], think_prefilled: bool | None) -> str:
    """The assistant's text as the format rules see it: with the pre-filled `<think>` put back."""
    prefilled = think_prefilled if think_prefilled is not None else think_prefilled_for(item)
    if prefilled is None:
        prefilled = not completion.lstrip().startswith(THINK_OPEN)
    return THINK_OPEN + completion if prefilled else completion


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
    _check_options("format", think_prefilled, require_reasoning)

    def format_(completion: str, item: Mapping[str, Any]) -> float:
        text = _full_text(completion, item, think_prefilled)
        if any(text.count(tag) != 1 for tag in _TAGS):
            return 0.0
        m = _FORMAT_RE.fullmatch(text)
        if m is None or not m.group(2).strip():
            return 0.0
        if require_reasoning and not m.group(1).strip():
            return 0.0
        return 1.0

    return format_


@reward("boxed_format", factory=True)
def boxed_format(think_prefilled: bool | None = None, require_reasoning: bool = False) -> RewardFn:
    """1.0 iff one `<think>…</think>` block, then a summary containing a non-empty `\\boxed{…}` (R1 chat usage)."""
    _check_options("boxed_format", think_prefilled, require_reasoning)

    def boxed_format_(completion: str, item: Mapping[str, Any]) -> float:
        text = _full_text(completion, item, think_prefilled)
        if text.count(THINK_OPEN) != 1 or text.count(THINK_CLOSE) != 1:
            return 0.0
        m = _BOXED_FORMAT_RE.fullmatch(text)
        if m is None:
            return 0.0
        boxed = last_boxed(m.group(2))
        if boxed is None or not boxed.strip():
            return 0.0
        if require_reasoning and not m.group(1).strip():
            return 0.0
        return 1.0

    return boxed_format_


@reward("tag_count", factory=True)
def tag_count(think_prefilled: bool | None = None) -> RewardFn:
    """0.25 for each of `<think>`, `</think>`, `<answer>`, `</answer>` that appears exactly once (open-r1 shaping).

    Unlike open-r1 the surrounding newlines are not required (see the module docstring on exact-match pitfalls).
    """
    _check_options("tag_count", think_prefilled, False)

    def tag_count_(completion: str, item: Mapping[str, Any]) -> float:
        text = _full_text(completion, item, think_prefilled)
        return 0.25 * sum(text.count(tag) == 1 for tag in _TAGS)

    return tag_count_
