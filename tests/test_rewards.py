"""Tests for the reward registry and the rule-based rewards, including reward-hacking attempts that must earn nothing.

Modelled on open-r1's tests/test_rewards.py: each reward on hand-written completions, the edge cases, then the ways a
policy could collect credit without being right or well-formed.
"""

from __future__ import annotations

import math
import threading

import pytest

from r1.errors import UserError
from r1.rewards import (
    answers_match,
    available_rewards,
    build_reward,
    extract_answer,
    get_reward,
    normalize_answer,
    register_verifier,
)
from r1.rewards.language import dominant_language, language_ratio
from r1.rewards.length import estimate_tokens
from r1.rewards.registry import _VERIFIERS
from r1.rewards.text import language_counts, reasoning_text, words


def item(answer="5", prompt="What is 2+3?", task="test_plain", **meta):
    # task names no task library registers a verifier for, so that answers_match is what judges
    return {"prompt": prompt, "answer": answer, "task": task, "meta": meta}


ITEM = item()


def acc(completion, it=ITEM, **opts):
    return get_reward("accuracy", **opts)(completion, it)


def fmt(completion, it=ITEM, **opts):
    return get_reward("format", **opts)(completion, it)


# ---------------------------------------------------------------------------------------------------- extract_answer


class TestExtractAnswer:
    def test_answer_tag(self):
        assert extract_answer("<think>hm</think><answer> 42 </answer>") == "42"

    def test_last_complete_block_wins(self):
        assert extract_answer("<answer>3</answer><answer>5</answer>") == "5"

    def test_incomplete_block_ignored(self):
        assert extract_answer("<answer>3</answer> <answer>5") == "3"
        assert extract_answer("<answer>5") is None

    def test_nested_blocks_take_innermost(self):
        assert extract_answer("<answer><answer>3</answer></answer>") == "3"

    def test_boxed_inside_answer_wins(self):
        assert extract_answer(r"<answer>so the result is \boxed{\frac{1}{2}}.</answer>") == r"\frac{1}{2}"

    def test_boxed_fallback_and_balanced_braces(self):
        text = r"thus \boxed{\frac{1}{2}} and finally \boxed{\sqrt{\frac{3}{4}}}"
        assert extract_answer(text) == r"\sqrt{\frac{3}{4}}"
        assert extract_answer(r"\fbox{7}") == "7"

    def test_unbalanced_box_is_no_answer(self):
        assert extract_answer(r"\boxed{\frac{1}{2}") is None

    def test_modes(self):
        text = r"<answer>3</answer> \boxed{5}"
        assert extract_answer(text, "auto") == "3"
        assert extract_answer(text, "answer_tag") == "3"
        assert extract_answer(text, "boxed") == "5"
        assert extract_answer(r"the answer is \boxed{5}", "answer_tag") is None
        with pytest.raises(UserError):
            extract_answer("x", "latex")  # type: ignore[arg-type]

    def test_only_after_think(self):
        # drafts inside the reasoning are not answers
        assert extract_answer(r"<think>maybe \boxed{3}? <answer>3</answer></think> I give up") is None
        assert extract_answer(r"<think>maybe \boxed{3}?</think> so \boxed{4}") == "4"
        # pre-filled template: the completion has only the closing tag
        assert extract_answer(r"maybe \boxed{3}</think> \boxed{4}") == "4"
        # cut off while thinking
        assert extract_answer(r"<think>the answer is \boxed{3}") is None

    def test_empty_and_none(self):
        assert extract_answer("<answer>   </answer>") is None
        assert extract_answer("") is None
        assert extract_answer("no answer here") is None


# ---------------------------------------------------------------------------------------------------- answers_match


class TestAnswersMatch:
    @pytest.mark.parametrize(
        "pred, ref",
        [
            ("5", "5"),
            ("x = 3", "3"),
            ("x=3", "3"),
            (r"\frac{1}{2}", "0.5"),
            ("0.5", r"\frac{1}{2}"),
            (r"\frac12", "1/2"),
            (r"\dfrac{3}{4}", "0.75"),
            ("-0.5", r"-\frac{1}{2}"),
            ("1,000", "1000"),
            ("1,234,567", "1234567"),
            ("\u22125", "-5"),  # unicode minus
            ("$5$", "5"),
            ("5.", "5"),
            ("1e3", "1000"),
            ("The answer is 5", "5"),
            (r"\text{5}", "5"),
            (r"\sqrt{4}", "2"),
            (r"2\sqrt{2}", r"\sqrt{8}"),
            (r"\{3,5\}", r"\{3, 5\}"),
            ("(1,2)", "(1, 2)"),
            ("A", "a"),
            ("123456789012345678901234567890", "123456789012345678901234567890"),
            (r"\boxed{\frac{1}{2}}", "0.5"),
        ],
    )
    def test_equivalent(self, pred, ref):
        assert answers_match(pred, ref)

    @pytest.mark.parametrize(
        "pred, ref",
        [
            ("6", "5"),
            ("3 or 5", "3"),  # hedging: a set is not the answer
            ("3, 5", "3"),
            ("3 and 5", "3"),
            ("2+3=6, so 5", "5"),  # correct number buried in a wrong statement
            ("7 - 2 = 4", "5"),
            ("3+3=5", "5"),  # an equation only counts as variable = value
            ("x = 3, y = 4", "3"),
            ("123456789012345678901234567891", "123456789012345678901234567890"),  # floats would say equal
            ("1/3", "0.3333"),
            ("B", "A"),
            ("", "5"),
            ("10**100", "10"),
            ("stop", "post"),  # Math-Verify alone reads both as the product s*t*o*p
            ("yes", "no"),
        ],
    )
    def test_not_equivalent(self, pred, ref):
        assert not answers_match(pred, ref)

    def test_numeric_tolerance(self):
        assert answers_match("0.3333333", "0.33333333")  # relative 1e-6 for non-integers
        assert answers_match("3.0000001", "3")
        assert not answers_match("3.001", "3")

    def test_adversarial_input_is_fast_and_false(self):
        import time

        for bomb in [r"10^{10^{10}}", r"9^{9^{9}}", "10^(10^10)", "999999!", "1e99999999", "(" * 500 + "1" + ")" * 500]:
            start = time.perf_counter()
            assert answers_match(bomb, "10") is False
            assert time.perf_counter() - start < 3

    def test_long_answers(self):
        assert answers_match("1" * 5000, "1" * 5000)  # not cached, still compared
        assert not answers_match("1" * 5000, "1")
        assert normalize_answer("x" * 5000) == "x" * 5000

    def test_never_raises_on_junk(self):
        for junk in ["\\", "{", "}", "\\frac{", "$$", "\x00", "<answer>", "\\boxed{", "1/0", "\\frac{1}{0}"]:
            assert answers_match(junk, "5") in (True, False)
            assert isinstance(normalize_answer(junk), str)

    def test_works_outside_the_main_thread(self):
        # math_verify's signal timeouts raise in worker threads unless disabled; answers_match must disable them
        results = []
        t = threading.Thread(
            target=lambda: results.append(
                (
                    answers_match(r"\frac{1}{2}", "0.5"),
                    answers_match("x^2+2x+1", "(x+1)^2"),
                    answers_match(r"10^{10^{10}}", "10"),
                )
            )
        )
        t.start()
        t.join(timeout=30)
        assert results == [(True, True, False)]

    def test_non_string_reference(self):
        assert answers_match("5", 5)  # type: ignore[arg-type]


class TestNormalizeAnswer:
    def test_numbers_vote_together(self):
        keys = {normalize_answer(s) for s in ["1/2", "0.5", r"\frac12", r"\frac{1}{2}", "$0.5$", r"\boxed{0.50}"]}
        assert keys == {"1/2"}

    def test_integers(self):
        assert normalize_answer("1,000") == normalize_answer("1000") == normalize_answer("1000.0") == "1000"
        assert normalize_answer("x = 5") == "5"

    def test_symbolic(self):
        assert normalize_answer(r"\sqrt{2}") == normalize_answer("2^{1/2}")
        assert normalize_answer("3 or 5") != normalize_answer("3")

    def test_strings(self):
        assert normalize_answer("A") == normalize_answer("a")
        assert normalize_answer(r"\text{Yes}") == normalize_answer("yes")


# ---------------------------------------------------------------------------------------------------------- accuracy


class TestAccuracy:
    def test_correct_and_wrong(self):
        assert acc("<think>2+3=5</think><answer>5</answer>") == 1.0
        assert acc("<think>2+3=6</think><answer>6</answer>") == 0.0
        assert acc(r"<think>...</think> The answer is \boxed{5}.") == 1.0

    def test_latex_reference(self):
        it = item(answer=r"\frac{1}{2}")
        assert acc(r"<think>.</think> \boxed{0.5}", it) == 1.0
        assert acc("<answer>0.5</answer>", item(answer="0.5")) == 1.0
        assert acc(r"<answer>\boxed{\frac{1}{2}}</answer>", item(answer="0.5")) == 1.0

    def test_several_answers_last_counts(self):
        # decision: the last complete answer block is THE answer (format gives 0 for the repetition)
        assert acc("<think>.</think><answer>3</answer><answer>5</answer>") == 1.0
        assert acc("<think>.</think><answer>5</answer><answer>3</answer>") == 0.0

    def test_hedged_answer(self):
        assert acc("<answer>3 or 5</answer>", item(answer="3")) == 0.0
        assert acc(r"\boxed{3, 5}", item(answer="3")) == 0.0

    def test_buried_answer(self):
        assert acc("<answer>2+3=6, so 5</answer>") == 0.0
        assert acc("<answer>7 - 2 = 4</answer>") == 0.0
        assert acc("<answer>x = 5</answer>") == 1.0

    def test_answer_outside_tags_when_tags_required(self):
        assert acc("<think>2+3=5</think> 5", mode="answer_tag") == 0.0
        assert acc(r"<think>2+3=5</think> \boxed{5}", mode="answer_tag") == 0.0
        assert acc(r"<think>2+3=5</think> \boxed{5}", mode="auto") == 1.0

    def test_answer_inside_think_does_not_count(self):
        assert acc("<think><answer>5</answer></think>") == 0.0

    def test_no_answer(self):
        assert acc("I don't know") == 0.0
        assert acc("") == 0.0

    def test_huge_numbers_and_commas(self):
        assert acc("<answer>1,000,000</answer>", item(answer="1000000")) == 1.0
        big = "9" * 60
        assert acc(f"<answer>{big}</answer>", item(answer=big)) == 1.0
        assert acc(f"<answer>{big[:-1]}8</answer>", item(answer=big)) == 0.0
        assert acc("<answer>\u22127</answer>", item(answer="-7")) == 1.0

    def test_several_references(self):
        it = item(answer=["5", "five"])
        assert acc("<answer>five</answer>", it) == 1.0

    def test_open_item_earns_nothing_and_does_not_raise(self):
        # no reference and no verifier: an open-ended prompt (model-scored); the judge gives no verdict
        open_item = {"prompt": "p", "task": "nothing", "meta": {}}
        assert acc("<answer>5</answer>", open_item) == 0.0 and acc("<answer>5</answer>", {"prompt": "p"}) == 0.0
        cos = get_reward("cosine_length", max_len=10)
        assert cos("<answer>5</answer>", open_item) == cos("<answer>5</answer>", item(answer="6"))  # the wrong branch

    def test_task_verifier(self):
        def countdown(pred: str, it: dict) -> bool:  # a toy verifier: an expression using the numbers
            nums = sorted(int(t) for t in pred.replace("+", " ").replace("*", " ").split())
            return nums == sorted(it["meta"]["numbers"]) and eval(pred, {"__builtins__": {}}) == it["meta"]["target"]

        register_verifier("toy_countdown", countdown)
        try:
            it = {"prompt": "p", "answer": None, "task": "toy_countdown", "meta": {"numbers": [2, 3, 4], "target": 14}}
            assert acc("<answer>2 + 3 * 4</answer>", it) == 1.0
            assert acc("<answer>14</answer>", it) == 0.0  # the number alone is not an expression of the numbers
            assert acc("<answer>2 * 3 + 4</answer>", it) == 0.0
            with pytest.raises(ValueError, match="already registered"):
                register_verifier("toy_countdown", lambda p, i: True)
        finally:
            _VERIFIERS.pop("toy_countdown", None)

    def test_verifier_exception_scores_zero(self):
        register_verifier("toy_broken", lambda p, i: 1 / 0)
        try:
            assert acc("<answer>5</answer>", item(task="toy_broken")) == 0.0
        finally:
            _VERIFIERS.pop("toy_broken", None)

    def test_bad_mode(self):
        with pytest.raises(UserError, match="mode"):
            get_reward("accuracy", mode="tags")


# ------------------------------------------------------------------------------------------------------------ format


class TestFormat:
    GOOD = "<think>\n2+3=5\n</think>\n<answer>\n5\n</answer>"

    def test_well_formed(self):
        assert fmt(self.GOOD) == 1.0
        assert fmt("<think>a</think><answer>5</answer>") == 1.0  # no newlines needed
        assert fmt("  <think> a </think>\n\n <answer> 5 </answer>\n") == 1.0

    def test_prefilled_prompt(self):
        # the pitfall of open-r1 #235: the chat template already emitted <think>
        prefilled = item(prompt="User: 2+3? Assistant: <think>\n")
        assert fmt("2+3=5\n</think>\n<answer>5</answer>", prefilled) == 1.0
        assert fmt(self.GOOD, prefilled) == 0.0  # would read <think><think>: a repeated tag
        assert fmt("2+3=5\n</think>\n<answer>5</answer>", ITEM) == 0.0  # not pre-filled: <think> is missing

    def test_prefill_flags(self):
        chat = {"messages": [{"role": "user", "content": "2+3?"}], "answer": "5", "task": "t", "meta": {}}
        assert fmt("a</think><answer>5</answer>", chat) == 1.0  # unknown: either form
        assert fmt(self.GOOD, chat) == 1.0
        assert fmt("a</think><answer>5</answer>", chat, think_prefilled=False) == 0.0
        assert fmt(self.GOOD, chat, think_prefilled=True) == 0.0
        chat_meta = dict(chat, meta={"think_prefilled": True})
        assert fmt(self.GOOD, chat_meta) == 0.0
        assert fmt("a</think><answer>5</answer>", chat_meta) == 1.0

    @pytest.mark.parametrize(
        "completion",
        [
            "<think>a</think><answer>3</answer><answer>5</answer>",  # several answers
            "<think><think>a</think></think><answer>5</answer>",  # nested think
            "<think>a</think><think>b</think><answer>5</answer>",  # repeated think
            "<think>a</think><answer><answer>5</answer></answer>",  # nested answer
            "<think>a<answer>5</answer></think><answer>5</answer>",  # answer tag inside think
            "<answer>5</answer><think>a</think>",  # wrong order
            "<think>a</think> the answer is <answer>5</answer>",  # text between
            "<think>a</think><answer>5</answer> trailing text",  # text after
            "preamble <think>a</think><answer>5</answer>",  # text before
            "<think>a</think><answer>   </answer>",  # empty answer
            "<think>a</think><answer>5",  # truncated
            "<think>a</think>5",  # no answer tags
            "5",
            "",
        ],
    )
    def test_malformed(self, completion):
        assert fmt(completion) == 0.0

    def test_empty_think(self):
        assert fmt("<think></think><answer>5</answer>") == 1.0  # R1-Zero allows it
        assert fmt("<think>\n</think><answer>5</answer>", require_reasoning=True) == 0.0
        assert fmt("<think>2+3</think><answer>5</answer>", require_reasoning=True) == 1.0

    def test_bad_options(self):
        with pytest.raises(UserError, match="think_prefilled"):
            get_reward("format", think_prefilled="yes")
        with pytest.raises(UserError, match="no parameter 'strict'"):
            get_reward("format", strict=True)


class TestBoxedFormat:
    def test_r1_chat_usage(self):
        f = get_reward("boxed_format")
        assert f("<think>\nwork\n</think>\nSo the answer is $\\boxed{5}$.", ITEM) == 1.0
        chat = item(prompt="<｜User｜>2+3?<｜Assistant｜><think>\n")
        assert f("work\n</think>\nThe answer is \\boxed{5}", chat) == 1.0

    @pytest.mark.parametrize(
        "completion",
        [
            "<think>work</think> The answer is 5.",  # no box
            "<think>work \\boxed{5}</think> The answer is 5.",  # box only inside the reasoning
            "<think>a</think></think> \\boxed{5}",  # </think> twice
            "<think>a</think><think>b</think> \\boxed{5}",
            "<think>a</think> \\boxed{}",  # empty box
            "<think>a</think> \\boxed{5",  # unbalanced
            "\\boxed{5}",  # no thinking at all
        ],
    )
    def test_malformed(self, completion):
        assert get_reward("boxed_format", think_prefilled=False)(completion, ITEM) == 0.0

    def test_require_reasoning(self):
        f = get_reward("boxed_format", require_reasoning=True)
        assert f("<think> </think> \\boxed{5}", ITEM) == 0.0


class TestTagCount:
    def test_counts(self):
        f = get_reward("tag_count")
        assert f("<think>a</think><answer>5</answer>", ITEM) == 1.0
        assert f("<think>a</think>", ITEM) == 0.5
        assert f("<think>a</think><answer>3</answer><answer>5</answer>", ITEM) == 0.5
        assert f("<think><think>a</think><answer>5</answer>", ITEM) == 0.75
        assert f("nothing", ITEM) == 0.0
        assert f("a</think><answer>5</answer>", item(prompt="Q <think>")) == 1.0


# ------------------------------------------------------------------------------------------------------------ language


class TestLanguage:
    def test_segmentation(self):
        assert language_counts("Hello world 你好 123 + $x^2$ \\frac{1}{2}") == {"en": 2, "zh": 2, "other": 0}
        assert language_counts("Привет мир") == {"en": 0, "zh": 0, "other": 2}
        assert language_counts("α + β = π") == {"en": 0, "zh": 0, "other": 0}  # Greek letters are maths
        assert language_counts("```python\nprint('x')\n```") == {"en": 0, "zh": 0, "other": 0}
        assert words("The cat, THE cat; 猫猫 42") == ["the", "cat", "the", "cat", "猫", "猫", "42"]

    def test_reasoning_text(self):
        assert reasoning_text("<think>abc</think><answer>d</answer>") == "abc"
        assert reasoning_text("abc</think><answer>d</answer>") == "abc"  # pre-filled
        assert reasoning_text("<think>abc") == "abc"  # truncated
        assert reasoning_text("just text") == "just text"

    def test_pure_and_mixed(self):
        f_en = get_reward("language_consistency", target="en")
        f_zh = get_reward("language_consistency", target="zh")
        en = "<think>First add two and three to get five.</think><answer>5</answer>"
        zh = "<think>首先把二和三相加得到五。</think><answer>5</answer>"
        mixed = "<think>首先 add 二和三 to get 五</think><answer>5</answer>"  # 5 CJK words, 3 Latin words
        assert f_en(en, ITEM) == 1.0 and f_zh(en, ITEM) == 0.0
        assert f_zh(zh, ITEM) == 1.0 and f_en(zh, ITEM) == 0.0
        assert f_zh(mixed, ITEM) == pytest.approx(6 / 9)
        assert f_en(mixed, ITEM) == pytest.approx(3 / 9)

    def test_only_reasoning_counts(self):
        f_zh = get_reward("language_consistency", target="zh")
        assert f_zh("<think>二加三等于五</think><answer>five, in English</answer>", ITEM) == 1.0

    def test_maths_is_neutral(self):
        f_zh = get_reward("language_consistency", target="zh")
        assert f_zh("<think>计算 $\\frac{x}{2} + y = 3$，所以 x = 2</think><answer>2</answer>", ITEM) < 1.0  # bare x
        assert f_zh("<think>计算 $\\frac{x}{2} + y = 3$，所以 $x = 2$</think><answer>2</answer>", ITEM) == 1.0

    def test_empty_reasoning(self):
        f = get_reward("language_consistency", target="en")
        assert f("<think></think><answer>5</answer>", ITEM) == 1.0
        assert f("<think>2+3=5</think><answer>5</answer>", ITEM) == 1.0

    def test_auto_target(self):
        f = get_reward("language_consistency")
        zh_item = item(prompt="二加三等于几？")
        zh = "<think>二加三等于五</think><answer>5</answer>"
        assert f(zh, zh_item) == 1.0
        assert f(zh, ITEM) == 0.0
        chat = {"messages": [{"role": "system", "content": "You are helpful"}, {"role": "user", "content": "二加三？"}]}
        assert f(zh, chat) == 1.0
        assert f(zh, item(prompt="二加三等于几？", language="en")) == 0.0  # meta overrides detection
        assert dominant_language("What is 二?") == "en"
        assert language_ratio("", "zh") == 1.0

    def test_bad_target(self):
        with pytest.raises(UserError, match="target"):
            get_reward("language_consistency", target="fr")


# -------------------------------------------------------------------------------------------------------------- length


class TestCosineLength:
    def test_boundaries(self):
        f = get_reward("cosine_length", max_len=100)
        right, wrong = "<answer>5</answer>", "<answer>6</answer>"
        assert f(right, ITEM, length=0) == pytest.approx(1.0)
        assert f(right, ITEM, length=50) == pytest.approx(0.75)
        assert f(right, ITEM, length=100) == pytest.approx(0.5)
        assert f(right, ITEM, length=500) == pytest.approx(0.5)  # clipped, not back up the cosine
        assert f(wrong, ITEM, length=0) == pytest.approx(-1.0)
        assert f(wrong, ITEM, length=50) == pytest.approx(-0.75)
        assert f(wrong, ITEM, length=100) == pytest.approx(-0.5)
        assert f(wrong, ITEM, length=10_000) == pytest.approx(-0.5)

    def test_monotone(self):
        f = get_reward("cosine_length", max_len=64)
        right = [f("<answer>5</answer>", ITEM, length=n) for n in range(0, 70)]
        wrong = [f("<answer>4</answer>", ITEM, length=n) for n in range(0, 70)]
        assert all(a >= b for a, b in zip(right, right[1:]))
        assert all(a <= b for a, b in zip(wrong, wrong[1:]))
        assert min(right) > max(wrong)

    def test_max_len_from_meta_and_estimate(self):
        f = get_reward("cosine_length")
        it = item(max_new_tokens=8)
        assert f("<answer>5</answer>", it, length=8) == pytest.approx(0.5)
        expected = 0.5 + 0.25 * (1 + math.cos(math.pi * estimate_tokens("<answer>5</answer>") / 8))
        assert f("<answer>5</answer>", it) == pytest.approx(expected)
        with pytest.raises(UserError, match="max_new_tokens"):
            f("<answer>5</answer>", ITEM, length=3)

    def test_bad_options(self):
        with pytest.raises(UserError, match="max_len"):
            get_reward("cosine_length", max_len=0)
        with pytest.raises(UserError, match="min_value_correct"):
            get_reward("cosine_length", min_value_correct=2.0)


class TestSoftOverlong:
    def test_boundaries(self):
        f = get_reward("soft_overlong", max_len=100, buffer=20)
        assert f("", ITEM, length=0) == 0.0
        assert f("", ITEM, length=80) == 0.0
        assert f("", ITEM, length=81) == pytest.approx(-1 / 20)
        assert f("", ITEM, length=90) == pytest.approx(-0.5)
        assert f("", ITEM, length=100) == pytest.approx(-1.0)
        assert f("", ITEM, length=101) == -1.0

    def test_dapo_defaults(self):
        f = get_reward("soft_overlong", max_len=20480)  # buffer defaults to 4096
        assert f("", ITEM, length=16384) == 0.0
        assert f("", ITEM, length=18432) == pytest.approx(-0.5)
        g = get_reward("soft_overlong")
        assert g("", item(max_new_tokens=10), length=9) == pytest.approx(-0.5)

    def test_bad_options(self):
        with pytest.raises(UserError, match="buffer"):
            get_reward("soft_overlong", max_len=10, buffer=20)
        with pytest.raises(UserError, match="max_len"):
            get_reward("soft_overlong", max_len=-5)

    def test_estimate_tokens(self):
        assert estimate_tokens("Hello, world!") == 4
        assert estimate_tokens("你好世界") == 4
        assert estimate_tokens("") == 0


# ---------------------------------------------------------------------------------------------------------- repetition


class TestRepetition:
    def test_repeated_vs_diverse(self):
        f = get_reward("repetition", ngram_size=3, max_penalty=-1.0)
        diverse = "the quick brown fox jumps over the lazy dog"
        assert f(diverse, ITEM) == 0.0
        repeated = "wait wait wait wait wait wait wait wait"
        # 6 trigrams, 1 distinct
        assert f(repeated, ITEM) == pytest.approx(-(1 - 1 / 6))
        looped = "I think so. " * 20
        assert f(looped, ITEM) < -0.8

    def test_short_and_empty(self):
        f = get_reward("repetition", ngram_size=3)
        assert f("", ITEM) == 0.0
        assert f("two words", ITEM) == 0.0

    def test_chinese(self):
        f = get_reward("repetition", ngram_size=2, max_penalty=-0.5)
        assert f("我们先算一下这个数", ITEM) == 0.0
        assert f("等等等等等等", ITEM) == pytest.approx(-0.5 * (1 - 1 / 5))

    def test_tags_ignored(self):
        f = get_reward("repetition", ngram_size=1)
        assert f("<think>a</think><answer>b</answer>", ITEM) == 0.0

    def test_bad_options(self):
        with pytest.raises(UserError, match="max_penalty"):
            get_reward("repetition", max_penalty=0.5)
        with pytest.raises(UserError, match="ngram_size"):
            get_reward("repetition", ngram_size=0)


# ------------------------------------------------------------------------------------------------------------ registry


class TestComposite:
    def test_weights_and_components(self):
        r = build_reward({"accuracy": 2.0, "format": 0.5, "tag_count": {"weight": 1.0}})
        good = "<think>2+3=5</think><answer>5</answer>"
        bad = "<answer>4</answer>"
        batch = r.score([good, bad], [ITEM, ITEM])
        assert batch.components == {"accuracy": [1.0, 0.0], "format": [1.0, 0.0], "tag_count": [1.0, 0.5]}
        assert batch.total == [pytest.approx(3.5), pytest.approx(0.5)]
        assert batch.weights == {"accuracy": 2.0, "format": 0.5, "tag_count": 1.0}
        assert batch.means() == {
            "reward": pytest.approx(2.0),
            "reward/accuracy": 0.5,
            "reward/format": 0.5,
            "reward/tag_count": 0.75,
        }
        assert r(good, ITEM) == pytest.approx(3.5)
        assert r.components(bad, ITEM) == {"accuracy": 0.0, "format": 0.0, "tag_count": 0.5}
        assert len(batch) == 2

    def test_lengths_passed_to_length_rewards(self):
        r = build_reward({"soft_overlong": {"max_len": 10, "buffer": 4}, "accuracy": 1})
        batch = r.score(["<answer>5</answer>"] * 3, [ITEM] * 3, lengths=[5, 8, 12])
        assert batch.components["soft_overlong"] == [0.0, pytest.approx(-0.5), -1.0]
        assert batch.total == [1.0, pytest.approx(0.5), 0.0]

    def test_list_spec_and_alias(self):
        r = build_reward(["accuracy", "format"])
        assert r.weights == {"accuracy": 1.0, "format": 1.0}
        r2 = build_reward({"acc_tag": {"reward": "accuracy", "mode": "answer_tag"}, "acc_box": {"reward": "accuracy"}})
        batch = r2.score([r"<think>.</think> \boxed{5}"], [ITEM])
        assert batch.components == {"acc_tag": [0.0], "acc_box": [1.0]}

    def test_unknown_name_lists_valid_ones(self):
        with pytest.raises(UserError) as e:
            build_reward({"acuracy": 1.0})
        msg = str(e.value)
        assert "acuracy" in msg
        for name in available_rewards():
            assert name in msg

    def test_bad_kwargs_name_the_parameter(self):
        with pytest.raises(UserError, match="'ngram'.*ngram_size, max_penalty"):
            build_reward({"repetition": {"weight": 1, "ngram": 3}})
        with pytest.raises(UserError, match="weight"):
            build_reward({"accuracy": "high"})
        with pytest.raises(UserError, match="weight"):
            build_reward({"accuracy": float("nan")})
        with pytest.raises(UserError):
            build_reward({})
        with pytest.raises(UserError):
            build_reward("accuracy")  # type: ignore[arg-type]

    def test_mismatched_batch(self):
        r = build_reward({"accuracy": 1})
        with pytest.raises(UserError):
            r.score(["a", "b"], [ITEM])
        with pytest.raises(UserError):
            r.score(["a"], [ITEM], lengths=[1, 2])

    def test_registry_names(self):
        assert set(available_rewards()) >= {
            "accuracy",
            "format",
            "boxed_format",
            "tag_count",
            "language_consistency",
            "cosine_length",
            "soft_overlong",
            "repetition",
            "code",
        }

    def test_rewards_are_pure(self):
        r = build_reward({"accuracy": 1, "format": 1, "language_consistency": 1, "repetition": 1})
        it = item(extra=[1, 2])
        snapshot = repr(it)
        first = r.score(["<think>a b c a b c</think><answer>5</answer>"] * 2, [it, it])
        second = r.score(["<think>a b c a b c</think><answer>5</answer>"] * 2, [it, it])
        assert first == second
        assert repr(it) == snapshot
