"""The training core: accumulation, determinism, routing-bias updates, the run folder, the CLI, SFT end to end."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from trainer_fixtures import state_copy, tiny_config, tiny_overrides, token_corpus, write_jsonl

from r1.cli import COMMANDS
from r1.cli import main as r1_main
from r1.engine.testing import tiny_tokenizer
from r1.errors import ConfigError
from r1.model.checkpoint import load_pretrained
from r1.train import TrainConfig, train
from r1.train.config import load_config
from r1.train.pretrain import PretrainStage
from r1.train.sft import SFTStage


def run(tmp_path, name, docs=None, **extra):
    cfg = tiny_config(tmp_path / name, **extra)
    return train(cfg, PretrainStage(cfg, data=docs or token_corpus())).model


def cli(argv: list[str]) -> int:
    """`r1 train ...` through the top-level CLI once it knows the subcommand, else through the module's own."""
    if "train" in COMMANDS:
        return r1_main(["train", *argv])
    from r1.train.cli import main

    return main(argv)


def test_accumulation_two_half_batches_equal_one_full_batch(tmp_path):
    docs = token_corpus(40, min_len=64, max_len=65)  # one document per row: every micro-batch weighs the same
    # Adam's eps well above the ulp noise of gradients that cancel to ~1e-9: at eps 1e-8, Adam's first step divides
    # such a near-zero gradient by itself plus eps and turns a 1e-10 summation-order difference into 1e-5 of weight
    common = dict(train__steps=2, schedule__kind="constant", schedule__warmup_steps=0, optim__eps=1e-6)
    full = state_copy(run(tmp_path, "full", docs, **common))
    accum = state_copy(run(tmp_path, "accum", docs, train__micro_batch_size=2, **common))
    for k in full:
        torch.testing.assert_close(accum[k], full[k], atol=2e-6, rtol=1e-5, msg=k)


def test_same_seed_gives_identical_weights_and_bias_moves_after_steps(tmp_path):
    a = run(tmp_path, "a", train__steps=3)
    b = run(tmp_path, "b", train__steps=3)
    wa, wb = state_copy(a), state_copy(b)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    c = state_copy(run(tmp_path, "c", train__steps=3, train__seed=1))
    assert not torch.equal(c["model.embed_tokens.weight"], wa["model.embed_tokens.weight"])
    gamma = a.config.bias_update_speed
    for moe in a.moe_layers():  # 3 sign updates of size γ from 0: nonzero, bounded, on the γ grid
        bias = moe.gate.e_score_correction_bias
        assert bias.abs().max() > 0 and bias.abs().max() <= 3 * gamma + 1e-9
        torch.testing.assert_close(bias / gamma, (bias / gamma).round(), atol=1e-4, rtol=0)
    assert not any("e_score_correction_bias" in n for n, _ in a.named_parameters())


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "full"
    data = write_jsonl(out.parent / "train.jsonl", token_corpus())
    evals = write_jsonl(out.parent / "eval.jsonl", token_corpus(8, seed=9))
    argv = [
        *tiny_overrides(out),
        f"data.paths=[{data}]",
        f"data.eval_paths=[{evals}]",
        "train.eval_every=3",
        "checkpoint.every=2",
        "checkpoint.keep_last=2",
        "logging.plots=true",
        "logging.report=true",
    ]
    assert cli(argv) == 0
    return out


def test_run_folder_contents(full_run):
    cfg = TrainConfig.from_dict(yaml.safe_load((full_run / "config.yaml").read_text()))
    assert cfg.train.steps == 6 and cfg.model.overrides["hidden_size"] == 64  # the resolved config round-trips
    records = [json.loads(line) for line in (full_run / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if r["event"] == "step"]
    assert [r["step"] for r in steps] == [1, 2, 3, 4, 5, 6]
    for key in (
        "loss",
        "lm_loss",
        "mtp_loss",
        "balance_loss",
        "lr",
        "grad_norm",
        "tokens_per_s",
        "flops_per_s",
        "mfu",
        "expert_imbalance",
        "epoch",
        "index",
    ):
        assert key in steps[-1], key
    assert len(steps[-1]["expert_imbalance"]) == 2 and min(steps[-1]["expert_imbalance"]) >= 1.0
    assert 0 < steps[-1]["mfu"] < 1
    assert [r["step"] for r in records if r["event"] == "eval"] == [3, 6]
    assert steps[-1]["loss"] < steps[0]["loss"]
    for name in ("loss", "lr", "grad_norm", "expert_balance"):
        assert (full_run / "plots" / f"{name}.png").stat().st_size > 1000
    report = (full_run / "report.md").read_text()
    assert "![loss](plots/loss.png)" in report and "final eval loss" in report
    kept = sorted(p.name for p in (full_run / "checkpoints").iterdir())
    assert kept == ["step-000004", "step-000006"]  # rotated: the last 2


def test_checkpoint_loads_in_r1_and_transformers(full_run):
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    path = full_run / "checkpoints" / "step-000006"
    ours = load_pretrained(path)
    theirs = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    ids = torch.randint(0, 300, (2, 32), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(theirs(ids).logits, ours(ids).logits, atol=1e-4, rtol=1e-4)
    bias = ours.moe_layers()[0].gate.e_score_correction_bias
    assert bias.abs().max() > 0  # the trained routing bias is in the file


def test_cli_refuses_to_overwrite_and_reports_config_errors(full_run, capsys):
    with pytest.raises(ConfigError, match="already holds checkpoints.*--resume"):
        train(tiny_config(full_run))
    assert cli(["--out", str(full_run), "train.stpes=3"]) == 2
    assert "did you mean 'steps'" in capsys.readouterr().err
    assert cli([*tiny_overrides(full_run), "--print-config"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["train"]["out"] == str(full_run)


def test_sft_run_trains_on_assistant_tokens_and_ships_the_tokenizer(tmp_path):
    tok = tiny_tokenizer()
    tok_dir = tok.save(tmp_path / "tok")
    convo = [
        {
            "messages": [
                {"role": "user", "content": f"{a}+{a}?"},
                {"role": "assistant", "content": f"<think>\n{a}+{a}={2 * a}\n</think>\n{2 * a}"},
            ]
        }
        for a in range(30)
    ]
    data = write_jsonl(tmp_path / "sft.jsonl", convo)
    model = {k: v for k, v in (o.split("=", 1) for o in tiny_overrides(tmp_path)) if k.startswith("model.")}
    model.pop("model.vocab_size")  # taken from the tokenizer
    cfg = load_config(
        None,
        [
            *(f"{k}={v}" for k, v in model.items()),
            "stage=sft",
            f"data.tokenizer={tok_dir}",
            f"data.paths=[{data}]",
            "data.seq_len=64",
            "train.batch_size=4",
            "train.steps=3",
            "train.threads=1",
            f"train.out={tmp_path / 'sft'}",
            "logging.progress=false",
            "logging.plots=false",
        ],
    )
    result = train(cfg)
    assert result.model.config.vocab_size == tok.vocab_size
    assert (result.checkpoint / "tokenizer.json").is_file() and (result.checkpoint / "config.json").is_file()
    stage = SFTStage(cfg)
    assert stage.split_documents is False
