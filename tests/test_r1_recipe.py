"""`r1 run --recipe r1`: R1-Zero → cold start (Dev1) → reasoning RL with language consistency (Dev2) → rejection
sampling + SFT (Dev3), with the refine step and the per-stage report."""

from __future__ import annotations

import argparse
import json

import pytest

from r1.cli import build_parser
from r1.cli import main as cli
from r1.data.refine import refine, rewrite
from r1.errors import UserError
from r1.pipeline.cli import DEFAULT
from r1.pipeline.recipes import RECIPES, get_recipe
from r1.pipeline.recipes.r1 import WORLD_BASE, Config, stage_table, stages
from r1.pipeline.recipes.r1_zero import BUILTIN_BASE
from r1.pipeline.stage import Run
from r1.rewards.judge import judge
from r1.rewards.language import language_ratio
from r1.rewards.text import reasoning_text
from r1.tasks.base import get_task
from r1.tasks.synthetic.worked import write_solution
from r1.tasks.world import breakdown, heldout


def _args(*flags: str) -> argparse.Namespace:
    argv = ["run", "--recipe", "r1", *flags]
    return build_parser(argv).parse_args(argv)


@pytest.mark.parametrize("name", ["modchain_zh", "swaps_zh", "mystery_zh", "equation_zh"])
@pytest.mark.parametrize("english", ["phrases", "switch"])
def test_refine_rewrites_mixed_chinese_reasoning_into_chinese_with_a_boxed_summary(name, english) -> None:
    task = get_task(name)
    styles = ["steps", "check", "guess"] + (["verify"] if getattr(task, "can_verify", False) else [])
    for item in task.generate(8, seed=5, difficulty="3", split="train"):
        for style in styles:
            mixed = write_solution(task, item, style, english=english, seed=2, slipped=True)
            assert language_ratio(reasoning_text(mixed), "zh") < 0.9 or style == "guess"  # it was mixed
            clean = write_solution(task, item, style, english="none", seed=2, slipped=True, answer_format="boxed")
            out = refine(mixed, item)
            if english == "phrases":  # the same draws ("switch" draws its line first): only the language differs
                assert out == clean
            assert out is not None and language_ratio(reasoning_text(out), "zh") == 1.0
            v = judge(out, {**item, "meta": {**item["meta"], "template": "r1-plain"}})
            assert v.correct and v.format_ok and v.summary.startswith("答案是")


def test_refine_keeps_an_english_sample_adds_its_summary_and_drops_what_it_cannot_translate() -> None:
    task = get_task("swaps")
    item = task.generate(1, seed=1, difficulty="2", split="train")[0]
    sample = write_solution(task, item, "check", seed=3)
    out = refine(sample, item)
    assert out == write_solution(task, item, "check", seed=3, answer_format="boxed")
    assert out.endswith(f"The answer is \\boxed{{{item['answer']}}}.")
    zh = get_task("swaps_zh").generate(1, seed=1, difficulty="2", split="train")[0]
    odd = f"<think>\nLet me think about the cups one at a time.\n</think>\n<answer>{zh['answer']}</answer>"
    assert refine(odd, zh) is None  # English no table translates
    assert refine("<think>\n</think>\n<answer>3</answer>", zh) is None  # nothing to refine
    lucky = f"<think>\n交换3：1：2：3 wait, 3\n</think>\n<answer>{zh['answer']}</answer>"  # right answer, wrong work
    assert refine(lucky, zh) is None
    task_zh = get_task("swaps_zh")
    assert rewrite(lucky, zh) == write_solution(task_zh, zh, "check", "boxed")  # the annotator's post-edit
    assert rewrite(odd, zh) == write_solution(task_zh, zh, "steps", "boxed")
    mystery = get_task("mystery_zh").generate(1, seed=1, difficulty="3", split="train")[0]
    redo = "<think>\n嗯，等等，我检查一下：1，不是3。\n算错了，重新算一遍。\n</think>\n<answer>1</answer>"
    assert rewrite(redo, mystery) == write_solution(get_task("mystery_zh"), mystery, "verify", "boxed", slipped=True)


def test_r1_is_a_recipe_not_the_default_and_its_stages_follow_the_paper(tmp_path) -> None:
    assert DEFAULT == "r1-zero" and "r1" in RECIPES
    recipe = get_recipe("r1")
    cfg = recipe.config(_args("--out", str(tmp_path / "r"), "--base", str(BUILTIN_BASE), "--dev2-steps", "3"))
    assert (cfg.base, cfg.dev2_steps, cfg.ablation, cfg.sft_epochs) == (str(BUILTIN_BASE), 3, False, 2)
    names = [s.name for s in stages(cfg)]
    assert (
        names
        == "base eval-base r1-zero eval-r1-zero cold-start-samples cold-start dev1 eval-dev1 dev2 eval-dev2 \
rejection filter-check sft-data dev3 eval-dev3 report".split()
    )
    cfg.ablation = True
    names = [s.name for s in stages(cfg)]
    assert names[names.index("eval-dev2") + 1 : names.index("rejection")] == ["ablation", "eval-ablation"]
    cfg.base = None
    assert [s.name for s in stages(cfg)][:4] == ["corpus", "tokenizer", "pretrain", "base"]
    if not (WORLD_BASE / "model.safetensors").is_file():
        with pytest.raises(UserError, match="no world base is shipped yet"):
            recipe.config(_args("--out", str(tmp_path / "r")))
    with pytest.raises(UserError, match="exclude each other"):
        recipe.config(_args("--base", str(BUILTIN_BASE), "--from-scratch"))
    with pytest.raises(UserError, match="not a model folder"):
        recipe.config(_args("--base", str(tmp_path)))
    with pytest.raises(UserError, match="--dev2-steps must be >= 1"):
        recipe.config(_args("--quick", "--dev2-steps", "0"))


def test_the_stage_table_reads_each_probe_by_language_with_consistency_summary_and_cons() -> None:
    items = heldout(1, seed=1, families=["swaps", "general"])
    zh = [i for i, it in enumerate(items) if it["meta"]["lang"] == "zh" and it["task"] == "swaps_zh"]
    samples = []
    for i, it in enumerate(items):
        for j in range(2):
            mixed = i in zh and j == 0
            think = "swap 1 and 2: cup 3" if mixed else "交换1和2：3号" if i in zh else "swap 1 and 2: cup 3"
            text = f"<think>\n{think}\n</think>\n答案是 \\boxed{{{it['answer']}}}。"
            samples.append({"item": i, "correct": j == 0, "reasons": True, "reflects": False, "num_tokens": 9,
                            "text": text, "pred": str(it["answer"]) if j == 0 else "x", "format_ok": True})  # fmt: skip
    table = breakdown(samples, items, 2)
    assert table["all-reasoning:zh"]["mixing"] == pytest.approx(0.5) and table["all-reasoning:zh"]["summary"] == 1.0
    assert table["all-reasoning"]["cons@2"] == 1.0 and table["all-reasoning"]["pass@1"] == 0.5  # first vote wins
    assert {k for k in table if k.startswith("all-reasoning:level ")} == {
        f"all-reasoning:level {it['meta']['difficulty']}" for it in items if it["task"].startswith("swaps")
    }
    run = Run(out=None, config=Config("x", eval_k=2), summary={"world": {"base": table, "dev1": table}})
    rows = stage_table(run)
    assert [r.split(" | ")[0] for r in rows[2:]] == ["| base", "| dev1"]
    cells = rows[2].split(" | ")
    assert cells[7] == "50" and cells[8] == "50"  # language consistency on Chinese prompts, mixed samples


@pytest.mark.slow
def test_a_quick_r1_recipe_runs_every_stage_and_reports_them(tmp_path) -> None:
    out = tmp_path / "quick"
    assert cli(["run", "--recipe", "r1", "--quick", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "complete" and list(summary["world"]) == ["base", "r1-zero", "dev1", "dev2", "dev3"]
    cold, refined = summary["cold-start-samples"], summary["cold-start"]
    assert cold["records"] == refined["samples"] > 0
    assert sum(n for key, n in refined.items() if "/" in key) == refined["samples"]
    rej = summary["rejection"]
    assert list(rej["filters"]) == ["correct", "mixed_language", "long_paragraph", "code_block", "truncated",
                                    "repetitive", "duplicate"] and len(rej["pass_histogram"]) == 3  # fmt: skip
    records = [json.loads(x) for x in (out / "data/sft-dev3.jsonl").read_text().splitlines()]
    general = [r for r in records if r["task"].startswith("general")]
    assert len(general) == 16 and all(r["messages"][1]["content"].startswith("<think>\n</think>\n") for r in general)
    cold_records = [json.loads(x) for x in (out / "data/cold-start.jsonl").read_text().splitlines()]
    assert all("\\boxed{" in r["messages"][1]["content"].split("</think>")[1] for r in cold_records)
    report = (out / "report.md").read_text()
    assert "## Per stage (held-out)" in report and "| dev3 |" in report and "![stages](plots/stages.png)" in report
    for f in ("plots/stages.png", "plots/rl_heldout.png", "models/dev3/model.safetensors", "eval/dev3/samples.jsonl"):
        assert (out / f).is_file(), f
    dev2 = (out / "dev2.yaml").read_text()
    assert "language_consistency: 1.0" in dev2 and "r1-plain" in dev2
