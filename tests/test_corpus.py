"""The built-in corpus: seeded, train split only, in the stated style proportions, and always correct."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from r1.data.corpus import DEFAULT_MIX, build_corpus, prompt_for, read_corpus, write_corpus
from r1.errors import UserError
from r1.rewards.answers import extract_answer
from r1.tasks.base import get_task, split_of
from r1.tasks.templates import r1_zero_prompt


def _item(record: dict) -> dict:
    return {"answer": record["answer"], "task": record["task"], "meta": {}}


def test_same_arguments_same_records_and_seed_changes_them():
    a = build_corpus(300, seed=3)
    assert a == build_corpus(300, seed=3)
    assert a != build_corpus(300, seed=4)


def test_records_have_the_documented_fields_and_prompts():
    for r in build_corpus(50, seed=0):
        assert set(r) == {"prompt", "response", "task", "level", "style", "answer", "lang", "english"}
        assert (r["lang"], r["english"]) == ("en", "none")
        assert r["prompt"].startswith("User: Compute ") and r["prompt"].endswith(" mod 10. Assistant:")
        assert r["response"].startswith(" <think>\n") and r["response"].endswith("</answer>")
        assert r["task"] == "modchain" and 2 <= int(r["level"]) <= 6
    for r in build_corpus(5, seed=0, template="r1-zero"):
        assert r["prompt"].startswith("This is a conversation") and r["prompt"].endswith(" mod 10. Assistant:")


def test_prompt_for_is_the_one_way_prompts_are_rendered():
    item = get_task("modchain").generate(1, seed=0, split="eval")[0]
    assert prompt_for(item, "r1-zero-short") == f"User: {item['meta']['question']} Assistant:"
    assert prompt_for(item, "r1-zero") == r1_zero_prompt(item["meta"]["question"])
    with pytest.raises(UserError):
        prompt_for(item, "chatml")


def test_level_weights_give_exact_level_shares():
    records = build_corpus(600, seed=0, levels={"modchain": {"2": 1, "4": 2}})
    assert Counter(r["level"] for r in records) == {"2": 200, "4": 400}


def test_no_eval_split_problem_ever_appears():
    records = build_corpus(2000, seed=11, tasks={"modchain": 3, "arith": 1}, levels={"arith": "1-2"})
    for r in records:
        question = r["prompt"].rsplit(" Assistant:", 1)[0].split("User: ", 1)[1]
        assert split_of(question) == "train", question
        assert split_of(question.rstrip(".") + ".") == "train"


def test_style_and_task_shares_are_exact_up_to_rounding():
    records = build_corpus(1000, seed=0, tasks={"modchain": 0.8, "arith": 0.2})
    tasks = Counter(r["task"] for r in records)
    assert tasks == {"modchain": 800, "arith": 200}
    for task, n in tasks.items():
        styles = Counter(r["style"] for r in records if r["task"] == task)
        for style, share in DEFAULT_MIX.items():
            assert abs(styles[style] - share * n) <= 1, (task, style, styles)
    levels = Counter(r["level"] for r in records if r["task"] == "modchain")
    assert set(levels) == {str(k) for k in range(2, 7)}


@pytest.mark.parametrize("mix", [None, {"guess": 1.0}])
def test_every_response_ends_with_the_correct_answer(mix):
    records = build_corpus(600, seed=5, mix=mix, tasks={"modchain": 2, "arith": 1, "linear": 1})
    for r in records:
        task = get_task(r["task"])
        answer = extract_answer(r["response"])
        assert answer is not None and task.verify(answer, _item(r)), r
        if r["style"] == "direct":
            assert r["response"].startswith(" <think>\n</think>\n<answer>")
        elif r["style"] in ("check", "guess"):
            assert " wait, " in r["response"]
        else:
            assert " wait, " not in r["response"]


def test_check_style_steps_are_right_after_each_correction():
    # the slipped step is redone after " wait, ", so every line's final equation holds mod 10
    for r in build_corpus(200, seed=2, mix={"check": 1.0}):
        think = r["response"].split("<think>\n", 1)[1].split("\n</think>", 1)[0]
        for line in think.splitlines():
            eq = line.split(" wait, ")[-1]
            lhs, rhs = eq.split("=")
            a, op, b = lhs[0], lhs[1], lhs[2]
            value = (int(a) + int(b)) % 10 if op == "+" else (int(a) * int(b)) % 10
            assert int(rhs) == value, line


def test_write_corpus_is_jsonl_and_reads_back(tmp_path):
    path = write_corpus(tmp_path / "sub" / "corpus.jsonl", n_docs=40, seed=1)
    lines = path.read_text().splitlines()
    assert len(lines) == 40 and all(json.loads(line)["prompt"] for line in lines)
    assert read_corpus(path) == build_corpus(40, seed=1)
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp file left behind


def test_bad_arguments_are_user_errors():
    with pytest.raises(UserError):
        build_corpus(10, mix={"shouting": 1.0})
    with pytest.raises(UserError):
        build_corpus(10, tasks={"nope": 1.0})
    with pytest.raises(UserError):
        build_corpus(-1)
    with pytest.raises(UserError):
        build_corpus(10, mix={"direct": 0.0})
