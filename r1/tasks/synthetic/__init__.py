"""Seeded procedural task families with difficulty levels, verifiers and worked solutions.

| task                    | levels | what the level changes                                                        |
|-------------------------|--------|-------------------------------------------------------------------------------|
| modchain, modchain_zh   | 2..8   | k, the number of distinct digits in a left-to-right chain of + and * mod 10   |
| swaps, swaps_zh         | 1..7   | the number of cup swaps to track (five cups, distinct pairs)                  |
| mystery, mystery_zh     | 1..6   | the operations in a think-of-a-number puzzle, undone from the last            |
| equation, equation_zh   | 1..5   | the operations on x in a linear equation (small numbers)                      |
| arith                   | 1..5   | operands 2..6, their size (≤20, ≤50, ≤99), parentheses from level 3           |
| multiply                | 1..5   | digits of the factors: 2×1, 2×2, 3×2, 3×3, 4×3 (one partial product per digit) |
| linear                  | 1..5   | x+b=c, ax=c, ax+b=c, ax+b=cx+d, a(x+b)=cx+d (negative solutions from level 4) |
| countdown               | 1..5   | numbers given 3..6, their size (≤10 … ≤100), how many a solution uses, target |
| word, word_zh           | 1..5   | operations 1,1,2,3,3 and number size; `word` 25% Chinese, `word_zh` all       |

The `_zh` variants ask the same family in Chinese (`meta.lang = "zh"`) and share the split key with English, so a
problem is held out in both languages or in neither. One file per family; `classic` holds the first families
(English), whose items the shipped base and the main job depend on, unchanged. Worked solutions of the bilingual
families come from `worked.write_solution` (styles, English mixed into Chinese reasoning).
"""

from __future__ import annotations

from r1.tasks.base import Task, register_task
from r1.tasks.synthetic.classic import (
    CLASSIC_TASKS,
    Arith,
    Countdown,
    Linear,
    ModChain,
    Multiply,
    Node,
    WordProblems,
    WordProblemsZh,
    check_countdown,
    render,
    solve_steps,
)
from r1.tasks.synthetic.equation import Equation, EquationZh
from r1.tasks.synthetic.modchain import ModChainZh
from r1.tasks.synthetic.mystery import Mystery, MysteryZh
from r1.tasks.synthetic.swaps import Swaps, SwapsZh
from r1.tasks.synthetic.worked import WORLD_STYLES, WorldTask, write_solution

__all__ = [
    "BUILTIN_TASKS",
    "WORLD_STYLES",
    "Arith",
    "Countdown",
    "Equation",
    "EquationZh",
    "Linear",
    "ModChain",
    "ModChainZh",
    "Multiply",
    "Mystery",
    "MysteryZh",
    "Node",
    "Swaps",
    "SwapsZh",
    "WordProblems",
    "WordProblemsZh",
    "WorldTask",
    "check_countdown",
    "render",
    "solve_steps",
    "write_solution",
]


def _builtin() -> tuple[Task, ...]:
    from r1.tasks.general import General, GeneralZh
    from r1.tasks.safety import Safety, SafetyZh

    world = (ModChainZh(), Swaps(), SwapsZh(), Mystery(), MysteryZh(), Equation(), EquationZh(), General(),
             GeneralZh(), Safety(), SafetyZh())  # fmt: skip
    return tuple(register_task(t) for t in (*CLASSIC_TASKS, *world))


BUILTIN_TASKS: tuple[Task, ...] = _builtin()
