"""Text helpers shared by the reward families: an item's prompt and meta, the reasoning part, word segmentation.

Word segmentation is deliberately simple and dependency-free (no jieba): a run of Latin letters is one word, each CJK
ideograph is one word (Chinese has no spaces; one character per word over-counts multi-character words, equally for
every completion, which is what a ratio or an n-gram count needs), a run of letters of any other script is one word.
Digits, punctuation, maths (`$…$`, `\\(…\\)`, `\\[…\\]`, LaTeX commands), code (fenced and inline) and the think/answer
tags are language-neutral: they are removed before language counting, because a Chinese chain of thought full of `x`,
`\\frac` and `print` is not mixing languages.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["item_meta", "language_counts", "prompt_text", "reasoning_text", "strip_tags", "words"]

_LATIN = "A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f"  # ASCII + Latin-1 letters + Latin Extended-A/B (not × ÷)
_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ebef\U00030000-\U0003134f"
_GREEK = "\u0370-\u03ff"  # alpha, pi, theta: maths, not a language, in a chain of thought

_EN_RE = re.compile(f"[{_LATIN}]+")
_ZH_RE = re.compile(f"[{_CJK}]")
_OTHER_RE = re.compile(rf"[^\W\d_{_LATIN}{_CJK}{_GREEK}]+")
_WORD_RE = re.compile(rf"[{_LATIN}]+|[{_CJK}]|\d+|[^\W\d_{_LATIN}{_CJK}]+")
_TAG_RE = re.compile(r"</?(?:think|answer)>")
_NEUTRAL_RE = re.compile(
    r"```.*?(?:```|$)"  # fenced code (an unclosed fence runs to the end)
    r"|`[^`\n]+`"  # inline code: `x = a * b` in a Chinese chain is not English
    r"|\$\$.*?\$\$|\$[^$]*\$"  # display and inline maths
    r"|\\\(.*?\\\)|\\\[.*?\\\]"
    r"|\\[A-Za-z]+"  # LaTeX commands outside delimiters: \frac, \times
    r"|</?(?:think|answer)>",
    re.DOTALL,
)

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"


def item_meta(item: Mapping[str, Any]) -> Mapping[str, Any]:
    """The item's `meta` mapping (empty when absent or None)."""
    meta = item.get("meta") if isinstance(item, Mapping) else None
    return meta if isinstance(meta, Mapping) else {}


def prompt_text(item: Mapping[str, Any]) -> str:
    """The user's words: the `prompt` string, or the user turns of `messages` (all turns if none is a user's)."""
    prompt = item.get("prompt")
    if isinstance(prompt, str):
        return prompt
    messages = item.get("messages") or []
    turns = [m for m in messages if isinstance(m, Mapping)]
    user = [m for m in turns if m.get("role") == "user"] or turns
    return "\n".join(str(m.get("content") or "") for m in user)


def reasoning_text(completion: str) -> str:
    """The chain of thought: inside `<think>…</think>`; up to `</think>` when `<think>` was pre-filled in the prompt;
    after `<think>` when the completion was cut off while thinking; else the whole completion."""
    close = completion.rfind(THINK_CLOSE)
    text = completion[:close] if close >= 0 else completion
    open_ = text.find(THINK_OPEN)
    if open_ >= 0:
        text = text[open_ + len(THINK_OPEN) :]
    return text


def strip_tags(text: str) -> str:
    """`text` without think/answer tags."""
    return _TAG_RE.sub(" ", text)


def language_counts(text: str) -> dict[str, int]:
    """Words per language in `text` after removing language-neutral spans: {"en": Latin, "zh": CJK, "other": rest}."""
    text = _NEUTRAL_RE.sub(" ", text)
    return {"en": len(_EN_RE.findall(text)), "zh": len(_ZH_RE.findall(text)), "other": len(_OTHER_RE.findall(text))}


def words(text: str) -> list[str]:
    """Lower-cased words (Latin words, single CJK characters, numbers, other-script words), tags removed."""
    return [w.lower() for w in _WORD_RE.findall(strip_tags(text))]
