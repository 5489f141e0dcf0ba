"""Rejection-sampling filters: which sampled completions become SFT data [R1v1 §2.3.3; recipe §3.3].

The paper keeps only correct responses and filters out chains of thought "with mixed languages, long paragraphs,
and code blocks"; we add the defects R1-Zero is known for (cut-off and looping outputs) and near-copies, which add
nothing to an SFT set. A filter is `f(sample, kept) -> bool` (True keeps): `sample` is the evaluator's record of one
completion (`r1.eval.evaluate`: text, question, correct, format_ok, reasons, finish_reason, ...), `kept` the texts
already kept for the same item (only `duplicate` reads it). Each threshold is a named parameter of a factory; the
defaults are the registered `FILTERS`. `r1.data.filter_check` measures every filter's precision and recall on
completions with injected defects (`benchmarks/bench_filters.py` prints the table).

The reasoning is `r1.rewards.text.reasoning_text` (the think block); words are `r1.rewards.text.words` (a CJK
character is one word, so Chinese and English lengths are counted alike, as the language reward counts them).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from r1.errors import UserError
from r1.rewards.answers import extract_answer
from r1.rewards.language import dominant_language, language_ratio
from r1.rewards.repetition import ngrams, repeated_share
from r1.rewards.text import ANSWER_CLOSE, ANSWER_OPEN, THINK_CLOSE, THINK_OPEN, reasoning_text, words

__all__ = [
    "FILTERS",
    "DEFECT_FILTERS",
    "Filter",
    "code_block",
    "duplicate",
    "long_paragraph",
    "mixed_language",
    "repetitive",
    "resolve_filters",
    "similarity",
    "truncated",
]

Filter = Callable[[Mapping[str, Any], Sequence[str]], bool]


def _check(name: str, value: Any, ok: bool, expected: str) -> None:
    if isinstance(value, bool) or not ok:
        raise UserError(f"filter '{name}': {expected}, got {value!r}")


def _share(name: str, param: str, value: Any) -> None:
    _check(name, value, isinstance(value, int | float) and 0 <= value <= 1, f"{param} must be a number in [0, 1]")


def _positive(name: str, param: str, value: Any) -> None:
    _check(name, value, isinstance(value, int) and value >= 1, f"{param} must be a positive integer")


def mixed_language(max_foreign_share: float = 0.1) -> Filter:
    """Refuses a chain of thought whose share of words not in the prompt's language exceeds `max_foreign_share`.

    The target is the question's dominant language, as the language-consistency reward's `auto` target (a sample
    record carries no item meta to name it); maths, digits and code are language-neutral there, so `x`, `\\frac` or
    `print` in a Chinese chain are no mixing. 0.1 tolerates a name or a term; the mixing the paper filters is phrases.
    """
    _share("mixed_language", "max_foreign_share", max_foreign_share)

    def mixed_language_(sample: Mapping[str, Any], kept: Sequence[str] = ()) -> bool:
        target = dominant_language(str(sample.get("question") or ""))
        return 1.0 - language_ratio(reasoning_text(sample["text"]), target) <= max_foreign_share

    return mixed_language_


def long_paragraph(max_words: int = 150) -> Filter:
    """Refuses a chain of thought with a paragraph (a line: a run of text without a line break) of more than
    `max_words` words. A wall of text is what the paper calls unreadable; an R1 chain breaks its paragraphs, and our
    worked solutions put one step per line. 150 words is about a screenful of English (~600 characters of Chinese).
    """
    _positive("long_paragraph", "max_words", max_words)

    def long_paragraph_(sample: Mapping[str, Any], kept: Sequence[str] = ()) -> bool:
        return all(len(words(line)) <= max_words for line in reasoning_text(sample["text"]).splitlines())

    return long_paragraph_


_FENCE_RE = re.compile(r"^\s*(```|~~~)", re.MULTILINE)
_INDENTED_RE = re.compile(r"^(?: {4}|\t)(?!\s*(?:[-*+]|\d+[.)])\s)\S")  # indented, not a nested list item


def code_block(min_indented_lines: int = 2) -> Filter:
    """Refuses a chain of thought holding a code block: a ``` or ~~~ fence, or `min_indented_lines` consecutive
    lines indented by four spaces or a tab (Markdown's indented code; nested list items are not code). Inline
    `code` is allowed: it names a thing, it is not a program in the reasoning."""
    _positive("code_block", "min_indented_lines", min_indented_lines)

    def code_block_(sample: Mapping[str, Any], kept: Sequence[str] = ()) -> bool:
        reasoning = reasoning_text(sample["text"])
        if _FENCE_RE.search(reasoning):
            return False
        run = 0
        for line in reasoning.splitlines():
            run = run + 1 if _INDENTED_RE.match(line) else 0
            if run >= min_indented_lines:
                return False
        return True

    return code_block_


def _cut_off(text: str) -> bool:
    """Whether a completion stops before it is finished: a think or answer block left open, or no final answer
    (`r1.rewards.answers.extract_answer`: a box with open braces, a half tag, nothing after `</think>`)."""
    if any(
        text.rfind(open_) > text.rfind(close)
        for open_, close in ((THINK_OPEN, THINK_CLOSE), (ANSWER_OPEN, ANSWER_CLOSE))
    ):
        return True
    return extract_answer(text) is None


def truncated() -> Filter:
    """Refuses a completion cut off: stopped at max_new_tokens (`finish_reason == "length"`), or, whatever the
    finish reason says, ending before its final answer is complete (see `_cut_off`). A reasoning completion always
    ends in an answer, so one without is not whole even when the engine reports a stop."""

    def truncated_(sample: Mapping[str, Any], kept: Sequence[str] = ()) -> bool:
        return sample.get("finish_reason") != "length" and not _cut_off(sample["text"])

    return truncated_


def repetitive(ngram_size: int = 4, window: int = 16, max_ratio: float = 0.6) -> Filter:
    """Refuses a completion with a stretch of at least `window` words whose repeated-n-gram share
    (`r1.rewards.repetition.repeated_share`, the repetition penalty's measure) exceeds `max_ratio`: R1-Zero's loops.

    A loop is local: over the whole text a line said 8 times among 100 words is a share of 0.2, like the legitimate
    echoes of worked arithmetic ("58*9=522", then "522-393=129"). So the share is taken over windows of `window`,
    2·`window`, 4·`window`, ... words (half-overlapping) and the whole text, and the largest counts: the smallest
    window catches a short line repeated, the larger ones a long passage. 4-grams, not the penalty's 3, because a
    Chinese word here is one character and 3 characters repeat in plain prose.
    """
    _positive("repetitive", "ngram_size", ngram_size)
    _positive("repetitive", "window", window)
    _share("repetitive", "max_ratio", max_ratio)

    def repetitive_(sample: Mapping[str, Any], kept: Sequence[str] = ()) -> bool:
        grams = ngrams(words(sample["text"]), ngram_size)
        size = max(1, window - ngram_size + 1)  # n-grams in a window of `window` words
        while size < len(grams):
            for start in range(0, len(grams) - size + 1, max(1, size // 2)):
                if repeated_share(grams[start : start + size]) > max_ratio:
                    return False
            size *= 2
        return repeated_share(grams) <= max_ratio

    return repetitive_


def similarity(a: str, b: str, ngram_size: int = 2) -> float:
    """Jaccard overlap of the word n-gram sets of two texts (lower-cased words; tags, spacing, punctuation ignored)."""
    x, y = (set(ngrams(words(t), ngram_size)) or {tuple(words(t))} for t in (a, b))
    return len(x & y) / len(x | y) if x | y else 1.0


def duplicate(max_similarity: float = 0.55, ngram_size: int = 2) -> Filter:
    """Refuses a completion whose word-bigram overlap (`similarity`) with a completion already kept for the same
    item reaches `max_similarity`: a near-copy (respaced, a word's case or one number changed, a line dropped or two
    swapped) teaches nothing its original does not. Two solutions of one problem share their arithmetic, so
    distinct ones overlap too, but far less (at most 0.44 in `r1.data.filter_check`'s cases, near-copies 0.61 up)."""
    _share("duplicate", "max_similarity", max_similarity)
    _positive("duplicate", "ngram_size", ngram_size)

    def duplicate_(sample: Mapping[str, Any], kept: Sequence[str] = ()) -> bool:
        return all(similarity(sample["text"], k, ngram_size) < max_similarity for k in kept)

    return duplicate_


FILTERS: dict[str, Filter] = {
    "correct": lambda s, kept=(): bool(s["correct"]),
    "format": lambda s, kept=(): bool(s["format_ok"]),
    "complete": lambda s, kept=(): s["finish_reason"] == "stop",  # not cut at max_new_tokens
    "reasons": lambda s, kept=(): bool(s["reasons"]),  # a non-empty think block (cold start wants the reasoning)
    "mixed_language": mixed_language(),
    "long_paragraph": long_paragraph(),
    "code_block": code_block(),
    "truncated": truncated(),
    "repetitive": repetitive(),
    "duplicate": duplicate(),
}
# the filters of a defect in the text, each measured by `r1.data.filter_check`; the order they are cheapest in
DEFECT_FILTERS = ("mixed_language", "long_paragraph", "code_block", "truncated", "repetitive", "duplicate")


def resolve_filters(filters: Mapping[str, Filter] | Sequence[str]) -> dict[str, Filter]:
    """Filters by name (from `FILTERS`) or as a name -> filter mapping, in the order they are applied."""
    if isinstance(filters, Mapping):
        return dict(filters)
    if isinstance(filters, str):
        filters = [filters]
    unknown = [name for name in filters if name not in FILTERS]
    if unknown:
        raise UserError(f"unknown filter(s) {', '.join(map(repr, unknown))}; valid: {', '.join(FILTERS)}")
    return {name: FILTERS[name] for name in filters}
