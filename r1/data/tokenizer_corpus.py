"""The built-in tokenizer training text: a seeded, generated corpus, so `r1 tokenizer train` needs no download.

It is shaped like what the tiny models here see (arithmetic, worked solutions in R1 format with the special tokens,
short English and Chinese sentences with emoji), so the merges cover digits, the R1 markup's neighbours and
multi-byte text alike.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from pathlib import Path

from r1.tokenizer import ANSWER_CLOSE, ANSWER_OPEN, ASSISTANT, EOS, THINK_CLOSE, THINK_OPEN, USER

_ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen".split()
_ONES += ["seventeen", "eighteen", "nineteen"]
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_ZH_DIGITS = "零一二三四五六七八九"
_NAMES = ["Alice", "Bob", "Carol", "Dan", "Eve", "Frank", "Grace", "Hana", "Ivan", "Julia", "Li Wei", "Mia", "Omar"]
_ITEMS = [
    "apples", "bananas", "books", "cards", "coins", "cookies", "eggs", "flowers", "marbles", "oranges", "pages",
    "pencils", "stamps", "stickers", "tickets", "toys",
]  # fmt: skip
_PLACES = ["the market", "school", "the library", "the park", "a shop", "the garden", "the station", "home"]
_GAINS = [
    ("buys", "buying"),
    ("finds", "finding"),
    ("collects", "collecting"),
    ("gets", "getting"),
    ("makes", "making"),
]
_LOSSES = [("gives away", "given away"), ("loses", "lost"), ("eats", "eaten"), ("sells", "sold"), ("uses", "used")]
_OPENERS = [
    "Let me think step by step.", "First, I need to understand the question.", "Okay, let's see.",
    "Let me break this down.", "I will solve this carefully.", "Hmm, let me work it out.",
]  # fmt: skip
_CHECKS = [
    "Let me double-check.", "Wait, let me verify that.", "Checking the result again.",
    "Hmm, that looks right.", "Let me recompute to be sure.", "Yes, that is consistent.",
]  # fmt: skip
_ZH_ITEMS = ["个苹果", "本书", "枚硬币", "颗弹珠", "支铅笔", "张邮票", "块饼干", "朵花"]
_ZH_NAMES = ["小明", "小红", "小华", "老师", "妈妈", "哥哥"]
_ZH_PHRASES = [
    "让我们一步一步地思考。", "首先，我们要理解这个问题。", "我再检查一遍。", "所以答案是正确的。",
    "等一下，我算错了。", "这个方法更简单。", "最后的结果是", "我们可以用加法来计算。",
]  # fmt: skip
# the English and Chinese sentence templates are data, filled in by _english_sentence / _chinese_sentence
_SENTENCES: dict[str, list[str]] = json.loads(Path(__file__).with_name("sentences.json").read_text("utf-8"))
_EMOJI = ["🎉", "✅", "🙂", "🤔", "👍", "❌", "🔢", "⭐", "💡", "📚"]


def _english_number(n: int) -> str:
    if n < 20:
        return _ONES[n]
    tens, ones = divmod(n, 10)
    return _TENS[tens] if ones == 0 else f"{_TENS[tens]}-{_ONES[ones]}"


def _chinese_number(n: int) -> str:
    if n < 10:
        return _ZH_DIGITS[n]
    tens, ones = divmod(n, 10)
    head = "" if tens == 1 else _ZH_DIGITS[tens]
    return f"{head}十{_ZH_DIGITS[ones] if ones else ''}"


def _is_prime(n: int) -> bool:
    return n > 1 and all(n % d for d in range(2, int(n**0.5) + 1))


def _arithmetic_line(rng: random.Random) -> str:
    a, b = rng.randint(0, 999), rng.randint(0, 999)
    op = rng.choice("+-*")
    if op == "*":
        a, b = rng.randint(0, 99), rng.randint(0, 99)
    value = {"+": a + b, "-": a - b, "*": a * b}[op]
    if rng.random() < 0.3:
        c = rng.randint(1, 9)
        return f"({a} {op} {b}) * {c} = {value * c}"
    return f"{a} {op} {b} = {value}"


def _addition_steps(a: int, b: int) -> list[str]:
    """Column addition from the right, one line per digit, the way a worked solution spells it out."""
    steps, carry, place = [], 0, 0
    names = ["ones", "tens", "hundreds", "thousands"]
    while a or b or carry:
        da, db = a % 10, b % 10
        total = da + db + carry
        carry_text = f" + {carry}" if carry else ""
        steps.append(
            f"{names[place].capitalize()}: {da} + {db}{carry_text} = {total}, write {total % 10}, carry {total // 10}."
        )
        a, b, carry, place = a // 10, b // 10, total // 10, place + 1
    return steps


def _word_problem(rng: random.Random) -> tuple[str, list[str], int]:
    name, item, place = rng.choice(_NAMES), rng.choice(_ITEMS), rng.choice(_PLACES)
    (gain, gaining), (loss, lost) = rng.choice(_GAINS), rng.choice(_LOSSES)
    a, b = rng.randint(5, 60), rng.randint(1, 40)
    c = rng.randint(0, a + b)
    question = f"{name} has {a} {item} and {gain} {b} more at {place}, then {loss} {c}. How many {item} are left?"
    steps = [
        f"{name} starts with {a} {item}.",
        f"After {gaining} {b} more: {a} + {b} = {a + b}.",
        f"After {c} {item} are {lost}: {a + b} - {c} = {a + b - c}.",
    ]
    return question, steps, a + b - c


def _worked_solution(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.4:
        a, b = rng.randint(10, 999), rng.randint(10, 999)
        question, steps, answer = f"What is {a} + {b}?", _addition_steps(a, b), a + b
    elif kind < 0.7:
        x, y = rng.randint(2, 30), rng.randint(2, 30)
        question, answer = f"Compute {x} * {y}.", x * y
        steps = [f"{x} * {y} = {x} * {y - 1} + {x} = {x * (y - 1)} + {x} = {answer}."]
    else:
        question, steps, answer = _word_problem(rng)
    steps = [rng.choice(_OPENERS), *steps, rng.choice(_CHECKS), f"So the answer is {answer}."]
    response = f"{THINK_OPEN}\n" + "\n".join(steps) + f"\n{THINK_CLOSE}\n{ANSWER_OPEN}{answer}{ANSWER_CLOSE}"
    if rng.random() < 0.5:  # as the model sees it in training, specials and all
        return f"{USER}{question}{ASSISTANT}{response}{EOS}"
    return f"{question}\n{response}"


def _numbers(a: int, b: int) -> dict[str, int]:
    """What the sentence templates say about a and b, in either language."""
    return {"a": a, "b": b, "sum": a + b, "difference": a - b, "distance": abs(a - b), "product": a * b,
            "quotient": a // b, "remainder": a % b, "square": a * a, "double": 2 * a, "max": max(a, b),
            "off_by_one": a - b + 1}  # fmt: skip


def _english_sentence(rng: random.Random) -> str:
    a, b = rng.randint(0, 40), rng.randint(1, 40)
    name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    words = {"name": name, "item": item, "A_words": _english_number(a).capitalize(), "b_words": _english_number(b),
             "sum_words": _english_number(a + b), "parity": "even" if a % 2 == 0 else "odd",
             "prime": "" if _is_prime(a) else "not ", "greater": "Yes" if a > b else "No",
             "emoji": rng.choice(_EMOJI), "check": rng.choice(_CHECKS), "opener": rng.choice(_OPENERS)}  # fmt: skip
    return rng.choice(_SENTENCES["en"]).format(**_numbers(a, b), **words)


def _chinese_sentence(rng: random.Random) -> str:
    a, b = rng.randint(0, 49), rng.randint(1, 49)
    item, name = rng.choice(_ZH_ITEMS), rng.choice(_ZH_NAMES)
    words = {"name": name, "item": item, "a_words": _chinese_number(a), "b_words": _chinese_number(b),
             "sum_words": _chinese_number(a + b), "digit_words": _chinese_number(b % 10), "digit_product": a * (b % 10),
             "parity": "偶数" if a % 2 == 0 else "奇数", "emoji": rng.choice(_EMOJI),
             "phrase": rng.choice(_ZH_PHRASES), "phrase2": rng.choice(_ZH_PHRASES)}  # fmt: skip
    return rng.choice(_SENTENCES["zh"]).format(**_numbers(a, b), **words)


_CORPUS_KINDS: list[tuple[float, Callable[[random.Random], str]]] = [
    (0.25, _arithmetic_line),
    (0.30, _worked_solution),
    (0.25, _english_sentence),
    (0.20, _chinese_sentence),
]


def default_training_text(n: int = 20000, seed: int = 0) -> Iterator[str]:
    """A seeded, generated corpus shaped like what the tiny models here see: arithmetic, worked solutions in R1
    format, and short English and Chinese sentences (so multi-byte text gets real merges). No download needed.
    """
    rng = random.Random(seed)
    weights = [w for w, _ in _CORPUS_KINDS]
    makers = [m for _, m in _CORPUS_KINDS]
    for _ in range(n):
        (make,) = rng.choices(makers, weights=weights)
        yield make(rng)
