"""equation: solve a linear equation in x by undoing its operations, in English and in Chinese.

The problems of `mystery` written as equations: the left side applies k operations to x, additive and multiplicative
in turn (`3x+4`, `2(3x+4)-5`, …), with mystery's small numbers. Solving undoes them from the outside in, one local
step each; answering at once inverts k operations in the head. The answer is checked by substituting it back
("verify" style): a forward computation compared with the given right side, a different and easier skill than the
inverse steps, so a check can catch a slip of the first pass.

| level | operations on x |
|-------|-----------------|
| 1..5  | 1..5            |
"""

from __future__ import annotations

from typing import Any

from r1.tasks.synthetic.mystery import Mystery
from r1.tasks.synthetic.worked import State, Step


def lhs_text(ops: list[list[Any]]) -> str:
    """The left side as written: `3x`, `3x+4`, `2(3x+4)-5`."""
    e = "x"
    for op, n in ops:
        if op in "+-":
            e = f"{e}{op}{n}"
        else:
            e = f"{n}x" if e == "x" else f"{n}({e})"
    return e


class Equation(Mystery):
    name = "equation"
    description = "a linear equation in x, solved by undoing its operations one at a time (small numbers)"
    knobs = "level k = operations on x (1..5), additive and multiplicative in turn; verifiable by substitution"
    levels = tuple("12345")

    def question(self, problem: dict[str, Any], lang: str) -> str:
        eq = f"{lhs_text(problem['ops'])}={problem['c']}"
        return f"解方程{eq}，求x的值。" if lang == "zh" else f"Solve for x: {eq}."

    def step_text(self, problem: dict[str, Any], i: int, before: State, after: State, lang: str) -> Step:
        op, n = self._undone(problem, i)
        sign = {"+": "-", "-": "+", "*": "/"}[op]
        if lang == "zh":
            say = {"+": f"两边减{n}：", "-": f"两边加{n}：", "*": f"两边除以{n}："}[op]
        else:
            say = {"+": f"subtract {n}: ", "-": f"add {n}: ", "*": f"divide by {n}: "}[op]
        return f"{say}{before}{sign}{n}=", str(after)

    def key_of(self, problem: dict[str, Any]) -> str:
        return f"equation:{lhs_text(problem['ops'])}={problem['c']}"

    check_intro = {"en": "Hmm, wait, let me check: ", "zh": "嗯，等等，我代入检查一下："}

    def check_step(self, op: str, value: int, n: int) -> str:
        return f"{n}*{value}={n * value}" if op == "*" else super().check_step(op, value, n)


class EquationZh(Equation):
    name = "equation_zh"
    lang = "zh"
    description = "equation asked in Chinese (meta.lang='zh'); the same family, one split key per problem with equation"
