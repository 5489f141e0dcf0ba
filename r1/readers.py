"""Reading the files users give us: UTF-8 text, JSONL, JSON and YAML, with errors that say where.

Every reader of a user-controlled file goes through these, so a bad file (not UTF-8, a malformed line, a duplicated
YAML key) is one `UserError` naming the file, the line and for bad bytes the offset, never a traceback from inside a
parser. A leading BOM is dropped. `check_text` does the same for strings (a lone surrogate names its field).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from r1.errors import UserError

_BOM = b"\xef\xbb\xbf"


def decode_utf8(data: bytes, path: str | Path, first_line: int = 1, base_offset: int = 0) -> str:
    """`data` as text, or a UserError naming the file, line, column and the offending byte.

    `first_line` / `base_offset`: where `data` starts in the file, when it is one line of a larger file.
    """
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        start = exc.start
        line = first_line + data.count(b"\n", 0, start)
        column = start - (data.rfind(b"\n", 0, start) + 1) + 1
        raise UserError(
            f"{path}:{line}: not UTF-8 text (byte 0x{data[start]:02x} at column {column}, offset "
            f"{base_offset + start} of the file); save the file as UTF-8"
        ) from None


def unicode_problem(text: str, from_bytes: bool = False) -> str | None:
    """Why `text` cannot be written as UTF-8, or None when it can.

    Such a string holds a lone surrogate: a JSON `"\\ud800"` escape, or (`from_bytes`: command-line arguments and
    terminal input) a byte that was not UTF-8, which Python keeps as U+DC80..U+DCFF. Tokenizers cannot encode it.
    """
    try:
        text.encode("utf-8")
        return None
    except UnicodeEncodeError as exc:
        char, at = text[exc.start], exc.start + 1
        if from_bytes and "\udc80" <= char <= "\udcff":
            return f"not UTF-8 text (byte 0x{ord(char) - 0xDC00:02x} at character {at})"
        return f"invalid Unicode (a lone surrogate U+{ord(char):04X} at character {at})"


def check_text(text: str, where: str, from_bytes: bool = False) -> str:
    """`text`, or a UserError `where: invalid Unicode (…)` when it cannot be encoded (see `unicode_problem`)."""
    problem = unicode_problem(text, from_bytes)
    if problem is not None:
        raise UserError(f"{where}: {problem}")
    return text


def _cannot_read(path: Path, exc: OSError) -> UserError:
    if isinstance(exc, FileNotFoundError):
        return UserError(f"{path}: file not found")
    if isinstance(exc, IsADirectoryError):
        return UserError(f"{path}: is a directory, expected a file")
    return UserError(f"{path}: cannot read ({exc.strerror or exc})")


def read_bytes(path: str | Path) -> bytes:
    path = Path(path)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise _cannot_read(path, exc) from None


def read_text(path: str | Path) -> str:
    """The whole file as text (UTF-8, a leading BOM dropped)."""
    data = read_bytes(path)
    return decode_utf8(data[3:] if data.startswith(_BOM) else data, path)


def iter_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, line without its newline), streamed: large files are never read whole."""
    path = Path(path)
    offset = 0
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise _cannot_read(path, exc) from None
    with handle:
        for lineno, raw in enumerate(handle, start=1):
            data = raw[3:] if lineno == 1 and raw.startswith(_BOM) else raw
            yield lineno, decode_utf8(data, path, lineno, offset + len(raw) - len(data)).rstrip("\r\n")
            offset += len(raw)


def iter_jsonl(path: str | Path) -> Iterator[tuple[str, int, dict[str, Any]]]:
    """(`file:line`, line number, record) per non-blank line; a malformed line is a UserError naming file and line."""
    path = Path(path)
    for lineno, line in iter_lines(path):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{where}: invalid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(record, dict):
            raise UserError(f"{where}: expected a JSON object, got {type(record).__name__}")
        yield where, lineno, record


def read_json(path: str | Path) -> Any:
    """A JSON file's value; invalid JSON is a UserError naming the file, line and column."""
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg} at column {exc.colno})") from None


# ============================================================================================ YAML
class DuplicateKeyError(UserError):
    """A YAML mapping that sets one key twice."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key given twice in one mapping is an error (YAML 1.2 says keys are
    unique; PyYAML keeps the last value, so a config that sets `lr` twice trains with whichever came last)."""

    source = "<string>"

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base` may be overridden key by key
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: the base constructor reports it
                continue
            line = key_node.start_mark.line + 1
            if first is not None:
                raise DuplicateKeyError(f"{self.source}:{line}: duplicate key {key!r} (first set at line {first})")
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str, source: str = "<string>") -> Any:
    """YAML text (safe subset, unique keys) → Python; syntax errors name `source` and the line."""
    loader = _UniqueKeyLoader(text)
    loader.source = source
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise UserError(f"{source}{line}: invalid YAML ({exc.problem or exc.context})") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{source}: invalid YAML ({exc})") from None
    finally:
        loader.dispose()


def read_yaml(path: str | Path) -> Any:
    """A YAML file's value (safe subset, unique keys); errors name the file and the line."""
    return parse_yaml(read_text(path), str(path))
