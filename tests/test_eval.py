"""evaluate() end to end with fake generators, the report files, and `r1 eval --completions`."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from r1.cli import main
from r1.eval import evaluate, write_report
from r1.tasks import get_task


def answer_text(answer: str | None) -> str:
    return "no idea" if answer is None else f"<think>\nsteps\n</think>\n<answer>{answer}</answer>"


# Per item, the k=4 samples: "R" right, "W" wrong (all the same wrong answer), None no answer (truncated).
PLAN = [
    ["R", "R", "R", "R"],  # c=4, vote R
    ["W", "R", "W", None],  # c=1, vote W
    [None, "R", "W", "R"],  # c=2, vote R
    ["W", "R", "R", "W"],  # c=2, tie -> W came first
    [None, None, None, None],  # c=0, abstains
]


def planned_items() -> list[dict[str, Any]]:
    task = get_task("modchain")
    return task.generate(3, seed=0, difficulty=3, split="eval") + task.generate(2, seed=1, difficulty=6, split="eval")


def planned_generate(items: list[dict[str, Any]], n: int, params: dict[str, Any]) -> list[list[dict[str, Any]]]:
    out = []
    for item in items:
        plan = PLAN[params["seed"] + len(out)]  # seed = run seed (0) + batch start
        wrong = str((int(item["answer"]) + 1) % 10)
        out.append(
            [
                {
                    "text": answer_text({"R": item["answer"], "W": wrong, None: None}[p]),
                    "num_tokens": 10 * (j + 1),
                    "finish_reason": "length" if p is None else "stop",
                }
                for j, p in enumerate(plan)
            ]
        )
    return out


def test_evaluate_matches_hand_computation() -> None:
    calls: list[dict[str, Any]] = []

    def generate(items, n, params):
        calls.append(dict(params, n=n, prompts=[i["prompt"] for i in items]))
        return planned_generate(items, n, params)

    result = evaluate(planned_items(), generate, k=4, template="r1-zero", progress=False, batch_size=2)
    assert [c["seed"] for c in calls] == [0, 2, 4] and all(c["n"] == 4 for c in calls)
    assert calls[0]["temperature"] == 0.6 and calls[0]["top_p"] == 0.95  # the paper's eval defaults
    assert all(p.endswith("Assistant:") for c in calls for p in c["prompts"])
    m = result.overall
    assert m["n_items"] == 5 and m["n_samples"] == 20
    assert m["pass@1"] == pytest.approx((1 + 0.25 + 0.5 + 0.5 + 0) / 5)
    assert m["pass@2"] == pytest.approx((1 + (1 - 3 / 6) + 2 * (1 - 1 / 6) + 0) / 5)
    assert m["pass@4"] == pytest.approx(4 / 5)
    assert m["cons@4"] == pytest.approx(2 / 5)
    assert m["format_rate"] == pytest.approx(14 / 20)
    assert m["truncated_share"] == pytest.approx(6 / 20)
    assert (m["length_mean"], m["length_p50"], m["length_p90"], m["length_max"]) == (25.0, 25.0, 40.0, 40.0)
    assert list(result.by_task) == ["modchain"] and result.by_task["modchain"]["pass@1"] == m["pass@1"]
    by_level = {row["difficulty"]: row for row in result.by_difficulty}
    assert by_level["3"]["n_items"] == 3 and by_level["3"]["pass@1"] == pytest.approx(1.75 / 3)
    assert by_level["6"]["pass@1"] == pytest.approx(0.25) and by_level["6"]["cons@4"] == 0.0
    assert len(result.samples) == 20 and result.config["length_unit"] == "tokens"
    rec = result.samples[4]
    assert (rec["item"], rec["sample"], rec["correct"], rec["format_ok"]) == (1, 0, False, True)
    assert result.samples[7]["pred"] is None and result.samples[7]["finish_reason"] == "length"


def boxed_text(answer: str) -> str:
    """An R1-usage completion: the chat template opened <think>, the summary boxes the answer."""
    return f"steps\n</think>\nThe answer is \\boxed{{{answer}}}."


def coin_generate(p: float, log: list[bool], text=answer_text):
    """Right with probability p, deterministic given the sampling seed; plain-string samples."""

    def generate(items, n, params):
        rng = random.Random(params["seed"])
        out = []
        for item in items:
            samples = []
            for _ in range(n):
                right = rng.random() < p
                log.append(right)
                samples.append(text(item["answer"] if right else "999999"))
            out.append(samples)
        return out

    return generate


def test_evaluate_with_a_seeded_coin() -> None:
    items = get_task("modchain").generate(100, seed=0, difficulty="mix", split="eval")
    items += get_task("arith").generate(60, seed=0, split="eval")
    log_a: list[bool] = []
    log_b: list[bool] = []
    a = evaluate(items, coin_generate(0.7, log_a, boxed_text), k=4, seed=3, progress=False, template="r1")
    b = evaluate(items, coin_generate(0.7, log_b, boxed_text), k=4, seed=3, progress=False, template="r1")
    assert a.samples == b.samples and log_a == log_b  # deterministic by seed
    assert a.overall["pass@1"] == pytest.approx(sum(log_a) / len(log_a))  # equal item sizes: mean of means
    assert abs(a.overall["pass@1"] - 0.7) < 0.05
    assert a.overall["pass@1"] < a.overall["pass@2"] < a.overall["pass@4"]
    assert set(a.by_task) == {"arith", "modchain"} and a.by_task["arith"]["n_items"] == 60
    assert len({row["difficulty"] for row in a.by_difficulty if row["task"] == "modchain"}) == 7
    assert a.overall["format_rate"] == 1.0
    assert a.config["length_unit"] == "words" and a.config["template"] == "r1"
    # the template decides where the answer is: R1's usage boxes it, so answers in <answer> tags count for nothing
    tags = evaluate(items, coin_generate(0.7, [], answer_text), k=4, seed=3, progress=False, template="r1")
    assert tags.overall["pass@1"] == 0.0 and tags.overall["format_rate"] == 0.0
    assert all(r["pred"] is None for r in tags.samples)


def test_evaluate_uses_task_verifiers_and_answers_match() -> None:
    cd = get_task("countdown").generate(1, seed=0)[0]
    other = {"prompt": "Half of one?", "answer": "\\frac{1}{2}", "task": "plain:mine", "meta": {}}

    def generate(items, n, params):
        return [[answer_text(i["answer"]), answer_text(str(i["meta"].get("target", "0.5")))] for i in items]

    result = evaluate([cd, other], generate, k=2, progress=False)
    assert [r["correct"] for r in result.samples] == [True, False, True, True]


def test_evaluate_reports_a_reward_callable() -> None:
    items = get_task("modchain").generate(3, seed=0)

    def generate(items, n, params):
        return [[answer_text(i["answer"]), "nothing"] for i in items]

    result = evaluate(items, generate, k=2, progress=False, reward_spec=lambda text, item: float("<answer>" in text))
    assert result.overall["reward_mean"] == 0.5 and result.samples[0]["reward"] == 1.0


def test_generate_fn_contract_violations() -> None:
    items = get_task("modchain").generate(2, seed=0)
    with pytest.raises(ValueError, match="returned 1 samples for item 0, expected 2"):
        evaluate(items, lambda it, n, p: [["a"] for _ in it], k=2, progress=False)
    with pytest.raises(ValueError, match="returned 1 results for 2 items"):
        evaluate(items, lambda it, n, p: [["a", "b"]], k=2, progress=False)


def test_report_files(tmp_path: Path) -> None:
    result = evaluate(planned_items(), planned_generate, k=4, progress=False, batch_size=2)
    paths = write_report(result, tmp_path / "run", extra_config={"model": "tiny"})
    doc = json.loads(paths["json"].read_text())
    assert doc["config"]["model"] == "tiny" and doc["config"]["k"] == 4
    assert doc["overall"]["pass@1"] == pytest.approx(0.45) and doc["samples_file"] == "samples.jsonl"
    samples = [json.loads(line) for line in paths["samples"].read_text().splitlines()]
    assert len(samples) == 20 and samples[0]["correct"] is True
    md = paths["markdown"].read_text()
    assert "| task | items | pass@1 | pass@2 | pass@4 | cons@4 | format |" in md
    assert "| modchain | 5 | 45.0 | 63.3 | 80.0 | 40.0 | 70.0 | 25.0 | 25 | 40 | 40 | 30.0 |" in md
    assert "| modchain | 6 | 2 | 25.0 |" in md
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["results.json", "results.md", "samples.jsonl"]


def write_completions(path: Path, items: list[dict[str, Any]], by_prompt: bool = False) -> None:
    lines = []
    for i, item in enumerate(items):
        plan = PLAN[i]
        wrong = str((int(item["answer"]) + 1) % 10)
        for p in plan:
            rec = {"text": answer_text({"R": item["answer"], "W": wrong, None: None}[p])}
            rec.update({"prompt": item["prompt"]} if by_prompt else {"index": i})
            if p is None:
                rec["finish_reason"] = "length"
            lines.append(json.dumps(rec))
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("by_prompt", [False, True])
def test_cli_eval_completions(tmp_path: Path, capsys: pytest.CaptureFixture[str], by_prompt: bool) -> None:
    items = get_task("modchain").generate(5, seed=0, difficulty=3, split="eval")
    write_completions(tmp_path / "c.jsonl", items, by_prompt)
    out = tmp_path / "report"
    argv = [
        "eval",
        "--task",
        "modchain",
        "--difficulty",
        "3",
        "--n-items",
        "5",
        "--completions",
        str(tmp_path / "c.jsonl"),
        "--out",
        str(out),
        "--no-progress",
    ]
    assert main(argv) == 0
    doc = json.loads((out / "results.json").read_text())
    assert doc["overall"]["pass@1"] == pytest.approx(0.45) and doc["overall"]["cons@4"] == pytest.approx(0.4)
    assert doc["config"]["completions"].endswith("c.jsonl") and doc["config"]["k"] == 4
    assert "| **all** | 5 | 45.0 |" in capsys.readouterr().out


def test_cli_eval_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    comp = tmp_path / "c.jsonl"
    comp.write_text('{"index": 0, "text": "<answer>1</answer>"}\n{"index": 7, "text": "x"}\n')
    base = ["eval", "--task", "modchain", "--n-items", "2", "--no-progress", "--out", str(tmp_path / "o")]
    assert main([*base, "--completions", str(comp)]) == 2
    assert f"{comp}:2: field 'index': expected an integer in 0..1, got 7" in capsys.readouterr().err
    comp.write_text('{"index": 0, "text": "a"}\n')
    assert main([*base, "--completions", str(comp)]) == 2
    assert "item 1 has no completions" in capsys.readouterr().err
    comp.write_text('{"index": 0, "text": "a"}\n{"index": 1, "text": "b"}\n')
    assert main([*base, "--completions", str(comp), "-k", "4"]) == 2
    assert "has 1 completions per item but -k 4 was given" in capsys.readouterr().err
    assert main([*base, "--model", str(tmp_path)]) == 2
    assert f"{tmp_path}: no config.json" in capsys.readouterr().err
    assert main(["eval", "--completions", str(comp), "--no-progress"]) == 2
    assert "nothing to evaluate" in capsys.readouterr().err
