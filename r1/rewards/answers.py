"""Final answers: extract them from completions, compare them with references, and normalise them for voting, so that
the `accuracy` reward, the evaluator and rejection sampling agree on what "the model's answer" is and when it is right.

Extraction (`extract_answer`): only the text after the LAST `</think>` (a think block never closed: no answer); the
last complete `<answer>` block (`mode="answer_tag"`), the last `\\boxed{}` / `\\fbox{}` (`"boxed"`), or the tag else
the box (`"auto"`); a box inside the answer block wins over the text around it.

Comparison (`answers_match`): Math-Verify with the answer wrapped as ONE LaTeX expression, because on a bare string
`math_verify.parse` takes the LAST number, so `"2+3=6, so 5"` would be 5 and any hedge would collect credit; wrapped,
`"3 or 5"` is the set {3, 5}. Further rules:
* two plain numbers compare exactly as fractions (non-integers within 1e-6 relative), ~150x faster than Math-Verify;
* an equation counts only as `variable = value` against a non-equation (Math-Verify accepts any right-hand side);
* inputs that could make SymPy run for minutes (exponent towers, huge factorials, long strings) compare as strings;
* Math-Verify's `signal.alarm` timeouts work only in the main thread; any exception means "no match";
* plain words compare only as strings (Math-Verify would make `stop` equal `post`); last resort, normalised strings;
* results and parsed references are memoised.

Voting (`normalize_answer`): a reduced fraction for numbers, SymPy's printed form for other maths, else the string.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Literal

from r1.errors import UserError
from r1.rewards.text import ANSWER_CLOSE, ANSWER_OPEN, THINK_CLOSE, THINK_OPEN

__all__ = [
    "AnswerMode",
    "answers_match",
    "clear_caches",
    "extract_answer",
    "last_boxed",
    "normalize_answer",
    "parse_number",
]

AnswerMode = Literal["auto", "answer_tag", "boxed"]

_log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------------------- extraction
_BOX_RE = re.compile(r"\\(?:boxed|fbox)\s*\{")


def last_boxed(text: str) -> str | None:
    """The content of the last `\\boxed{…}` / `\\fbox{…}` with balanced braces, or None (unbalanced = truncated)."""
    for match in reversed(list(_BOX_RE.finditer(text))):
        depth, start = 1, match.end()
        for i in range(start, len(text)):
            ch = text[i]
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    return text[start:i]
    return None


def _answer_region(text: str) -> str | None:
    """The part of a completion that may hold the final answer (see module docstring), or None if still thinking."""
    close = text.rfind(THINK_CLOSE)
    if close >= 0:
        return text[close + len(THINK_CLOSE) :]
    if THINK_OPEN in text:
        return None
    return text


def _last_answer_block(text: str) -> str | None:
    close = text.rfind(ANSWER_CLOSE)
    if close < 0:
        return None
    open_ = text.rfind(ANSWER_OPEN, 0, close)
    if open_ < 0:
        return None
    start = open_ + len(ANSWER_OPEN)
    return text[start : text.find(ANSWER_CLOSE, start)]  # the block the last opening tag starts


def extract_answer(text: str, mode: AnswerMode = "auto") -> str | None:
    """The final answer of a completion, or None. See the module docstring for the rules and why."""
    if mode not in ("auto", "answer_tag", "boxed"):
        raise UserError(f"extract_answer: mode must be one of auto, answer_tag, boxed; got {mode!r}")
    region = _answer_region(text or "")
    if region is None:
        return None
    answer: str | None = None
    if mode in ("auto", "answer_tag"):
        block = _last_answer_block(region)
        if block is not None:
            boxed = last_boxed(block)
            answer = boxed if boxed is not None else block
        elif mode == "answer_tag":
            return None
    if answer is None:
        answer = last_boxed(region)
    if answer is None:
        return None
    answer = answer.strip()
    return answer or None


# ------------------------------------------------------------------------------------------------------- normalisation
_NUM_RE = re.compile(r"[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?(?:[eE][+-]?\d+)?|[+-]?\.\d+(?:[eE][+-]?\d+)?")
_FRAC_RE = re.compile(r"([+-]?)\\[dt]?frac\s*(?:\{\s*([+-]?\d+)\s*\}|(\d))\s*(?:\{\s*([+-]?\d+)\s*\}|(\d))")
_PREFIX_RE = re.compile(r"^(?:the\s+)?(?:final\s+)?answer(?:\s+is)?\s*[:=]?\s*", re.IGNORECASE)
_VAR_EQ_RE = re.compile(r"^\s*\\?[A-Za-z]+(?:_\{?[A-Za-z0-9]+\}?)?\s*=(?![=<>])\s*(.+)$", re.DOTALL)
_TEXT_RE = re.compile(r"\\(?:text|textbf|mathrm|mbox)\s*\{([^{}]*)\}")
_WORDS_RE = re.compile(r"[A-Za-z]+(?:\s+[A-Za-z]+)*")
_SPACING_RE = re.compile(r"\\[,;:!]|\\q?quad|\\ |~")


def _clean(s: str) -> str:
    """Cosmetic normalisation shared by every path: the answer means the same afterwards."""
    s = s.strip()
    boxed = last_boxed(s)
    if boxed is not None and s.startswith(("\\boxed", "\\fbox")):
        s = boxed.strip()
    s = s.replace("\u2212", "-").replace("\u2013", "-").replace("\uff0d", "-")  # unicode minus, en dash, fullwidth
    s = _SPACING_RE.sub(" ", s)
    s = s.replace("\\left", "").replace("\\right", "").replace("\\displaystyle", "")
    s = s.replace("\\$", "").replace("$", "")
    s = _PREFIX_RE.sub("", s)
    s = s.strip().rstrip(".").strip()
    return s


def parse_number(s: str) -> Fraction | None:
    """A plain number (`-1,234.5`, `1e3`, `7/2`, `\\frac{7}{2}`, `\\frac72`) as an exact Fraction, else None.

    Exact because answers like 123456789012345678901234567890 must not equal their neighbour, which floats allow.
    """
    s = _clean(s)
    m = _FRAC_RE.fullmatch(s)
    if m:
        num, den = m.group(2) or m.group(3), m.group(4) or m.group(5)
        if int(den) == 0:
            return None
        return Fraction(int(num), int(den)) * (-1 if m.group(1) == "-" else 1)
    if "/" in s:
        parts = s.split("/")
        if len(parts) == 2 and _NUM_RE.fullmatch(parts[0].strip()) and _NUM_RE.fullmatch(parts[1].strip()):
            a, b = _to_fraction(parts[0].strip()), _to_fraction(parts[1].strip())
            if a is not None and b:
                return a / b
        return None
    if _NUM_RE.fullmatch(s):
        return _to_fraction(s)
    return None


def _to_fraction(s: str) -> Fraction | None:
    s = s.replace(",", "")
    mantissa, _, exponent = s.lower().partition("e")
    if exponent and abs(int(exponent)) > 1000:  # 1e999999 would build a million-digit integer
        return None
    try:
        return Fraction(Decimal(s))
    except (InvalidOperation, ValueError):
        return None


def _numbers_equal(a: Fraction, b: Fraction) -> bool:
    if a.denominator == 1 and b.denominator == 1:
        return a == b
    return abs(a - b) <= 1e-6 * max(abs(a), abs(b))


def _is_words(s: str) -> bool:
    """Plain words ("Yes", "\\text{east}"): strings, not products of symbols as Math-Verify would read them."""
    return _WORDS_RE.fullmatch(_TEXT_RE.sub(r"\1", s).strip()) is not None


def _loose(s: str) -> str:
    """Normalised string for the last-resort comparison and for voting on non-maths answers."""
    s = _TEXT_RE.sub(r"\1", _clean(s))
    s = re.sub(r"\s+", "", s).casefold()
    return s.rstrip(".")


# Inputs that can make SymPy evaluate astronomically large numbers (and in a worker thread nothing would stop it).
_RISKY_RE = re.compile(
    r"\^\s*\{[^{}]*\^"  # exponent containing an exponent: 10^{10^{10}}
    r"|\^\s*\(?[^{}()]*\^"  # 10^10^10, 10^(10^10)
    r"|\^\s*\{?\s*\(?\s*\d{6,}"  # literal exponent >= 100000
    r"|\d{6,}\s*!"  # factorial of a 6-digit number
    r"|\*\*"  # python power: 10**100 parses as 10 otherwise
)
_MAX_MV_CHARS = 400


def _risky(s: str) -> bool:
    return len(s) > _MAX_MV_CHARS or _RISKY_RE.search(s) is not None


def _mv_timeouts() -> tuple[int | None, int | None]:
    """(parsing_timeout, timeout_seconds): signal-based timeouts only work in the main thread."""
    if threading.current_thread() is threading.main_thread():
        return 2, 2
    return None, None


def _mv_parse(s: str) -> list:
    """Math-Verify parse of ONE expression (wrapped in `$…$`), [] on any failure."""
    if _risky(s):
        return []
    try:
        from math_verify import parse

        parsing_timeout, _ = _mv_timeouts()
        wrapped = s if ("$" in s or "\\boxed" in s or "\\[" in s or "\\(" in s) else f"${s}$"
        return parse(wrapped, parsing_timeout=parsing_timeout)
    except BaseException as exc:  # noqa: BLE001 - includes math_verify's TimeoutException; never propagate
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        _log.debug("math_verify.parse failed on %r: %s", s[:80], exc)
        return []


@functools.lru_cache(maxsize=65536)
def _gold_number(ref: str) -> Fraction | None:
    """The reference as a plain number, cached: a GRPO group scores G completions against the same reference."""
    return parse_number(ref)


@functools.lru_cache(maxsize=65536)
def _gold_parsed(ref: str) -> tuple:
    """The reference parsed by Math-Verify (cached; parsing costs milliseconds)."""
    return tuple(_mv_parse(_clean(ref)))


def _strip_variable(pred: str, ref: str) -> str | None:
    """`x = 5` → `5` when the reference is not an equation; other equations → None (no credit)."""
    if "=" not in pred or "=" in ref:
        return pred
    m = _VAR_EQ_RE.match(pred)
    if m is None or "=" in m.group(1):
        return None
    return m.group(1).strip()


_CACHE_MAX_CHARS = 512  # long strings are not cached: 65,536 entries of 10 kB answers would hold 650 MB


def answers_match(pred: str, ref: str) -> bool:
    """Whether the predicted answer equals the reference (numerically or symbolically). Never raises.

    Results are cached: a GRPO group often repeats the same answer, and evaluation repeats the reference.
    """
    pred, ref = str(pred), str(ref)
    if len(pred) + len(ref) <= _CACHE_MAX_CHARS:
        return _answers_match_cached(pred, ref)
    return _answers_match_safe(pred, ref)


def _answers_match_safe(pred: str, ref: str) -> bool:
    try:
        return _answers_match(pred, ref)
    except Exception as exc:  # noqa: BLE001 - a reward must not crash a training step on odd text
        _log.debug("answers_match(%r, %r) failed: %s", pred[:80], ref[:80], exc)
        return False


_answers_match_cached = functools.lru_cache(maxsize=65536)(_answers_match_safe)


def _answers_match(pred: str, ref: str) -> bool:
    ref_clean = _clean(ref)
    pred_clean = _strip_variable(_clean(pred), ref_clean)
    if not pred_clean:
        return False
    gold_num = _gold_number(ref)
    pred_num = parse_number(pred_clean)
    if gold_num is not None and pred_num is not None:
        return _numbers_equal(gold_num, pred_num)
    if _loose(pred_clean) == _loose(ref_clean):
        return True
    if _is_words(pred_clean) or _is_words(ref_clean):  # Math-Verify reads "stop" as s*t*o*p, equal to "post"
        return False
    gold_parsed = _gold_parsed(ref)
    if not gold_parsed:
        return False
    pred_parsed = _mv_parse(pred_clean)
    if not pred_parsed:
        return False
    try:
        from math_verify import verify

        _, timeout_seconds = _mv_timeouts()
        return bool(verify(list(gold_parsed), pred_parsed, timeout_seconds=timeout_seconds))
    except BaseException as exc:  # noqa: BLE001 - math_verify's TimeoutException is a BaseException
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        return False


def normalize_answer(s: str) -> str:
    """Canonical key for majority voting (cons@k): equal answers should get equal keys where feasible."""
    s = str(s)
    return _normalize_cached(s) if len(s) <= _CACHE_MAX_CHARS else _normalize(s)


def _normalize(s: str) -> str:
    try:
        cleaned = _strip_variable(_clean(s), "") or _clean(s)
        num = parse_number(cleaned)
        if num is not None:
            return str(num)  # Fraction prints as "5" or "1/2"
        if _is_words(cleaned):
            return _loose(cleaned)
        parsed = _mv_parse(cleaned)
        if parsed and not isinstance(parsed[0], str):
            return _canonical_expr(parsed[0], cleaned)
        return _loose(cleaned)
    except Exception:  # noqa: BLE001
        return _loose(s)


_normalize_cached = functools.lru_cache(maxsize=65536)(_normalize)


def clear_caches() -> None:
    """Empty the memo caches (for benchmarks measuring cold performance, and for tests)."""
    for cached in (_answers_match_cached, _normalize_cached, _gold_number, _gold_parsed):
        cached.cache_clear()


def _canonical_expr(expr: object, fallback: str) -> str:
    try:
        import sympy

        if isinstance(expr, sympy.Rational):  # Integer is a Rational too
            return str(Fraction(int(expr.p), int(expr.q)))
        return str(expr).replace(" ", "")
    except Exception:  # noqa: BLE001
        return _loose(fallback)
