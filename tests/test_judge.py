"""The judge: hand-written cases per template, and the rewards, the evaluator, GRPO's statistics and `r1 run`'s style
table all agreeing with it on a varied set of completions (worked solutions of several tasks, then broken)."""

from __future__ import annotations

import logging

import pytest

from r1.engine.reasoning import split_reasoning
from r1.errors import UserError
from r1.eval import evaluate
from r1.pipeline.stages.evaluate import style_stats
from r1.rewards import get_reward, register_verifier
from r1.rewards.judge import judge
from r1.rewards.registry import _VERIFIERS
from r1.tasks import apply_template, get_task
from r1.train.grpo.rollout import response_stats


def zero_item(answer: str | None = "7", template: str = "r1-zero-short", task: str = "test_judge_plain") -> dict:
    item = {"prompt": "What is 3+4?", "task": task, "meta": {"question": "What is 3+4?"}}
    if answer is not None:
        item["answer"] = answer
    return apply_template(item, template)


# (completion, answer, correct, format_ok, reasoning, summary, reasons, reflects)
R1_ZERO_CASES = [
    (" <think>\n3+4=7\n</think>\n<answer>7</answer>", "7", True, True, "\n3+4=7\n", "7", True, False),
    (" <think>\n</think>\n<answer>7</answer>", "7", True, True, "\n", "7", False, False),  # direct: empty think
    (
        " <think>\n3+4=8 wait, 3+4=7\n</think>\n<answer>7</answer>",
        "7",
        True,
        True,
        "\n3+4=8 wait, 3+4=7\n",
        "7",
        True,
        True,
    ),
    (" <think>\n3+4=6\n</think>\n<answer>6</answer>", "6", False, True, "\n3+4=6\n", "6", True, False),
    # the R1-Zero templates take the answer from <answer> only: a box is not the asked format
    (
        " <think>3+4=7</think> The answer is \\boxed{7}.",
        None,
        False,
        False,
        "3+4=7",
        "The answer is \\boxed{7}.",
        True,
        False,
    ),
    # no opener: the prompt did not open <think>, so there is no reasoning part (split_reasoning's rule)
    ("3+4=7\n</think>\n<answer>7</answer>", "7", True, False, None, "3+4=7\n\n7", False, False),
    (" <think>\n</think>\n<answer></answer>", None, False, False, "\n", "", False, False),  # empty answer
    (" <think>a</think><answer>7</answer> Wait", "7", True, False, "a", "7 Wait", True, False),  # not a re-check
    (
        " <think>the waiter said Wait</think><answer>7</answer>",
        "7",
        True,
        True,
        "the waiter said Wait",
        "7",
        True,
        True,
    ),  # "waiter" is not "wait", "Wait" is
    (" <think>好的 等等，再算</think><answer>7</answer>", "7", True, True, "好的 等等，再算", "7", True, True),
    (" <think><answer>7</answer></think>", None, False, False, "<answer>7</answer>", "", True, False),  # a draft
    (" <think>\n3+4=7 wait", None, False, False, "\n3+4=7 wait", "", True, True),  # cut off while thinking
]


@pytest.mark.parametrize("template", ["r1-zero", "r1-zero-short"])
@pytest.mark.parametrize("text, answer, correct, fmt, reasoning, summary, reasons, reflects", R1_ZERO_CASES)
def test_r1_zero_templates(template, text, answer, correct, fmt, reasoning, summary, reasons, reflects):
    v = judge(text, zero_item(template=template))
    assert (v.answer, v.correct, v.format_ok) == (answer, correct, fmt)
    assert (v.reasoning, v.summary, v.reasons, v.reflects) == (reasoning, summary, reasons, reflects)
    assert v.template == template and v.truncated is None
    assert (v.reasoning, v.summary) == split_reasoning(text, in_think=False)  # the engine's rule, reused


R1_CASES = [
    # the chat template opened <think>: the completion continues the reasoning and boxes the answer in the summary
    ("3+4=7\n</think>\nThe answer is \\boxed{7}.", "7", True, True, "3+4=7\n", "The answer is \\boxed{7}.", True),
    ("<think>\n3+4=7\n</think>\n\\boxed{7}", "7", True, True, "\n3+4=7\n", "\\boxed{7}", True),  # opener repeated
    ("</think>\\boxed{7}", "7", True, True, "", "\\boxed{7}", False),  # no reasoning
    ("3+4=7 so \\boxed{7}", None, False, False, "3+4=7 so \\boxed{7}", "", True),  # never closed: still thinking
    ("3+4=7\n</think>\n<answer>7</answer>", None, False, False, "3+4=7\n", "7", True),  # R1 asks for a box
    ("a</think>b</think>\\boxed{7}", "7", True, False, "a", "b\\boxed{7}", True),  # two closers: not the format
    ("3+4=7\n</think>\n\\boxed{}", None, False, False, "3+4=7\n", "\\boxed{}", True),  # an empty box
]


@pytest.mark.parametrize("text, answer, correct, fmt, reasoning, summary, reasons", R1_CASES)
def test_r1_template(text, answer, correct, fmt, reasoning, summary, reasons):
    v = judge(text, zero_item(template="r1"))
    assert (v.answer, v.correct, v.format_ok) == (answer, correct, fmt)
    assert (v.reasoning, v.summary, v.reasons) == (reasoning, summary, reasons)
    assert (v.reasoning, v.summary) == split_reasoning(text, in_think=True) and v.template == "r1"


def test_without_a_template_the_tag_else_the_box_and_the_prompt_says_who_opened_think():
    item = {"prompt": "What is 3+4?", "answer": "7", "task": "test_judge_plain", "meta": {}}
    for text, answer in [("\\boxed{7}", "7"), ("<answer>7</answer>", "7"), ("<answer>6</answer> \\boxed{7}", "6")]:
        v = judge(text, item)
        assert (v.answer, v.format_ok, v.template, v.reasoning) == (answer, True, None, None)
    assert not judge("no answer", item).format_ok
    opened = {**item, "prompt": "User: What is 3+4? Assistant: <think>\n"}
    v = judge("3+4=7</think> \\boxed{7}", opened)
    assert (v.reasoning, v.reasons, v.correct) == ("3+4=7", True, True)
    unclosed = judge("3+4=7 \\boxed{7}", opened)  # the prompt opened <think> and it never closed: still thinking
    assert (unclosed.answer, unclosed.format_ok, unclosed.reasons) == (None, False, True)


def test_the_template_comes_from_the_call_else_from_the_item():
    text = "3+4=7\n</think>\n\\boxed{7}"
    r1_item = zero_item(template="r1")
    assert judge(text, r1_item).correct is True  # meta.template = r1
    assert judge(text, r1_item, "r1-zero").correct is False  # the caller's template wins
    assert judge(text, r1_item, "none").template == "r1"  # "none": the item's own, like None
    with pytest.raises(UserError, match="unknown template 'chatml'; valid templates: r1-zero, r1-zero-short, r1"):
        judge(text, r1_item, "chatml")


def test_answer_mode_overrides_the_template_and_truncation_is_what_the_caller_says():
    text = " <think>3+4=7</think> \\boxed{7}"
    assert judge(text, zero_item()).answer is None
    assert judge(text, zero_item(), answer_mode="auto").answer == "7"
    assert judge(text, zero_item(), finish_reason="length").truncated is True
    assert judge(text, zero_item(), finish_reason="stop").truncated is False


def test_custom_reflection_words():
    text = " <think>3+4=7, hmm, recount: 7</think><answer>7</answer>"
    assert not judge(text, zero_item()).reflects
    assert judge(text, zero_item(), reflection_words=["recount"]).reflects


def test_open_ended_items_have_no_verdict_verifiers_judge_without_a_reference(caplog):
    open_item = {"prompt": "Write a haiku about rain.", "task": "chat", "meta": {}}
    v = judge(" <think>drops</think><answer>Rain on the roof</answer>", open_item)
    assert v.correct is None and v.answer == "Rain on the roof" and v.format_ok is True
    assert judge("no answer at all", {"prompt": "Hi"}).correct is None  # not even a task
    cd = get_task("countdown").generate(1, seed=0)[0]
    no_reference = {k: v for k, v in cd.items() if k != "answer"}  # the verifier needs only the numbers
    assert judge(f"<answer>{cd['answer']}</answer>", no_reference).correct is True
    assert judge("<answer>1+1</answer>", no_reference).correct is False
    register_verifier("test_judge_broken", lambda pred, item: 1 / 0)
    try:
        with caplog.at_level(logging.WARNING, logger="r1.rewards.judge"):
            assert judge("<answer>5</answer>", {"prompt": "p", "task": "test_judge_broken"}).correct is False
        assert "verifier for task 'test_judge_broken' raised" in caplog.text
    finally:
        _VERIFIERS.pop("test_judge_broken", None)


# --------------------------------------------------------------------------------------------------------- agreement


def _completions(item: dict) -> list[str]:
    """Worked solutions in every style and answer format, and the ways a sampled completion goes wrong."""
    task = get_task(item["task"])
    good = [
        task.solution(item, style, fmt, seed=s)
        for style in ("direct", "steps", "check", "guess")
        for fmt in ("tags", "boxed")
        for s in (0, 1)
    ]
    out = []
    for text in good:
        think, _, rest = text.partition("</think>")
        out += [
            " " + text,
            text[len("<think>") :],
            think,
            think + "</think>",
            text + " wait, <answer>0</answer>",
            text.replace(str(item["answer"]), "-1"),
            text[: len(text) // 2],
            text.replace("<think>", "<think><think>"),
            rest,
            " <think>\n</think>\n<answer></answer>",
        ]
    return out


@pytest.fixture(scope="module")
def corpus() -> list[tuple[dict, str]]:
    items = [get_task(name).generate(1, seed=3)[0] for name in ("modchain", "arith", "countdown", "word")]
    return [(item, text) for item in items for text in _completions(item)]


@pytest.mark.parametrize("template", ["r1-zero-short", "r1", None])
def test_rewards_agree_with_the_judge(corpus, template):
    accuracy, fmt, boxed = get_reward("accuracy"), get_reward("format"), get_reward("boxed_format")
    format_reward = boxed if template == "r1" else fmt
    correct = 0
    for item, text in corpus:
        it = apply_template(item, template) if template else item
        v = judge(text, it)
        assert accuracy(text, it) == float(bool(v.correct)), text
        correct += bool(v.correct)
        if template is not None:
            assert format_reward(text, it) == float(v.format_ok), text
    assert 0 < correct < len(corpus)  # the set has right and wrong answers under every template


def test_the_evaluator_and_the_style_table_agree_with_the_judge(corpus):
    items = [apply_template(item, "r1-zero-short") for item, _ in corpus]
    texts = [text for _, text in corpus]

    def generate(batch, n, params):  # the corpus, one completion per item, half of them "cut at the limit"
        start = params["seed"]
        return [
            [{"text": texts[start + i], "num_tokens": 5, "finish_reason": "length" if (start + i) % 2 else "stop"}]
            for i in range(len(batch))
        ]

    result = evaluate(items, generate, k=1, template=None, progress=False, batch_size=7)
    verdicts = [
        judge(t, it, finish_reason="length" if i % 2 else "stop") for i, (it, t) in enumerate(zip(items, texts))
    ]
    assert result.verdicts == verdicts
    for rec, v in zip(result.samples, verdicts):
        assert (rec["pred"], rec["correct"], rec["format_ok"], rec["reasons"], rec["reflects"]) == (
            v.answer,
            v.correct,
            v.format_ok,
            v.reasons,
            v.reflects,
        )
    n = len(verdicts)
    assert result.overall["pass@1"] == pytest.approx(sum(bool(v.correct) for v in verdicts) / n)
    assert result.overall["format_rate"] == pytest.approx(sum(v.format_ok for v in verdicts) / n)
    stats = response_stats(verdicts, [5] * n)
    assert stats["accuracy"] == pytest.approx(result.overall["pass@1"])
    assert stats["format_rate"] == pytest.approx(result.overall["format_rate"])
    assert stats["truncated"] == pytest.approx(result.overall["truncated_share"])
    table = style_stats(result.samples, set())["all"]
    assert table["think_share"] == pytest.approx(stats["long_form"]) == sum(v.reasons for v in verdicts) / n
    assert table["wait"] == pytest.approx(stats["reflection"]) and 0 < stats["reflection"] < stats["long_form"] < 1
    assert table["wait_in_long"] == pytest.approx(stats["reflection_long"])
