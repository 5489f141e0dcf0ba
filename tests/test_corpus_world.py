"""The tiny world's corpus: every family in both languages, exact mixes, and measurable English mixing."""

from __future__ import annotations

import hashlib
import json
from collections import Counter

import pytest

from r1.data.corpus import (
    WORLD,
    WORLD_ENGLISH,
    WORLD_FAMILY_SHARES,
    WORLD_MIX,
    build_corpus,
    build_world_corpus,
    family_tasks,
    language_mixing,
    task_family,
    world_tasks,
)
from r1.errors import UserError
from r1.rewards.answers import extract_answer
from r1.rewards.language import dominant_language
from r1.rewards.registry import get_reward
from r1.tasks import get_task
from r1.tasks.world import REASONING_FAMILIES

N = 3000


@pytest.fixture(scope="module")
def corpus() -> list[dict]:
    return build_world_corpus(N, seed=0)


def test_same_arguments_same_records_and_the_seed_changes_them(corpus: list[dict]) -> None:
    assert build_world_corpus(N, seed=0) == corpus
    assert build_world_corpus(300, seed=1) != build_world_corpus(300, seed=2)


def test_every_family_in_both_languages_at_the_configured_shares(corpus: list[dict]) -> None:
    tasks = Counter(r["task"] for r in corpus)
    assert set(tasks) == {name for family in WORLD_FAMILY_SHARES for name in family_tasks(family)}
    for name, share in WORLD["tasks"].items():
        assert abs(tasks[name] - share * N) <= 1, (name, tasks[name])
    assert all(r["lang"] == ("zh" if r["task"].endswith("_zh") else "en") for r in corpus)


def test_style_mixes_per_family_are_exact(corpus: list[dict]) -> None:
    for name, n in Counter(r["task"] for r in corpus).items():
        styles = Counter(r["style"] for r in corpus if r["task"] == name)
        for style, share in WORLD_MIX[task_family(name)].items():
            assert abs(styles[style] - share * n) <= 1, (name, style, styles)


def test_english_mixing_rate_is_as_configured_and_measurable(corpus: list[dict]) -> None:
    zh = [r for r in corpus if r["lang"] == "zh" and r["style"] != "direct" and task_family(r["task"]) in
          REASONING_FAMILIES]  # fmt: skip
    modes = Counter(r["english"] for r in zh)
    for mode, share in WORLD_ENGLISH.items():
        assert abs(modes[mode] - share * len(zh)) <= 3, modes  # exact per task, up to rounding
    for r in zh:
        mixing = language_mixing(r["response"], "zh")
        assert (mixing > 0) == (r["english"] != "none"), r
    assert all(r["english"] == "none" for r in corpus if r["lang"] == "en" or r["style"] == "direct")
    assert all(language_mixing(r["response"], "en") == 0.0 for r in corpus if r["lang"] == "en")
    measured = sum(language_mixing(r["response"], "zh") > 0 for r in zh) / len(zh)
    assert abs(measured - sum(WORLD_ENGLISH.values())) < 0.01


def test_verify_documents_slip_at_the_configured_rate(corpus: list[dict]) -> None:
    verify = [r for r in corpus if r["style"] == "verify"]
    slipped = [r for r in verify if "mistake" in r["response"] or "算错了" in r["response"]]
    assert verify and abs(len(slipped) - WORLD["verify_slip"] * len(verify)) <= 2
    none = build_world_corpus(600, seed=0, verify_slip=0.0)
    assert not any("mistake" in r["response"] or "算错了" in r["response"] for r in none)


def test_every_response_ends_with_the_correct_answer_and_only_train_problems(corpus: list[dict]) -> None:
    for r in corpus:
        task = get_task(r["task"])
        pred = extract_answer(r["response"])
        assert pred is not None and r["response"].startswith(" <think>\n") and r["response"].endswith("</answer>")
        if task_family(r["task"]) in REASONING_FAMILIES:
            assert task.verify(pred, {"answer": r["answer"], "task": r["task"], "meta": {}}), r
        if r["style"] == "direct":
            assert r["response"].startswith(" <think>\n</think>\n<answer>")
        elif r["style"] in ("steps", "check", "verify"):
            assert r["response"].split("</think>")[0].strip() != "<think>"


def _question(record: dict) -> str:
    return record["prompt"].rsplit(" Assistant:", 1)[0].split("User: ", 1)[1]


def test_no_eval_problem_appears_in_any_language() -> None:
    # the short levels have few problems, so a corpus drawn from both splits would hit eval questions here
    names = ("swaps", "swaps_zh", "mystery", "mystery_zh", "modchain_zh")
    small = build_world_corpus(3000, seed=3, tasks={name: 1 for name in names},
                               levels={"swaps": "1-2", "mystery": "1", "modchain": "2"})  # fmt: skip
    for name in names:
        task = get_task(name)
        held_out = {it["prompt"] for it in task.generate(40, seed=0, difficulty="mix", split="eval")}
        held_out |= {it["prompt"] for it in task.generate(400, seed=5, difficulty="mix", split="all")
                     if it["meta"]["split"] == "eval"}  # fmt: skip
        asked = {_question(r) for r in small if r["task"] == name}
        assert held_out and asked and not asked & held_out, name


def test_non_reasoning_records_verify() -> None:
    records = build_world_corpus(1200, seed=1, tasks={"general": 1, "general_zh": 1, "safety": 1, "safety_zh": 1})
    by_prompt: dict[str, dict] = {}
    for name in ("general", "general_zh", "safety", "safety_zh"):
        task = get_task(name)
        for level in task.levels:  # every distinct train question of each kind
            for it in task.generate(800, seed=1, difficulty=level, split="train"):
                by_prompt[f"{name}|{it['prompt']}"] = it
    for r in records:
        question = r["prompt"].rsplit(" Assistant:", 1)[0].split("User: ", 1)[1]
        item = by_prompt.get(f"{r['task']}|{question}") or by_prompt.get(f"{r['task']}|{question.rstrip('.')}")
        assert item is not None, r
        assert get_task(r["task"]).verify(extract_answer(r["response"]), item), r


def test_the_default_corpus_is_still_the_one_the_shipped_base_was_made_from() -> None:
    # sha256 of main's records before the world existed (computed there): `r1 run --from-scratch` still rebuilds
    # the shipped base from the same documents; the world adds only the fields `lang` and `english`
    records = build_corpus(3000, seed=0)
    fields = [[r[k] for k in ("prompt", "response", "task", "level", "style", "answer")] for r in records]
    digest = hashlib.sha256(json.dumps(fields).encode()).hexdigest()
    assert digest == "18f2371877ff256b119ecd05f3ff31fd30dade7cf28c22496bf8ee2642e50028"
    assert {(r["lang"], r["english"]) for r in records} == {("en", "none")}
    worked = build_corpus(50, seed=0, worked=True)
    assert all("So the answer is" in r["response"] for r in worked if r["style"] != "direct")


def test_bad_world_arguments_are_user_errors() -> None:
    with pytest.raises(UserError, match="no 'verify' style"):
        build_corpus(20, tasks={"modchain": 1}, mix={"modchain": {"verify": 1.0}})
    with pytest.raises(UserError, match="english"):
        build_world_corpus(20, english={"french": 0.5})
    with pytest.raises(UserError, match="at most 1"):
        build_world_corpus(20, english={"phrases": 0.8, "switch": 0.8})
    with pytest.raises(UserError, match="verify_slip"):
        build_world_corpus(20, verify_slip=1.5)
    with pytest.raises(UserError, match="unknown family"):
        world_tasks({"poetry": 1.0})


def test_the_language_reward_of_stage_2_measures_the_mixing_the_corpus_puts_in(corpus: list[dict]) -> None:
    # `language_consistency(auto)` targets the item's meta.lang, the language of its question, so the reward of the
    # RL stage after R1-Zero scores exactly what `language_mixing` counts (the prompt's frame "User: … Assistant:"
    # would make a short Chinese request read as English)
    reward = get_reward("language_consistency")
    for r in corpus:
        assert dominant_language(_question(r)) == r["lang"], r["prompt"]
        item = {"prompt": r["prompt"], "task": r["task"], "meta": {"lang": r["lang"]}}
        assert reward(r["response"], item) == pytest.approx(1.0 - language_mixing(r["response"], r["lang"]))
    short = {"prompt": "User: 谢谢！ Assistant:", "meta": {"lang": "zh"}}
    assert reward("<think>\n不客气\n</think>\n<answer>不客气！</answer>", short) == 1.0
    assert dominant_language(short["prompt"]) == "en"  # what the reward targeted before it read meta.lang


def test_every_held_out_word_mapping_of_the_general_requests_is_taught_by_a_train_question() -> None:
    # a held-out request is a new pairing of a phrasing and a word; the word's mapping (bird -> BIRD, bird -> 鸟)
    # must be asked in train questions too (in either language), or no base could answer it. Within a level an
    # answer names its mapping: BIRD is only ever "bird in capitals", 鸟 only "bird in Chinese".
    from r1.tasks.world import heldout

    for level in ("format", "translate"):
        taught = {it["answer"] for name in ("general", "general_zh")
                  for it in get_task(name).generate(3000, seed=0, difficulty=level, split="train")}  # fmt: skip
        asked = [it for it in heldout(30, seed=1, families=["general"]) if it["meta"]["difficulty"] == level]
        assert len(asked) >= 15 and {it["answer"] for it in asked} <= taught, level
