"""Task generators, verifiers, solutions, registry, templates and the `r1 tasks` CLI."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from r1.cli import main
from r1.errors import UserError
from r1.rewards.answers import extract_answer
from r1.tasks import STYLES, apply_template, get_task, list_tasks, split_of
from r1.tasks.base import parse_int
from r1.tasks.synthetic import check_countdown
from r1.tasks.templates import R1_INSTRUCTION

BUILTIN = ["arith", "countdown", "linear", "modchain", "multiply", "word", "word_zh"]


def test_registry_lists_builtins_and_rejects_unknown_names() -> None:
    assert set(BUILTIN) <= set(list_tasks())
    with pytest.raises(UserError, match=r"unknown task 'nope'; valid tasks: arith, countdown"):
        get_task("nope")


def test_reasoning_gym_absence_is_a_clear_user_error() -> None:
    if importlib.util.find_spec("reasoning_gym") is not None:
        pytest.skip("reasoning-gym is installed here")
    with pytest.raises(UserError, match=r"^reasoning-gym is not installed: pip install reasoning-gym$"):
        get_task("rg:leg_counting")


@pytest.mark.parametrize("name", BUILTIN)
def test_generation_is_deterministic_and_prefix_stable(name: str) -> None:
    task = get_task(name)
    a = task.generate(12, seed=7, difficulty="mix")
    assert a == task.generate(12, seed=7, difficulty="mix")
    assert task.generate(5, seed=7, difficulty="mix") == a[:5]
    assert [i["prompt"] for i in task.generate(12, seed=8, difficulty="mix")] != [i["prompt"] for i in a]
    for item in a:
        assert set(item) == {"prompt", "answer", "task", "meta"} and item["task"] == name
        assert item["meta"]["difficulty"] in task.levels and item["meta"]["split"] == "train"
        json.dumps(item)  # plain data


def test_golden_items_do_not_drift() -> None:
    # seeds are strings hashed by random.Random and SHA-256 split keys: stable across processes and versions
    assert get_task("modchain").generate(1, seed=0)[0]["prompt"] == "Compute 6+4*7+9 from left to right, mod 10."
    cd = get_task("countdown").generate(1, seed=0, split="eval")[0]
    assert (cd["meta"]["numbers"], cd["meta"]["target"], cd["answer"]) == ([22, 6, 27, 7], 184, "27*6+22")


@pytest.mark.parametrize("name", BUILTIN)
def test_higher_difficulty_is_measurably_harder(name: str) -> None:
    task = get_task(name)

    def mean_solution_chars(level: str) -> float:
        items = task.generate(60, seed=1, difficulty=level)
        return sum(len(task.solution(i, "steps")) for i in items) / len(items)

    assert mean_solution_chars(task.levels[-1]) > 1.3 * mean_solution_chars(task.levels[0])


def test_modchain_level_is_the_number_of_digits() -> None:
    for k in range(2, 9):
        item = get_task("modchain").generate(1, seed=3, difficulty=k)[0]
        assert len(item["meta"]["steps"]) == k - 1
        digits = [c for c in item["meta"]["question"].split()[1] if c.isdigit()]
        assert len(digits) == len(set(digits)) == k


def test_difficulty_specs() -> None:
    task = get_task("linear")
    assert task.levels_for(None) == ["3"] and task.levels_for(2) == ["2"]
    assert task.levels_for("2-4") == ["2", "3", "4"] and task.levels_for("mix") == list(task.levels)
    with pytest.raises(UserError, match=r"task linear: difficulty '9' is not valid; expected one of 1, 2, 3, 4, 5"):
        task.generate(1, difficulty="9")
    with pytest.raises(UserError, match="split 'test' is not valid"):
        task.generate(1, split="test")


@pytest.mark.parametrize("name", BUILTIN)
def test_train_and_eval_splits_never_overlap(name: str) -> None:
    task = get_task(name)
    train = task.generate(300, seed=0, difficulty="mix", split="train")
    held_out = task.generate(30, seed=0, difficulty="mix", split="eval")
    train_keys, eval_keys = {task.key(i) for i in train}, {task.key(i) for i in held_out}
    assert not train_keys & eval_keys
    assert all(split_of(k) == "eval" for k in eval_keys) and all(split_of(k) == "train" for k in train_keys)


@pytest.mark.parametrize("name", BUILTIN)
def test_every_solution_style_verifies(name: str) -> None:
    task = get_task(name)
    for item in task.generate(25, seed=2, difficulty="mix", split="all"):
        assert task.verify(item["answer"], item)
        for style in STYLES:
            for fmt in ("tags", "boxed"):
                text = task.solution(item, style, answer_format=fmt)
                assert text.startswith("<think>\n")
                pred = extract_answer(text)
                assert pred is not None and task.verify(pred, item), (style, fmt, text)


def test_solution_styles_have_the_documented_shape() -> None:
    task = get_task("modchain")
    item = task.generate(1, seed=0, difficulty=5)[0]
    ans = item["answer"]
    assert task.solution(item, "direct") == f"<think>\n</think>\n<answer>{ans}</answer>"
    steps = task.solution(item, "steps")
    assert steps.count("\n") == 4 + 2 and " wait, " not in steps
    check = task.solution(item, "check")
    assert check.count(" wait, ") == 1 and len(check.splitlines()) == len(steps.splitlines())
    slip = next(line for line in check.splitlines() if " wait, " in line)
    wrong, right = slip.split(" wait, ")
    assert right in steps.splitlines() and wrong != right and wrong.split("=")[0] == right.split("=")[0]
    assert task.solution(item, "check") == check  # reproducible
    assert task.solution(item, "steps", answer_format="boxed").endswith(f"The answer is \\boxed{{{ans}}}.")
    with pytest.raises(UserError, match="solution style 'long' is not valid"):
        task.solution(item, "long")


def test_chinese_word_problems_reason_in_chinese() -> None:
    items = get_task("word").generate(200, seed=0, difficulty="mix")
    zh = [i for i in items if i["meta"]["lang"] == "zh"]
    assert 0.1 < len(zh) / len(items) < 0.4
    assert all(i["meta"]["lang"] == "zh" for i in get_task("word_zh").generate(20, seed=0))
    text = get_task("word").solution(zh[0], "check")
    assert "等等，" in text and " wait" not in text


@pytest.mark.parametrize(
    ("name", "wrong"),
    [
        ("modchain", lambda a: str((int(a) + 1) % 10)),
        ("arith", lambda a: str(int(a) + 1)),
        ("multiply", lambda a: str(int(a) + 10)),
        ("linear", lambda a: str(int(a) - 1)),
        ("word", lambda a: str(int(a) + 2)),
        ("word_zh", lambda a: f"{int(a) + 1}个"),
    ],
)
def test_verifiers_reject_wrong_answers(name: str, wrong) -> None:
    task = get_task(name)
    for item in task.generate(20, seed=4, difficulty="mix"):
        assert not task.verify(wrong(item["answer"]), item)
        assert not task.verify("banana", item)


def test_integer_answers_are_read_leniently() -> None:
    item = get_task("linear").generate(1, seed=0)[0]
    x = item["answer"]
    assert get_task("linear").verify(f"x = {x}", item) and get_task("linear").verify(f" {x}. ", item)
    assert parse_int("1,234") == 1234 and parse_int("$-7$") == -7 and parse_int("5.0") == 5
    assert parse_int("5.5") is None and parse_int("12 apples") is None and parse_int("12 apples", allow_unit=True) == 12
    word = get_task("word").generate(1, seed=0)[0]
    assert get_task("word").verify(f"{word['answer']} apples", word)


def test_countdown_verifier() -> None:
    nums, target = [25, 4, 3, 7], 97
    assert check_countdown("25*4-3", nums, target)
    assert check_countdown("(25 × 4) − 3 = 97", nums, target)
    assert check_countdown("4*25-3", nums, target)
    assert check_countdown("(7*4-3)*4-3", [7, 4, 3, 4, 3], 97)  # repeated numbers may be used as often as given
    assert not check_countdown("25*4-3-3+3", nums, target)  # 3 used twice
    assert not check_countdown("100-3", nums, target)  # 100 not given
    assert not check_countdown("25*4-3 = 98", nums, target)
    assert not check_countdown("25*4", nums, target)
    assert not check_countdown("25/(7-7)", [25, 7, 7], 97)  # division by zero
    assert not check_countdown("2.5*4", [25, 4], 10)
    assert not check_countdown("25**2", [25, 2], 625)
    assert not check_countdown("[25][0]*4-3", nums, target)
    assert not check_countdown("", nums, target) and not check_countdown(None, nums, target)
    assert not check_countdown("(" * 5000 + "3" + ")" * 5000, nums, 3)
    assert check_countdown("7/7+3", [7, 7, 3], 4)  # exact rational arithmetic
    assert check_countdown("(25-4/4)*4+1", [25, 4, 4, 4, 1], 97)


def test_countdown_verifier_never_executes_code(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    attack = f"__import__('os').system('touch {marker}')"
    for pred in (attack, f"{attack} or 97", f"(lambda: {attack})()", "().__class__.__bases__[0]"):
        assert not check_countdown(pred, [97], 97)
    assert not marker.exists()


def test_generated_countdown_problems_are_solvable() -> None:
    task = get_task("countdown")
    for item in task.generate(40, seed=5, difficulty="mix"):
        meta = item["meta"]
        assert check_countdown(item["answer"], meta["numbers"], meta["target"])
        assert meta["target"] not in meta["numbers"]


def test_templates() -> None:
    item = get_task("arith").generate(1, seed=0)[0]
    zero = apply_template(item, "r1-zero")
    question = item["meta"]["question"]
    assert zero["prompt"].endswith(f"User: {question} Assistant:")  # question ends in "." already
    assert "<think> reasoning process here </think> <answer> answer here </answer>" in zero["prompt"]
    assert "messages" not in zero and item["prompt"] == question  # input untouched
    chat = apply_template(zero, "r1")
    assert "prompt" not in chat and chat["meta"]["template"] == "r1"
    assert chat["messages"] == [{"role": "user", "content": question + R1_INSTRUCTION}]
    assert R1_INSTRUCTION == "\nPlease reason step by step, and put your final answer within \\boxed{}."
    plain = apply_template({"prompt": "What is 2+2", "answer": "4", "task": "x", "meta": {}}, "r1-zero")
    assert plain["prompt"].endswith("User: What is 2+2. Assistant:")
    with pytest.raises(UserError, match="unknown template 'chatml'; valid templates: r1-zero, r1"):
        apply_template(item, "chatml")


def test_verifiers_are_registered_with_the_reward_registry() -> None:
    registry = pytest.importorskip("r1.rewards.registry")
    item = get_task("countdown").generate(1, seed=0)[0]
    verify = registry.get_verifier("countdown")
    assert verify is not None and verify(item["answer"], item) and not verify(str(item["meta"]["target"]), item)


def test_cli_tasks_list_and_sample(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tasks", "list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in BUILTIN) and "knobs:" in out
    path = tmp_path / "s.jsonl"
    args = ["tasks", "sample", "countdown", "-n", "3", "--difficulty", "2", "--seed", "1", "--template", "r1"]
    assert main([*args, "--solution", "steps", "--out", str(path)]) == 0
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(rows) == 3 and all("messages" in r and r["meta"]["difficulty"] == "2" for r in rows)
    assert all(get_task("countdown").verify(extract_answer(r["solution"]), r) for r in rows)
    assert main(["tasks", "sample", "nope"]) == 2
    assert "unknown task 'nope'" in capsys.readouterr().err


def test_plain_chat_templates_render_the_plain_prompts():
    from r1.tasks.templates import R1_ZERO_PREAMBLE, plain_chat_template
    from r1.tokenizer import Tokenizer

    tok = Tokenizer.train(["User: Compute 1+2 from left to right, mod 10. Assistant:"], vocab_size=300)
    item = get_task("modchain").generate(1, seed=3, split="eval")[0]
    for name in ("r1-zero", "r1-zero-short"):
        tok.chat_template = plain_chat_template(name)
        text = tok.apply_chat_template([{"role": "user", "content": item["meta"]["question"]}])
        assert text == tok.bos_token + apply_template(item, name)["prompt"]
        assert (R1_ZERO_PREAMBLE in text) == (name == "r1-zero")
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    with_system = tok.apply_chat_template(chat)
    assert with_system == tok.bos_token + "Be brief. User: Hi. Assistant:"
    with pytest.raises(UserError):
        plain_chat_template("r1")
