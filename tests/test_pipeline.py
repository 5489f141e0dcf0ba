"""The README's main job runs end to end (as a seconds-long smoke run) and leaves a readable, loadable run folder;
the runner continues a folder stage by stage."""

from __future__ import annotations

import json

import pytest
import torch

from r1.cli import main as cli
from r1.pipeline.recipes.r1_zero import eval_items


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "quick"
    assert cli(["run", "--quick", "--out", str(out)]) == 0
    return out


def test_run_folder_has_config_corpus_training_eval_and_report(quick_run, capsys):
    out = quick_run
    for f in (
        "config.yaml",
        "pretrain.yaml",
        "summary.json",
        "report.md",
        "data/corpus.jsonl",
        "pretrain/metrics.jsonl",
        "r1-zero.yaml",
        "r1-zero/metrics.jsonl",
        "r1-zero/plots/grpo_accuracy.png",
        "r1-zero/plots/grpo_length.png",
        "r1-zero/plots/grpo_reflection.png",
        "data/heldout.jsonl",
    ):
        assert (out / f).is_file(), f
    summary = json.loads((out / "summary.json").read_text())
    stages = ["corpus", "tokenizer", "pretrain", "base", "eval-base", "r1-zero", "eval", "total"]
    assert list(summary["seconds"]) == stages
    assert summary["pretrain"]["steps"] >= 1 and summary["pretrain"]["tokens"] > 0
    assert summary["r1_zero"]["steps"] == 2 and [p["step"] for p in summary["r1_zero"]["curve"]] == [0, 1, 2]
    for model in ("base", "r1-zero"):
        table = summary["eval"]["tables"][model]
        assert {"2", "3", "4", "trained", "all"} <= set(table)
        assert table["2"]["free_t1.0"]["items"] >= 1 and 0.0 <= table["trained"]["free_t1.0"]["think_share"] <= 1.0
        for name in ("free_t1.0", "free_t0.6", "forced_direct", "forced_steps"):
            assert (out / "eval" / model / name / "results.json").is_file()
            assert 0.0 <= table["all"][name]["pass@1"] <= 1.0
        assert 0.0 <= table["all"]["free_t1.0"]["format_rate"] <= 1.0 and table["all"]["free_t1.0"]["length_mean"] > 0
    # RL's held-out curve uses the table's problems of the corpus levels: the curve and the table agree
    heldout = [json.loads(line) for line in (out / "data" / "heldout.jsonl").read_text().splitlines()]
    assert len(heldout) == summary["eval"]["tables"]["base"]["trained"]["free_t1.0"]["items"]
    assert summary["amplify"]["ok"] is False and "WARNING" in summary["amplify"]["text"]  # a 3-step base has nothing
    report = (out / "report.md").read_text()
    assert "Before → after R1-Zero" in report and "forced direct" in report and "forced steps" in report
    assert "| 2 |" in report and "| 4 (beyond corpus) |" in report and "| **all** |" in report
    assert "accuracy when reasoning" in report and "Time per stage" in report and "WARNING" in report
    assert "![grpo_accuracy](r1-zero/plots/grpo_accuracy.png)" in report


@pytest.mark.parametrize("folder", ["base", "model"])
def test_model_folders_load_in_r1_engine_and_transformers(quick_run, folder):
    from r1.engine import Engine, SamplingParams
    from r1.model.checkpoint import load_pretrained

    model_dir = quick_run / folder
    for f in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        assert (model_dir / f).is_file(), f
    assert not list(model_dir.glob("trainer_state*"))  # the model folder is a model, not a resumable checkpoint
    ours = load_pretrained(model_dir).eval()
    engine = Engine.from_pretrained(model_dir, max_batch=2, max_len=128)
    out = engine.generate(
        ["User: Compute 1+2 from left to right, mod 10. Assistant:"], SamplingParams(max_tokens=4, temperature=0)
    )
    assert len(out[0].samples[0].tokens) >= 1
    transformers = pytest.importorskip("transformers")
    theirs = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    ids = torch.randint(0, ours.config.vocab_size, (1, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert (ours(ids).logits - theirs(ids).logits).abs().max().item() < 1e-4
    tok = transformers.AutoTokenizer.from_pretrained(model_dir)
    assert tok.convert_tokens_to_ids("<think>") == 5
    # the folder's chat template asks in the model's own prompt format: chat, serve and transformers agree with RL
    from r1.data.corpus import prompt_for
    from r1.tokenizer import Tokenizer

    ours_tok = Tokenizer.load(model_dir)
    item = eval_items("3", 1, seed=0)[0]
    chat = [{"role": "user", "content": item["meta"]["question"]}]
    want = [ours_tok.bos_id, *ours_tok.encode(prompt_for(item, "r1-zero-short"))]
    assert ours_tok.apply_chat_template(chat, tokenize=True) == want
    theirs_text = tok.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    assert theirs_text == ours_tok.apply_chat_template(chat)


def test_base_and_model_carry_their_own_cards_and_provenance(quick_run):
    """Each published folder describes itself: nothing is copied from the base it was trained from."""
    import hashlib

    import yaml

    from r1.train.publish import verify_provenance

    cards = {}
    for folder, stage in (("base", "pretrain"), ("model", "r1-zero")):
        d = quick_run / folder
        verify_provenance(d)  # hashes == the folder's own files, card included
        made = json.loads((d / "provenance.json").read_text())
        assert made["stage"] == stage and made["command"].endswith(f"--quick --out {quick_run}")
        assert made["files"]["model.safetensors"] == hashlib.sha256((d / "model.safetensors").read_bytes()).hexdigest()
        assert any(k.startswith("held-out pass@1") for k in made["metrics"]), "evaluation numbers reach the card"
        cards[folder] = (d / "README.md").read_text()
        assert yaml.safe_load(cards[folder].split("---\n")[1])["pipeline_tag"] == "text-generation"
    assert yaml.safe_load(cards["model"].split("---\n")[1])["base_model"] == str(quick_run / "base")
    assert "trained from scratch" in cards["base"] and "R1-Zero" in cards["model"] and cards["base"] != cards["model"]
    assert json.loads((quick_run / "base" / "provenance.json").read_text())["corpus"]["documents"] == 200


def test_r1_chat_answers_from_the_model_folder(quick_run, capsys):
    assert (
        cli(
            [
                "chat",
                "--model",
                str(quick_run / "model"),
                "-p",
                "Compute 1+2 from left to right, mod 10.",
                "--max-tokens",
                "4",
                "--temperature",
                "0",
            ]
        )
        == 0
    )


def test_forced_prefills_commit_to_a_style_and_are_kept_in_the_answer_text():
    from r1.pipeline.recipes.r1_zero import prompted
    from r1.pipeline.stages.evaluate import with_prefill

    items = eval_items("2-3", 3, seed=0)
    assert [i["meta"]["difficulty"] for i in items] == ["2"] * 3 + ["3"] * 3
    assert all(i["meta"]["split"] == "eval" for i in items)
    direct, steps = prompted(items, "r1-zero-short", "direct"), prompted(items, "r1-zero-short", "steps")
    assert prompted(items, "r1-zero")[0]["prompt"].startswith("This is a conversation")
    assert prompted(items, "r1-zero-short")[0]["prompt"] == "User: " + items[0]["meta"]["question"] + " Assistant:"
    assert all(d["prompt"].endswith("Assistant: <think>\n</think>\n<answer>") for d in direct)
    assert all(
        s["prompt"].endswith("Assistant: <think>\n" + i["meta"]["question"].split()[1][0]) for s, i in zip(steps, items)
    )
    fake = with_prefill(lambda batch, n, params: [["7</answer>"] * n for _ in batch])
    assert fake(direct[:1], 2, {})[0][0]["text"] == " <think>\n</think>\n<answer>7</answer>"


def test_bad_budget_is_a_user_error(capsys):
    assert cli(["run", "--quick", "--steps", "0", "--out", "/nonexistent/x"]) == 2
    assert "--steps must be >= 1" in capsys.readouterr().err
    assert cli(["run", "--quick", "--rl-steps", "-1", "--out", "/nonexistent/x"]) == 2
    assert "--rl-steps must be >= 0" in capsys.readouterr().err


def test_base_folder_skips_pretraining_and_rl_steps_0_stops_after_the_base_eval(quick_run, tmp_path, capsys):
    out = tmp_path / "from-base"
    assert cli(["run", "--quick", "--base", str(quick_run / "base"), "--rl-steps", "0", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["seconds"]) == ["base", "eval-base", "total"]
    assert not (out / "pretrain").exists() and not (out / "model").exists()
    assert list(summary["eval"]["tables"]) == ["base"]
    assert f"r1 chat --model {quick_run / 'base'}" in (out / "report.md").read_text()
    assert cli(["run", "--quick", "--base", str(tmp_path), "--out", str(tmp_path / "x")]) == 2
    assert "not a model folder" in capsys.readouterr().err


def test_amplify_check_predicts_the_style_shift_gain_and_says_plainly_when_reasoning_does_not_pay():
    from r1.pipeline.stages.evaluate import amplify_check

    # the seed-0 base of the measured recipe: RL then gained +30 points (docs/LOG.md)
    good = amplify_check({"pass@1": 0.68, "pass@8": 0.99, "think_share": 0.26, "acc_long": 0.94, "acc_direct": 0.59}, 8)
    assert good["ok"] and "≈ 94% (+26 points)" in good["text"]
    flat = amplify_check({"pass@1": 0.5, "pass@8": 0.9, "think_share": 0.3, "acc_long": 0.45, "acc_direct": 0.52}, 8)
    assert not flat["ok"] and flat["text"].startswith("WARNING") and "favour short answers" in flat["text"]
    never = amplify_check({"pass@1": 0.5, "pass@8": 0.55, "think_share": 0.0, "acc_long": None, "acc_direct": 0.5}, 8)
    assert not never["ok"] and "barely above pass@1" in never["text"] and "never writes a think block" in never["text"]


def test_the_default_job_starts_from_the_shipped_base_and_from_scratch_trains_one(tmp_path, capsys):
    import argparse

    from r1.pipeline.cli import register
    from r1.pipeline.recipes.r1_zero import BUILTIN_BASE, config_from_args

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    parse = lambda *a: config_from_args(parser.parse_args(["run", "--out", str(tmp_path), *a]))  # noqa: E731
    assert parse().base == str(BUILTIN_BASE) and parse("--seed", "3").base == str(BUILTIN_BASE)
    assert parse("--from-scratch").base is None and parse("--quick").base is None
    assert parse("--base", "x").base == "x"
    for bad in (["--base", "x", "--from-scratch"], ["--steps", "10"]):
        assert cli(["run", "--out", str(tmp_path), *bad]) == 2
    assert "exclude each other" in capsys.readouterr().err
    made = json.loads((BUILTIN_BASE / "provenance.json").read_text())
    assert made["command"].startswith("r1 run --from-scratch") and len(made["sha256"]) == 64


def _stage_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().out.splitlines() if line.startswith("[")]


def test_a_run_folder_is_continued_stage_by_stage(quick_run, tmp_path, capsys):
    """Running into a folder again keeps the stages done there; --from reruns from a stage; --until stops after one;
    other settings are refused; a kept stage keeps its numbers."""
    import shutil

    out = tmp_path / "again"
    shutil.copytree(quick_run, out)
    before = json.loads((out / "summary.json").read_text())
    assert cli(["run", "--quick", "--out", str(out)]) == 0
    assert all(line.endswith("kept") for line in _stage_lines(capsys))
    assert cli(["run", "--quick", "--out", str(out), "--from", "eval"]) == 0
    assert [line.endswith("kept") for line in _stage_lines(capsys)] == [True] * 6 + [False]
    after = json.loads((out / "summary.json").read_text())
    assert after["status"] == "complete" and after["eval"] == before["eval"]  # the same model, the same numbers
    assert {k: v for k, v in after["seconds"].items() if k not in ("eval", "total")} == {
        k: v for k, v in before["seconds"].items() if k not in ("eval", "total")
    }
    assert cli(["run", "--quick", "--out", str(out), "--eval-k", "3"]) == 2
    assert "holds a run made with other settings (eval_k 2 -> 3)" in capsys.readouterr().err
    assert cli(["run", "--quick", "--out", str(out), "--from", "nope"]) == 2
    assert "not a stage of recipe r1-zero (corpus, tokenizer, pretrain, base" in capsys.readouterr().err
    part = tmp_path / "part"
    args = ["run", "--quick", "--base", str(quick_run / "base"), "--rl-steps", "0", "--out", str(part)]
    assert cli([*args, "--until", "base"]) == 0
    summary = json.loads((part / "summary.json").read_text())
    assert summary["status"] == "partial" and list(summary["seconds"]) == ["base", "total"]
    assert "**Not run yet**: eval-base" in (part / "report.md").read_text()
    capsys.readouterr()
    assert cli(args) == 0
    assert [line.endswith("kept") for line in _stage_lines(capsys)] == [True, False]
    assert json.loads((part / "summary.json").read_text())["status"] == "complete"
