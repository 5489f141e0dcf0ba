"""Cold-start refinement: a correct R1-Zero sample rewritten into the readable R1 format [R1v1 §2.3.1; recipe §3.1].

DeepSeek had R1-Zero's correct samples refined by DeepSeek-V3 and by people into `reasoning | summary`: the chain of
thought in the question's language, then a summary for the reader. `refine` is a deterministic stand-in for those
annotators, for the tiny world only: it keeps the sample's own lines (its steps, its slips and their "wait", its
checks), translates the lines and phrases the world writes in English back into the prompt's language, line by line,
from the item's own renderings (`meta.steps_en` → `meta.steps`, the task's check phrases, `worked.WAIT`,
`CONCLUSION`, `REDO`), ends the reasoning with its conclusion and adds the one-line summary with the boxed answer
(`worked.finish(..., "boxed")`). It returns None for a sample whose reasoning still mixes languages after that, or
does not hold the item's steps in order (a right answer reached by wrong work, which an annotator would not pass);
`rewrite` is then the annotator's post-edit: the item's own worked solution in the prompt's language, in the style
the sample attempted (steps; a slip caught with "wait"; a check of the result and, when it failed, the redo).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from r1.rewards.language import language_ratio
from r1.rewards.text import reasoning_text
from r1.tasks.synthetic.worked import CONCLUSION, REDO, WAIT, finish, write_solution

MAX_FOREIGN = 0.1  # the mixed_language filter's threshold: a refined chain keeps at most this share of other words


def _rule(en: str, zh: str) -> tuple[str, str] | None:
    """A step as rendered in English and in Chinese, with the same numbers in the same order ("swap 3 and 5: cup 1"
    / "交换3和5：1号") → (pattern, replacement) that rewrites the English step whatever its numbers are (a slipped
    step, or one computed from a slipped value, keeps its own numbers)."""
    if en == zh or re.findall(r"\d+", en) != re.findall(r"\d+", zh):
        return None
    pattern = r"(\d+)".join(re.escape(part) for part in re.split(r"\d+", en))
    parts = re.split(r"\d+", zh)
    replacement = "".join(part.replace("\\", "\\\\") + (f"\\g<{i + 1}>" if i < len(parts) - 1 else "")
                          for i, part in enumerate(parts))  # fmt: skip
    return pattern, replacement


def _to_chinese(line: str, meta: Mapping[str, Any], task: Any) -> str:
    """One reasoning line with the world's English renderings replaced by the item's Chinese ones."""
    if getattr(task, "can_verify", False):  # a check line: the task's own check of some candidate, in English
        for n in sorted({int(x) for x in re.findall(r"\d+", line)}):
            try:
                text, _ = task.check(meta["problem"], n, "en")
            except (ArithmeticError, IndexError, KeyError, ValueError):  # not a value this problem can take
                continue
            if line == text:
                return task.check(meta["problem"], n, "zh")[0]
    for (p_en, r_en), (p_zh, r_zh) in zip(meta.get("steps_en") or [], meta.get("steps") or []):
        rule = _rule(f"{p_en}{r_en}", f"{p_zh}{r_zh}")
        if rule is not None:
            line = re.sub(*rule, line)
    line = line.replace(REDO["en"], REDO["zh"]).replace(WAIT["en"], WAIT["zh"])
    m = re.fullmatch(CONCLUSION["en"].replace(".", r"\.").format(r"(.+)"), line.strip())
    return CONCLUSION["zh"].format(m.group(1)) if m else line


def refine(text: str, record: Mapping[str, Any]) -> str | None:
    """The readable form of a correct sample `text` of the item in `record` (`answer`, `task`, `meta.lang`), or None
    when its reasoning cannot be made single-language or does not work the item's steps (see the module docstring)."""
    from r1.tasks.base import get_task

    meta = record.get("meta") or {}
    lang, answer = str(meta.get("lang", "en")), str(record["answer"])
    lines = [ln.strip() for ln in reasoning_text(text).strip().splitlines() if ln.strip()]
    if not lines:
        return None
    if lang == "zh":
        task = get_task(str(record["task"]))
        lines = [_to_chinese(ln, meta, task) for ln in lines]
    conclusion = CONCLUSION[lang].format(answer)
    if lines[-1] != conclusion:
        if re.fullmatch(CONCLUSION[lang].replace(".", r"\.").format(r".+"), lines[-1]):
            lines = lines[:-1]  # a conclusion stating another answer: the summary's is the checked one
        lines.append(conclusion)
    think = "\n".join(lines)
    if 1.0 - language_ratio(think, lang) > MAX_FOREIGN or not works_steps(think, meta):
        return None
    return finish(think, answer, lang, "boxed")


def works_steps(reasoning: str, meta: Mapping[str, Any]) -> bool:
    """Whether `reasoning` writes each of the item's steps (`meta.steps`: prefix and result, in its language) in
    order; slips and redone passes may come between them."""
    at = 0
    for prefix, result in meta.get("steps") or []:
        found = reasoning.find(f"{prefix}{result}", at)
        if found < 0:
            return False
        at = found + len(f"{prefix}{result}")
    return True


def rewrite(text: str, record: Mapping[str, Any]) -> str:
    """The item's worked solution (`worked.write_solution`, the prompt's language, a boxed summary) in the style of
    the sample `text`: "verify" when it checks its result (and slipped when it redid the work), "check" when it says
    "wait", else "steps"."""
    from r1.tasks.base import get_task

    task, lang = get_task(str(record["task"])), str((record.get("meta") or {}).get("lang", "en"))
    intro = getattr(task, "check_intro", {})
    item = {"task": record["task"], "answer": record["answer"], "meta": record.get("meta") or {}}
    if getattr(task, "can_verify", False) and any(intro.get(x, "\0").strip() in text for x in ("en", "zh")):
        slipped = REDO["en"] in text or REDO[lang] in text
        return write_solution(task, item, "verify", "boxed", slipped=slipped)
    style = "check" if WAIT["en"].strip(" ,") in text or WAIT["zh"].strip(" ，") in text else "steps"
    return write_solution(task, item, style, "boxed")
