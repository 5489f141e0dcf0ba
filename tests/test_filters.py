"""The rejection-sampling filters: each on hand-written cases, and each one's precision and recall on a seeded set of
worked solutions with injected defects (`r1.data.filter_check`), with a wrong threshold shown to miss the bar."""

from __future__ import annotations

import pytest

from r1.data.filter_check import defect_cases, measure
from r1.data.filters import (
    DEFECT_FILTERS,
    FILTERS,
    code_block,
    duplicate,
    long_paragraph,
    mixed_language,
    repetitive,
    resolve_filters,
    similarity,
)
from r1.errors import UserError
from r1.rewards.text import language_counts

BAR = 0.95


@pytest.fixture(scope="module")
def cases():
    return defect_cases(n_clean=200, n_defective=100, seed=0)


def _keeps(name: str, text: str, question: str = "What is 2+3?", finish: str = "stop", kept=()) -> bool:
    return FILTERS[name]({"text": text, "question": question, "finish_reason": finish}, list(kept))


def _tagged(think: str, answer: str = "5") -> str:
    return f"<think>\n{think}\n</think>\n<answer>{answer}</answer>"


@pytest.mark.parametrize("name", DEFECT_FILTERS)
def test_each_filter_refuses_its_injected_defect_and_keeps_clean_solutions(cases, name):
    row = measure({name: FILTERS[name]}, cases)[name]
    assert row["tp"] + row["fn"] == 100 and row["fp"] + row["tn"] == 200
    assert row["precision"] >= BAR and row["recall"] >= BAR, row


@pytest.mark.parametrize(
    "name, wrong",
    [
        ("mixed_language", mixed_language(max_foreign_share=1.0)),  # never refuses
        ("mixed_language", mixed_language(max_foreign_share=0.0)),  # one name in the other language refuses
        ("long_paragraph", long_paragraph(max_words=5)),
        ("long_paragraph", long_paragraph(max_words=100_000)),
        ("code_block", code_block(min_indented_lines=1)),  # an indented line is no program
        ("code_block", code_block(min_indented_lines=1000)),  # only fences are caught
        ("truncated", FILTERS["complete"]),  # the finish reason alone misses cuts the engine did not report
        ("repetitive", repetitive(max_ratio=0.0)),
        ("repetitive", repetitive(max_ratio=0.99)),
        ("repetitive", repetitive(window=10_000)),  # over the whole text only: short loops are diluted
        ("duplicate", duplicate(max_similarity=0.05)),
        ("duplicate", duplicate(max_similarity=1.0)),  # exact copies only
    ],
)
def test_a_filter_with_a_wrong_threshold_misses_the_bar(cases, name, wrong):
    row = measure({name: wrong}, cases)[name]
    assert min(row["precision"], row["recall"]) < BAR, row


def test_the_defect_cases_are_seeded_and_bilingual():
    a, b, c = defect_cases(20, 5, seed=3), defect_cases(20, 5, seed=3), defect_cases(20, 5, seed=4)
    assert [x.text for x in a] == [x.text for x in b] != [x.text for x in c]
    assert len(a) == 20 + 5 * len(DEFECT_FILTERS) and {x.item["meta"]["lang"] for x in a} == {"en", "zh"}
    assert all(x.kept and x.kept[0] != x.text for x in a if x.defect is None)


def test_mixed_language_measures_the_reasoning_against_the_question_language():
    zh_question = "小明有3个苹果，又买了2个。一共有多少个？"
    assert _keeps("mixed_language", _tagged("小明有3个苹果，又买了2个：3+2=5。所以一共有5个。"), zh_question)
    assert not _keeps("mixed_language", _tagged("First 3 apples, then 2 more: 3+2=5."), zh_question)
    assert _keeps("mixed_language", _tagged("First 3 apples, then 2 more: 3+2=5."))
    # maths and inline code are neither language; the answer after the reasoning is not judged
    neutral = _tagged("先算乘法：$x \\times y$，`x = a * b`，3*4=12。", answer="twelve")
    assert _keeps("mixed_language", neutral, zh_question)
    assert language_counts("`x = a * b` 是") == {"en": 0, "zh": 1, "other": 0}


def test_long_paragraph_counts_words_per_line_cjk_characters_as_words():
    assert _keeps("long_paragraph", _tagged("\n".join(["word " * 100] * 5)))  # long, but broken into lines
    assert not _keeps("long_paragraph", _tagged("word " * 151))
    assert not _keeps("long_paragraph", _tagged("字" * 151)) and _keeps("long_paragraph", _tagged("字" * 150))


def test_code_block_refuses_fences_and_indented_code_not_lists_or_inline_code():
    assert not _keeps("code_block", _tagged("Compute:\n```python\nprint(2+3)\n```"))
    assert not _keeps("code_block", _tagged("Compute:\n    a = 2\n    print(a + 3)"))
    assert not _keeps("code_block", _tagged("Compute:\n\tx = 2\n\ty = 3"))
    assert _keeps(
        "code_block", _tagged("Use `a + b`:\n- 2+3=5\n    - nested item\n    - another\n    one indented line")
    )
    assert _keeps("code_block", "<think>\nadd\n</think>\n```python\nprint(5)\n```\n<answer>5</answer>")  # not the CoT


def test_truncated_refuses_cut_offs_whatever_the_finish_reason():
    whole = _tagged("2+3=5")
    assert _keeps("truncated", whole) and not _keeps("truncated", whole, finish="length")
    assert _keeps("truncated", "<think>\n2+3=5\n</think>\nThe answer is \\boxed{5}.")
    for cut in (
        "<think>\n2+3=",
        "<think>\n2+3=5\n</thi",
        "<think>\n2+3=5\n</think>\n",
        "<think>\n2+3=5\n</think>\n<ans",
    ):
        assert not _keeps("truncated", cut), cut
    assert not _keeps("truncated", whole[:-1]) and not _keeps("truncated", whole[:-12])  # "</answer" / "<answer>5"
    assert not _keeps("truncated", "<think>\n2+3=5\n</think>\nThe answer is \\boxed{5")
    assert not _keeps("truncated", whole + "\n<answer>6")  # a second answer left open


def test_repetitive_refuses_short_and_long_loops_not_worked_arithmetic():
    steps = "48+10=58\n58*9=522\n522-393=129\nLet me check: 48+10=58, and 58*9=522, so 522-393=129."
    assert _keeps("repetitive", _tagged(steps, "129"))
    prose = "First, I need to understand the question. " * 2 + "Then the numbers are added one at a time."
    assert not _keeps("repetitive", _tagged(prose + "\n2+1=3" * 8 + "\n" + prose, "3"))  # a short line, 8 times
    assert not _keeps("repetitive", _tagged(("I will solve this carefully and then check it. " * 12) + steps, "129"))


def test_duplicate_refuses_near_copies_of_a_kept_sample_of_the_same_item():
    kept = _tagged("Let me think step by step.\n48+10=58\n58*9=522\n522-393=129\nSo the answer is 129.", "129")
    respaced = kept.replace(" ", "  ").replace("\n", "\n\n")
    other = _tagged("Weekly savings are 48 and 10 coins, nine weeks in all, then 393 are spent: 58*9-393=129.", "129")
    assert not _keeps("duplicate", respaced, kept=[kept]) and not _keeps("duplicate", kept, kept=[other, kept])
    assert _keeps("duplicate", other, kept=[kept]) and _keeps("duplicate", kept)  # nothing kept yet
    assert similarity(kept, respaced) == 1.0 and similarity(kept, other) < 0.55


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: mixed_language(max_foreign_share=1.5), "filter 'mixed_language': max_foreign_share must be a number"),
        (lambda: long_paragraph(max_words=0), "filter 'long_paragraph': max_words must be a positive integer, got 0"),
        (lambda: code_block(min_indented_lines=True), "min_indented_lines must be a positive integer, got True"),
        (lambda: repetitive(window=2.5), "filter 'repetitive': window must be a positive integer, got 2.5"),
        (lambda: duplicate(max_similarity="high"), "filter 'duplicate': max_similarity must be a number in"),
        (lambda: resolve_filters(["correct", "tidy"]), r"unknown filter\(s\) 'tidy'; valid: correct, format"),
    ],
)
def test_bad_filter_parameters_are_one_line_user_errors(make, message):
    with pytest.raises(UserError, match=message):
        make()
