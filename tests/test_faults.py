"""Bad input is never accepted silently: each case exits 2 with one line naming the culprit, and leaves nothing behind.

The cases of issue 13's sweep on the training, data, config and evaluation side: files that are not UTF-8, YAML
with a key given twice, numbers out of range, a sequence longer than the model's context, token ids outside the
vocabulary, empty corpora, a device that is not there, --out naming a file, completions that answer other items,
and a pipeline whose base is broken (its summary and report must say it failed). Resume and checkpoint faults are
in test_resume.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from cli_errors import one_error, r1
from trainer_fixtures import tiny_overrides, token_corpus, write_config, write_jsonl

from r1.errors import UserError
from r1.readers import iter_jsonl, parse_yaml, read_json, read_text

pytestmark = pytest.mark.usefixtures("one_thread")
BASE = Path(__file__).resolve().parents[1] / "r1" / "assets" / "base-tiny"


def train_config(tmp_path: Path, *extra: str, data: list[dict] | None = None) -> Path:
    """A tiny pretraining config over pre-tokenized data (or none), writing to tmp_path/run."""
    overrides = [*tiny_overrides(tmp_path / "run"), "train.steps=2", *extra]
    if data is not None:
        overrides.append(f"data.paths=[{write_jsonl(tmp_path / 'train.jsonl', data)}]")
    return write_config(tmp_path / "config.yaml", overrides)


# ============================================================================================ the shared readers
def test_readers_name_file_line_and_byte_of_bad_text(tmp_path):
    f = tmp_path / "x.jsonl"
    f.write_bytes(b'{"a": 1}\n{"text": "caf\xe9"}\n')
    with pytest.raises(UserError, match=r"x\.jsonl:2: not UTF-8 text \(byte 0xe9 at column 14, offset 22 of the"):
        list(iter_jsonl(f))
    with pytest.raises(UserError, match=r"x\.jsonl:2: not UTF-8 text \(byte 0xe9 at column 14, offset 22"):
        read_text(f)
    f.write_bytes(b'\xef\xbb\xbf{"a": 1}\n')  # a byte-order mark is accepted
    assert [r for _, _, r in iter_jsonl(f)] == [{"a": 1}] and read_json(f) == {"a": 1}
    f.write_text('{"a": 1,\n "b": }\n')
    with pytest.raises(UserError, match=r"x\.jsonl:2: invalid JSON"):
        read_json(f)
    with pytest.raises(UserError, match=r"c\.yaml:3: duplicate key 'lr' \(first set at line 2\)"):
        parse_yaml("optim:\n  lr: 1\n  lr: 2\n", "c.yaml")
    with pytest.raises(UserError, match=r"c\.yaml:2: invalid YAML"):
        parse_yaml("a: 1\n\tb: 2\n", "c.yaml")
    base = "base: &b {x: 1, y: 2}\nderived:\n  <<: *b\n  y: 3\n"  # merge keys may be overridden: not duplicates
    assert parse_yaml(base)["derived"] == {"x": 1, "y": 3}


# ============================================================================================ r1 train
def test_config_not_utf8_or_with_a_duplicate_key(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_bytes(b"train:\n  steps: 5\n  out: caf\xe9\n")
    one_error(*r1(capsys, "train", "--config", str(cfg)), f"{cfg}:3: not UTF-8 text (byte 0xe9")
    cfg.write_text("optim:\n  lr: 1.0e-3\n  weight_decay: 0.1\n  lr: 3.0e-3\n")
    one_error(*r1(capsys, "train", "--config", str(cfg)), f"{cfg}:4: duplicate key 'lr' (first set at line 2)")
    one_error(*r1(capsys, "train", "model={a: 1, a: 2}"), "duplicate key 'a'")


@pytest.mark.parametrize(
    "lines, culprit",
    [
        ([b'{"input_ids": [10, 11, 12]}', b'{"text": "caf\xe9"}'], "train.jsonl:2: not UTF-8 text (byte 0xe9"),
        (
            [b'{"input_ids": [10, 11]}', b'{"input_ids": [10, 300, 12]}'],
            "train.jsonl:2: 'input_ids'[1] = 300 is outside the model's vocabulary (0..299)",
        ),
        (
            [b'{"input_ids": [10, 11], "labels": [-100, -1]}'],
            "train.jsonl:1: 'labels'[1] = -1 is outside the model's vocabulary (0..299 or -100 (no loss))",
        ),
        ([b""], "train.jsonl: no records (the file is empty or blank)"),
    ],
    ids=["not-utf8", "id-beyond-vocab", "negative-label", "empty-file"],
)
def test_bad_training_data_is_named_and_leaves_no_run_folder(tmp_path, capsys, lines, culprit):
    (tmp_path / "train.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    data = f"data.paths=[{tmp_path / 'train.jsonl'}]"
    cfg = write_config(tmp_path / "c.yaml", [*tiny_overrides(tmp_path / "run"), data])
    one_error(*r1(capsys, "train", "--config", str(cfg)), culprit)
    assert not (tmp_path / "run").exists()


def test_text_data_not_utf8_names_the_line(tmp_path, capsys):
    data = tmp_path / "docs.txt"
    data.write_bytes(b"one document\nanother\n\xff\xfe broken\n")
    cfg = train_config(tmp_path, f"data.paths=[{data}]", "data.tokenizer=train")
    one_error(*r1(capsys, "train", "--config", str(cfg)), f"{data}:3: not UTF-8 text (byte 0xff at column 1")
    assert not (tmp_path / "run").exists()  # the tokenizer it began to train is gone too


def test_no_text_for_a_tokenizer_is_an_error_not_a_bytes_only_tokenizer(tmp_path, capsys):
    cfg = train_config(tmp_path, "data.tokenizer=train", data=token_corpus(4))  # pre-tokenized: no text at all
    one_error(*r1(capsys, "train", "--config", str(cfg)), "data.tokenizer=train: the training data has no text")
    assert not (tmp_path / "run").exists()
    cfg = train_config(tmp_path, "data.builtin=0")
    one_error(*r1(capsys, "train", "--config", str(cfg)), "no training examples: the data is empty")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "override, culprit",
    [
        ("data.seq_len=100000", "data.seq_len=100000: longer than the model's context (max_position_embeddings=2048"),
        ("train.batch_size=0", "train.batch_size=0: must be >= 1"),
        ("train.threads=-1", "train.threads=-1: must be >= 0"),
        ("train.seed=-1", "train.seed=-1: must be in 0 .. 2**32 - 1"),
        ("train.steps=0", "train.steps=0: must be >= 1"),
        ("data.builtin=-5", "data.builtin=-5: must be >= 0"),
        ("debug.kill_at_step=0", "debug.kill_at_step=0: must be >= 1"),
        ("checkpoint.every=-1", "checkpoint.every=-1: must be >= 0"),
    ],
)
def test_numbers_out_of_range_are_refused_before_anything_is_written(tmp_path, capsys, override, culprit):
    cfg = train_config(tmp_path, data=token_corpus(8))
    one_error(*r1(capsys, "train", "--config", str(cfg), override), culprit)
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_device_that_is_not_there(tmp_path, capsys):
    cfg = train_config(tmp_path, data=token_corpus(8))
    one_error(
        *r1(capsys, "train", "--config", str(cfg), "train.device=cuda"),
        "train.device=cuda: CUDA is not available",
        "use train.device=cpu or auto",
    )
    assert not (tmp_path / "run").exists()


def test_out_naming_a_file_is_refused_and_the_file_kept(tmp_path, capsys):
    f = tmp_path / "notes.txt"
    f.write_text("mine\n")
    cfg = train_config(tmp_path, data=token_corpus(8))
    one_error(*r1(capsys, "train", "--config", str(cfg), "--out", str(f)), f"train.out={f}: is a file")
    argv = ["eval", "--task", "modchain", "--completions", str(f), "--out", str(f)]
    one_error(*r1(capsys, *argv), f"--out {f}: is a file")
    one_error(*r1(capsys, "run", "--quick", "--out", str(f)), f"--out {f}: is a file")
    assert f.read_text() == "mine\n"


# ============================================================================================ r1 eval
def _completions(tmp_path: Path, records: list[dict]) -> Path:
    return write_jsonl(tmp_path / "completions.jsonl", records)


def _items(n: int = 2) -> list[dict]:
    from r1.tasks import get_task

    return get_task("modchain").generate(n, seed=0, split="eval")


@pytest.mark.parametrize(
    "bad, culprit",
    [
        ({"task": "arith"}, "completions.jsonl:2: field 'task' is 'arith' but item 1 is a 'modchain' item"),
        ({"prompt": "What is 2 + 2?"}, "completions.jsonl:2: field 'prompt' is not the prompt of item 1"),
        ({"question": "What is 2 + 2?"}, "completions.jsonl:2: field 'question' is not the prompt of item 1"),
        ({"num_tokens": -3}, "completions.jsonl:2: field 'num_tokens': expected an integer >= 0, got -3"),
        ({"num_tokens": True}, "completions.jsonl:2: field 'num_tokens': expected an integer >= 0, got True"),
    ],
    ids=["other-task", "other-prompt", "other-question", "negative-length", "bool-length"],
)
def test_completions_must_answer_the_items_they_are_matched_to(tmp_path, capsys, bad, culprit):
    items = _items()
    good = {"index": 0, "task": "modchain", "question": items[0]["meta"]["question"], "text": "<answer>1</answer>"}
    path = _completions(tmp_path, [good, {"index": 1, "text": "<answer>2</answer>", **bad}])
    out = tmp_path / "report"
    argv = ["eval", "--task", "modchain", "--n-items", "2", "--completions", str(path), "--out", str(out)]
    one_error(*r1(capsys, *argv, "--no-progress"), culprit)
    assert not out.exists()
    # the same line, telling the truth about its item, is scored
    path = _completions(
        tmp_path,
        [
            good,
            {
                "index": 1,
                "task": "modchain",
                "prompt": items[1]["prompt"],
                "text": "<answer>2</answer>",
                "num_tokens": 3,
            },
        ],
    )
    rc, err = r1(capsys, *argv, "--no-progress")
    assert rc == 0, err
    assert json.loads((out / "results.json").read_text())["overall"]["n_items"] == 2


def test_empty_datasets_and_completion_files(tmp_path, capsys):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    out = tmp_path / "report"
    rc, err = r1(capsys, "eval", "--data", str(empty), "--completions", str(empty), "--out", str(out))
    one_error(rc, err, f"{empty}: no records (the file is empty or blank)")
    one_error(*r1(capsys, "tasks", "convert", str(empty)), f"{empty}: no records")
    rc, err = r1(capsys, "eval", "--task", "modchain", "--n-items", "2", "--completions", str(empty), "--out", str(out))
    one_error(rc, err, f"{empty}: no completions (the file is empty or blank)")
    assert not out.exists()


@pytest.mark.parametrize(
    "flag, value, culprit",
    [
        ("--batch-size", "0", "--batch-size must be >= 1, got 0"),
        ("-k", "0", "-k must be >= 1, got 0"),
        ("--max-new-tokens", "0", "--max-new-tokens must be >= 1, got 0"),
        ("--n-items", "0", "--n-items must be >= 1, got 0"),
        ("--temperature", "-1", "--temperature must be >= 0, got -1.0"),
        ("--temperature", "nan", "--temperature must be >= 0, got nan"),  # NaN compares false: not >= catches it
        ("--top-p", "1.5", "--top-p must be in (0, 1], got 1.5"),
    ],
)
def test_eval_numbers_out_of_range(tmp_path, capsys, flag, value, culprit):
    out = tmp_path / "report"
    argv = ["eval", "--task", "modchain", "--model", str(BASE), "--out", str(out), flag, value]
    one_error(*r1(capsys, *argv), culprit)
    assert not out.exists()


def test_tasks_and_run_numbers_out_of_range(tmp_path, capsys):
    data = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "1+1?", "answer": "2"}])
    one_error(*r1(capsys, "tasks", "convert", str(data), "--limit", "-1"), "dataset limit must be >= 0, got -1")
    one_error(*r1(capsys, "tasks", "sample", "modchain", "-n", "-2"), "-n must be >= 1, got -2")
    one_error(*r1(capsys, "run", "--quick", "--threads", "0", "--out", str(tmp_path / "r")), "--threads must be >= 1")
    assert not (tmp_path / "r").exists()


# ============================================================================================ r1 run
def test_a_run_with_a_broken_base_says_it_failed(tmp_path, capsys):
    base = tmp_path / "base"
    shutil.copytree(BASE, base)
    weights = base / "model.safetensors"
    weights.write_bytes(b"\xff" * weights.stat().st_size)
    out = tmp_path / "run"
    rc, err = r1(capsys, "run", "--base", str(base), "--out", str(out), "--rl-steps", "0", "--eval-items", "1")
    one_error(rc, err, f"{weights}: cannot read safetensors file")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["failure"]["stage"] == "base"
    assert "cannot read safetensors file" in summary["failure"]["error"]
    report = (out / "report.md").read_text()
    assert report.startswith("# r1 run: run: FAILED") and "**This run failed** in stage `base`" in report
    assert "pass@1" not in report and "|" not in report  # no table, no number that reads like a result
    assert sorted(p.name for p in out.iterdir()) == ["config.yaml", "report.md", "summary.json"]
