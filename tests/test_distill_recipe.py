"""`r1 run --recipe distill`: teacher traces judged and filtered, students distilled by SFT, the distilled-model table,
and `--compare`'s second arm (the student's own base + R1-Zero) with both arms' compute."""

from __future__ import annotations

import json

import pytest
import torch
import transformers

from r1.cli import main as cli
from r1.model.checkpoint import load_pretrained
from r1.pipeline.recipes.distill import QUICK_DISTILL, TRACE_FILTERS, Distill, distill_stages, matmul_params
from r1.rewards.judge import judge

pytestmark = pytest.mark.usefixtures("one_thread")
STUDENT = "tiny-qwen2-xs"


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


def test_compare_counts_both_arms_compute_from_what_they_trained_and_sampled(run_dir):
    s, report = summary(run_dir), (run_dir / "report.md").read_text()
    c = s["compare"]
    n_s = matmul_params(run_dir / "students" / STUDENT)
    assert c["N_student"] == n_s == matmul_params(run_dir / "base")
    assert c["a"]["SFT"] == 6 * n_s * s[f"sft_{STUDENT}"]["tokens"]
    assert c["a"]["teacher sampling"] == 2 * c["N_teacher"] * (
        s["traces"]["prompt_tokens"] + s["traces"]["generated_tokens"]
    )
    assert c["b"]["pretraining"] == 6 * n_s * s["pretrain"]["tokens"]
    steps = [json.loads(x) for x in (run_dir / "r1-zero" / "metrics.jsonl").read_text().splitlines()]
    rl_tokens = sum(r["tokens"] for r in steps if r.get("event") == "step")
    assert c["b"]["GRPO sampling"] == 2 * n_s * rl_tokens and c["b"]["GRPO updates"] == 8 * n_s * rl_tokens  # β > 0
    assert "## Distillation vs RL on the student (tiny-qwen2-xs)" in report and "| (a) distilled |" in report
    assert {"rl-base", "rl", "teacher", STUDENT} <= set(s["eval"]["tables"])
    assert json.loads((run_dir / "model" / "config.json").read_text())["model_type"] == "qwen2"


def test_distill_stages_append_to_another_recipe_under_a_prefix(tmp_path):
    stages = distill_stages(tmp_path / "model", Distill(students=["tiny-qwen2-xs", "tiny-llama"]), prefix="distill/")
    names = [st.name for st in stages]
    assert len(set(names)) == len(names) and all(n.startswith("distill/") for n in names)
    assert names[:3] == ["distill/prompts", "distill/traces", "distill/eval-teacher"]
    assert [st.outputs for st in stages[:2]] == [("distill/data/prompts.jsonl",), ("distill/distill/traces.jsonl",)]


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
