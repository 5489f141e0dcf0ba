"""The dataset-from-a-model stage (engine → judge → filters → JSONL) on the shipped base, through the runner."""

from __future__ import annotations

import json
from dataclasses import dataclass

from r1.pipeline.recipes.r1_zero import BUILTIN_BASE, eval_items
from r1.pipeline.runner import run_recipe
from r1.pipeline.stage import Recipe
from r1.pipeline.stages.generate import FILTERS, Generate
from r1.rewards.answers import extract_answer


@dataclass
class Settings:
    out: str
    seed: int = 0
    threads: int = 1


def _recipe(**kw) -> Recipe:
    items = eval_items("2-3", 4, seed=1)
    stage = Generate(
        "rejection",
        str(BUILTIN_BASE),
        lambda run: items,
        "data/rejection.jsonl",
        n=4,
        per_item=2,
        template="r1-zero-short",
        **{"max_new_tokens": 48, **kw},
    )
    return Recipe("gen", "", lambda cfg: [stage], lambda p: None, lambda a: None)


def test_rejection_sampling_from_the_shipped_base_keeps_right_answers_as_chat_records(tmp_path, one_thread):
    from r1.tokenizer import Tokenizer
    from r1.train.sft import render_conversation

    summary = run_recipe(_recipe(filters={k: FILTERS[k] for k in ("correct", "complete")}), Settings(str(tmp_path)))
    g = summary["rejection"]
    assert (g["items"], g["samples"]) == (8, 32) and g["passed"] + sum(g["rejected"].values()) == 32
    assert 0 < g["passed"] < 32 and g["rejected"]["correct"] > 0  # the base is right about 70% of the time
    records = [json.loads(x) for x in (tmp_path / "data" / "rejection.jsonl").read_text().splitlines()]
    assert len(records) == g["records"] and g["items_kept"] <= g["records"] <= 2 * g["items_kept"]
    tok = Tokenizer.load(BUILTIN_BASE)
    for r in records:
        user, assistant = r["messages"]
        assert (user["role"], assistant["role"]) == ("user", "assistant") and user["content"] == r["meta"]["question"]
        assert extract_answer(assistant["content"]) == str(r["answer"])  # only right answers were kept
        render_conversation(r["messages"], tok)  # what stage sft trains on
    assert "**Generated data** (`data/rejection.jsonl`): 32 samples of 8 items" in (tmp_path / "report.md").read_text()


def test_a_filter_that_refuses_everything_keeps_nothing_and_is_counted_by_name(tmp_path, one_thread):
    summary = run_recipe(_recipe(filters={"never": lambda s, kept: False}), Settings(str(tmp_path)))
    assert summary["rejection"]["rejected"] == {"never": 32} and summary["rejection"]["records"] == 0
    assert (tmp_path / "data" / "rejection.jsonl").read_text() == ""


def test_rejection_sampling_with_the_readability_filters_by_name_counts_each_and_the_pass_rates(tmp_path, one_thread):
    from r1.data.filters import DEFECT_FILTERS, similarity

    names = ["correct", *DEFECT_FILTERS]
    summary = run_recipe(_recipe(filters=names), Settings(str(tmp_path)))
    g = summary["rejection"]
    assert list(g["filters"]) == names and g["rejected"] == {n: f["dropped"] for n, f in g["filters"].items()}
    reached = [f["reached"] for f in g["filters"].values()]
    dropped = [f["dropped"] for f in g["filters"].values()]
    assert reached[0] == 32 and all(reached[i + 1] == reached[i] - dropped[i] for i in range(len(names) - 1))
    hist = g["pass_histogram"]  # items with 0..4 of their 4 samples correct
    assert len(hist) == 5 and sum(hist) == 8 and sum(c * h for c, h in enumerate(hist)) == 32 - dropped[0]
    assert g["filters"]["duplicate"]["dropped"] > 0  # the base often writes the same short answer twice
    records = [json.loads(x) for x in (tmp_path / "data" / "rejection.jsonl").read_text().splitlines()]
    by_item: dict[str, list[str]] = {}
    for r in records:
        by_item.setdefault(r["meta"]["question"], []).append(r["messages"][1]["content"])
    assert all(similarity(a, b) < 0.55 for texts in by_item.values() for a in texts for b in texts if a is not b)
    report = (tmp_path / "report.md").read_text()
    assert f"| correct | 32 | {32 - dropped[0]} | {dropped[0]} |" in report
    assert "Items by correct samples (pass rate): " + ", ".join(f"{c}/4: {n}" for c, n in enumerate(hist)) in report


def test_samples_cut_at_max_new_tokens_are_dropped_as_truncated(tmp_path, one_thread):
    summary = run_recipe(_recipe(filters=["truncated"], max_new_tokens=10), Settings(str(tmp_path)))
    g = summary["rejection"]  # "<think>\n</think>\n<answer>3</answer>" and its end fit in 10 tokens, a chain does not
    assert 0 < g["rejected"]["truncated"] < 32 and g["passed"] == 32 - g["rejected"]["truncated"]
    records = [json.loads(x) for x in (tmp_path / "data" / "rejection.jsonl").read_text().splitlines()]
    assert records and all(r["messages"][1]["content"].rstrip().endswith("</answer>") for r in records)


def test_an_unknown_filter_name_is_a_user_error_listing_the_valid_ones():
    import pytest

    from r1.errors import UserError

    with pytest.raises(UserError, match=r"unknown filter\(s\) 'tidy'; valid: correct, format, .*duplicate"):
        _recipe(filters=["correct", "tidy"])
