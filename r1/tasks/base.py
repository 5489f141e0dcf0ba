"""What a task is: plain-data items, a generator with difficulty levels, a verifier and worked solutions.

A task item is a plain dict, so it can be written to JSONL, shipped to workers and read back unchanged:

    {"prompt": str,                      # or "messages": [{"role", "content"}] once a template is applied
     "answer": str,                      # optional: the reference answer, as text
     "rubric": str,                      # optional: what a good answer does, for a model-based reward
     "task": str,                        # registry name: picks the verifier
     "meta": {"question": str,           # the bare question, kept so a template can be (re)applied
              "difficulty": str, "seed": int, "index": int, "split": "train" | "eval", "lang": "en" | "zh",
              "steps": [[prefix, result], ...],   # the worked solution, so `solution()` needs only the item
              ...}}                      # plus whatever the task's verifier needs (countdown: numbers, target)

Open-ended items. `answer` and `rubric` are optional: an item with neither a reference answer nor a task verifier
(a general prompt, scored by a reward model) is valid everywhere. `r1.rewards.judge` gives it no accuracy verdict
(`correct=None`), the `accuracy` reward 0.0 for every sample, and the evaluator counts it apart (`n_open`) instead of
in pass@k. Generated tasks always set `answer`.

Held-in / held-out split. Every generated problem has a canonical key (its question text, or for countdown the
sorted numbers and the target). `split_of(key)` hashes it with SHA-256: 10% of keys are "eval", the rest "train".
`generate(..., split="train")` only emits train keys and `split="eval"` only eval keys, so a model trained on one
split never sees a problem of the other, whatever the seeds, difficulties or item counts. `split="all"` skips the
filter. The hash ignores the task name, so two tasks that can produce the same question agree on its split.

Solution styles (the built-in pretraining corpus mixes them; see shared/notes/r1-zero-at-tiny-scale.md):
- "direct": an empty think block, then the answer;
- "steps":  one line per step inside the think block, then the answer;
- "check":  the steps with one deliberate slip followed by " wait, " and the corrected step. A tiny base model
            must already be able to recover from a slip for RL to amplify reflection;
- "guess":  a snap guess, " wait, ", then the steps: the variant the notes found RL amplifies fast.
"""

from __future__ import annotations

import hashlib
import random
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

from r1.errors import UserError

Item = dict[str, Any]
STYLES = ("direct", "steps", "check", "guess")
ANSWER_FORMATS = ("tags", "boxed")
SPLITS = ("train", "eval", "all")
EVAL_SHARE_PERCENT = 10  # share of problem keys held out for evaluation
WAIT = {"en": " wait, ", "zh": " 等等，"}
CONCLUDE = {"en": "The answer is ", "zh": "答案是 "}


def split_of(key: str) -> str:
    """The split a problem belongs to, from a hash of its canonical key (stable across processes and versions)."""
    bucket = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") % 100
    return "eval" if bucket < EVAL_SHARE_PERCENT else "train"


def question_of(item: Item) -> str:
    """The bare question of an item: meta.question (kept by templates), else its prompt or last user message."""
    meta = item.get("meta") or {}
    if "question" in meta:
        return str(meta["question"])
    if "prompt" in item:
        return str(item["prompt"])
    users = [m.get("content", "") for m in item.get("messages") or [] if m.get("role") == "user"]
    if users:
        return str(users[-1])
    raise ValueError("item has no meta.question, prompt or user message")


class Task(ABC):
    """A procedural task: seeded generation at a difficulty level, a verifier and worked solutions.

    Subclasses set the class attributes and implement `make`; everything else (seeding, difficulty parsing,
    split filtering, solution styles) is shared so all tasks behave the same way.
    """

    name: str = ""
    description: str = ""
    knobs: str = ""  # what the difficulty level changes, for `r1 tasks list`
    levels: tuple[str, ...] = ("1", "2", "3", "4", "5")
    default_level: str = "3"
    modulus: int | None = None  # results live in Z/modulus (modchain: 10), so slips stay in range

    @abstractmethod
    def make(self, rng: random.Random, level: str) -> Item:
        """One problem at `level`: {"question", "answer", "steps", "meta"?}; draw all randomness from `rng`."""

    def key(self, item: Item) -> str:
        """Canonical problem text for the train/eval split; tasks with equivalent phrasings override it."""
        return question_of(item)

    def verify(self, pred: str, item: Item) -> bool:
        """Whether an extracted answer is correct. The default compares integers (tasks override)."""
        want = parse_int(str(item["answer"]))
        got = parse_int(pred)
        return got is not None and got == want

    # ---- shared machinery -------------------------------------------------------------------------------

    def levels_for(self, difficulty: int | str | None) -> list[str]:
        """Levels named by a difficulty spec: None (default level), one level, "A-B" (a range) or "mix" (all)."""
        if difficulty is None or difficulty == "":
            return [self.default_level]
        spec = str(difficulty).strip().lower()
        if spec in ("mix", "all"):
            return list(self.levels)
        if "-" in spec[1:]:
            lo, hi = spec.split("-", 1)
            if lo in self.levels and hi in self.levels and self.levels.index(lo) <= self.levels.index(hi):
                return list(self.levels[self.levels.index(lo) : self.levels.index(hi) + 1])
        elif spec in self.levels:
            return [spec]
        raise UserError(
            f"task {self.name}: difficulty {difficulty!r} is not valid; expected one of "
            f"{', '.join(self.levels)}, a range like {self.levels[0]}-{self.levels[-1]}, or 'mix'"
        )

    def generate(self, n: int, seed: int = 0, difficulty: int | str | None = None, split: str = "train") -> list[Item]:
        """`n` items, identical for the same (seed, difficulty, split); each item seeds its own generator.

        Item i of the stream is drawn from `random.Random(f"{name}|{seed}|{difficulty}|{i}")`, so items do not
        depend on `n` and a longer run extends a shorter one. Items of the other split are skipped.
        """
        if split not in SPLITS:
            raise UserError(f"task {self.name}: split {split!r} is not valid; expected one of {', '.join(SPLITS)}")
        if n < 0:
            raise UserError(f"task {self.name}: n must be >= 0, got {n}")
        levels = self.levels_for(difficulty)
        spec = "" if difficulty is None else str(difficulty)
        items: list[Item] = []
        max_draws = 50 * n + 1000
        for index in range(max_draws):
            if len(items) == n:
                break
            rng = random.Random(f"{self.name}|{seed}|{spec}|{index}")
            level = levels[0] if len(levels) == 1 else rng.choice(levels)
            item = self._build(self.make(rng, level), level, seed, index)
            item_split = split_of(self.key(item))
            if split != "all" and item_split != split:
                continue
            item["meta"]["split"] = item_split
            items.append(item)
        if len(items) < n:
            raise UserError(
                f"task {self.name}: found only {len(items)} {split} items in {max_draws} draws at difficulty "
                f"{difficulty!r}; ask for fewer items or a wider difficulty"
            )
        return items

    def _build(self, made: Item, level: str, seed: int, index: int) -> Item:
        meta = {"question": made["question"], "difficulty": level, "seed": seed, "index": index, "lang": "en"}
        meta.update(made.get("meta", {}))
        meta["steps"] = [[prefix, result] for prefix, result in made["steps"]]
        return {"prompt": made["question"], "answer": str(made["answer"]), "task": self.name, "meta": meta}

    def example(self, seed: int = 0) -> Item:
        """One item at the default level, for listings and docs."""
        return self.generate(1, seed=seed, difficulty=None, split="all")[0]

    def solution(self, item: Item, style: str = "steps", answer_format: str = "tags", seed: int = 0) -> str:
        """A worked solution in R1 format: `<think>\\n…\\n</think>\\n<answer>A</answer>`.

        `answer_format="boxed"` ends with a one-line summary holding `\\boxed{A}` instead (the R1 chat usage).
        The slip in "check" and the guess in "guess" are drawn from a generator seeded by the problem key and
        `seed`, so a corpus is reproducible and can still hold several variants of one problem.
        """
        if style not in STYLES:
            raise UserError(f"solution style {style!r} is not valid; expected one of {', '.join(STYLES)}")
        if answer_format not in ANSWER_FORMATS:
            raise UserError(
                f"answer format {answer_format!r} is not valid; expected one of {', '.join(ANSWER_FORMATS)}"
            )
        meta = item.get("meta") or {}
        steps: list[tuple[str, str]] = [(str(p), str(r)) for p, r in meta.get("steps", [])]
        lang = meta.get("lang", "en")
        wait = WAIT.get(lang, WAIT["en"])
        answer = str(item["answer"])
        rng = random.Random(f"solution|{self.key(item)}|{seed}")
        lines = [p + r for p, r in steps]
        if style == "direct" or not lines:
            think = ""
        elif style == "steps":
            think = "\n".join(lines)
        elif style == "check":
            slippable = [i for i, (_, r) in enumerate(steps) if _INT_IN.search(r)]
            if slippable:
                i = rng.choice(slippable)
                prefix, result = steps[i]
                lines[i] = f"{prefix}{wrong_result(result, rng, self.modulus)}{wait}{prefix}{result}"
            think = "\n".join(lines)
        else:  # guess
            think = f"{wrong_result(answer, rng, self.modulus) if rng.random() < 0.9 else answer}?{wait}" + "\n".join(
                lines
            )
        body = f"<think>\n{think}\n</think>\n" if think else "<think>\n</think>\n"
        if answer_format == "tags":
            return f"{body}<answer>{answer}</answer>"
        end = "。" if lang == "zh" else "."
        return f"{body}{CONCLUDE.get(lang, CONCLUDE['en'])}\\boxed{{{answer}}}{end}"


_INT_IN = re.compile(r"-?\d+")


def wrong_result(result: str, rng: random.Random, modulus: int | None = None) -> str:
    """`result` with its first integer changed to a plausible wrong value (off by a little, or a digit slip)."""
    match = _INT_IN.search(result)
    if match is None:
        return result + "?"
    value = int(match.group())
    if modulus:
        wrong = (value + rng.randint(1, modulus - 1)) % modulus
    else:
        delta = rng.choice([-2, -1, 1, 2, 10, -10]) if abs(value) >= 10 else rng.choice([-2, -1, 1, 2, 3])
        wrong = value + delta
    return result[: match.start()] + str(wrong) + result[match.end() :]


_INT_RE = re.compile(r"^[+-]?\d+(?:\.0+)?$")
_GROUPED_RE = re.compile(r"^[+-]?\d{1,3}(?:,\d{3})+$")


def parse_int(text: str | None, allow_unit: bool = False) -> int | None:
    """An integer answer read leniently: spaces, `$`, thousands commas, a trailing period, `x = 5`, `5.0`.

    With `allow_unit`, trailing words are ignored ("17 apples", "17个"). Returns None when it is not an integer.
    """
    if text is None:
        return None
    s = str(text).strip().strip("$").strip()
    s = re.sub(r"^\\text\{(.*)\}$", r"\1", s)
    s = re.sub(r"^[a-zA-Z]\s*=\s*", "", s)  # "x = 5"
    s = s.rstrip("。.").strip()
    if allow_unit:
        m = re.match(r"^([+-]?[\d,]+(?:\.0+)?)\s*[^\d=+\-*/]*$", s)
        s = m.group(1) if m else s
    if _GROUPED_RE.match(s):
        s = s.replace(",", "")
    if not _INT_RE.match(s):
        return None
    return int(s.split(".")[0])


# ---- registry -------------------------------------------------------------------------------------------

_TASKS: dict[str, Task] = {}


def register_task(task: Task) -> Task:
    """Add a task instance to the registry under `task.name` (the last registration wins)."""
    if not task.name:
        raise ValueError("a task needs a name")
    _TASKS[task.name] = task
    return task


_PREFIXES: dict[str, Callable[[str], Task]] = {}


def list_tasks() -> list[str]:
    """Names of the registered tasks, sorted."""
    return sorted(_TASKS)


def find_task(name: str) -> Task | None:
    """The registered task called `name`, or None (used where an unknown task is not an error)."""
    if name in _TASKS:
        return _TASKS[name]
    for prefix, make in _PREFIXES.items():  # task families named by a prefix, e.g. rg:NAME (reasoning-gym)
        if name.startswith(prefix):
            return make(name[len(prefix) :])
    return None


def register_prefix(prefix: str, make: Callable[[str], Task]) -> None:
    """Names starting with `prefix` resolve to `make(rest)`: task families too large to register one by one."""
    _PREFIXES[prefix] = make


def get_task(name: str) -> Task:
    """The task called `name`; an unknown name is a UserError listing the valid ones."""
    task = find_task(name)
    if task is None:
        raise UserError(
            f"unknown task {name!r}; valid tasks: {', '.join(list_tasks())} (or rg:NAME for a reasoning-gym dataset)"
        )
    return task


def all_tasks() -> Sequence[Task]:
    """The registered task instances, sorted by name."""
    return [_TASKS[name] for name in list_tasks()]
