"""The code reward: run the completion's program against the item's tests in the local sandbox (`run_python`).

The program is the last ```python (or py, python3) fence after `</think>`, else the last unlabelled one (none: 0.0).
Tests (`item["meta"]["tests"]`) are stdin/stdout pairs (compared line by line, trailing whitespace ignored) or
assert-style Python, one test per string; the reward is the fraction passed (1/0 with `all_or_nothing=True`), run
`workers` processes at a time.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from r1.errors import UserError
from r1.rewards.registry import RewardFn, reward
from r1.rewards.sandbox import run_python
from r1.rewards.text import THINK_CLOSE, item_meta

__all__ = ["code", "extract_code", "outputs_match"]

_FENCE_RE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)```", re.DOTALL)
_PYTHON = ("python", "py", "python3")


def extract_code(completion: str) -> str | None:
    """The program in the completion's answer part (see module docstring), or None."""
    close = completion.rfind(THINK_CLOSE)
    region = completion[close + len(THINK_CLOSE) :] if close >= 0 else completion
    blocks = _FENCE_RE.findall(region)
    for wanted in (_PYTHON, ("",)):
        labelled = [body for lang, body in blocks if lang.lower() in wanted]
        if labelled:
            return labelled[-1]
    return None


def outputs_match(actual: str, expected: str) -> bool:
    """Line-by-line equality ignoring trailing whitespace on lines and trailing blank lines."""

    def lines(s: str) -> list[str]:
        out = [line.rstrip() for line in s.replace("\r\n", "\n").split("\n")]
        while out and not out[-1]:
            out.pop()
        return out

    return lines(actual) == lines(expected)


def _tests(item: Mapping[str, Any]) -> list[dict[str, str] | str]:
    tests = item_meta(item).get("tests")
    if isinstance(tests, str):
        tests = [tests]
    if not isinstance(tests, list) or not tests:
        raise UserError(f"code reward: item of task {item.get('task')!r} needs meta.tests (a non-empty list)")
    for t in tests:
        ok = isinstance(t, str) or (
            isinstance(t, Mapping) and isinstance(t.get("input", ""), str) and isinstance(t.get("output"), str)
        )
        if not ok:
            raise UserError(f"code reward: each test must be {{'input': str, 'output': str}} or a string, got {t!r}")
    return tests


@reward("code", factory=True)
def code(all_or_nothing: bool = False, timeout_s: float = 2.0, memory_mb: int = 256, workers: int = 2) -> RewardFn:
    """Fraction of meta.tests the last ```python block passes in the sandbox (1/0 with all_or_nothing)."""
    if not isinstance(all_or_nothing, bool):
        raise UserError(f"reward 'code': all_or_nothing must be true or false, got {all_or_nothing!r}")
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, int | float) or timeout_s <= 0:
        raise UserError(f"reward 'code': timeout_s must be a positive number, got {timeout_s!r}")
    if isinstance(memory_mb, bool) or not isinstance(memory_mb, int) or memory_mb < 32:
        raise UserError(f"reward 'code': memory_mb must be an integer >= 32, got {memory_mb!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise UserError(f"reward 'code': workers must be a positive integer, got {workers!r}")

    def run_one(program: str, test: Mapping[str, str] | str) -> bool:
        if isinstance(test, str):
            return run_python(program + "\n\n" + test, "", timeout_s, memory_mb).ok
        result = run_python(program, test.get("input", ""), timeout_s, memory_mb)
        return result.ok and outputs_match(result.stdout, test["output"])

    def code_(completion: str, item: Mapping[str, Any]) -> float:
        tests = _tests(item)
        program = extract_code(completion)
        if program is None:
            return 0.0
        if workers == 1 or len(tests) == 1:
            passed = [run_one(program, t) for t in tests]
        else:
            with ThreadPoolExecutor(max_workers=min(workers, len(tests))) as pool:
                passed = list(pool.map(lambda t: run_one(program, t), tests))
        if all_or_nothing:
            return 1.0 if all(passed) else 0.0
        return sum(passed) / len(tests)

    return code_
