"""Worked solutions in R1 format, in English or Chinese, and the base class of the bilingual task families.

A worked solution is `<think>\\n…\\n</think>\\n<answer>A</answer>`; every reasoning style ends its think block with a
concluding sentence ("So the answer is 5." / "所以答案是5。"), so a chain of thought always has words in its language
and language mixing is measurable with `r1.rewards.language` even where the steps are bare arithmetic.

Styles (`WORLD_STYLES`, a superset of `r1.tasks.base.STYLES`):
- "direct": an empty think block, then the answer;
- "steps":  one line per step, then the conclusion;
- "check":  the steps, one of which slips and is caught at once: `prefix wrong wait, prefix right` (等等 in Chinese);
- "guess":  a snap guess (usually wrong), " wait, ", then the steps;
- "verify": the steps, then "Hmm, wait, let me check:" and a check of the result against the question (substitution,
            tracing back); when the first pass slipped (the slip carries through to a wrong result) the check fails,
            the work is redone and checked again. Only for tasks whose answer the question can confirm
            (`WorldTask.can_verify`): there checking is a comparison with a given number, easier than solving, so it
            can catch what the first pass got wrong — the kind of reflection RL can grow
            (shared/notes/r1-zero-at-tiny-scale.md: a re-check RL amplifies must already work in the base).

English inside Chinese reasoning (`english`), the built-in stand-in for R1-Zero's language mixing:
- "none":    everything in the item's language;
- "phrases": the steps in Chinese, the reasoning's phrases (wait, the check, the conclusion) in English;
- "switch":  from one step on (possibly the first) every line is English.
An English item ignores it.
"""

from __future__ import annotations

import random
from abc import abstractmethod
from typing import Any

from r1.errors import UserError
from r1.tasks.base import ANSWER_FORMATS, CONCLUDE, STYLES, Item, Task, wrong_result

Step = tuple[str, str]
State = int
WORLD_STYLES = (*STYLES, "verify")
ENGLISH_MODES = ("none", "phrases", "switch")

WAIT = {"en": " wait, ", "zh": " 等等，"}
CONCLUSION = {"en": "So the answer is {}.", "zh": "所以答案是{}。"}
REDO = {"en": "So I made a mistake. Let me redo it.", "zh": "算错了，重新算一遍。"}
SLIPPED_SHARE = 0.5  # verify documents whose first pass slipped, when the caller does not say


def direct_body(answer: str) -> str:
    return f"<think>\n</think>\n<answer>{answer}</answer>"


def finish(think: str, answer: str, lang: str, answer_format: str) -> str:
    """The think block (empty for "") and the answer, as an `<answer>` tag or a boxed one-line summary."""
    if answer_format not in ANSWER_FORMATS:
        raise UserError(f"answer format {answer_format!r} is not valid; expected one of {', '.join(ANSWER_FORMATS)}")
    body = f"<think>\n{think}\n</think>\n" if think else "<think>\n</think>\n"
    if answer_format == "tags":
        return f"{body}<answer>{answer}</answer>"
    end = "。" if lang == "zh" else "."
    return f"{body}{CONCLUDE.get(lang, CONCLUDE['en'])}\\boxed{{{answer}}}{end}"


def write_solution(
    task: Task,
    item: Item,
    style: str = "steps",
    answer_format: str = "tags",
    seed: int = 0,
    english: str = "none",
    slipped: bool | None = None,
) -> str:
    """A worked solution of `item` in `style` (see the module docstring), in the item's language (`meta.lang`).

    Works for any task whose items carry `meta.steps` ([prefix, result] pairs); "verify" needs a `WorldTask` with
    `can_verify`. `english` mixes English into a Chinese solution; `slipped` says whether a "verify" solution's first
    pass slips (None: drawn, `SLIPPED_SHARE`). The slip, the switch point and the guess are drawn from a generator
    seeded by the problem key and `seed`, so a corpus is reproducible and can hold several variants of a problem.
    """
    if style not in WORLD_STYLES:
        raise UserError(f"solution style {style!r} is not valid; expected one of {', '.join(WORLD_STYLES)}")
    if english not in ENGLISH_MODES:
        raise UserError(f"english {english!r} is not valid; expected one of {', '.join(ENGLISH_MODES)}")
    meta = item.get("meta") or {}
    lang = str(meta.get("lang", "en"))
    answer = str(item["answer"])
    steps: list[Step] = [(str(p), str(r)) for p, r in meta.get("steps", [])]
    steps_en: list[Step] = [(str(p), str(r)) for p, r in meta.get("steps_en", steps)]
    rng = random.Random(f"worked|{task.key(item)}|{seed}")
    if lang == "en":
        english = "none"
    # lines from `switch` on are English; phrases are English as soon as any English is mixed in
    switch = rng.randrange(len(steps)) if english == "switch" and steps else len(steps)
    say = "en" if english != "none" else lang

    def line(i: int, result: str | None = None) -> str:
        prefix, right = (steps_en if i >= switch else steps)[i]
        return prefix + (right if result is None else result)

    def wait_at(i: int) -> str:
        return WAIT["en" if i >= switch or english != "none" else lang]

    if style == "direct" or not steps:
        return finish("", answer, lang, answer_format)
    lines = [line(i) for i in range(len(steps))]
    if style == "check":
        slippable = [i for i, (_, r) in enumerate(steps) if any(c.isdigit() for c in r)]
        if slippable:
            i = rng.choice(slippable)
            prefix, right = (steps_en if i >= switch else steps)[i]
            wrong = _wrong_result(task, item, i, right, rng)
            lines[i] = f"{prefix}{wrong}{wait_at(i)}{prefix}{right}"
    elif style == "guess":
        guess = _wrong_answer(task, item, rng) if rng.random() < 0.9 else answer
        lines[0] = f"{guess}?{WAIT[say]}{lines[0]}"
    elif style == "verify":
        if not (isinstance(task, WorldTask) and task.can_verify):
            raise UserError(f"task {task.name}: no 'verify' style (its answers cannot be checked against the question)")
        problem = meta["problem"]
        right_states = task.states(problem)
        slip = rng.random() < SLIPPED_SHARE if slipped is None else slipped
        wrong_states = task.wrong_pass(rng, problem) if slip else None
        check_right, ok = task.check(problem, right_states[-1], say)
        assert ok, (task.name, problem)
        if wrong_states is None:
            lines.append(check_right)
        else:
            wrong_steps = task.render(problem, wrong_states, lang)
            wrong_en = task.render(problem, wrong_states, "en")
            first = [(wrong_en if i >= switch else wrong_steps)[i] for i in range(len(steps))]
            check_wrong, ok = task.check(problem, wrong_states[-1], say)
            assert not ok, (task.name, problem, wrong_states)
            lines = [p + r for p, r in first] + [check_wrong, REDO[say], *lines, check_right]
    lines.append(CONCLUSION[say].format(answer))
    return finish("\n".join(lines), answer, lang, answer_format)


def _wrong_result(task: Task, item: Item, i: int, right: str, rng: random.Random) -> str:
    if isinstance(task, WorldTask):
        problem = item["meta"]["problem"]
        value = task.states(problem)[i + 1]
        wrong = task.wrong_state(rng, problem, i, value)
        return right.replace(str(value), str(wrong), 1)
    return wrong_result(right, rng, task.modulus)


def _wrong_answer(task: Task, item: Item, rng: random.Random) -> str:
    if isinstance(task, WorldTask):
        problem = item["meta"]["problem"]
        final = task.states(problem)[-1]
        return task.answer_of(problem, task.wrong_state(rng, problem, task.n_steps(problem) - 1, final))
    return wrong_result(str(item["answer"]), rng, task.modulus)


class WorldTask(Task):
    """A family posed in one language (`lang`) whose problems are a start state and local steps.

    A problem is language-neutral plain data (`meta.problem`); the question and the steps are rendered from it in
    either language, so one problem has one split key (`key_of`) whatever the language, and a Chinese solution can
    switch into English mid-way. Subclasses give the problem generator, the step function and its rendering; tasks
    whose result can be checked against the question also give `check` (then `can_verify` holds).
    """

    lang = "en"

    @abstractmethod
    def problem(self, rng: random.Random, level: str) -> dict[str, Any]:
        """A language-neutral problem at `level` (JSON-able); all randomness from `rng`."""

    @abstractmethod
    def question(self, problem: dict[str, Any], lang: str) -> str:
        """The question text in `lang`."""

    @abstractmethod
    def start(self, problem: dict[str, Any]) -> State:
        """The state before the first step."""

    @abstractmethod
    def apply(self, problem: dict[str, Any], i: int, state: State) -> State:
        """The state after step `i` from `state`."""

    @abstractmethod
    def step_text(self, problem: dict[str, Any], i: int, before: State, after: State, lang: str) -> Step:
        """Step `i` as (prefix, result): the line is prefix + result, and a slip changes only the result."""

    @abstractmethod
    def key_of(self, problem: dict[str, Any]) -> str:
        """Canonical, language-neutral problem key for the train/eval split."""

    def n_steps(self, problem: dict[str, Any]) -> int:
        return len(problem["ops"])

    def answer_of(self, problem: dict[str, Any], final: State) -> str:
        return str(final)

    def wrong_state(self, rng: random.Random, problem: dict[str, Any], i: int, right: State) -> State:
        """A plausible wrong value for the state after step `i` (tasks with a small state space override)."""
        return int(wrong_result(str(right), rng, self.modulus))

    def valid_state(self, problem: dict[str, Any], i: int, state: State) -> bool:
        """Whether the remaining steps can be carried out from `state` after step `i` (e.g. exact division)."""
        return True

    def plausible_wrong(self, problem: dict[str, Any], final: State) -> bool:
        """Whether a slipped first pass ending at `final` makes a readable check (e.g. no negative numbers)."""
        return True

    @property
    def can_verify(self) -> bool:
        """Whether an answer can be checked against the question (the task gives `check`): the "verify" style."""
        return type(self).check is not WorldTask.check

    def check(self, problem: dict[str, Any], final: State, lang: str) -> tuple[str, bool]:
        """The verification of a candidate result as one line, and whether it holds (tasks with `can_verify`)."""
        raise UserError(f"task {self.name}: its answers cannot be checked against the question (no 'verify' style)")

    # ---- shared machinery ---------------------------------------------------------------------------------

    def states(self, problem: dict[str, Any], override: dict[int, State] | None = None) -> list[State]:
        """The start state and the state after every step; `override` {i: value} replaces the result of step i and
        carries on from it (a slip that propagates)."""
        out = [self.start(problem)]
        for i in range(self.n_steps(problem)):
            state = self.apply(problem, i, out[-1])
            out.append(override[i] if override and i in override else state)
        return out

    def render(self, problem: dict[str, Any], states: list[State], lang: str) -> list[Step]:
        return [self.step_text(problem, i, states[i], states[i + 1], lang) for i in range(len(states) - 1)]

    def make(self, rng: random.Random, level: str) -> Item:
        problem = self.problem(rng, level)
        states = self.states(problem)
        meta: dict[str, Any] = {"lang": self.lang, "family": self.name.removesuffix("_zh"), "problem": problem}
        if self.lang != "en":
            meta["steps_en"] = self.render(problem, states, "en")
        return {
            "question": self.question(problem, self.lang),
            "answer": self.answer_of(problem, states[-1]),
            "steps": self.render(problem, states, self.lang),
            "meta": meta,
        }

    def key(self, item: Item) -> str:
        return self.key_of(item["meta"]["problem"])

    def wrong_pass(self, rng: random.Random, problem: dict[str, Any]) -> list[State] | None:
        """States of a first pass with one slip that carries through to a wrong result, or None if none is found."""
        right = self.states(problem)
        n = len(right) - 1
        for _ in range(40):
            i = rng.randrange(n)
            wrong = self.wrong_state(rng, problem, i, right[i + 1])
            if wrong == right[i + 1] or not self.valid_state(problem, i, wrong):
                continue
            states = self.states(problem, {i: wrong})
            if states[-1] != right[-1] and self.plausible_wrong(problem, states[-1]):
                return states
        return None

    solution = write_solution  # every style, both languages, English mixed in on request
