"""Local question/answer files (GSM8K, MATH, AIME or plain) read into task items.

Formats, with their default field mapping (override any field with `fields={"prompt": "question", ...}`):

| format | prompt   | answer   | how the reference answer is read                                              |
|--------|----------|----------|-------------------------------------------------------------------------------|
| gsm8k  | question | answer   | the text after the last `####` (thousands commas dropped); meta.solution: the rest |
| math   | problem  | solution | the content of the last `\\boxed{…}` (balanced braces); meta.solution: the text |
| aime   | problem  | answer   | an integer (a JSON number or a string of digits)                              |
| plain  | prompt   | answer   | a string or a number, used as is                                              |

Optional fields `difficulty` (default field "difficulty"; MATH: "level") and `id` ("id") go to meta when present.
Files are JSONL (one object per line, blank lines skipped) or Parquet (read with pyarrow). Every problem a user
can fix raises a UserError naming the file, the 1-based line (JSONL) or row (Parquet), the field and what was
expected, e.g. `data/test.jsonl:3: field 'answer': expected '#### <answer>' at the end, got '42'`.

Items are named `{format}:{file stem}` (e.g. `gsm8k:test`), so they never collide with a built-in generator's
verifier; correctness falls back to `answers_match` on the reference answer.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from r1.errors import UserError
from r1.readers import iter_jsonl
from r1.tasks.base import Item

_OPTIONAL_DEFAULTS = {"difficulty": "difficulty", "id": "id"}
FORMATS: dict[str, dict[str, str]] = {
    "gsm8k": {"prompt": "question", "answer": "answer", **_OPTIONAL_DEFAULTS},
    "math": {"prompt": "problem", "answer": "solution", **_OPTIONAL_DEFAULTS, "difficulty": "level"},
    "aime": {"prompt": "problem", "answer": "answer", **_OPTIONAL_DEFAULTS},
    "plain": {"prompt": "prompt", "answer": "answer", **_OPTIONAL_DEFAULTS},
}
FIELD_ROLES = ("prompt", "answer", "difficulty", "id")
_OPTIONAL = ("difficulty", "id")
_BOX_RE = re.compile(r"\\(?:boxed|fbox)\s*\{")


def last_boxed(text: str) -> str | None:
    """The content of the last `\\boxed{…}` whose braces balance, or None."""
    for match in reversed(list(_BOX_RE.finditer(text))):
        depth = 1
        for i in range(match.end(), len(text)):
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    return text[match.end() : i].strip()
    return None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _records(path: Path) -> Iterator[tuple[str, str, int, dict[str, Any]]]:
    """(location, "line" | "row", number, record); location is `file:line` (JSONL) or `file row N` (Parquet)."""
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        for where, lineno, record in iter_jsonl(path):
            yield where, "line", lineno, record
    elif suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise UserError(f"{path}: reading Parquet needs pyarrow: pip install pyarrow") from None
        try:
            table = pq.read_table(path)
        except Exception as exc:  # pyarrow raises several types for unreadable files
            raise UserError(f"{path}: not a readable Parquet file ({exc})") from None
        for row, record in enumerate(table.to_pylist(), start=1):
            yield f"{path} row {row}", "row", row, record
    else:
        raise UserError(f"{path}: expected a .jsonl or .parquet file, got {suffix or 'no extension'!r}")


def _field(record: dict[str, Any], where: str, role: str, name: str) -> Any:
    if name not in record or record[name] is None:
        present = ", ".join(sorted(map(str, record))) or "none"
        raise UserError(f"{where}: field {name!r} ({role}) is missing; fields present: {present}")
    return record[name]


def _text(value: Any, where: str, name: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise UserError(f"{where}: field {name!r}: expected a string or a number, got {type(value).__name__}")


def _reference(fmt: str, value: Any, where: str, name: str) -> tuple[str, str | None]:
    """(reference answer, worked solution or None) read according to the format."""
    if fmt == "aime":
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value), None
        if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
            return str(int(value)), None
        raise UserError(f"{where}: field {name!r}: expected an integer answer, got {_short(value)}")
    if not isinstance(value, str):
        if fmt == "plain":
            return _text(value, where, name), None
        raise UserError(f"{where}: field {name!r}: expected a string, got {type(value).__name__}")
    if fmt == "gsm8k":
        if "####" not in value:
            raise UserError(f"{where}: field {name!r}: expected '#### <answer>' at the end, got {_short(value)}")
        solution, _, answer = value.rpartition("####")
        answer = answer.strip()
        if re.fullmatch(r"[+-]?\d{1,3}(,\d{3})+(\.\d+)?", answer):
            answer = answer.replace(",", "")
        if not answer:
            raise UserError(f"{where}: field {name!r}: nothing after '####'")
        return answer, solution.strip()
    if fmt == "math":
        boxed = last_boxed(value)
        if not boxed:
            raise UserError(f"{where}: field {name!r}: expected a \\boxed{{...}} answer, got {_short(value)}")
        return boxed, value
    return value.strip(), None


def load_dataset(
    path: str | Path,
    format: str = "plain",
    fields: dict[str, str] | None = None,
    task: str | None = None,
    limit: int | None = None,
) -> list[Item]:
    """Items from a local JSONL or Parquet file; see the module docstring for formats and errors.

    `fields` maps item roles (prompt, answer, difficulty, id) to the file's field names, on top of the format's
    defaults. `limit` keeps the first N records. `task` names the items (default `{format}:{file stem}`).
    """
    if format not in FORMATS:
        raise UserError(f"unknown dataset format {format!r}; valid formats: {', '.join(FORMATS)}")
    if limit is not None and limit < 0:
        raise UserError(f"dataset limit must be >= 0, got {limit}")
    unknown = sorted(set(fields or {}) - set(FIELD_ROLES))
    if unknown:
        raise UserError(f"dataset fields: unknown role(s) {', '.join(unknown)}; valid roles: {', '.join(FIELD_ROLES)}")
    mapping = {**FORMATS[format], **(fields or {})}
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: dataset file not found")
    name = task or f"{format}:{path.stem}"
    items: list[Item] = []
    for where, kind, number, record in _records(path):
        if limit is not None and len(items) >= limit:
            break
        question = _text(_field(record, where, "prompt", mapping["prompt"]), where, mapping["prompt"]).strip()
        if not question:
            raise UserError(f"{where}: field {mapping['prompt']!r}: expected a non-empty question")
        answer, solution = _reference(
            format, _field(record, where, "answer", mapping["answer"]), where, mapping["answer"]
        )
        meta: dict[str, Any] = {"question": question, "source": str(path), kind: number, "index": len(items)}
        if solution:
            meta["solution"] = solution
        for role in _OPTIONAL:
            key = mapping.get(role)
            if key and record.get(key) is not None:
                meta[role] = str(record[key])
        items.append({"prompt": question, "answer": answer, "task": name, "meta": meta})
    if not items and limit != 0:  # an empty export would otherwise evaluate (or convert) to nothing, silently
        raise UserError(f"{path}: no records (the file is empty or blank)")
    return items
