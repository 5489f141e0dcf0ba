"""equation: solve a linear equation in x by undoing its operations, in English and in Chinese.

The left side applies k operations to x, additive and multiplicative in turn (`3x+4`, `2(3x+4)-5`, …); small numbers
throughout (x from 1 to 9, constants 1 to 9, factors 2 to 5, every intermediate value from 1 to 50): a tiny model has to
learn the arithmetic facts too, and this keeps them to a few hundred. Solving undoes them from the outside in, one local
step each; answering at once inverts k operations in the head. The answer is checked by substituting it back ("verify"
style): a forward computation compared with the given right side, a different and easier skill than the inverse steps,
so a check can catch a slip of the first pass.

| level | operations on x |
|-------|-----------------|
| 1..5  | 1..5            |
"""

from __future__ import annotations

import random
from typing import Any

from r1.tasks.base import Item, parse_int
from r1.tasks.synthetic.worked import State, Step, WorldTask

MAX_VALUE = 50
MAX_FACTOR = 5


def lhs_text(ops: list[list[Any]]) -> str:
    """The left side as written: `3x`, `3x+4`, `2(3x+4)-5`."""
    e = "x"
    for op, n in ops:
        if op in "+-":
            e = f"{e}{op}{n}"
        else:
            e = f"{n}x" if e == "x" else f"{n}({e})"
    return e


def forward(x: int, ops: list[list[Any]]) -> list[int]:
    """x and the value after each operation."""
    values = [x]
    for op, n in ops:
        v = values[-1]
        values.append(v + n if op == "+" else v - n if op == "-" else v * n)
    return values


class Equation(WorldTask):
    name = "equation"
    family = "equation"
    description = "a linear equation in x, solved by undoing its operations one at a time (small numbers)"
    knobs = "level k = operations on x (1..5), additive and multiplicative in turn; verifiable by substitution"
    levels = tuple(str(k) for k in range(1, 6))
    default_level = "3"
    can_verify = True

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
        eq = f"{lhs_text(problem['ops'])}={problem['c']}"
        return f"解方程{eq}，求x的值。" if lang == "zh" else f"Solve for x: {eq}."

    def start(self, problem: dict[str, Any]) -> State:
        return int(problem["c"])

    def _undo(self, problem: dict[str, Any], i: int) -> list[Any]:
        return problem["ops"][len(problem["ops"]) - 1 - i]

    def apply(self, problem: dict[str, Any], i: int, state: State) -> State:
        op, n = self._undo(problem, i)
        return state - n if op == "+" else state + n if op == "-" else state // n

    def step_text(self, problem: dict[str, Any], i: int, before: State, after: State, lang: str) -> Step:
        op, n = self._undo(problem, i)
        sign = {"+": "-", "-": "+", "*": "/"}[op]
        if lang == "zh":
            say = {"+": f"两边减{n}：", "-": f"两边加{n}：", "*": f"两边除以{n}："}[op]
        else:
            say = {"+": f"subtract {n}: ", "-": f"add {n}: ", "*": f"divide by {n}: "}[op]
        return f"{say}{before}{sign}{n}=", str(after)

    def key_of(self, problem: dict[str, Any]) -> str:
        return f"equation:{lhs_text(problem['ops'])}={problem['c']}"

    def answer_of(self, problem: dict[str, Any], final: State) -> str:
        return str(final)

    def wrong_state(self, rng: random.Random, problem: dict[str, Any], i: int, right: State) -> State:
        return max(0, right + rng.choice([-2, -1, 1, 2, 10, -10] if right >= 10 else [-2, -1, 1, 2, 3]))

    def valid_state(self, problem: dict[str, Any], i: int, state: State) -> bool:
        value = state
        for j in range(i + 1, self.n_steps(problem)):
            op, n = self._undo(problem, j)
            if op == "*" and value % n:
                return False
            value = self.apply(problem, j, value)
            if value < 0:
                return False
        return value >= 0

    def plausible_wrong(self, problem: dict[str, Any], final: State) -> bool:
        return all(0 <= v <= 2 * MAX_VALUE for v in forward(final, problem["ops"]))

    def check(self, problem: dict[str, Any], final: State, lang: str) -> tuple[str, bool]:
        values = forward(final, problem["ops"])
        parts = []
        for (op, n), v, w in zip(problem["ops"], values, values[1:]):
            parts.append(f"{n}*{v}={w}" if op == "*" else f"{v}{op}{n}={w}")
        c = problem["c"]
        ok = values[-1] == c
        if lang == "zh":
            return "嗯，等等，我代入检查一下：" + "，".join(parts) + ("，对。" if ok else f"，不是{c}。"), ok
        return "Hmm, wait, let me check: " + ", ".join(parts) + (", right." if ok else f", not {c}."), ok

    def verify(self, pred: str, item: Item) -> bool:
        got = parse_int(pred)
        return got is not None and got == parse_int(str(item["answer"]))


class EquationZh(Equation):
    name = "equation_zh"
    lang = "zh"
    description = "equation asked in Chinese (meta.lang='zh'); the same family, one split key per problem with equation"
