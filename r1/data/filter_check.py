"""How well each rejection-sampling filter (`r1.data.filters`) tells defective completions from clean ones.

Clean completions are worked solutions in R1 format from the task library (`word`, `arith`, `linear`, `modchain` in
English, `word_zh` in Chinese; styles steps, check and guess; `<answer>` tags or a boxed summary), with sentences
of the item's language (`r1.data.tokenizer_corpus`'s English and Chinese sentences) woven into the reasoning, and
with near misses a filter must not take for defects: a long but broken-up reasoning, a 60-100-word paragraph,
Markdown lists and one indented line, inline `code`, LaTeX, one foreign word in a long chain, a slip and its fix.

Each defect is injected into a clean completion of its own:

* mixed_language: words of the other language inserted at 15%, 30% or 50% of the reasoning's words;
* long_paragraph: one line of 200-600 words;
* code_block: a fenced block, or 2-5 lines indented four spaces;
* truncated: cut anywhere from a quarter of the text to just before its answer is complete, the finish reason
  "length" for half of them and "stop" for the rest (a cut the engine did not report);
* repetitive: one to three lines of the reasoning repeated 6-30 times (R1-Zero's loop);
* duplicate: a near-copy of the completion already kept for the item (respaced, a word's case or one number
  changed, a line dropped or two swapped).

Every case is judged by the evaluator (`r1.eval.evaluate`, with the cases as the "generator"), so the filters see
the same records as in `r1.pipeline.stages.generate`. Each case's item already has one other clean completion kept,
which `duplicate` compares with. A filter is scored on the clean cases (negatives) and the cases of its own defect
(positives): precision = refused defective / all refused, recall = refused defective / all defective.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from r1.data.filters import DEFECT_FILTERS, FILTERS, Filter
from r1.data.tokenizer_corpus import _CHECKS, _OPENERS, _ZH_PHRASES, _chinese_sentence, _english_sentence
from r1.rewards.text import THINK_CLOSE, THINK_OPEN, language_counts, words
from r1.tasks.base import Item, get_task

__all__ = ["Case", "cases_from", "defect_cases", "measure"]

TASKS = {"en": ("word", "arith", "linear", "modchain"), "zh": ("word_zh",)}
MIXING_RATES = (0.15, 0.3, 0.5)


@dataclass
class Case:
    """One completion to judge: its item, the defect injected (or None), the texts already kept for the item and the
    evaluator's record of it (`sample`: what a filter reads)."""

    item: Item
    text: str
    defect: str | None = None
    finish_reason: str = "stop"
    kept: list[str] = field(default_factory=list)
    sample: dict[str, Any] = field(default_factory=dict)


def _lang(item: Item) -> str:
    return item["meta"].get("lang", "en")


def _sentence(lang: str, rng: random.Random) -> str:
    return _english_sentence(rng) if lang == "en" else _chinese_sentence(rng)


def _split(text: str) -> tuple[list[str], str]:
    """A solution's reasoning lines and what follows `</think>` (the answer or summary)."""
    head, rest = text.split(THINK_CLOSE, 1)
    return [line for line in head.removeprefix(THINK_OPEN).split("\n") if line], rest


def _join(lines: list[str], rest: str) -> str:
    return f"{THINK_OPEN}\n" + "\n".join(lines) + f"\n{THINK_CLOSE}{rest}"


def _paragraph(lang: str, rng: random.Random, n_words: int) -> str:
    sentences: list[str] = []
    while len(words(" ".join(sentences))) < n_words:
        sentences.append(_sentence(lang, rng))
    return " ".join(sentences)


def clean_completion(item: Item, rng: random.Random) -> str:
    """A worked solution of `item` with prose of its language in the reasoning and, sometimes, a near miss."""
    lang = _lang(item)
    text = get_task(item["task"]).solution(
        item,
        style=rng.choice(("steps", "check", "guess")),
        answer_format=rng.choice(("tags", "boxed")),
        seed=rng.randrange(1 << 30),
    )
    lines, rest = _split(text)
    for _ in range(rng.randint(1, 4)):
        lines.insert(rng.randint(0, len(lines)), _sentence(lang, rng))
    lines.insert(0, rng.choice(_OPENERS if lang == "en" else _ZH_PHRASES))
    lines.append(rng.choice(_CHECKS if lang == "en" else _ZH_PHRASES))
    near_miss = rng.randrange(8)
    if near_miss == 0:  # a long reasoning, broken into lines
        lines[1:1] = [_sentence(lang, rng) for _ in range(rng.randint(10, 25))]
    elif near_miss == 1:  # a long paragraph, under the limit
        lines.insert(rng.randint(0, len(lines)), _paragraph(lang, rng, rng.randint(60, 100)))
    elif near_miss == 2:  # Markdown lists, nested, and one indented line
        lines = [f"- {line}" if i % 2 else f"    - {line}" for i, line in enumerate(lines)]
        lines.insert(rng.randint(0, len(lines)), "    " + _sentence(lang, rng))
    elif near_miss == 3:  # inline code and LaTeX: language-neutral
        lines.insert(rng.randint(0, len(lines)), "`x = a * b` $\\frac{a}{b} \\times c$")
    elif near_miss == 4 and sum(language_counts("\n".join(lines)).values()) >= 30:  # a foreign word, ≤ 1/31
        lines.insert(rng.randint(0, len(lines)), "OK" if lang == "zh" else "好")
    return _join(lines, rest)


def _foreign_words(lang: str, rng: random.Random) -> list[str]:
    """Words of the other language, as they would be slipped into a chain: Latin words, or 1-4 CJK characters."""
    other = _sentence("zh" if lang == "en" else "en", rng)
    if lang == "zh":
        return [w for w in other.replace(",", " ").replace(".", " ").split() if w.isalpha()] or ["the"]
    han = [c for c in other if "\u4e00" <= c <= "\u9fff"]
    out, i = [], 0
    while i < len(han):
        n = rng.randint(1, 4)
        out.append("".join(han[i : i + n]))
        i += n
    return out or ["是"]


def _mix(text: str, lang: str, rng: random.Random) -> str:
    lines, rest = _split(text)
    rate = rng.choice(MIXING_RATES)
    n = sum(language_counts("\n".join(lines)).values())
    need = math.ceil(rate * n / (1 - rate))
    while need > 0:
        word = rng.choice(_foreign_words(lang, rng))
        need -= len(word) if lang == "en" else 1
        i = rng.choice([i for i, line in enumerate(lines) if "$" not in line])  # maths is language-neutral
        line = lines[i]
        cuts = [0, len(line), *(j + 1 for j, c in enumerate(line) if c in " ,.，。：")]
        j = rng.choice(cuts)
        lines[i] = f"{line[:j]} {word} {line[j:]}"
    return _join(lines, rest)


def _code(text: str, rng: random.Random) -> str:
    lines, rest = _split(text)
    body = [f"x{i} = {rng.randint(1, 99)} {rng.choice('+-*')} {rng.randint(1, 99)}" for i in range(rng.randint(1, 4))]
    body.append(f"print(x{len(body) - 1})")
    block = ["```python", *body, "```"] if rng.random() < 0.5 else ["    " + line for line in body]
    i = rng.randint(0, len(lines))
    return _join(lines[:i] + block + lines[i:], rest)


def _cut(text: str, rng: random.Random) -> tuple[str, str]:
    end = text.rfind("}") if text.rfind("</answer>") < 0 else text.rfind("</answer>") + len("</answer>") - 1
    return text[: rng.randint(len(text) // 4, end)], "length" if rng.random() < 0.5 else "stop"


def _loop(text: str, rng: random.Random) -> str:
    lines, rest = _split(text)
    i = rng.randrange(len(lines))
    span = lines[i : i + rng.randint(1, 3)]
    return _join(lines[: i + len(span)] + span * rng.randint(6, 30) + lines[i + len(span) :], rest)


def _near_copy(text: str, rng: random.Random) -> str:
    lines, rest = _split(text)
    for _ in range(rng.randint(1, 2)):
        edit, i = rng.randrange(5), rng.randrange(len(lines))
        if edit == 0:  # respaced
            lines[i] = lines[i].replace(" ", "  ") + " "
        elif edit == 1:  # a word's case
            lines[i] = lines[i].swapcase()
        elif edit == 2:  # one number changed
            digits = [j for j, c in enumerate(lines[i]) if c.isdigit()]
            if digits:
                j = rng.choice(digits)
                lines[i] = lines[i][:j] + str((int(lines[i][j]) + 1) % 10) + lines[i][j + 1 :]
        elif edit == 3 and 4 * len(words(lines[i])) <= len(words("\n".join(lines))):  # a short line dropped
            del lines[i]
        elif edit == 4 and i + 1 < len(lines):  # two lines swapped
            lines[i : i + 2] = [lines[i + 1], lines[i]]
    return _join(lines, rest)


def _inject(defect: str, text: str, kept: str, lang: str, rng: random.Random) -> tuple[str, str]:
    if defect == "mixed_language":
        return _mix(text, lang, rng), "stop"
    if defect == "long_paragraph":
        lines, rest = _split(text)
        lines.insert(rng.randint(0, len(lines)), _paragraph(lang, rng, rng.randint(200, 600)))
        return _join(lines, rest), "stop"
    if defect == "code_block":
        return _code(text, rng), "stop"
    if defect == "truncated":
        return _cut(text, rng)
    if defect == "repetitive":
        return _loop(text, rng), "stop"
    return _near_copy(kept, rng), "stop"


def defect_cases(n_clean: int = 200, n_defective: int = 100, seed: int = 0) -> list[Case]:
    """`n_clean` clean cases and `n_defective` of each defect in `DEFECT_FILTERS`, half English and half Chinese,
    each on its own item with one other clean completion already kept; the same seed gives the same cases."""
    rng = random.Random(f"filter-check|{seed}")
    kinds = [None] * n_clean + [d for d in DEFECT_FILTERS for _ in range(n_defective)]
    pools = {
        lang: [get_task(name).generate(len(kinds), seed=seed, difficulty="mix") for name in names]
        for lang, names in TASKS.items()
    }
    cases = []
    for i, defect in enumerate(kinds):
        item = rng.choice(pools[("en", "zh")[i % 2]])[i]
        lang = _lang(item)
        kept = clean_completion(item, rng)
        text, finish = clean_completion(item, rng), "stop"
        if defect is not None:
            text, finish = _inject(defect, text, kept, lang, rng)
        cases.append(Case(item, text, defect, finish, [kept]))
    _judge(cases)
    return cases


def cases_from(records: list[Mapping[str, Any]], template: str, n_defective: int = 50, seed: int = 0) -> list[Case]:
    """Cases made of a run's own kept completions (the generate stage's chat records): each record clean once (the
    item's other kept completion, if any, as `kept`), and `n_defective` records per defect with it injected (a
    duplicate is a near-copy of the record's own text), judged under `template`. The clean ones passed the filters
    when they were kept, so on these cases precision can only fall through a defect-free refusal, and what is
    measured is recall on the run's own kind of text; `defect_cases` has the near misses precision needs."""
    rng = random.Random(f"filter-cases|{seed}")
    texts: dict[str, list[str]] = {}
    for r in records:
        texts.setdefault(r["messages"][0]["content"], []).append(r["messages"][1]["content"])

    def case(r: Mapping[str, Any], defect: str | None) -> Case:
        question, text = r["messages"][0]["content"], r["messages"][1]["content"]
        item = {"task": r["task"], "answer": r["answer"], "meta": {**r["meta"], "question": question}}
        others = [t for t in texts[question] if t != text][:1]
        if defect is None:
            return Case(item, text, None, "stop", others)
        bad, finish = _inject(defect, text, text, _lang(item), rng)
        return Case(item, bad, defect, finish, [text] if defect == "duplicate" else others)

    cases = [case(r, None) for r in records]
    for defect in DEFECT_FILTERS:
        cases += [case(r, defect) for r in rng.sample(records, min(n_defective, len(records)))]
    _judge(cases, template)
    return cases


def _judge(cases: list[Case], template: str | None = None) -> None:
    """Give each case the evaluator's record (answer, correct, format, finish reason, ...): the cases are replayed as
    the generator's output."""
    from r1.eval.evaluate import evaluate

    pending = iter(cases)

    def replay(batch: list[Item], n: int, params: dict[str, Any]) -> list[list[dict[str, Any]]]:
        return [[{"text": c.text, "finish_reason": c.finish_reason} for c in [next(pending)]] for _ in batch]

    samples = evaluate([c.item for c in cases], replay, k=1, template=template, progress=False).samples
    for case, sample in zip(cases, samples):
        case.sample = sample


def measure(filters: Mapping[str, Filter] | None = None, cases: list[Case] | None = None) -> dict[str, dict[str, Any]]:
    """Precision and recall of each filter named after a defect (default: the registered ones) on `cases` (default:
    `defect_cases()`): {name: {"precision", "recall", "tp", "fp", "fn", "tn"}}."""
    filters = {d: FILTERS[d] for d in DEFECT_FILTERS} if filters is None else filters
    cases = defect_cases() if cases is None else cases
    table = {}
    for name, keep in filters.items():
        if name not in DEFECT_FILTERS:
            raise ValueError(f"measure: no injected defect for filter {name!r}; defects: {', '.join(DEFECT_FILTERS)}")
        counts = dict.fromkeys(("tp", "fp", "fn", "tn"), 0)
        for case in cases:
            if case.defect not in (None, name):
                continue
            refused = not keep(case.sample, case.kept)
            counts[("t" if refused == (case.defect == name) else "f") + ("p" if refused else "n")] += 1
        tp, fp, fn = counts["tp"], counts["fp"], counts["fn"]
        table[name] = {"precision": tp / (tp + fp) if tp + fp else 0.0, "recall": tp / (tp + fn) if tp + fn else 0.0}
        table[name].update(counts)
    return table
