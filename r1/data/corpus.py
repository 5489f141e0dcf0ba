"""The built-in pretraining corpus: worked solutions in R1 format, generated from the task library.

Why it looks the way it does (measured on the 2-core CPU with the `tiny` preset, ~3M tokens of pretraining; the
numbers are in the report of `r1 run`, the background in shared/notes/r1-zero-at-tiny-scale.md):

- One family, `modchain`: a left-to-right chain of + and * mod 10 over k distinct digits. Every step is local and
  easy, but the one-shot answer composes k-1 non-linear maps, so a tiny model answers short chains directly and
  long ones only by working the steps. That gap is what reinforcement learning later exploits: reasoning must pay
  off on the hard levels, or RL has nothing to amplify. (A linear task such as digit sums is solved directly and
  gives RL no reason to reason.) Other families are left out: the budget is the binding constraint, and every
  document of another family is one fewer for the procedure that is only just learned in time.
- Levels k = 2..6, weighted 1 : 1 : 1.5 : 2 : 2.5 toward the long chains. The hard part for the model is not the
  arithmetic (learned early) but finding the i-th operator and digit of the question at step i; it learns that one
  step position at a time, and only the longer chains teach the later positions. With uniform levels, whether the
  last positions were learned within ~3M tokens depended on the seed (2 of 4 runs fell short at levels 5-6 and RL
  then gained 2-14 points instead of 30); with this weighting both seeds tried learned every level (forced step by
  step 100% at levels 4-6). Levels 7-8 are never seen and show where the procedure stops.
- Styles, the same shares at every level: 50% direct answers (`<think>\n</think>` then the answer), 35% step by
  step inside `<think>`, 15% step by step with one slip caught by " wait, " and redone. The notes' 65/25/10 left
  the step procedure unlearned at this budget in some runs (the long form is where it is learned); at 50/35/15
  the base still answers directly about 3 times in 4 (pass@1 well below what its step-by-step mode reaches, so RL
  has room), samples the long form often enough that pass@k ≫ pass@1, and knows how to recover from a slip.
- Every response ends in the correct answer: the corpus teaches formats and procedures, never wrong conclusions.
- Train split only: problems are drawn with `split="train"`, so the held-out evaluation set (10% of problem keys,
  chosen by hash in `r1.tasks.base.split_of`) is never seen in pretraining, whatever the seed or size.
- Prompt "r1-zero-short" by default (see `PROMPT_TEMPLATES`): the R1-Zero frame without its preamble.

The tiny world (`WORLD`, `build_world_corpus`): what the R1 recipe's later stages need from one base model. Three
reasoning families (modchain, swaps, mystery; equation is available too), each asked in English and in Chinese;
non-reasoning requests (r1.tasks.general) and the world's forbidden requests with their benign look-alikes
(r1.tasks.safety); worked solutions by `r1.tasks.synthetic.worked.write_solution`, which ends every chain of thought
with a sentence in its language. Some Chinese solutions mix English in (`english`: the phrases, or every line from some
step on) at a set rate, the base behaviour R1-Zero's language mixing grows from; `language_mixing` measures it the way
the language-consistency reward does. The world's shares were measured with benchmarks/world_base.py and world_probe.py
(see `WORLD_FAMILY_SHARES`); `DEFAULT_*` stay the main job's modchain-only corpus, byte for byte.

Records are `{"prompt", "response", "task", "level", "style", "answer", "lang", "english"}` (`english`: how a
Chinese chain of thought mixes English, "none" otherwise). `prompt` is the templated question (ends
with `Assistant:`); `response` starts with a space, so `prompt + response` is exactly the text the model should
read and the completion the evaluator sees after the prompt. The trainer computes the loss on the response only,
so the model learns to answer, not to write questions.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from r1.errors import UserError
from r1.io import atomic_write_text
from r1.readers import iter_jsonl
from r1.tasks.base import Item, Task, find_task, get_task
from r1.tasks.synthetic.worked import ENGLISH_MODES, WORLD_STYLES, write_solution
from r1.tasks.templates import PLAIN_TEMPLATES, apply_template

DEFAULT_MIX: dict[str, float] = {"direct": 0.50, "steps": 0.35, "check": 0.15}
DEFAULT_TASKS: dict[str, float] = {"modchain": 1.0}
DEFAULT_LEVELS: dict[str, str | dict[str, float]] = {"modchain": {"2": 1.0, "3": 1.0, "4": 1.5, "5": 2.0, "6": 2.5}}
DEFAULT_TEMPLATE = "r1-zero-short"

# The tiny world: shares of documents per task, levels per family, styles per family, English in Chinese reasoning.
# A direct answer is ~10 tokens against ~60 for a worked solution: at 16% of the documents the requests were 6% of
# the loss and the base answered them ignoring the question (pass@1 3%); at 45% it reads them (47%, 3000 steps), at
# 55% and 3600 steps it answers 75% (the shipped r1/assets/world-tiny; docs/LOG.md has every base trained).
WORLD_FAMILY_SHARES: dict[str, float] = {"modchain": 0.104, "swaps": 0.123, "mystery": 0.123, "general": 0.55,
                                         "safety": 0.10}  # fmt: skip
WORLD_LEVELS: dict[str, str | dict[str, float]] = {
    "modchain": {"2": 1.0, "3": 1.0, "4": 1.5, "5": 2.0},
    "swaps": {"1": 1.0, "2": 1.0, "3": 1.5, "4": 2.0, "5": 2.0},
    "mystery": {"1": 1.0, "2": 1.0, "3": 1.5, "4": 2.0, "5": 2.0},
    "equation": {"1": 1.0, "2": 1.5, "3": 2.0, "4": 2.0},
    # the kinds held out are new pairings to answer; greetings are a fixed set (train only), lists need counting
    "general": {"format": 2.0, "name": 0.5, "translate": 1.5, "list": 3.0, "greet": 0.5},
    "safety": "mix",
}
WORLD_MIX: dict[str, dict[str, float]] = {
    "modchain": {"direct": 0.50, "steps": 0.35, "check": 0.15},
    "swaps": {"direct": 0.50, "steps": 0.35, "check": 0.15},
    "mystery": {"direct": 0.40, "steps": 0.25, "verify": 0.35},
    "equation": {"direct": 0.40, "steps": 0.25, "verify": 0.35},
    "general": {"direct": 1.0},
    "safety": {"direct": 0.7, "steps": 0.3},
}
WORLD_ENGLISH: dict[str, float] = {"phrases": 0.15, "switch": 0.15}  # of Chinese reasoning documents
WORLD_VERIFY_SLIP = 0.5  # of "verify" documents: the first pass slips, the check catches it, the work is redone

Record = dict[str, Any]
PROMPT_TEMPLATES = PLAIN_TEMPLATES  # see r1.tasks.templates


def prompt_for(item: Item, template: str = DEFAULT_TEMPLATE) -> str:
    """The prompt text for a task item in one of `PROMPT_TEMPLATES`; the completion starts after `Assistant:`.

    Training, evaluation and RL must all render prompts through this one function, or the model meets prompts
    it was never trained on.
    """
    if template not in PROMPT_TEMPLATES:
        raise UserError(f"unknown prompt template {template!r}; valid: {', '.join(PROMPT_TEMPLATES)}")
    return apply_template(item, template)["prompt"]


def _normalized(weights: Mapping[str, float], valid: tuple[str, ...] | None, what: str) -> dict[str, float]:
    if not weights:
        raise UserError(f"corpus {what}: at least one entry is needed")
    bad = [k for k in weights if valid is not None and k not in valid]
    if bad:
        raise UserError(f"corpus {what}: unknown {bad}; valid: {', '.join(valid or ())}")
    if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
        raise UserError(f"corpus {what}: weights must be >= 0 and sum to > 0, got {dict(weights)}")
    total = sum(weights.values())
    return {k: w / total for k, w in weights.items() if w > 0}


def _counts(n: int, shares: Mapping[str, float]) -> dict[str, int]:
    """Largest-remainder rounding: the counts sum to n and each is within 1 of n·share, so small corpora keep the
    stated proportions exactly instead of drifting with sampling noise."""
    raw = {k: n * s for k, s in shares.items()}
    counts = {k: int(v) for k, v in raw.items()}
    for k in sorted(raw, key=lambda k: (counts[k] - raw[k], k))[: n - sum(counts.values())]:
        counts[k] += 1
    return counts


def _per_task(spec: Mapping[str, Any] | None, task: Task, default: Any) -> Any:
    """The entry of a per-task (or per-family) mapping for `task`: by task name, then by family, else `default`."""
    if not spec:
        return default
    family = task_family(task.name)
    return spec.get(task.name, spec.get(family, default))


def task_family(name: str) -> str:
    """The family a task belongs to: its name without the `_zh` of its Chinese variant (`modchain_zh` → `modchain`)."""
    return name.removesuffix("_zh")


def family_tasks(family: str) -> tuple[str, str]:
    """The English and the Chinese task of `family`."""
    return family, f"{family}_zh"


def build_corpus(
    n_docs: int,
    seed: int = 0,
    mix: Mapping[str, Any] | None = None,
    tasks: Mapping[str, float] | None = None,
    levels: Mapping[str, str | Mapping[str, float]] | None = None,
    template: str = DEFAULT_TEMPLATE,
    english: Mapping[str, float] | None = None,
    verify_slip: float = WORLD_VERIFY_SLIP,
    worked: bool = False,
) -> list[Record]:
    """`n_docs` seeded training records (train split only), in a seeded random order.

    template: how prompts are rendered, one of `PROMPT_TEMPLATES` (see `prompt_for`).
    mix: solution style -> share (`WORLD_STYLES`), for every reasoning task; or task or family name -> such a
    mapping (a task without an entry: `DEFAULT_MIX`, or direct answers for a non-reasoning task).
    tasks: task name -> share of documents; default `DEFAULT_TASKS` (modchain only).
    levels: task or family name -> difficulty spec ("2-6", "mix", "3": uniform over those levels) or {level: weight};
    a task without one uses all its levels.
    english: mode -> share of the Chinese reasoning documents ("phrases", "switch"; the rest "none").
    verify_slip: share of "verify" documents whose first pass slips and is caught by the check.
    worked: write every solution with `write_solution` (a concluding sentence, both languages); the bilingual
    families always do, the first families keep their own `solution` unless this is set.
    Shares are exact up to rounding: per task, per style within each task, per English mode within each task's
    Chinese reasoning documents, per slipped/clean "verify" document. The same arguments always give the same
    records, and a problem may appear more than once (in different styles) when its level has few problems.
    """
    if n_docs < 0:
        raise UserError(f"corpus: n_docs must be >= 0, got {n_docs}")
    if template not in PROMPT_TEMPLATES:
        raise UserError(f"corpus: unknown template {template!r}; valid: {', '.join(PROMPT_TEMPLATES)}")
    if not 0.0 <= verify_slip <= 1.0:
        raise UserError(f"corpus: verify_slip must be in [0, 1], got {verify_slip}")
    flat_mix = mix is None or all(isinstance(v, int | float) for v in mix.values())
    task_shares = _normalized(DEFAULT_TASKS if tasks is None else tasks, None, "tasks")
    english_shares = _english_shares(english)
    levels = {**DEFAULT_LEVELS, **(levels or {})}
    records: list[Record] = []
    for name, count in _counts(n_docs, task_shares).items():
        task = get_task(name)
        reasoning = getattr(task, "reasoning", True)
        if flat_mix and reasoning:
            task_mix = DEFAULT_MIX if mix is None else mix
        else:
            task_mix = _per_task(None if flat_mix else mix, task, DEFAULT_MIX if reasoning else {"direct": 1.0})
        style_shares = _normalized(task_mix, WORLD_STYLES, f"mix of {name}")
        if "verify" in style_shares and not getattr(task, "can_verify", False):
            raise UserError(
                f"corpus: task {name} has no 'verify' style (its answers cannot be checked); drop it "
                "from the task's mix"
            )
        spec = _per_task(levels, task, "mix")
        if isinstance(spec, Mapping):  # level -> weight: exact shares per level
            level_shares = _normalized(spec, tuple(task.levels), f"levels of {name}")
            items = [
                item
                for level, n in _counts(count, level_shares).items()
                for item in task.generate(n, seed=seed, difficulty=level, split="train")
            ]
            random.Random(f"corpus-levels|{name}|{seed}").shuffle(items)
        else:
            items = task.generate(count, seed=seed, difficulty=spec, split="train")
        styles = [s for s, c in _counts(count, style_shares).items() for _ in range(c)]
        random.Random(f"corpus-styles|{name}|{seed}").shuffle(styles)
        zh = [it["meta"].get("lang") == "zh" for it in items]
        modes = _assign(
            [s != "direct" and reasoning and z for s, z in zip(styles, zh)],
            english_shares,
            f"corpus-english|{name}|{seed}",
            "none",
        )
        slips = _assign(
            [s == "verify" for s in styles],
            {True: verify_slip, False: 1.0 - verify_slip},
            f"corpus-slips|{name}|{seed}",
            False,
        )
        for i, (item, style) in enumerate(zip(items, styles)):
            # seed per document: two copies of one problem in the "check" style slip at different steps
            doc_seed = seed * 1_000_003 + i
            lang = str(item["meta"].get("lang", "en"))
            if reasoning and (worked or type(task).solution is write_solution):  # the bilingual families
                response = write_solution(task, item, style, seed=doc_seed, english=modes[i], slipped=slips[i])
            else:
                response = task.solution(item, style=style, answer_format="tags", seed=doc_seed)
            records.append(
                {
                    "prompt": prompt_for(item, template),
                    "response": " " + response,
                    "task": name,
                    "level": item["meta"]["difficulty"],
                    "style": style,
                    "answer": item["answer"],
                    "lang": lang,
                    "english": modes[i] if lang == "zh" else "none",
                }
            )
    random.Random(f"corpus-order|{seed}").shuffle(records)
    return records


def build_world_corpus(n_docs: int, seed: int = 0, **overrides: Any) -> list[Record]:
    """`build_corpus` with the tiny world's settings (`WORLD`), any of them overridden by keyword."""
    return build_corpus(n_docs, seed=seed, **{**WORLD, **overrides})


def world_tasks(family_shares: Mapping[str, float] | None = None, zh_share: float = 0.5) -> dict[str, float]:
    """Task shares of the world: each family's share split between English and Chinese (`zh_share` Chinese)."""
    shares = WORLD_FAMILY_SHARES if family_shares is None else family_shares
    out: dict[str, float] = {}
    for family, share in shares.items():
        en, zh = family_tasks(family)
        if find_task(en) is None or find_task(zh) is None:
            raise UserError(
                f"corpus: unknown family {family!r}; a family is a task NAME and its Chinese variant NAME_zh"
            )
        out[en], out[zh] = share * (1.0 - zh_share), share * zh_share
    return out


WORLD: dict[str, Any] = {
    "tasks": world_tasks(),
    "levels": WORLD_LEVELS,
    "mix": WORLD_MIX,
    "english": WORLD_ENGLISH,
    "verify_slip": WORLD_VERIFY_SLIP,
    "worked": True,
}


def _english_shares(english: Mapping[str, float] | None) -> dict[str, float]:
    english = dict(english or {})
    bad = [k for k in english if k not in ENGLISH_MODES or k == "none"]
    if bad:
        raise UserError(f"corpus english: unknown modes {bad}; valid: phrases, switch")
    if any(v < 0 for v in english.values()) or sum(english.values()) > 1.0 + 1e-9:
        raise UserError(f"corpus english: shares must be >= 0 and sum to at most 1, got {english}")
    return {**english, "none": max(0.0, 1.0 - sum(english.values()))}


def _assign(eligible: list[bool], shares: Mapping[Any, float], seed: str, default: Any) -> list[Any]:
    """Per document: `default`, or for the eligible ones a value with exact shares (largest remainder), shuffled."""
    chosen = [i for i, ok in enumerate(eligible) if ok]
    values = [v for v, c in _counts(len(chosen), {k: w for k, w in shares.items() if w > 0}).items() for _ in range(c)]
    random.Random(seed).shuffle(values)
    out = [default] * len(eligible)
    for i, v in zip(chosen, values):
        out[i] = v
    return out


def corpus_texts(records: list[Record]) -> Iterator[str]:
    """Prompt + response of each record: the text a tokenizer for this corpus should be trained on."""
    for r in records:
        yield r["prompt"] + r["response"]


def write_corpus(path: str | os.PathLike[str], records: list[Record] | None = None, **kwargs: Any) -> Path:
    """Write records (or `build_corpus(**kwargs)`) as JSONL, atomically: a crash never leaves half a corpus that a
    later run would silently train on."""
    if records is None:
        records = build_corpus(**kwargs)
    elif kwargs:
        raise UserError("write_corpus: pass either records or build_corpus arguments, not both")
    return atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def read_corpus(path: str | os.PathLike[str]) -> list[Record]:
    """Records from a JSONL corpus written by `write_corpus` (a malformed line is an error naming file and line)."""
    if not Path(path).is_file():
        raise UserError(f"corpus file not found: {path}")
    return [record for _, _, record in iter_jsonl(Path(path))]


def language_mixing(response: str, lang: str) -> float:
    """Share of the chain of thought's words that are not in `lang`: 1 − the language-consistency reward
    (`r1.rewards.language.language_ratio` over `r1.rewards.text.reasoning_text`), so the corpus, the base's
    samples and the reward measure mixing the same way. 0.0 for a response without words in its reasoning."""
    from r1.rewards.language import language_ratio
    from r1.rewards.text import reasoning_text

    return 1.0 - language_ratio(reasoning_text(response), lang)
