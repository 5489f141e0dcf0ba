"""swaps: where is the ball after a sequence of cup swaps? State tracking, in English and in Chinese.

A ball lies under one of five cups; the question lists swaps of two cups. Each step is local (the ball moves iff its
cup is one of the two), but the one-shot answer composes k permutations, which a tiny model cannot do: the same
shape as modchain without arithmetic. No pair is swapped twice in a question, so, as modchain's distinct digits do,
the pair a step copies says where in the question the next one is. The answer can be checked against the question
by tracing the swaps back from it: the trace must end at the cup the ball started under ("verify" style).

| level | swaps |
|-------|-------|
| 1..7  | 1..7 distinct pairs of cups 1-5 |
"""

from __future__ import annotations

import random
from typing import Any

from r1.tasks.base import Item, parse_int
from r1.tasks.synthetic.worked import State, Step, WorldTask

CUPS = 5
_PAIRS = [(a, b) for a in range(1, CUPS + 1) for b in range(a + 1, CUPS + 1)]


def _after(cup: int, pair: list[int]) -> int:
    a, b = pair
    return b if cup == a else a if cup == b else cup


class Swaps(WorldTask):
    """A problem is the start cup and the swapped pairs; the state is the ball's cup."""

    name = "swaps"
    levels = tuple("1234567")
    description = "the ball under one of five cups: which cup after k swaps (state tracking)"
    knobs = "level k = number of swaps (1..7) of distinct pairs of five cups; verifiable by tracing back"

    def question(self, problem: dict[str, Any], lang: str) -> str:
        s, ops = problem["start"], problem["ops"]
        if lang == "zh":
            said = [f"交换{a}和{b}" for a, b in ops]
            if len(said) == 1:
                moves = said[0]
            else:
                moves = "先" + "，再".join(said[:-1]) + "，最后" + said[-1]
            return f"球在{s}号杯子下面。{moves}。球现在在几号杯子下面？"
        said = [f"{a} and {b}" for a, b in ops]
        return f"The ball is under cup {s}. Swap cups {', then '.join(said)}. Which cup is the ball under?"

    def problem(self, rng: random.Random, level: str) -> dict[str, Any]:
        swaps = [list(p) for p in rng.sample(_PAIRS, int(level))]
        return {"start": rng.randint(1, CUPS), "ops": swaps}

    def start(self, problem: dict[str, Any]) -> State:
        return int(problem["start"])

    def apply(self, problem: dict[str, Any], i: int, state: State) -> State:
        return _after(state, problem["ops"][i])

    def step_text(self, problem: dict[str, Any], i: int, before: State, after: State, lang: str) -> Step:
        a, b = problem["ops"][i]
        if lang == "zh":
            return f"交换{a}和{b}：", f"{after}号"
        return f"swap {a} and {b}: cup ", str(after)

    def key_of(self, problem: dict[str, Any]) -> str:
        return f"swaps:{problem['start']}:{problem['ops']}"

    def wrong_state(self, rng: random.Random, problem: dict[str, Any], i: int, right: State) -> State:
        return rng.choice([c for c in range(1, CUPS + 1) if c != right])

    def check(self, problem: dict[str, Any], final: State, lang: str) -> tuple[str, bool]:
        cup, parts = final, []
        for a, b in reversed(problem["ops"]):
            cup = _after(cup, [a, b])
            parts.append(f"交换{a}和{b}：{cup}号" if lang == "zh" else f"swap {a} and {b}: cup {cup}")
        start = problem["start"]
        ok = cup == start
        if lang == "zh":
            end = f"回到{start}号，对。" if ok else f"最后是{cup}号，不是{start}号。"
            return "嗯，等等，我倒推检查一下：" + "，".join(parts) + "，" + end, ok
        end = f"back to cup {start}, right." if ok else f"that ends at cup {cup}, not cup {start}."
        return "Hmm, wait, let me check backwards: " + ", ".join(parts) + ", " + end, ok

    def verify(self, pred: str, item: Item) -> bool:
        text = str(pred).strip().lower().removeprefix("cup").strip().removesuffix("号").strip()
        got = parse_int(text)
        return got is not None and got == parse_int(str(item["answer"]))


class SwapsZh(Swaps):
    name = "swaps_zh"
    lang = "zh"
    description = "swaps asked in Chinese (meta.lang='zh'); the same family, one split key per problem with swaps"
