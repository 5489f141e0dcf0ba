"""mystery: a think-of-a-number word problem, solved by undoing the operations from the last one back, in English and
in Chinese.

"I think of a number, multiply it by 3, add 4, multiply by 2, subtract 5 and get 33. What is my number?" Solving
works backwards, one local step per operation (33+5=38, 38/2=19, 19-4=15, 15/3=5); answering at once inverts k
operations in the head. Checking runs the operations forwards from the answer, in the order the question lists
them ("verify" style): the same left-to-right reading as a modchain chain, easier than the backward solve, so a check
catches what the first pass got wrong. Small numbers throughout: the number from 1 to 9, added or subtracted
numbers 1 to 9, factors 2 to 5, every value on the way from 1 to 50 (a tiny model learns the arithmetic facts too).

| level | operations |
|-------|------------|
| 1..6  | 1..6; never two additive or two multiplicative in a row |
"""

from __future__ import annotations

import random
from typing import Any

from r1.tasks.synthetic.worked import State, Step, WorldTask

MAX_VALUE = 50
MAX_FACTOR = 5
_SAY = {
    "en": {"+": "add {}", "-": "subtract {}", "*": "multiply by {}"},
    "zh": {"+": "加上{}", "-": "减去{}", "*": "乘以{}"},
}
_UNDO = {
    "en": {"+": "subtract {}: ", "-": "add {}: ", "*": "divide by {}: "},
    "zh": {"+": "减去{}：", "-": "加上{}：", "*": "除以{}："},
}


def forward(x: int, ops: list[list[Any]]) -> list[int]:
    """x and the value after each operation."""
    values = [x]
    for op, n in ops:
        v = values[-1]
        values.append(v + n if op == "+" else v - n if op == "-" else v * n)
    return values


def _calc(op: str, a: int, n: int) -> str:
    return f"{a}{op}{n}={a + n if op == '+' else a - n if op == '-' else a * n}"


class Mystery(WorldTask):
    name = "mystery"
    description = "a think-of-a-number word problem: undo the operations from the last one back (small numbers)"
    knobs = "level k = operations on the number (1..6), additive and multiplicative in turn; verifiable forwards"
    levels = tuple("123456")

    def problem(self, rng: random.Random, level: str) -> dict[str, Any]:
        k = int(level)
        while True:
            x = rng.randint(1, 9)
            additive = rng.random() < 0.5
            ops: list[list[Any]] = []
            value = x
            for _ in range(k):
                if additive:
                    op = rng.choice("+-") if value > 1 else "+"
                    n = rng.randint(1, 9) if op == "+" else rng.randint(1, min(9, value - 1))
                else:
                    op, n = "*", rng.randint(2, max(2, min(MAX_FACTOR, MAX_VALUE // value)))
                value = value + n if op == "+" else value - n if op == "-" else value * n
                ops.append([op, n])
                additive = not additive
            if all(1 <= v <= MAX_VALUE for v in forward(x, ops)):
                return {"x": x, "ops": ops, "c": value}

    def question(self, problem: dict[str, Any], lang: str) -> str:
        said = [_SAY[lang][op].format(n) for op, n in problem["ops"]]
        c = problem["c"]
        if lang == "zh":
            return f"我想了一个数，{'，'.join(said)}，得到{c}。我想的数是多少？"
        return f"I think of a number, {', '.join(said)}, and get {c}. What is my number?"

    def start(self, problem: dict[str, Any]) -> State:
        return int(problem["c"])

    def _undone(self, problem: dict[str, Any], i: int) -> list[Any]:
        return problem["ops"][len(problem["ops"]) - 1 - i]

    def apply(self, problem: dict[str, Any], i: int, state: State) -> State:
        op, n = self._undone(problem, i)
        return state - n if op == "+" else state + n if op == "-" else state // n

    def step_text(self, problem: dict[str, Any], i: int, before: State, after: State, lang: str) -> Step:
        op, n = self._undone(problem, i)
        inverse = {"+": "-", "-": "+", "*": "/"}[op]
        return f"{_UNDO[lang][op].format(n)}{before}{inverse}{n}=", str(after)

    def key_of(self, problem: dict[str, Any]) -> str:
        return f"mystery:{problem['ops']}:{problem['c']}"

    def wrong_state(self, rng: random.Random, problem: dict[str, Any], i: int, right: State) -> State:
        return max(0, super().wrong_state(rng, problem, i, right))

    def valid_state(self, problem: dict[str, Any], i: int, state: State) -> bool:
        value = state
        for j in range(i + 1, self.n_steps(problem)):
            op, n = self._undone(problem, j)
            if op == "*" and value % n:
                return False
            value = self.apply(problem, j, value)
            if value < 0:
                return False
        return value >= 0

    def plausible_wrong(self, problem: dict[str, Any], final: State) -> bool:
        return all(0 <= v <= 2 * MAX_VALUE for v in forward(final, problem["ops"]))

    check_intro = {"en": "Hmm, wait, let me check: ", "zh": "嗯，等等，我检查一下："}

    def check_step(self, op: str, value: int, n: int) -> str:
        """One operation of the check, run forwards from the candidate answer."""
        return _calc(op, value, n)

    def check(self, problem: dict[str, Any], final: State, lang: str) -> tuple[str, bool]:
        values = forward(final, problem["ops"])
        parts = [self.check_step(op, v, n) for (op, n), v in zip(problem["ops"], values)]
        c, ok = problem["c"], values[-1] == problem["c"]
        if lang == "zh":
            return self.check_intro[lang] + "，".join(parts) + ("，对。" if ok else f"，不是{c}。"), ok
        return self.check_intro[lang] + ", ".join(parts) + (", right." if ok else f", not {c}."), ok


class MysteryZh(Mystery):
    name = "mystery_zh"
    lang = "zh"
    description = "mystery asked in Chinese (meta.lang='zh'); one split key per problem with mystery"
