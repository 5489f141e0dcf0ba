"""The judge: one verdict per (completion, item), used by the rule rewards, the evaluator, GRPO's statistics and the
main job's style tables, so that "right", "well formatted", "reasons" and "re-checks" mean the same everywhere
(docs/architecture.md, "One judge").

* Which template: `template` if given, else the item's `meta.template`, else none (`"none"` is the same).
* Reasoning and summary: `r1.engine.reasoning.split_reasoning`, the server's rule. `reflects` (a word of
  `REFLECTION_WORDS` in the reasoning) implies `reasons`: a word in the final answer is not a re-check.
* The answer: `extract_answer` in the template's format (`<answer>` for R1-Zero, `\\boxed{}` for R1's chat usage,
  else the tag, else the box); a think block the completion never closes has no answer.
* `correct`: the task's verifier, else `answers_match` against the reference; `None` for an item with neither (an
  open-ended prompt): no verdict, not a wrong one. A verifier that raises judges the answer wrong (logged).
* `format_ok`: the rules of the `format` / `boxed_format` rewards (`tags_format_ok`, `boxed_format_ok`).
* `truncated`: `finish_reason == "length"`, None when the caller did not say.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from r1.errors import UserError
from r1.rewards.answers import AnswerMode, answers_match, extract_answer, last_boxed
from r1.rewards.text import ANSWER_CLOSE, ANSWER_OPEN, THINK_CLOSE, THINK_OPEN, item_meta

__all__ = [
    "REFLECTION_WORDS",
    "Verdict",
    "boxed_format_ok",
    "full_text",
    "judge",
    "reflection_regex",
    "tags_format_ok",
    "think_prefilled_for",
]

_log = logging.getLogger(__name__)

# "wait" is the word whose sudden rise Nature reports as the aha moment [recipe §2.3]; the rest are the other
# self-checks R1-style traces use. English entries match whole words, case-insensitively; Chinese ones as substrings.
REFLECTION_WORDS: tuple[str, ...] = (
    "wait", "let me check", "let me verify", "let me re-check", "verify", "double-check", "double check",
    "recheck", "re-check", "check again", "等等", "检查", "验证", "再算一遍",
)  # fmt: skip


@dataclass(frozen=True)
class Verdict:
    """What the judge says about one completion of one item (see the module docstring for each rule)."""

    answer: str | None  # the extracted final answer, None when there is none
    correct: bool | None  # None: the item has no reference answer and no verifier
    format_ok: bool
    reasoning: str | None  # inside the think block; None when the completion has no reasoning part
    summary: str  # after the think block, without markup
    reasons: bool  # non-empty reasoning
    reflects: bool  # a reflection word in the reasoning
    truncated: bool | None  # hit the token limit; None when not known
    template: str | None  # the template whose rules were applied


# ------------------------------------------------------------------------------------------------------ templates
@dataclass(frozen=True)
class _Rules:
    answer_mode: AnswerMode
    format_ok: Callable[[str, bool | None], bool] | None  # (text, think prefilled) -> bool; None: an answer was found
    prefilled: bool | None  # whether the prompt opened <think>; None: it did, a repeated leading opener is tolerated


def _rules(template: str | None, item: Mapping[str, Any]) -> tuple[str | None, _Rules]:
    from r1.tasks.templates import TEMPLATE_FORMATS

    name = _template_name(template, item)
    if name is None:
        prefilled = think_prefilled_for(item) is True
        return None, _Rules("auto", None, prefilled)
    answer_format, opens_think = TEMPLATE_FORMATS[name]
    if answer_format == "tags":
        return name, _Rules("answer_tag", tags_format_ok, None if opens_think else False)
    return name, _Rules("boxed", boxed_format_ok, None if opens_think else False)


def _template_name(template: str | None, item: Mapping[str, Any]) -> str | None:
    from r1.tasks.templates import TEMPLATES

    if template is None or template == "none":
        template = item_meta(item).get("template")
        return template if template in TEMPLATES else None
    if template not in TEMPLATES:
        raise UserError(f"judge: unknown template {template!r}; valid templates: {', '.join(TEMPLATES)}, none")
    return template


def think_prefilled_for(item: Mapping[str, Any]) -> bool | None:
    """Whether the item's prompt already ends with `<think>` (None: cannot tell, e.g. chat `messages`)."""
    prompt = item.get("prompt") if isinstance(item, Mapping) else None
    if isinstance(prompt, str):
        return prompt.rstrip().endswith(THINK_OPEN)
    flag = item_meta(item).get("think_prefilled")
    return flag if isinstance(flag, bool) else None


# --------------------------------------------------------------------------------------------------------- format
_TAGS_RE = re.compile(r"\s*<think>(.*?)</think>\s*<answer>(.*?)</answer>\s*", re.DOTALL)
_BOXED_RE = re.compile(r"\s*<think>(.*?)</think>(.*)", re.DOTALL)
_TAGS = (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE)


def full_text(completion: str, prefilled: bool | None) -> str:
    """The assistant's text as the format rules see it: `<think>` put back in front when the prompt opened it.
    `prefilled=None`: put back unless the completion opens the block itself (both forms accepted)."""
    if prefilled is None:
        prefilled = not completion.lstrip().startswith(THINK_OPEN)
    return THINK_OPEN + completion if prefilled else completion


def tags_format_ok(completion: str, prefilled: bool | None = False, require_reasoning: bool = False) -> bool:
    """The R1-Zero format: exactly `<think>…</think>` then `<answer>…</answer>`, each tag once, a non-empty answer,
    nothing but whitespace around the blocks (`require_reasoning`: a non-empty think block too)."""
    text = full_text(completion, prefilled)
    if any(text.count(tag) != 1 for tag in _TAGS):
        return False
    m = _TAGS_RE.fullmatch(text)
    if m is None or not m.group(2).strip():
        return False
    return not require_reasoning or bool(m.group(1).strip())


def boxed_format_ok(completion: str, prefilled: bool | None = None, require_reasoning: bool = False) -> bool:
    """R1's chat usage: one `<think>…</think>` block, then a summary holding a non-empty `\\boxed{…}`."""
    text = full_text(completion, prefilled)
    if text.count(THINK_OPEN) != 1 or text.count(THINK_CLOSE) != 1:
        return False
    m = _BOXED_RE.fullmatch(text)
    if m is None:
        return False
    boxed = last_boxed(m.group(2))
    if boxed is None or not boxed.strip():
        return False
    return not require_reasoning or bool(m.group(1).strip())


# ----------------------------------------------------------------------------------------------------- reflection
@functools.lru_cache(maxsize=32)
def reflection_regex(words: tuple[str, ...] = REFLECTION_WORDS) -> re.Pattern[str]:
    """One pattern for all reflection words: whole-word for Latin text, plain substring for CJK."""
    parts = []
    for w in words:
        escaped = re.escape(w.lower())
        parts.append(escaped if re.search(r"[\u3400-\u9fff]", w) else rf"(?<![a-z]){escaped}(?![a-z])")
    return re.compile("|".join(parts) or r"(?!x)x", re.IGNORECASE)


# ---------------------------------------------------------------------------------------------------- correctness
def _verifier(task: Any) -> Callable[[str, Mapping[str, Any]], bool] | None:
    """The task's verifier: one registered for its name, else the task's own `verify` (reasoning-gym's too)."""
    if not task:
        return None
    from r1.rewards.registry import get_verifier
    from r1.tasks.base import find_task

    registered = get_verifier(str(task))
    if registered is not None:
        return registered
    found = find_task(str(task))
    return found.verify if found is not None else None


def _correct(answer: str | None, item: Mapping[str, Any]) -> bool | None:
    verifier = _verifier(item.get("task"))
    ref = item.get("answer")
    if verifier is None and ref is None:
        return None  # open-ended: nothing to check an answer against
    if answer is None:
        return False
    if verifier is not None:
        try:
            return bool(verifier(answer, item))
        except Exception as exc:  # noqa: BLE001 - a verifier bug must not crash a training step; it is logged
            _log.warning("verifier for task %r raised on %r: %s", item.get("task"), answer[:80], exc)
            return False
    if isinstance(ref, list | tuple):  # several acceptable answers
        return any(answers_match(answer, str(r)) for r in ref)
    return answers_match(answer, str(ref))


# ---------------------------------------------------------------------------------------------------------- judge
def judge(
    completion: str,
    item: Mapping[str, Any],
    template: str | None = None,
    *,
    finish_reason: str | None = None,
    answer_mode: AnswerMode | None = None,
    reflection_words: Sequence[str] = REFLECTION_WORDS,
) -> Verdict:
    """The verdict on `completion` for `item` under `template`'s rules (see the module docstring).

    `answer_mode` overrides where the answer is taken from (the `accuracy` reward's explicit `mode`);
    `reflection_words` replaces the default list (GRPO's `grpo.reflection_words`).
    """
    from r1.engine.reasoning import split_reasoning  # imported here: r1.engine's package pulls in torch

    text = completion or ""
    name, rules = _rules(template, item)
    in_think = rules.prefilled is not False
    reasoning, summary = split_reasoning(text, in_think=in_think)
    mode = answer_mode or rules.answer_mode
    still_thinking = in_think and THINK_CLOSE not in text
    answer = None if still_thinking else extract_answer(text, mode)
    reflects = reasoning is not None and reflection_regex(tuple(reflection_words)).search(reasoning) is not None
    return Verdict(
        answer=answer,
        correct=_correct(answer, item),
        format_ok=answer is not None if rules.format_ok is None else rules.format_ok(text, rules.prefilled),
        reasoning=reasoning,
        summary=summary,
        reasons=bool(reasoning and reasoning.strip()),
        reflects=reflects,
        truncated=None if finish_reason is None else finish_reason == "length",
        template=name,
    )
