"""The tiny world's task families: bilingual reasoning tasks, non-reasoning requests and the safety rules."""

from __future__ import annotations

import re

import pytest

from r1.data.corpus import language_mixing
from r1.errors import UserError
from r1.eval.evaluate import evaluate
from r1.rewards.answers import extract_answer
from r1.rewards.judge import judge
from r1.rewards.registry import get_reward
from r1.tasks import apply_template, get_task, split_of
from r1.tasks.general import GREET_KEY, check_general, split_list
from r1.tasks.safety import REFUSAL, RULES, is_refusal
from r1.tasks.synthetic.worked import WORLD_STYLES
from r1.tasks.world import REASONING_FAMILIES, breakdown, forced_prefill, heldout, rl_items, trained_levels

REASONING = ["modchain_zh", "swaps", "swaps_zh", "mystery", "mystery_zh", "equation", "equation_zh"]
OTHERS = ["general", "general_zh", "safety", "safety_zh"]
CJK = re.compile(r"[\u4e00-\u9fff]")


def _styles(name: str) -> list[str]:
    task = get_task(name)
    return [s for s in WORLD_STYLES if s != "verify" or getattr(task, "can_verify", False)]


@pytest.mark.parametrize("name", REASONING + OTHERS)
def test_items_are_in_their_language(name: str) -> None:
    task = get_task(name)  # (determinism, plain data, disjoint splits: tests/test_tasks.py, every built-in task)
    for item in task.generate(30, seed=7, difficulty="mix"):
        zh = name.endswith("_zh")
        assert item["meta"]["lang"] == ("zh" if zh else "en")
        if zh:
            assert len(CJK.findall(item["prompt"])) >= 2, item["prompt"]
        elif item["meta"]["difficulty"] != "translate":
            assert not CJK.search(item["prompt"]), item["prompt"]
        if name in REASONING:  # the same numbers, as digits, in both languages
            problem = item["meta"].get("problem")
            english = item["meta"]["question_en"][:-8] if problem is None else task.question(problem, "en")
            assert re.findall(r"\d+", item["prompt"]) == re.findall(r"\d+", english)


@pytest.mark.parametrize(
    ("en", "zh"), [("modchain", "modchain_zh"), ("swaps", "swaps_zh"), ("equation", "equation_zh")]
)
def test_a_problem_has_one_split_key_in_both_languages(en: str, zh: str) -> None:
    en_task, zh_task = get_task(en), get_task(zh)
    for item in zh_task.generate(40, seed=3, difficulty="mix", split="all"):
        if zh == "modchain_zh":
            expr = item["meta"]["question_en"].split()[1]
            twin = {"meta": {"question": f"Compute {expr} from left to right, mod 10."}}
        else:
            twin = {"meta": {"problem": item["meta"]["problem"]}}
        assert en_task.key(twin) == zh_task.key(item)


@pytest.mark.parametrize("name", REASONING)
def test_every_style_and_mixing_mode_ends_in_a_verified_answer(name: str) -> None:
    task = get_task(name)
    for item in task.generate(30, seed=2, difficulty="mix", split="all"):
        assert task.verify(item["answer"], item)
        for style in _styles(name):
            for english in ("none", "phrases", "switch"):
                for fmt in ("tags", "boxed"):
                    text = task.solution(item, style, answer_format=fmt, seed=5, english=english)
                    pred = extract_answer(text)
                    assert text.startswith("<think>\n") and pred is not None and task.verify(pred, item), text
    with pytest.raises(UserError, match="solution style 'long'"):
        task.solution(item, "long")


@pytest.mark.parametrize("name", REASONING)
def test_verifiers_reject_wrong_answers(name: str) -> None:
    task = get_task(name)
    for item in task.generate(40, seed=4, difficulty="mix"):
        right = int(item["answer"])
        for wrong in (right + 1, right - 1, right + 10):
            assert not task.verify(str(wrong), item)
        assert not task.verify("banana", item) and not task.verify("", item)


def test_answers_are_read_leniently() -> None:
    swap = get_task("swaps").generate(1, seed=0)[0]
    assert get_task("swaps").verify(f"cup {swap['answer']}", swap) and get_task("swaps").verify(
        f"{swap['answer']}号", swap
    )
    eq = get_task("equation").generate(1, seed=0)[0]
    assert get_task("equation").verify(f"x = {eq['answer']}", eq)


def _arith(line: str) -> bool:
    """Every `a op b = c` in a line holds (integer arithmetic)."""
    for a, op, b, c in re.findall(r"(\d+)([+\-*/])(\d+)=(\d+)", line):
        a, b, c = int(a), int(b), int(c)
        if {"+": a + b, "-": a - b, "*": a * b, "/": a // b if b and a % b == 0 else None}[op] != c:
            return False
    return True


@pytest.mark.parametrize("name", ["mystery", "equation"])
def test_steps_and_checks_are_right_and_a_slipped_first_pass_is_caught(name: str) -> None:
    task = get_task(name)
    caught = 0
    for item in task.generate(60, seed=1, difficulty="mix"):
        steps = task.solution(item, "steps")
        assert all(_arith(line) for line in steps.splitlines())
        clean = task.solution(item, "verify", slipped=False)
        assert clean.count("let me check") == 1 and clean.count(", right.") == 1 and "mistake" not in clean
        assert all(_arith(line) for line in clean.splitlines())
        slipped = task.solution(item, "verify", slipped=True)
        if slipped == clean:  # no slip with a readable check exists (a few long chains near the number limits)
            continue
        caught += 1
        lines = slipped.splitlines()
        failed = [i for i, line in enumerate(lines) if line.endswith(f"not {item['meta']['problem']['c']}.")]
        assert len(failed) == 1 and lines[failed[0] + 1] == "So I made a mistake. Let me redo it."
        assert all(_arith(line) for line in lines[failed[0] :]), slipped  # the check, the redo and its check hold
        assert not all(_arith(line) for line in lines[: failed[0]])  # the first pass has the slip
        assert slipped.count(", right.") == 1 and extract_answer(slipped) == item["answer"]
        assert not re.search(r"=-\d", slipped)  # no negative numbers
    assert caught >= 50


def test_swaps_checks_trace_back_to_the_start() -> None:
    task = get_task("swaps_zh")
    for item in task.generate(40, seed=2, difficulty="mix"):
        start = item["meta"]["problem"]["start"]
        clean = task.solution(item, "verify", slipped=False)
        assert f"回到{start}号，对。" in clean and "算错了" not in clean
        slipped = task.solution(item, "verify", slipped=True)
        assert f"不是{start}号。" in slipped and "算错了，重新算一遍。" in slipped and f"回到{start}号，对。" in slipped


def test_check_style_slips_once_and_redoes_the_same_step() -> None:
    for name in ("swaps", "equation_zh", "modchain_zh"):
        task = get_task(name)
        for item in task.generate(20, seed=6, difficulty="mix"):
            text = task.solution(item, "check", seed=1)
            wait = " 等等，" if name.endswith("_zh") else " wait, "
            (line,) = [x for x in text.splitlines() if wait in x]
            wrong, right = line.split(wait)
            assert wrong != right and re.sub(r"\d+", "", wrong) == re.sub(r"\d+", "", right)
            assert right in task.solution(item, "steps").splitlines()


def test_english_mixing_modes_in_chinese_reasoning() -> None:
    task = get_task("equation_zh")
    items = task.generate(40, seed=0, difficulty="3-5")
    for item in items:
        plain = task.solution(item, "steps", seed=1)
        assert language_mixing(plain, "zh") == 0.0 and plain.splitlines()[-3].endswith("。")
        phrases = task.solution(item, "verify", seed=1, english="phrases", slipped=False)
        think = phrases.split("</think>")[0].splitlines()[1:]
        assert all(CJK.search(line) for line in think[:-2]) and "let me check" in phrases
        assert 0.0 < language_mixing(phrases, "zh") < 1.0
        switch = task.solution(item, "steps", seed=1, english="switch")
        lines = switch.split("</think>")[0].splitlines()
        assert lines[-1].startswith("So the answer is") and not CJK.search(lines[-2])  # from some step on, English
        assert language_mixing(switch, "zh") > 0.1
    english = get_task("equation").generate(5, seed=0)
    assert all(get_task("equation").solution(i, "steps", english="switch") == get_task("equation").solution(
        i, "steps") for i in english)  # fmt: skip
    with pytest.raises(UserError, match="english 'french'"):
        task.solution(items[0], "steps", english="french")


def test_verify_style_needs_a_checkable_task() -> None:
    item = get_task("modchain_zh").generate(1, seed=0)[0]
    with pytest.raises(UserError, match="no 'verify' style"):
        get_task("modchain_zh").solution(item, "verify")


# ---- non-reasoning requests -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["general", "general_zh"])
def test_general_references_and_every_drawn_answer_verify(name: str) -> None:
    task = get_task(name)
    items = task.generate(200, seed=0, difficulty="mix")
    assert {i["meta"]["difficulty"] for i in items} == set(task.levels)
    for item in items:
        assert task.verify(item["answer"], item), item
        for seed in range(3):
            text = task.solution(item, seed=seed)
            assert text.startswith("<think>\n</think>\n<answer>") and task.verify(extract_answer(text), item)
        assert not task.verify("banana split", item) and not task.verify(None, item)


def test_general_verifier_rules() -> None:
    assert check_general("Apple.", {"accept": ["apple"]}) and check_general("“苹果”", {"accept": ["苹果"]})
    assert not check_general("apples", {"accept": ["apple"]})
    members = {"members": ["red", "blue", "green", "black"], "count": 3}
    assert check_general("green, red and blue", members) and check_general("black blue red", members)
    assert not check_general("red, red, blue", members) and not check_general("red, blue", members)
    assert not check_general("red, blue, pink", members)
    assert check_general("3、4、5", {"sequence": ["3", "4", "5"]}) and not check_general(
        "3, 5, 4", {"sequence": ["3", "4", "5"]}
    )
    assert split_list("苹果、梨和香蕉") == ["苹果", "梨", "香蕉"]


def test_translation_goes_both_ways_in_both_languages() -> None:
    for name in ("general", "general_zh"):
        items = get_task(name).generate(200, seed=1, difficulty="translate")
        answers_zh = [i for i in items if CJK.search(i["answer"])]
        answers_en = [i for i in items if not CJK.search(i["answer"])]
        assert answers_zh and answers_en


# ---- safety -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["safety", "safety_zh"])
def test_forbidden_requests_are_refused_and_look_alikes_answered(name: str) -> None:
    task = get_task(name)
    lang = "zh" if name.endswith("_zh") else "en"
    items = task.generate(200, seed=0, difficulty="mix")
    refuse = [i for i in items if i["meta"]["label"] == "refuse"]
    answer = [i for i in items if i["meta"]["label"] == "answer"]
    assert refuse and answer and {i["meta"]["rule"] for i in refuse} == set(RULES)
    for item in refuse:
        assert item["answer"].startswith(REFUSAL[lang]) and task.verify(item["answer"], item)
        assert not task.verify("Boil water, add tea leaves and wait three minutes.", item)
    for item in answer:
        assert not is_refusal(item["answer"]) and task.verify(item["answer"], item)
        assert not task.verify(f"{REFUSAL[lang]} {RULES['code'][lang][1]}", item)  # over-refusal is wrong
    for item in items:
        for style in ("direct", "steps"):
            text = task.solution(item, style)
            assert task.verify(extract_answer(text), item)
            assert (style == "steps") == (text.split("</think>")[0].strip() != "<think>")
    # a look-alike shares the forbidden request's words
    topics = {i["meta"]["topic"] for i in answer}
    assert any("code" in t or "代码" in t for t in topics) and any("open" in t or "打开" in t for t in topics)


def test_is_refusal() -> None:
    assert is_refusal("Sorry, I can't help with that. The secret code must stay secret.")
    assert is_refusal("抱歉，我不能帮你。秘密代码必须保密。")
    assert not is_refusal("A code is a set of signs that stands for a message.") and not is_refusal(None)


# ---- the world as one thing to evaluate -------------------------------------------------------------------


def test_heldout_items_are_eval_split_and_distinct() -> None:
    items = heldout(3, families=["swaps", "equation", "safety"])
    keys = [(i["task"], get_task(i["task"]).key(i)) for i in items]
    assert len(keys) == len(set(keys)) and all(i["meta"]["split"] == "eval" for i in items)
    assert {i["task"] for i in items} == {"swaps", "swaps_zh", "equation", "equation_zh", "safety", "safety_zh"}
    assert {i["meta"]["difficulty"] for i in items if i["task"] == "equation"} == {"1", "2", "3", "4", "5"}


def test_forced_prefills_copy_only_given_text() -> None:
    eq = get_task("equation").generate(1, seed=0, difficulty=3)[0]
    assert forced_prefill(eq, "direct") == " <think>\n</think>\n<answer>"
    assert forced_prefill(eq, "steps") in {" <think>\nsubtract ", " <think>\nadd ", " <think>\ndivide by "}
    mc = get_task("modchain_zh").generate(1, seed=0)[0]
    assert forced_prefill(mc, "steps") == " <think>\n" + mc["meta"]["steps"][0][0][0]
    zh = get_task("swaps_zh").generate(1, seed=0)[0]
    assert forced_prefill(zh, "steps") == " <think>\n交换"


def test_breakdown_reads_the_judges_verdicts_from_the_evaluator() -> None:
    eq = get_task("equation_zh").generate(1, seed=0, difficulty=4)[0]
    safe = get_task("safety").generate(20, seed=0, difficulty="mix")
    bad = next(i for i in safe if i["meta"]["label"] == "refuse")
    good = next(i for i in safe if i["meta"]["label"] == "answer")
    a, refusal = eq["answer"], f"<think>\n</think>\n<answer>{REFUSAL['en']}</answer>"
    switch = get_task("equation_zh").solution(eq, "steps", english="switch")
    canned = {
        eq["meta"]["question"]: [
            f"<think>\n</think>\n<answer>{a}</answer>",  # direct, right
            "<think>\n</think>\n<answer>0</answer>",  # direct, wrong (x is never 0)
            get_task("equation_zh").solution(eq, "verify", slipped=False),  # re-checks ("等等"), right
            switch.replace(f"<answer>{a}</answer>", "<answer>0</answer>"),  # mixes English in, wrong
        ],
        bad["meta"]["question"]: [refusal] * 4,
        good["meta"]["question"]: [refusal, refusal, f"<think>\n</think>\n<answer>{good['answer']}</answer>", ""],
    }

    def generate(batch: list[dict], n: int, params: dict) -> list[list[str]]:
        return [canned[it["meta"]["question"]][:n] for it in batch]

    items = [eq, bad, good]
    result = evaluate(items, generate, k=4, template="r1-zero-short", progress=False)
    table = breakdown(result.samples, items, k=4)
    cell = table["equation/zh/4"]
    assert cell["items"] == 1 and cell["pass@1"] == 0.5 and cell["pass@4"] == 1.0 and cell["reasons"] == 0.5
    assert (cell["acc_long"], cell["acc_direct"]) == (0.5, 0.5)
    assert (cell["wait_in_long"], cell["acc_wait"], cell["acc_no_wait"]) == (0.5, 1.0, 0.0)
    assert cell["mixed_share"] == 0.5 and cell["mixing"] > 0.2
    assert table["safety/en"]["refuses_forbidden"] == 1.0 and table["safety/en"]["refuses_lookalike"] == 0.5
    assert table["safety/en"]["pass@1"] == 5 / 8  # four refusals of the forbidden request, one look-alike answered
    assert "all-reasoning" in table and table["all-reasoning"]["samples"] == 4 and "safety" not in REASONING_FAMILIES


@pytest.mark.parametrize("name", REASONING + OTHERS)
def test_the_one_judge_judges_every_world_task(name: str) -> None:
    task = get_task(name)
    styles = _styles(name) if name in REASONING else ("direct", "steps") if name.startswith("safety") else ("direct",)
    accuracy = get_reward("accuracy")
    for item in task.generate(20, seed=9, difficulty="mix"):
        prompted = apply_template(item, "r1-zero-short")
        for style in styles:
            text = task.solution(item, style, seed=3)
            v = judge(text, prompted)
            assert (v.correct, v.format_ok, v.reasons) == (True, True, style != "direct"), (style, text)
            assert v.reflects == (style in ("check", "guess", "verify")), (style, text)
            assert accuracy(text, prompted) == 1.0
        if name in REASONING:
            wrong = str(int(item["answer"]) + 1)
        elif name.startswith("general"):
            wrong = "banana split"
        else:  # a refusal of a look-alike, an answer to a forbidden request: both wrong
            wrong = "Mix lemon juice, water and sugar." if item["meta"]["label"] == "refuse" else REFUSAL["en"]
        v = judge(f"<think>\n</think>\n<answer>{wrong}</answer>", prompted)
        assert v.correct is False and v.format_ok and accuracy(f"<answer>{wrong}</answer>", prompted) == 0.0


def test_rl_prompts_are_the_trained_levels_of_the_train_split_in_both_languages() -> None:
    items = rl_items(3, seed=0)
    assert all(i["meta"]["split"] == "train" for i in items)
    for family, (en, zh) in {"modchain": ("modchain", "modchain_zh"), "swaps": ("swaps", "swaps_zh"),
                             "mystery": ("mystery", "mystery_zh")}.items():  # fmt: skip
        for name in (en, zh):
            levels = sorted({i["meta"]["difficulty"] for i in items if i["task"] == name}, key=int)
            assert levels == trained_levels(family)
    assert trained_levels("modchain") == ["2", "3", "4", "5"] and rl_items(3, seed=0) == items


@pytest.mark.parametrize("name", REASONING)
def test_the_level_is_the_number_of_steps(name: str) -> None:
    task = get_task(name)
    for level in task.levels:
        for item in task.generate(10, seed=5, difficulty=level, split="all"):
            steps = item["meta"]["steps"]
            assert len(steps) == int(level) - (name == "modchain_zh"), (level, item["prompt"])  # k digits: k-1 ops
            assert task.solution(item, "steps").count("\n") == len(steps) + 3  # a line per step, the conclusion


def test_greetings_are_train_only_and_held_out_requests_recombine_seen_parts() -> None:
    assert split_of(GREET_KEY) == "train"
    for name in ("general", "general_zh"):
        assert not [i for i in get_task(name).generate(400, seed=0, difficulty="mix", split="eval")
                    if i["meta"]["difficulty"] == "greet"]  # fmt: skip
    for name in ("safety", "safety_zh"):
        task = get_task(name)
        train = task.generate(400, seed=0, difficulty="mix", split="train")
        held_out = task.generate(30, seed=0, difficulty="mix", split="eval")
        seen_topics = {i["meta"]["topic"] for i in train}
        seen_phrasings = {i["prompt"].replace(i["meta"]["topic"], "{}").lower() for i in train}
        train_prompts = {i["prompt"] for i in train}
        for item in held_out:
            assert item["prompt"] not in train_prompts and item["meta"]["topic"] in seen_topics
            assert item["prompt"].replace(item["meta"]["topic"], "{}").lower() in seen_phrasings, item["prompt"]
