"""Whole GRPO runs through the shared core on a tiny random model: reproducible, exactly resumable, observable.

The model is random with a head restricted to a few words (see `_base_model`), and the reward is the repetition
penalty on single words, which its noise varies: enough for non-zero advantages, updates, clipping, KL and every
bookkeeping path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from r1.engine.testing import tiny_tokenizer
from r1.model import Transformer, preset
from r1.model.checkpoint import save_pretrained
from r1.train.testing import TINY_MODEL, assert_identical, state_copy, train_run, write_config

ROOT = Path(__file__).resolve().parents[1]


def _base_model(tmp: Path) -> Path:
    """A tiny random DeepSeek-V3 whose head can only say a few words (" the", " w", " a", " ", "</think>", EOS):
    noise that repeats itself and stops at different lengths, so a repetition reward differs within every group."""
    path = tmp / "base"
    if (path / "config.json").is_file():
        return path
    tok = tiny_tokenizer()
    fields = {k: v for k, v in TINY_MODEL.items() if k not in ("preset", "vocab_size")}
    cfg = preset(
        "tiny",
        **fields,
        vocab_size=tok.vocab_size,
        bos_token_id=tok.bos_id,
        eos_token_id=tok.eos_id,
        pad_token_id=tok.pad_id,
        initializer_range=0.1,
    )
    torch.manual_seed(0)
    model = Transformer(cfg)
    words = [tok.encode(w)[0] for w in (" wait", " the", " a", " 7", "</think>")] + [tok.eos_id]
    with torch.no_grad():
        keep = model.lm_head.weight[words] * 10
        model.lm_head.weight.zero_()
        model.lm_head.weight[words] = keep
    save_pretrained(model, path)
    tok.save(path)
    return path


def _config_file(tmp: Path, name: str, **grpo) -> Path:
    """A YAML config: 2 prompts × 4 samples of ≤ 10 tokens per rollout, minibatches of 4 in micro-batches of 2."""
    base = {
        "stage": "grpo",
        "model": str(_base_model(tmp)),
        "train.batch_size": 4,
        "train.micro_batch_size": 2,
        "train.steps": 6,
        "train.threads": 1,
        "optim.lr": 3e-3,
        "schedule.kind": "constant",
        "schedule.warmup_steps": 0,
        "logging.progress": False,
        "logging.plots": False,
        "logging.report": False,
        "grpo.prompts_per_rollout": 2,
        "grpo.group_size": 4,
        "grpo.max_new_tokens": 10,
        "grpo.train_items": 16,
        "grpo.reward": {"repetition": {"ngram_size": 1}},
        "grpo.eps_low": 0.02,
        "grpo.eps_high": 0.02,
    }
    base.update({k.replace("__", "."): v for k, v in grpo.items()})
    overrides = [f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in base.items()]
    return write_config(tmp / f"{name}.yaml", overrides)


def _records(run: Path, event: str = "step") -> list[dict]:
    return [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if r["event"] == event]


# μ = 2 passes × 2 minibatches: a rollout lasts 4 steps, so checkpoints (every 2) land mid-rollout; β > 0 with a
# reference that is never reset (it must come back from its file); π_old recomputed by the trainer, with TIS.
RESUME = {
    "grpo__epochs": 2,
    "grpo__beta": 0.05,
    "grpo__old_logprobs": "trainer",
    "grpo__tis_cap": 2.0,
    "checkpoint__every": 2,
    "checkpoint__keep_last": 3,
}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("grpo")
    config = _config_file(tmp, "resume", **RESUME)
    result = train_run(config, tmp / "reference")
    return config, tmp / "reference", state_copy(result.model)


def test_a_run_learns_something_and_logs_what_users_watch(reference):
    _, run, ref = reference
    steps = _records(run)
    assert [r["step"] for r in steps] == [1, 2, 3, 4, 5, 6]
    assert [r["rollout"] for r in steps] == [0, 0, 0, 0, 1, 1] and steps[-1]["prompts_used"] == 4
    for key in (
        "reward",
        "reward/repetition",
        "reward/repetition_std",
        "frac_reward_zero_std",
        "accuracy",
        "format_rate",
        "kl",
        "kl_loss",
        "pg_loss",
        "entropy",
        "clip/low",
        "clip/high",
        "length_mean",
        "length_p90",
        "length_max",
        "truncated",
        "reflection",
        "reflection_long",
        "adv_logprob_change",
        "logprob_diff_max",
        "tis_weight_mean",
        "grad_norm",
    ):
        assert key in steps[-1], key
    assert "time/rollout" in steps[0] and "rollout_tokens_per_s" in steps[4] and "time/rollout" not in steps[1]
    assert steps[0]["kl"] < 1e-9 < steps[-1]["kl"]  # π_ref = π_θ at first (up to batch-shape numerics), then not
    assert abs(steps[0]["adv_logprob_change"]) < 1e-6  # π_θ = π_old on a rollout's first minibatch
    assert max(r["adv_logprob_change"] for r in steps[1:4]) > 0  # later passes: moved toward better samples
    assert max(r["clip/low"] + r["clip/high"] for r in steps) > 0  # ε = 0.02: later passes clip
    assert steps[0]["logprob_diff_max"] < 1e-4  # fp32 trainer vs engine
    assert any(r["grad_norm"] > 0 for r in steps)
    # the rollout files left are exactly those a checkpoint (2, 4, 6) or the current state needs
    files = sorted(p.name for p in (run / "grpo").iterdir())
    assert files == ["reference-step-000000.safetensors", "rollout-000000.safetensors", "rollout-000001.safetensors"]


def test_same_seed_same_run_and_evaluation_does_not_perturb_training(tmp_path):
    config = _config_file(
        tmp_path,
        "det",
        train__steps=3,
        grpo__beta=0.01,
        grpo__dynamic_sampling=True,
        grpo__soft_overlong=True,
        grpo__mask_truncated=True,
        grpo__loss_agg="token-mean",
    )
    a = train_run(
        config,
        tmp_path / "a",
        "grpo.eval_items=3",
        "grpo.eval_k=2",
        "train.eval_every=2",
        "logging.plots=true",
        "logging.report=true",
    )
    b = train_run(config, tmp_path / "b")
    assert_identical(b.model, state_copy(a.model))
    steps_a, steps_b = _records(tmp_path / "a"), _records(tmp_path / "b")
    assert [r["reward"] for r in steps_a] == [r["reward"] for r in steps_b]
    assert "reward/soft_overlong" in steps_a[0] and "dynamic/gen_rounds" in steps_a[0]
    # held-out evaluation: a baseline on step 1, eval events at step 2 and at the end
    assert "baseline/pass@1" in steps_a[0] and "baseline/pass@1" not in steps_b[0]
    evals = _records(tmp_path / "a", "eval")
    assert [e["step"] for e in evals] == [2, 3]
    assert {"eval_pass@1", "eval_cons@2", "eval_length_mean", "eval_reflection", "eval_loss"} <= set(evals[0])
    assert evals[0]["eval_loss"] == pytest.approx(1 - evals[0]["eval_pass@1"])
    plots = {p.name for p in (tmp_path / "a" / "plots").iterdir()}
    assert {"grpo_accuracy.png", "grpo_length.png", "grpo_reflection.png", "grpo_rewards.png"} <= plots
    report = (tmp_path / "a" / "report.md").read_text()
    assert "## GRPO" in report and "held-out pass@1" in report and "grpo_reflection.png" in report


def test_dynamic_sampling_refills_and_stops_at_the_round_cap(tmp_path):
    # accuracy on a random model is always 0: every group has equal rewards, none can be kept
    config = _config_file(
        tmp_path,
        "dyn",
        train__steps=1,
        grpo__dynamic_sampling=True,
        grpo__max_gen_rounds=3,
        grpo__reward={"accuracy": 1.0},
    )
    train_run(config, tmp_path / "run")
    (step,) = _records(tmp_path / "run")
    assert (step["dynamic/gen_rounds"], step["dynamic/groups_topped_up"], step["prompts_used"]) == (3, 2, 6)
    assert step["frac_reward_zero_std"] == 1.0 and step["pg_loss"] == 0.0  # all advantages are 0


def test_sigkill_mid_rollout_and_at_a_boundary_then_resume_gives_identicalstate_copy(reference, tmp_path):
    config, _, ref = reference
    kills = {"mid-rollout": 3, "boundary": 5}  # resume from step 2 (rollout 0 half done) and from step 4 (boundary)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = {
        name: subprocess.Popen(
            [
                sys.executable,
                "-m",
                "r1.train.cli",
                "--config",
                str(config),
                f"train.out={tmp_path / name}",
                f"debug.kill_at_step={step}",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, step in kills.items()
    }
    for name, p in procs.items():
        _, err = p.communicate(timeout=300)
        assert p.returncode == -9, f"{name}: exit {p.returncode}\n{err[-2000:]}"
    for name in kills:
        result = train_run(config, tmp_path / name, "train.resume=true")
        assert_identical(result.model, ref)
        steps = _records(tmp_path / name)
        assert [r["step"] for r in steps] == [1, 2, 3, 4, 5, 6]
        # mid-rollout: steps 3-4 train on rollout 0 read back from its file; only step 5 generates again
        assert [("time/rollout" in r) for r in steps] == [True, False, False, False, True, False]


def test_stage_refuses_a_batch_size_that_does_not_split_the_rollout(tmp_path):
    from r1.errors import ConfigError

    config = _config_file(tmp_path, "bad", train__batch_size=3, train__micro_batch_size=0)
    with pytest.raises(ConfigError, match="must divide the rollout"):
        train_run(config, tmp_path / "run")
