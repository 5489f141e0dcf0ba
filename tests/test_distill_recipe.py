"""`r1 run --recipe distill`: teacher traces judged and filtered, students distilled by SFT, the distilled-model table,
and `--compare`'s second arm (the student's own base + R1-Zero) with both arms' compute."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import transformers

from r1.cli import main as cli
from r1.model.checkpoint import load_pretrained
from r1.pipeline.recipes.distill import QUICK_DISTILL, TRACE_FILTERS, Distill, distill_stages, matmul_params
from r1.pipeline.runner import run_recipe
from r1.pipeline.stage import Recipe
from r1.rewards.judge import judge

pytestmark = pytest.mark.usefixtures("one_thread")
STUDENT = "tiny-qwen2-xs"
BASE = Path(__file__).parents[1] / "r1" / "assets" / "base-tiny"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("distill") / "quick"
    args = ["run", "--recipe", "distill", "--quick", "--students", STUDENT, "--compare", STUDENT, "--out", str(out)]
    assert cli(args) == 0
    return out


def summary(out):
    return json.loads((out / "summary.json").read_text())


def test_traces_are_what_the_judge_and_filters_accepted_with_consistent_counts(run_dir):
    s = summary(run_dir)
    g = s["traces"]
    records = [json.loads(line) for line in (run_dir / "distill" / "traces.jsonl").read_text().splitlines()]
    assert g["records"] == len(records) > 0 and g["samples"] == g["items"] * QUICK_DISTILL["samples"]
    reached = [f["reached"] for f in g["filters"].values()]
    dropped = [f["dropped"] for f in g["filters"].values()]
    assert list(g["filters"]) == list(TRACE_FILTERS) and reached[0] == g["samples"]
    assert all(reached[i + 1] == reached[i] - dropped[i] for i in range(len(reached) - 1))
    assert g["passed"] == reached[-1] - dropped[-1] >= g["records"]
    assert s["prompts"]["tasks"] == {"modchain": QUICK_DISTILL["prompts"], "general": QUICK_DISTILL["general"]}
    assert g["prompt_tokens"] > g["items"] and g["generated_tokens"] > g["samples"]
    for r in records:  # the kept trace, asked again the way the teacher was asked, is judged correct and reasoned
        item = {k: r[k] for k in ("task", "answer", "meta")}
        v = judge(r["messages"][1]["content"], item, "r1-zero-short")
        assert v.correct and v.format_ok and (v.reasons or r["task"] == "general"), r


def test_students_are_transformers_models_in_the_distilled_table(run_dir):
    folder = run_dir / "students" / STUDENT
    ours = load_pretrained(folder).eval()
    theirs = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    ids = torch.randint(0, ours.config.vocab_size, (1, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert (ours(ids).logits - theirs(ids).logits).abs().max() < 1e-4
    assert type(theirs).__name__ == "Qwen2ForCausalLM"
    s, report = summary(run_dir), (run_dir / "report.md").read_text()
    rows = s["speed"]["models"]
    assert list(rows) == ["teacher", STUDENT] and all(r["decode_tokens_per_s"] > 0 for r in rows.values())
    assert rows[STUDENT]["parameters"] == sum(p.numel() for p in ours.parameters())
    assert "## Distilled models (held-out suite)" in report
    assert f"| {STUDENT} | {rows[STUDENT]['parameters']:,} |" in report
    cell = s["eval"]["tables"][STUDENT]["trained"]["free_t0.6"]
    assert 0 <= cell["reward_mean"] <= 1 and {"pass@1", "cons@2", "length_mean"} <= set(cell)


def test_compare_counts_each_arms_compute_from_what_it_trained_and_sampled(run_dir):
    s, report = summary(run_dir), (run_dir / "report.md").read_text()
    c, f = s["compare"], s["compare"]["flops"]
    n_s = matmul_params(run_dir / "students" / STUDENT)
    assert c["N_student"] == n_s == matmul_params(run_dir / "base") == matmul_params(run_dir / "distilled-base")
    g = s["traces"]
    assert f["teacher sampling"] == 2 * c["N_teacher"] * (g["prompt_tokens"] + g["generated_tokens"])
    assert f["SFT"] == 6 * n_s * s[f"sft_{STUDENT}"]["tokens"] and f["pretraining"] == 6 * n_s * s["pretrain"]["tokens"]
    assert f["SFT of the base"] == 6 * n_s * s["sft_base"]["tokens"]
    steps = [json.loads(x) for x in (run_dir / "r1-zero" / "metrics.jsonl").read_text().splitlines()]
    rl_tokens = sum(r["tokens"] for r in steps if r.get("event") == "step")
    assert f["GRPO sampling"] == 2 * n_s * rl_tokens and f["GRPO updates"] == 8 * n_s * rl_tokens  # β > 0
    assert c["arms"]["a"]["flops"] == f["teacher sampling"] + f["SFT"]
    assert c["arms"]["b"]["flops"] == f["pretraining"] + f["GRPO sampling"] + f["GRPO updates"]
    assert c["seconds"]["SFT"] > 0 and c["seconds"]["GRPO sampling"] > 0 and c["seconds"]["teacher sampling"] >= 0
    assert "## Distillation vs RL on the student (tiny-qwen2-xs)" in report
    assert all(f"| {row} |" in report for row in ("(a) distilled from scratch", "(b) R1-Zero on its own base"))
    assert {"rl-base", "rl", "sft-base", "teacher", STUDENT} <= set(s["eval"]["tables"])
    assert json.loads((run_dir / "model" / "config.json").read_text())["model_type"] == "qwen2"


def test_a_distill_run_continues_from_its_last_stage_with_the_same_numbers(run_dir, tmp_path):
    out = tmp_path / "again"
    shutil.copytree(run_dir, out)
    args = ["run", "--recipe", "distill", "--quick", "--students", STUDENT, "--compare", STUDENT, "--out", str(out)]
    assert cli([*args, "--from", "compute"]) == 0
    again = summary(out)
    assert again["compare"] == summary(run_dir)["compare"] and again["speed"] == summary(run_dir)["speed"]
    assert list(again["seconds"])[:-1] == list(summary(run_dir)["seconds"])[:-1]


@dataclass
class Host:
    """The settings a host recipe has (any recipe's: out, seed, threads)."""

    out: str
    seed: int = 0
    threads: int = 1


def test_distill_stages_append_to_another_recipe_under_a_prefix(tmp_path):
    d = Distill(**{**QUICK_DISTILL, "students": [STUDENT], "general": 0})
    host = Recipe("host", "a recipe ending in distillation", lambda c: distill_stages(BASE, d, "distill/"),
                  lambda p: None, lambda a: None)  # fmt: skip
    s = run_recipe(host, Host(str(tmp_path / "run")))
    names = list(s["seconds"])[:-1]
    assert s["status"] == "complete" and all(n.startswith("distill/") for n in names)
    assert names[:3] == ["distill/prompts", "distill/traces", "distill/eval-teacher"]
    assert (tmp_path / "run" / "distill" / "students" / STUDENT / "config.json").is_file()
    assert f"| {STUDENT} |" in (tmp_path / "run" / "report.md").read_text()
    assert list(s["distill/speed"]["models"]) == ["teacher", STUDENT] and s["distill/prompts"]["tasks"] == {
        "modchain": QUICK_DISTILL["prompts"]
    }


@pytest.mark.parametrize(
    "args, says",
    [
        (["--teacher", "/nonexistent/t"], "--teacher /nonexistent/t: not a model folder"),
        (["--compare", "tiny-gpt"], "student preset 'tiny-gpt': unknown"),
        (["--students", "tiny-qwen2-xs,nope"], "student preset 'nope': unknown"),
        (["--base", "/tmp"], "--recipe distill takes its teacher with --teacher"),
    ],
)
def test_bad_distill_flags_are_one_line_errors(args, says, tmp_path, capsys):
    assert cli(["run", "--recipe", "distill", "--quick", "--out", str(tmp_path / "x"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert says in err and len(err.splitlines()) == 1
