"""The shipped paper-scale configs hold the paper's numbers (recipe.md §2.4, §3): a change to one is a decision,
not an accident. (tests/test_configs_run.py runs each of them, shortened, as its comment documents.)"""

from __future__ import annotations

import math

import pytest

from r1.train.config import load_config
from r1.train.grpo.options import resolve_options

SFT = {"lr": 5e-5, "min_lr": 5e-6, "batch": 128, "seq_len": 32768}  # R1v2 App. B.4.2, both SFT stages
# stage 2 and 4's GRPO [Nat Methods]: lr, β, ε, T, G, max length, 512 outputs per step, 8,192 per rollout, reset 400
RL = {"lr": 3e-6, "beta": 1e-3, "eps": 10.0, "G": 16, "max_len": 32768, "batch": 512, "rollout": 8192, "reset": 400}


@pytest.mark.parametrize(
    ("name", "samples", "epochs"),
    [("r1-cold-start-sft", 5000, 2), ("r1-rejection-sft", 804_745, 2)],  # 5,000: "thousands" (chosen); Table 5
)
def test_sft_stages_hold_the_paper_numbers(name, samples, epochs):
    c = load_config(name)
    assert c.stage == "sft" and c.model.preset == "deepseek-v3-671b"
    assert c.optim.lr == SFT["lr"] and c.schedule.kind == "cosine"
    assert math.isclose(c.optim.lr * c.schedule.min_lr_ratio, SFT["min_lr"])
    assert c.train.batch_size == SFT["batch"] and c.data.seq_len == SFT["seq_len"]
    assert c.data.batching == "bucket"  # one sample per row: batch 128 counts samples, as the paper does
    assert c.train.steps == math.ceil(samples * epochs / c.train.batch_size)


def test_distillation_holds_the_paper_numbers():
    """R1v2 App. B.4.3: SFT only, cosine to 1/10, 32,768 tokens, batch 64; Table 6: R1-Distill-Qwen-32B's lr 6e-5."""
    c = load_config("r1-distill-sft")
    assert c.stage == "sft" and c.model.preset == "qwen2.5-32b" and c.optim.lr == 6e-5
    assert c.schedule.kind == "cosine" and c.schedule.min_lr_ratio == 0.1
    assert c.train.batch_size == 64 and c.data.seq_len == 32768 and c.data.batching == "bucket"
    assert c.train.steps == math.ceil(804_745 * 2 / 64)


@pytest.mark.parametrize(
    ("name", "steps", "temperature", "prompts"),
    [
        ("r1-zero-nature", 10400, 1.0, None),
        ("r1-reasoning-rl", 2750, 1.0, 88_000),
        ("r1-all-scenario-rl", 1700, 0.7, 154_000),
    ],
)
def test_rl_stages_hold_the_paper_numbers(name, steps, temperature, prompts):
    c = load_config(name)
    o = resolve_options(c.options)
    assert c.stage == "grpo" and c.model.preset == "deepseek-v3-671b"
    assert c.optim.lr == RL["lr"] and c.schedule.kind == "constant" and c.train.steps == steps
    assert (o.beta, o.eps_low, o.eps_high, o.group_size, o.max_new_tokens) == (
        RL["beta"], RL["eps"], RL["eps"], RL["G"], RL["max_len"]
    )  # fmt: skip
    assert o.temperature == temperature and o.ref_refresh == RL["reset"] and o.epochs == 1
    assert c.train.batch_size == RL["batch"] and o.prompts_per_rollout * o.group_size == RL["rollout"]
    assert RL["rollout"] // c.train.batch_size == 16 and c.train.batch_size // o.group_size == 32  # questions/step
    if prompts is not None:  # R1's stages add the language-consistency reward to the rule rewards, equal weights
        assert o.train_items == prompts and o.template == "r1"
        assert o.reward == {"accuracy": 1.0, "format": 1.0, "language_consistency": 1.0}
