"""Whole GRPO runs through the shared core on a tiny random model: reproducible, exactly resumable, observable.

The model is random with a head restricted to a few words (see `_base_model`), and the reward is the repetition
penalty on single words, which its noise varies: enough for non-zero advantages, updates, clipping, KL and every
bookkeeping path.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from trainer_fixtures import TINY_MODEL, assert_identical, killed_runs, state_copy, train_run, write_config

from r1.engine.testing import tiny_tokenizer
from r1.model import Transformer, preset
from r1.model.checkpoint import load_pretrained, save_pretrained


def _base_model(tmp: Path, eos: bool = True) -> Path:
    """A tiny random DeepSeek-V3 whose head can only say a few words (" wait", " the", " a", " 7", "</think>", EOS):
    noise that repeats itself and stops at different lengths, so a repetition reward differs within every group.
    Without `eos` it never stops: every completion is cut at max_new_tokens."""
    path = tmp / ("base" if eos else "base-no-eos")
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
    words = [tok.encode(w)[0] for w in (" wait", " the", " a", " 7", "</think>")] + [tok.eos_id] * eos
    with torch.no_grad():
        keep = model.lm_head.weight[words] * 10
        model.lm_head.weight.zero_()
        model.lm_head.weight[words] = keep
    save_pretrained(model, path)
    tok.save(path)
    return path


def _config_file(tmp: Path, name: str, eos: bool = True, **grpo) -> Path:
    """A YAML config: 2 prompts × 4 samples of ≤ 10 tokens per rollout, minibatches of 4 in micro-batches of 2."""
    base = {
        "stage": "grpo",
        "model": str(_base_model(tmp, eos)),
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
    # held-out evaluation: the initial policy (step 0), step 2 and the end; named as what it is, not a loss
    evals = _records(tmp_path / "a", "eval")
    assert [e["step"] for e in evals] == [0, 2, 3] and not _records(tmp_path / "b", "eval")
    assert {"eval_pass@1", "eval_cons@2", "eval_length_mean", "eval_reflection"} <= set(evals[0])
    assert not any(k.startswith("baseline/") for k in steps_a[0]) and "eval_loss" not in evals[0]
    logged = [json.loads(x) for x in (tmp_path / "a" / "completions.jsonl").read_text().splitlines()]
    assert [c["step"] for c in logged] == [0] * 4 + [2] * 4 + [3] * 4  # grpo.log_completions = 4 per evaluation
    assert {"question", "answer", "completion", "correct", "reward", "reward/repetition"} <= set(logged[0])
    plots = {p.name for p in (tmp_path / "a" / "plots").iterdir()}
    assert {"grpo_accuracy.png", "grpo_length.png", "grpo_reflection.png", "grpo_rewards.png"} <= plots
    report = (tmp_path / "a" / "report.md").read_text()
    assert "## GRPO" in report and "held-out pass@1" in report and "grpo_reflection.png" in report
    assert "Completions at the last evaluation (step 3" in report and "| repetition |" in report


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
    killed_runs(config, tmp_path, {name: [f"debug.kill_at_step={step}"] for name, step in kills.items()})
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


# ============================================================================================== options, in real runs
# Each test below fails when its option is broken (checked by breaking each once: masking ignored, the reference
# never refreshed, the cap not applied, expert counts always handed to the core).
def _trained(tmp: Path, name: str, eos: bool = True, **grpo) -> tuple[dict, list[dict]]:
    config = _config_file(tmp, name, eos, **grpo)
    result = train_run(config, tmp / name)
    return state_copy(result.model), _records(tmp / name)


def test_mask_truncated_takes_cut_completions_out_of_the_loss(tmp_path):
    """A base that never stops: every completion is cut at max_new_tokens. Masked, nothing is trained (β 0, no
    weight decay: the weights stay exactly the base's); unmasked, the same rollouts train."""
    common = dict(train__steps=1, train__batch_size=8, grpo__beta=0.0, optim__weight_decay=0.0)
    base = state_copy(load_pretrained(_base_model(tmp_path, eos=False)))
    masked, steps = _trained(tmp_path, "masked", eos=False, grpo__mask_truncated=True, **common)
    unmasked, _ = _trained(tmp_path, "unmasked", eos=False, grpo__mask_truncated=False, **common)
    assert steps[0]["truncated"] == 1.0 and steps[0]["reward_std"] > 0  # the advantages are not 0
    assert all(torch.equal(masked[k], base[k]) for k in base) and steps[0]["pg_loss"] == 0.0
    assert any(not torch.equal(unmasked[k], base[k]) for k in base)


def test_ref_refresh_resets_the_reference_to_the_policy(tmp_path):
    """One minibatch per rollout: right after a reset π_ref = π_θ, so the KL is 0 again; without resets it grows."""
    common = dict(train__steps=4, train__batch_size=8, grpo__beta=0.05)
    _, every2 = _trained(tmp_path, "every2", grpo__ref_refresh=2, **common)
    _, never = _trained(tmp_path, "never", grpo__ref_refresh=0, **common)
    kl = [r["kl"] for r in every2]
    assert kl[0] < 1e-9 < kl[1] and kl[2] < 1e-9 < kl[3]  # reset before rollout 2 (step 3)
    assert never[2]["kl"] > 1e-9 and never[1]["kl"] == kl[1]
    assert [p.name for p in (tmp_path / "every2" / "grpo").iterdir()] == ["reference-step-000002.safetensors"]


def test_tis_cap_truncates_the_importance_weight(tmp_path):
    """At T 0.5 the sampler is sharper than the model, so π_old / π_sampler exceeds 1 on the tokens it sampled
    against the odds; the cap bounds every token's weight, and the weights change the update."""
    common = dict(train__steps=1, grpo__temperature=0.5, grpo__old_logprobs="trainer")
    capped, low = _trained(tmp_path, "cap1", grpo__tis_cap=1.0, **common)
    loose, high = _trained(tmp_path, "cap50", grpo__tis_cap=50.0, **common)
    assert low[0]["tis_weight_max"] <= 1.0 < high[0]["tis_weight_max"]
    assert any(not torch.equal(capped[k], loose[k]) for k in capped)


def test_router_bias_moves_in_rl_only_when_asked(tmp_path):
    """Aux-loss-free balancing moves the routing biases outside the loss: off by default in RL."""
    base = load_pretrained(_base_model(tmp_path))
    bias = lambda state: {k: v for k, v in state.items() if k.endswith("e_score_correction_bias")}  # noqa: E731
    before = bias(state_copy(base))
    off, _ = _trained(tmp_path, "off", train__steps=2, grpo__update_router_bias=False)
    on, _ = _trained(tmp_path, "on", train__steps=2, grpo__update_router_bias=True)
    assert before and all(torch.equal(v, before[k]) for k, v in bias(off).items())
    assert any(not torch.equal(v, before[k]) for k, v in bias(on).items())


def test_evaluation_and_statistics_options_do_what_they_say(tmp_path):
    """eval_at_start off: no step-0 record; eval_max_new_tokens bounds held-out lengths; a wider overlong buffer
    penalises more of the same completions; reflection_words is the word list the reflection rates count."""
    common = dict(train__steps=1, grpo__eval_items=2, grpo__eval_k=2, grpo__soft_overlong=True)
    _trained(tmp_path, "a", grpo__eval_at_start=False, grpo__eval_max_new_tokens=3, grpo__overlong_buffer=8, **common)
    _trained(tmp_path, "b", **common)
    (eval_a,), eval_b = _records(tmp_path / "a", "eval"), _records(tmp_path / "b", "eval")
    assert eval_a["step"] == 1 and [e["step"] for e in eval_b] == [0, 1]
    assert eval_a["eval_length_max"] <= 3 < eval_b[-1]["eval_length_max"]
    (a,), (b,) = _records(tmp_path / "a"), _records(tmp_path / "b")
    assert a["reward/soft_overlong"] < b["reward/soft_overlong"] <= 0.0
    # the R1 chat template opens <think>: what the model says before its "</think>" is reasoning, where the judge
    # looks for reflection words
    _trained(tmp_path, "c", train__steps=1, grpo__template="r1", grpo__reflection_words=[])
    _trained(tmp_path, "d", train__steps=1, grpo__template="r1", grpo__reflection_words=["the"])
    (c,), (d,) = _records(tmp_path / "c"), _records(tmp_path / "d")
    assert c["reflection"] == 0.0 < d["reflection"]  # the head says " the" often
