"""Local dataset loaders: GSM8K, MATH, AIME and plain files in JSONL or Parquet, and their error messages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from r1.cli import main
from r1.errors import UserError
from r1.tasks.datasets import last_boxed, load_dataset


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def test_gsm8k_jsonl(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "gsm.jsonl",
        [
            {"question": "Tom has 3 apples and buys 4. How many?", "answer": "3+4=7\n#### 7"},
            "",
            {"question": "Big one?", "answer": "lots\n#### 1,234"},
        ],
    )
    items = load_dataset(path, format="gsm8k")
    assert [i["answer"] for i in items] == ["7", "1234"]
    assert items[0]["prompt"] == "Tom has 3 apples and buys 4. How many?" and items[0]["task"] == "gsm8k:gsm"
    assert items[0]["meta"]["solution"] == "3+4=7" and items[1]["meta"]["line"] == 3
    assert load_dataset(path, format="gsm8k", limit=1, task="mine")[0]["task"] == "mine"


def test_math_uses_the_last_balanced_box(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "math.jsonl",
        [
            {"problem": "Half?", "solution": "First \\boxed{2}, no: \\boxed{\\frac{1}{2}}.", "level": "Level 3"},
        ],
    )
    item = load_dataset(path, format="math")[0]
    assert item["answer"] == "\\frac{1}{2}" and item["meta"]["difficulty"] == "Level 3"
    assert last_boxed("\\boxed{a{b}c} and \\boxed{unclosed") == "a{b}c"


def test_aime_and_plain_with_field_mapping(tmp_path: Path) -> None:
    aime = write_jsonl(tmp_path / "aime.jsonl", [{"problem": "P1", "answer": 33}, {"problem": "P2", "answer": "070"}])
    assert [i["answer"] for i in load_dataset(aime, format="aime")] == ["33", "70"]
    plain = write_jsonl(tmp_path / "qa.jsonl", [{"q": "2+2?", "a": 4, "id": "x1"}])
    item = load_dataset(plain, fields={"prompt": "q", "answer": "a"})[0]
    assert (item["prompt"], item["answer"], item["meta"]["id"]) == ("2+2?", "4", "x1")


def test_parquet(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path = tmp_path / "gsm.parquet"
    pq.write_table(pa.table({"question": ["a?", "b?"], "answer": ["#### 1", "no marker"]}), path)
    with pytest.raises(UserError) as err:
        load_dataset(path, format="gsm8k")
    assert str(err.value).startswith(f"{path} row 2: field 'answer': expected '#### <answer>' at the end")
    assert load_dataset(path, format="gsm8k", limit=1)[0]["meta"]["row"] == 1


@pytest.mark.parametrize(
    ("fmt", "rows", "message"),
    [
        ("gsm8k", ['{"question": "a", "answer": "#### 1"}', "{not json"], r"bad\.jsonl:2: invalid JSON"),
        ("gsm8k", [{"question": "a", "answer": "#### 1"}, [1, 2]], r"bad\.jsonl:2: expected a JSON object, got list"),
        ("gsm8k", [{"question": "a"}], r"bad\.jsonl:1: field 'answer' \(answer\) is missing; fields present: question"),
        ("gsm8k", [{"question": "a", "answer": "42"}], r"bad\.jsonl:1: field 'answer': expected '#### <answer>'"),
        (
            "gsm8k",
            [{"question": 5, "answer": "#### 1"}, {"question": ["x"], "answer": "#### 1"}],
            r"bad\.jsonl:2: field 'question': expected a string or a number, got list",
        ),
        (
            "math",
            [{"problem": "p", "solution": "it is 4"}],
            r"bad\.jsonl:1: field 'solution': expected a \\boxed\{\.\.\.\}",
        ),
        ("aime", [{"problem": "p", "answer": "4.5"}], r"bad\.jsonl:1: field 'answer': expected an integer answer"),
        ("math", [{"problem": "p", "solution": 3}], r"bad\.jsonl:1: field 'solution': expected a string, got int"),
    ],
)
def test_malformed_files_name_file_line_and_field(tmp_path: Path, fmt: str, rows: list[Any], message: str) -> None:
    path = write_jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(UserError, match=message) as err:
        load_dataset(path, format=fmt)
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="dataset file not found"):
        load_dataset(tmp_path / "missing.jsonl")
    with pytest.raises(UserError, match="unknown dataset format 'csv'"):
        load_dataset(tmp_path / "x.jsonl", format="csv")
    with pytest.raises(UserError, match="expected a .jsonl or .parquet file"):
        load_dataset(write_jsonl(tmp_path / "x.txt", []))
    with pytest.raises(UserError, match="unknown role"):
        load_dataset(write_jsonl(tmp_path / "y.jsonl", []), fields={"question": "q"})


def test_cli_convert(tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "gsm.jsonl", [{"question": "Q?", "answer": "x\n#### 5"}])
    out = tmp_path / "items.jsonl"
    assert main(["tasks", "convert", str(src), "--format", "gsm8k", "--template", "r1-zero", "--out", str(out)]) == 0
    item = json.loads(out.read_text())
    assert item["answer"] == "5" and item["prompt"].endswith("User: Q? Assistant:")
