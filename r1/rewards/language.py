"""The language-consistency reward of DeepSeek-R1's reasoning RL stage: words of the target language in the CoT over
words in the CoT [Nat Methods Eq. 7]. No surveyed open reproduction ships it.

Choices the paper leaves open: the CoT is the think block (else the whole completion); words are segmented without a
dictionary (`r1.rewards.text`: Latin words "en", each CJK ideograph "zh", maths, code and tags in neither); a CoT with
no words scores 1.0 (an empty think block is the format reward's business); `target="auto"` is `meta.lang` (or
`meta.language`), else the prompt's dominant language, the paper's "language of the question".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from r1.errors import UserError
from r1.rewards.registry import RewardFn, reward
from r1.rewards.text import item_meta, language_counts, prompt_text, reasoning_text

__all__ = ["LANGUAGES", "dominant_language", "language_consistency", "language_ratio"]

LANGUAGES = ("en", "zh")


def dominant_language(text: str) -> str:
    """The language with more words in `text`: "zh" if CJK outnumbers Latin, else "en"."""
    counts = language_counts(text)
    return "zh" if counts["zh"] > counts["en"] else "en"


def language_ratio(text: str, target: str) -> float:
    """Share of `text`'s words that are in `target` (1.0 when it has no words)."""
    counts = language_counts(text)
    total = sum(counts.values())
    return 1.0 if total == 0 else counts[target] / total


@reward("language_consistency", factory=True)
def language_consistency(target: str = "auto") -> RewardFn:
    """Share of the chain of thought's words in the target language: en, zh, or auto (the prompt's language)."""
    if target not in (*LANGUAGES, "auto"):
        raise UserError(
            f"reward 'language_consistency': target must be one of {', '.join((*LANGUAGES, 'auto'))}, got {target!r}"
        )

    def language_consistency_(completion: str, item: Mapping[str, Any]) -> float:
        lang = target
        if lang == "auto":
            lang = item_meta(item).get("lang", item_meta(item).get("language"))
            if lang not in LANGUAGES:
                lang = dominant_language(prompt_text(item))
        return language_ratio(reasoning_text(completion), lang)

    return language_consistency_
