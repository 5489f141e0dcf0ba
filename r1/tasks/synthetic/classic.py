"""The first procedural task families (English; `word` also in Chinese), each with its own verifier and worked steps.

Why these families (see shared/notes/r1-zero-at-tiny-scale.md): RL can only grow reasoning that pays off, so each
family has problems a tiny model cannot answer in one shot but can solve with short, local steps.

| task      | levels | what the level changes                                                         |
|-----------|--------|--------------------------------------------------------------------------------|
| modchain  | 2..8   | k, the number of distinct digits in a left-to-right chain of + and * mod 10    |
| arith     | 1..5   | operands 2..6, their size (≤20, ≤50, ≤99), parentheses from level 3            |
| multiply  | 1..5   | digits of the factors: 2×1, 2×2, 3×2, 3×3, 4×3 (one partial product per digit) |
| linear    | 1..5   | x+b=c, ax=c, ax+b=c, ax+b=cx+d, a(x+b)=cx+d (negative solutions from level 4)  |
| countdown | 1..5   | numbers given 3..6, their size (≤10 … ≤100), how many a solution uses, target  |
| word      | 1..5   | operations 1,1,2,3,3 and number size; 25% of items in Chinese (meta.lang="zh") |
| word_zh   | 1..5   | as word, all Chinese                                                           |
"""

from __future__ import annotations

import ast
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

from r1.tasks.base import Item, Task, parse_int

Step = tuple[str, str]

# ---- expression trees (arith, countdown) -----------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    """A binary operation in an expression tree; leaves are ints."""

    op: str
    left: Expr
    right: Expr


Expr = int | Node
_PREC = {"+": 1, "-": 1, "*": 2, "/": 2}


def render(e: Expr) -> str:
    """Infix text with parentheses wherever the tree order differs from left-to-right precedence order.

    A right operand of equal precedence is always parenthesized, so the written order is the order of the
    worked steps (`a+(b-c)`, not `a+b-c`).
    """
    if not isinstance(e, Node):
        return str(e) if e >= 0 else f"({e})"
    left, right = render(e.left), render(e.right)
    if isinstance(e.left, Node) and _PREC[e.left.op] < _PREC[e.op]:
        left = f"({left})"
    if isinstance(e.right, Node) and _PREC[e.right.op] <= _PREC[e.op]:
        right = f"({right})"
    return f"{left}{e.op}{right}"


def _num(v: Fraction | int, right: bool = False) -> str:
    v = Fraction(v)
    text = str(v.numerator) if v.denominator == 1 else str(v)
    return f"({text})" if right and v < 0 else text


def _apply(op: str, a: Fraction, b: Fraction) -> Fraction:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    return a / b


def solve_steps(e: Expr) -> tuple[Fraction, list[Step]]:
    """The value of a tree and one step per operation, innermost first, left before right."""
    if not isinstance(e, Node):
        return Fraction(e), []
    a, left_steps = solve_steps(e.left)
    b, right_steps = solve_steps(e.right)
    value = _apply(e.op, a, b)
    return value, left_steps + right_steps + [(f"{_num(a)}{e.op}{_num(b, right=True)}=", _num(value))]


# ---- modchain --------------------------------------------------------------------------------------------


class ModChain(Task):
    name = "modchain"
    description = "left-to-right chain of + and * over distinct digits, keeping the last digit"
    knobs = "level k = number of digits (2..8); one step per operation"
    levels = tuple(str(k) for k in range(2, 9))
    default_level = "4"
    modulus = 10

    def make(self, rng: random.Random, level: str) -> Item:
        k = int(level)
        digits = rng.sample(range(10), k)
        ops = [rng.choice("+*") for _ in range(k - 1)]
        expr = str(digits[0]) + "".join(f"{o}{d}" for o, d in zip(ops, digits[1:]))
        acc, steps = digits[0], []
        for o, d in zip(ops, digits[1:]):
            new = (acc + d) % 10 if o == "+" else (acc * d) % 10
            steps.append((f"{acc}{o}{d}=", str(new)))
            acc = new
        return {"question": f"Compute {expr} from left to right, mod 10.", "answer": acc, "steps": steps}


# ---- arith -----------------------------------------------------------------------------------------------

# level -> (operands, largest operand, parentheses allowed, largest intermediate |value|)
_ARITH = {
    "1": (2, 20, False, 400),
    "2": (3, 20, False, 400),
    "3": (4, 20, True, 1000),
    "4": (5, 50, True, 5000),
    "5": (6, 99, True, 20000),
}


class Arith(Task):
    name = "arith"
    description = "integer expressions with + - * and parentheses, evaluated one operation at a time"
    knobs = "operands 2,3,4,5,6; operand size ≤20,≤20,≤20,≤50,≤99; parentheses from level 3"

    def make(self, rng: random.Random, level: str) -> Item:
        count, hi, parens, cap = _ARITH[level]
        while True:
            nums = [rng.randint(1, hi) for _ in range(count)]
            tree = self._tree(rng, nums, parens)
            value, steps = solve_steps(tree)
            if all(abs(int(r)) <= cap for _, r in steps):
                break
        return {"question": f"Compute {render(tree)}.", "answer": int(value), "steps": steps}

    def _tree(self, rng: random.Random, nums: list[int], parens: bool) -> Expr:
        if not parens:  # a flat expression: Python's parser gives it the usual precedence
            text = str(nums[0]) + "".join(rng.choice("+-*") + str(n) for n in nums[1:])
            return _from_ast(ast.parse(text, mode="eval").body)
        if len(nums) == 1:
            return nums[0]
        cut = rng.randint(1, len(nums) - 1)
        left, right = self._tree(rng, nums[:cut], True), self._tree(rng, nums[cut:], True)
        a, b = solve_steps(left)[0], solve_steps(right)[0]
        ops = "+-*" if min(abs(a), abs(b)) <= 12 else "+-"  # no big×big: that is the multiply task
        return Node(rng.choice(ops), left, right)


def _from_ast(node: ast.expr) -> Expr:
    if isinstance(node, ast.Constant):
        return int(node.value)
    assert isinstance(node, ast.BinOp)
    op = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}[type(node.op)]
    return Node(op, _from_ast(node.left), _from_ast(node.right))


# ---- multiply --------------------------------------------------------------------------------------------

_MULTIPLY = {"1": (2, 1), "2": (2, 2), "3": (3, 2), "4": (3, 3), "5": (4, 3)}


class Multiply(Task):
    name = "multiply"
    description = "multi-digit multiplication by partial products (one per digit of the second factor), then sums"
    knobs = "digits of the factors: 2x1, 2x2, 3x2, 3x3, 4x3"

    def make(self, rng: random.Random, level: str) -> Item:
        da, db = _MULTIPLY[level]
        a = rng.randint(10 ** (da - 1), 10**da - 1)
        b = rng.randint(10 ** (db - 1), 10**db - 1)
        steps: list[Step] = []
        partials = []
        for place, digit in enumerate(reversed(str(b))):
            if digit == "0":
                continue
            part = int(digit) * 10**place
            partials.append(a * part)
            steps.append((f"{a}*{part}=", str(a * part)))
        total = partials[0]
        for p in partials[1:]:
            steps.append((f"{total}+{p}=", str(total + p)))
            total += p
        return {"question": f"Compute {a}*{b}.", "answer": a * b, "steps": steps, "meta": {"factors": [a, b]}}


# ---- linear ----------------------------------------------------------------------------------------------


def _term(coef: int) -> str:
    return "x" if coef == 1 else "-x" if coef == -1 else f"{coef}x"


def _lin(coef: int, const: int, spaced: bool = True) -> str:
    """`3x + 5`, `-x - 2`, `2x`, `7`: a linear expression as a person writes it."""
    if coef == 0:
        return str(const)
    if const == 0:
        return _term(coef)
    sign = "+" if const > 0 else "-"
    return f"{_term(coef)} {sign} {abs(const)}" if spaced else f"{_term(coef)}{sign}{abs(const)}"


def _minus(a: int, b: int) -> str:
    """`a-b` written without a double sign: 12-3, 12+3 (for b=-3)."""
    return f"{a}-{b}" if b >= 0 else f"{a}+{-b}"


def _isolate(a: int, b: int, c: int, d: int, x: int) -> list[Step]:
    """Steps from `ax + b = cx + d` to `x`."""
    steps: list[Step] = []
    coef, rhs = a - c, d - b
    if c != 0:
        steps.append((f"{_term(a)}{'-' if c > 0 else '+'}{_term(abs(c))}=", _term(coef)))
    if b != 0:
        steps.append((f"{_term(coef)}={_minus(d, b)}=", str(rhs)))
    if coef != 1:
        steps.append((f"x={rhs}/{coef if coef > 0 else f'({coef})'}=", str(x)))
    return steps


class Linear(Task):
    name = "linear"
    description = "linear equations in x with an integer solution; steps move terms, then divide"
    knobs = "x+b=c, ax=c, ax+b=c, ax+b=cx+d, a(x+b)=cx+d; negative x from level 4"

    def make(self, rng: random.Random, level: str) -> Item:
        nz = lambda lo, hi: rng.choice([v for v in range(lo, hi + 1) if v != 0])
        if level == "1":
            x, b = rng.randint(0, 20), nz(-20, 20)
            lhs, a, c, d = _lin(1, b), 1, 0, x + b
        elif level == "2":
            a, x, b = rng.randint(2, 9), rng.randint(1, 12), 0
            lhs, c, d = _lin(a, 0), 0, a * x
        elif level == "3":
            a, x, b = rng.randint(2, 9), rng.randint(1, 15), nz(-20, 20)
            lhs, c, d = _lin(a, b), 0, a * x + b
        else:
            a, c = rng.sample(range(1, 10), 2)
            x = nz(-12, 12)
            if level == "4":
                b = nz(-20, 20)
                lhs = _lin(a, b)
            else:
                inner = nz(-9, 9)
                b = a * inner
                lhs = f"{a}({_lin(1, inner)})"
            d = a * x + b - c * x
        question = f"Solve for x: {lhs} = {_lin(c, d)}."
        steps = [(f"{lhs.replace(' ', '')}=", _lin(a, b, spaced=False))] if level == "5" else []
        steps += _isolate(a, b, c, d, x)
        return {"question": question, "answer": x, "steps": steps}


# ---- countdown -------------------------------------------------------------------------------------------

# level -> (numbers given, largest number, fewest used, most used, target range)
_COUNTDOWN = {
    "1": (3, 10, 2, 2, (2, 100)),
    "2": (3, 20, 3, 3, (2, 200)),
    "3": (4, 30, 3, 4, (10, 500)),
    "4": (5, 50, 4, 5, (10, 999)),
    "5": (6, 100, 5, 6, (100, 999)),
}
_BINOPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
MAX_EXPRESSION_CHARS = 200


class Countdown(Task):
    name = "countdown"
    description = "reach the target with the given numbers, each at most once, using + - * / (exact division)"
    knobs = "numbers given 3,3,4,5,6; largest number 10,20,30,50,100; numbers a solution needs 2,3,3-4,4-5,5-6"

    def make(self, rng: random.Random, level: str) -> Item:
        count, hi, use_min, use_max, (t_lo, t_hi) = _COUNTDOWN[level]
        while True:
            nums = [rng.randint(1, hi) for _ in range(count)]
            pool: list[tuple[Fraction, Expr]] = [
                (Fraction(nums[i]), nums[i]) for i in rng.sample(range(count), rng.randint(use_min, use_max))
            ]
            steps: list[Step] = []
            while len(pool) > 1:
                i, j = rng.sample(range(len(pool)), 2)
                (a, ea), (b, eb) = pool[i], pool[j]
                if a < b:
                    (a, ea), (b, eb) = (b, eb), (a, ea)
                ops = (
                    ["+"]
                    + (["-"] if a > b else [])
                    + (["*"] if b > 1 else [])
                    + (["/"] if b > 1 and a % b == 0 else [])
                )
                op = rng.choice(ops)
                value = _apply(op, a, b)
                steps.append((f"{_num(a)}{op}{_num(b)}=", _num(value)))
                pool = [p for k, p in enumerate(pool) if k not in (i, j)] + [(value, Node(op, ea, eb))]
            target, tree = pool[0]
            if t_lo <= target <= t_hi and target not in nums:
                break
        numbers = ", ".join(map(str, nums))
        return {
            "question": f"Using the numbers {numbers}, make {target} with + - * /, each number at most once.",
            "answer": render(tree),
            "steps": steps,
            "meta": {"numbers": nums, "target": int(target)},
        }

    def key(self, item: Item) -> str:
        meta = item["meta"]
        return f"countdown:{sorted(meta['numbers'])}:{meta['target']}"

    def verify(self, pred: str, item: Item) -> bool:
        return check_countdown(pred, item["meta"]["numbers"], item["meta"]["target"])


class _Rejected(Exception):
    pass


def check_countdown(pred: str | None, numbers: list[int], target: int) -> bool:
    """Whether `pred` is an arithmetic expression over `numbers` (each at most once) equal to `target`.

    The text is parsed with `ast` and walked by hand: only integer literals, + - * / and unary signs are
    accepted, so nothing in the answer is ever executed. Arithmetic is exact (Fraction); division by zero, a
    number not given or used too often, or any other syntax makes the answer wrong. `expr = target` is accepted.
    """
    if pred is None:
        return False
    text = pred.strip().strip("$")
    for old, new in (
        ("\\times", "*"),
        ("\\cdot", "*"),
        ("\\div", "/"),
        ("×", "*"),
        ("÷", "/"),
        ("−", "-"),
        ("\\left", ""),
        ("\\right", ""),
    ):
        text = text.replace(old, new)
    if not text or len(text) > MAX_EXPRESSION_CHARS:
        return False
    parts = [p.strip() for p in text.split("=")]
    if any(parse_int(p) != target for p in parts[1:]):
        return False
    try:
        tree = ast.parse(parts[0], mode="eval")
        used: list[int] = []
        value = _eval_node(tree.body, used)
    except (SyntaxError, ValueError, RecursionError, MemoryError, ZeroDivisionError, _Rejected):
        return False
    return value == target and not (Counter(used) - Counter(numbers))


def _eval_node(node: ast.AST, used: list[int]) -> Fraction:
    if isinstance(node, ast.Constant) and type(node.value) is int:
        used.append(node.value)
        return Fraction(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        return _apply(_BINOPS[type(node.op)], _eval_node(node.left, used), _eval_node(node.right, used))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        value = _eval_node(node.operand, used)
        return -value if isinstance(node.op, ast.USub) else value
    raise _Rejected(type(node).__name__)


# ---- word problems ---------------------------------------------------------------------------------------

_NAMES_EN = ["Mia", "Leo", "Ava", "Sam", "Noah", "Zoe", "Ben", "Lily", "Omar", "Nina"]
_OBJECTS_EN = ["apples", "pears", "marbles", "stickers", "cookies", "pencils", "shells", "cards"]
_NAMES_ZH = ["小明", "小红", "小华", "小丽", "小军", "小芳"]
_OBJECTS_ZH = [("苹果", "个"), ("梨", "个"), ("铅笔", "支"), ("贴纸", "张"), ("饼干", "块"), ("弹珠", "颗")]
# level -> (operations, largest count)
_WORD = {"1": (1, 20), "2": (1, 60), "3": (2, 30), "4": (3, 30), "5": (3, 99)}

Made = tuple[str, list[Step], int]
Template = Callable[[random.Random, int], Made]


def _small(rng: random.Random, hi: int) -> int:
    """A factor or group count: small enough that products stay readable."""
    return rng.randint(2, 9 if hi <= 30 else 12)


def _en_add(rng: random.Random, hi: int) -> Made:
    n, o, a, b = rng.choice(_NAMES_EN), rng.choice(_OBJECTS_EN), rng.randint(2, hi), rng.randint(2, hi)
    return f"{n} has {a} {o} and gets {b} more. How many {o} does {n} have now?", [(f"{a}+{b}=", str(a + b))], a + b


def _en_sub(rng: random.Random, hi: int) -> Made:
    n, o = rng.choice(_NAMES_EN), rng.choice(_OBJECTS_EN)
    a = rng.randint(max(4, hi // 2), hi + 5)
    b = rng.randint(1, a - 1)
    return (
        f"{n} has {a} {o} and gives {b} of them away. How many {o} does {n} have left?",
        [(f"{a}-{b}=", str(a - b))],
        a - b,
    )


def _en_mul(rng: random.Random, hi: int) -> Made:
    o, a, b = rng.choice(_OBJECTS_EN), _small(rng, hi), rng.randint(2, hi)
    return (
        f"There are {a} boxes with {b} {o} in each box. How many {o} are there in all?",
        [(f"{a} boxes of {b}: {a}*{b}=", str(a * b))],
        a * b,
    )


def _en_div(rng: random.Random, hi: int) -> Made:
    n, o, b, q = rng.choice(_NAMES_EN), rng.choice(_OBJECTS_EN), _small(rng, hi), rng.randint(2, hi)
    return (
        f"{n} shares {b * q} {o} equally among {b} friends. How many {o} does each friend get?",
        [(f"{b * q}/{b}=", str(q))],
        q,
    )


def _en_bags(rng: random.Random, hi: int) -> Made:
    n, o, a, b, c = rng.choice(_NAMES_EN), rng.choice(_OBJECTS_EN), rng.randint(2, hi), _small(rng, hi), _small(rng, hi)
    return (
        f"{n} has {a} {o} and buys {b} bags with {c} {o} in each bag. How many {o} does {n} have now?",
        [(f"{b} bags of {c}: {b}*{c}=", str(b * c)), (f"{a}+{b * c}=", str(a + b * c))],
        a + b * c,
    )


def _en_spend(rng: random.Random, hi: int) -> Made:
    n, b, c = rng.choice(_NAMES_EN), rng.randint(2, hi), rng.randint(2, hi)
    a = b + c + rng.randint(1, hi)
    return (
        f"{n} has {a} coins, spends {b} coins on a book and {c} coins on a pen. How many coins are left?",
        [(f"{a}-{b}=", str(a - b)), (f"{a - b}-{c}=", str(a - b - c))],
        a - b - c,
    )


def _en_jars(rng: random.Random, hi: int) -> Made:
    n, c, q = rng.choice(_NAMES_EN), _small(rng, hi), rng.randint(2, hi)
    a = rng.randint(1, c * q - 1)
    b = c * q - a
    return (
        f"{n} has {a} red marbles and {b} blue marbles and puts them equally into {c} jars. "
        f"How many marbles go in each jar?",
        [(f"{a}+{b}=", str(a + b)), (f"{a + b}/{c}=", str(q))],
        q,
    )


def _en_weeks(rng: random.Random, hi: int) -> Made:
    n, a, b, c = rng.choice(_NAMES_EN), rng.randint(1, hi // 2), rng.randint(1, hi // 2), _small(rng, hi)
    s = (a + b) * c
    d = rng.randint(1, s - 1)
    return (
        f"{n} saves {a} coins on Monday and {b} coins on Tuesday, every week for {c} weeks, and then spends "
        f"{d} coins. How many coins does {n} have left?",
        [(f"{a}+{b}=", str(a + b)), (f"{a + b}*{c}=", str(s)), (f"{s}-{d}=", str(s - d))],
        s - d,
    )


def _zh_add(rng: random.Random, hi: int) -> Made:
    n, (o, u), a, b = rng.choice(_NAMES_ZH), rng.choice(_OBJECTS_ZH), rng.randint(2, hi), rng.randint(2, hi)
    return (
        f"{n}有{a}{u}{o}，又得到了{b}{u}。{n}现在有多少{u}{o}？",
        [(f"原有{a}{u}，又得到{b}{u}：{a}+{b}=", str(a + b))],
        a + b,
    )


def _zh_mul(rng: random.Random, hi: int) -> Made:
    (o, u), a, b = rng.choice(_OBJECTS_ZH), _small(rng, hi), rng.randint(2, hi)
    return (
        f"有{a}个盒子，每个盒子里有{b}{u}{o}。一共有多少{u}{o}？",
        [(f"{a}个盒子，每盒{b}{u}：{a}*{b}=", str(a * b))],
        a * b,
    )


def _zh_bags(rng: random.Random, hi: int) -> Made:
    n, (o, u), a, b, c = (
        rng.choice(_NAMES_ZH),
        rng.choice(_OBJECTS_ZH),
        rng.randint(2, hi),
        _small(rng, hi),
        _small(rng, hi),
    )
    return (
        f"{n}有{a}{u}{o}，又买了{b}袋，每袋{c}{u}。{n}现在一共有多少{u}{o}？",
        [(f"买了{b}袋，每袋{c}{u}：{b}*{c}=", str(b * c)), (f"一共：{a}+{b * c}=", str(a + b * c))],
        a + b * c,
    )


def _change(rng: random.Random, hi: int, lang: str) -> Made:
    n, a, b = rng.choice(_NAMES_ZH if lang == "zh" else _NAMES_EN), rng.randint(2, max(9, hi // 3)), _small(rng, hi)
    c = a * b + rng.randint(1, hi)
    if lang == "zh":
        question = f"一支笔{a}元。{n}买了{b}支笔，付了{c}元。应该找回多少元？"
        return question, [(f"{b}支笔共：{b}*{a}=", str(a * b)), (f"找回：{c}-{a * b}=", str(c - a * b))], c - a * b
    question = (
        f"A pen costs {a} coins. {n} buys {b} pens and pays with {c} coins. How many coins of change does {n} get?"
    )
    return question, [(f"{b} pens: {b}*{a}=", str(a * b)), (f"{c}-{a * b}=", str(c - a * b))], c - a * b


def _picks(rng: random.Random, hi: int, lang: str) -> Made:
    n, a, b, d = rng.choice(_NAMES_ZH if lang == "zh" else _NAMES_EN), _small(rng, hi), _small(rng, hi), _small(rng, hi)
    while a * b <= d:
        b += 1
    q = rng.randint(1, (a * b - 1) // d)
    c = a * b - d * q
    calc = [(f"{a}*{b}=", str(a * b)), (f"{a * b}-{c}=", str(d * q)), (f"{d * q}/{d}=", str(q))]
    if lang == "zh":
        question = f"{n}每天摘{a}个苹果，摘了{b}天，吃掉{c}个，剩下的平均分给{d}个朋友。每个朋友分到几个苹果？"
        said = ("一共摘了：", "吃掉后还剩：", "每个朋友分到：")
        return question, [(w + p, r) for w, (p, r) in zip(said, calc)], q
    question = (
        f"{n} picks {a} apples a day for {b} days, eats {c} of them and shares the rest equally among {d} "
        f"friends. How many apples does each friend get?"
    )
    return question, calc, q


def _tickets(rng: random.Random, hi: int, lang: str) -> Made:
    a, b, c, d = rng.randint(5, hi), rng.randint(2, hi), _small(rng, hi), _small(rng, hi)
    calc = [(f"{c}*{a}=", str(c * a)), (f"{d}*{b}=", str(d * b)), (f"{c * a}+{d * b}=", str(c * a + d * b))]
    if lang == "zh":
        question = f"成人票每张{a}元，儿童票每张{b}元。买{c}张成人票和{d}张儿童票一共要多少元？"
        return question, [(w + p, r) for w, (p, r) in zip(("成人票：", "儿童票：", "一共："), calc)], c * a + d * b
    question = (
        f"Adult tickets cost {a} coins and child tickets cost {b} coins. How much do {c} adult tickets and "
        f"{d} child tickets cost in total?"
    )
    return question, calc, c * a + d * b


def _both(story: Callable[[random.Random, int, str], Made]) -> tuple[Template, Template]:
    """A story told in both languages from the same draws, as the two templates `_TEMPLATES` lists."""

    def en(rng: random.Random, hi: int) -> Made:
        return story(rng, hi, "en")

    def zh(rng: random.Random, hi: int) -> Made:
        return story(rng, hi, "zh")

    en.__name__, zh.__name__ = f"_en{story.__name__}", f"_zh{story.__name__}"
    return en, zh


(_en_change, _zh_change), (_en_picks, _zh_picks), (_en_tickets, _zh_tickets) = map(_both, (_change, _picks, _tickets))


_TEMPLATES: dict[str, dict[int, list[Template]]] = {
    "en": {
        1: [_en_add, _en_sub, _en_mul, _en_div],
        2: [_en_bags, _en_spend, _en_change, _en_jars],
        3: [_en_picks, _en_weeks, _en_tickets],
    },
    "zh": {1: [_zh_add, _zh_mul], 2: [_zh_bags, _zh_change], 3: [_zh_picks, _zh_tickets]},
}


class WordProblems(Task):
    name = "word"
    description = "short templated stories (apples, coins, tickets) with 1-3 operations; some in Chinese"
    knobs = "operations 1,1,2,3,3; numbers up to 20,60,30,30,99"
    zh_share = 0.25

    def make(self, rng: random.Random, level: str) -> Item:
        ops, hi = _WORD[level]
        lang = "zh" if rng.random() < self.zh_share else "en"
        template = rng.choice(_TEMPLATES[lang][ops])
        question, steps, answer = template(rng, hi)
        return {
            "question": question,
            "answer": answer,
            "steps": steps,
            "meta": {"lang": lang, "story": template.__name__.lstrip("_")},
        }

    def verify(self, pred: str, item: Item) -> bool:
        got = parse_int(pred, allow_unit=True)
        return got is not None and got == parse_int(str(item["answer"]))


class WordProblemsZh(WordProblems):
    name = "word_zh"
    description = "the word problems, all in Chinese (meta.lang='zh'), for the language-consistency reward"
    zh_share = 1.0


CLASSIC_TASKS: tuple[Task, ...] = (
    ModChain(),
    Arith(),
    Multiply(),
    Linear(),
    Countdown(),
    WordProblems(),
    WordProblemsZh(),
)
