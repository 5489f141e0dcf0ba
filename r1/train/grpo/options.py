"""Everything under `grpo:` in a config: `GRPOOptions`, the published presets, and `resolve_options`.

A preset (`grpo.preset`: grpo, r1-zero, dr-grpo, dapo, gspo, r1-zero-tiny) sets options, and says where its values
come from (`Preset.source`); any other key under `grpo:` overrides its preset's value, one at a time. Presets also
name the core settings their source used (`Preset.recommended`: lr, batch size); a run that differs gets one line
saying so, not an error: the YAML decides.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from r1.errors import ConfigError
from r1.io import need
from r1.rewards.judge import REFLECTION_WORDS
from r1.tasks.templates import TEMPLATES
from r1.train.config import build_section
from r1.train.grpo.algorithm import AGGREGATIONS, REWARD_SCALES


@dataclass
class GRPOOptions:
    """Defaults are the `grpo` preset (DeepSeekMath)."""

    preset: str = "grpo"
    # -- sampling
    prompts_per_rollout: int = 16  # P
    group_size: int = 64  # G
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 1024
    # -- advantages
    scale_rewards: str = "group"  # group: (r − mean)/(std + eps) within the group; batch: std of the batch; none
    std_eps: float = 1e-4  # TRL's; verl uses 1e-6
    # -- policy loss
    epochs: int = 1  # μ: passes over each rollout
    eps_low: float = 0.2  # ratio clipped to [1 − eps_low, 1 + eps_high]
    eps_high: float = 0.2
    dual_clip: float = 0.0  # c > 1: for Â < 0 the loss is capped at −Â·c (verl's clip_ratio_c); 0 = off
    ratio_level: str = "token"  # token (GRPO) or sequence (GSPO: exp of the mean token log-ratio)
    loss_agg: str = "seq-mean-token-mean"  # see algorithm.AGGREGATIONS
    old_logprobs: str = "engine"  # π_old from the engine's model logprobs, or recomputed by the trainer
    tis_cap: float = 0.0  # > 0: truncated importance weight min(π_old/π_sampler, cap) per token (needs trainer)
    # -- KL to a reference
    beta: float = 0.04  # 0 = no reference model at all
    ref_refresh: int = 0  # reference ← policy every this many steps (at the next rollout); 0 = never
    # -- DAPO
    dynamic_sampling: bool = False  # drop groups whose rewards are all equal, refill with more prompts
    max_gen_rounds: int = 3  # generation rounds per rollout with dynamic sampling
    soft_overlong: bool = False  # add the registry's `soft_overlong` reward (max_len = max_new_tokens)
    overlong_buffer: int = 0  # its buffer; 0 = a fifth of max_new_tokens
    mask_truncated: bool = False  # completions cut at max_new_tokens get no loss (still count for advantages)
    update_router_bias: bool = False  # keep MoE aux-loss-free balancing on during RL (moves π outside the loss)
    # -- prompts and rewards
    task: str | list[str] = "modchain"  # built-in task(s), or rg:NAME; data.paths (task-item JSONL) wins
    difficulty: str | int | None = None
    template: str = "r1-zero"
    train_items: int = 4096  # prompt pool drawn from the task's train split
    reward: dict[str, Any] = field(default_factory=lambda: {"accuracy": 1.0, "format": 1.0})  # Nature Eq. 4
    reflection_words: list[str] = field(default_factory=lambda: list(REFLECTION_WORDS))
    # -- held-out evaluation (when the core evaluates: train.eval_every, and at the end)
    eval_items: int = 0  # items of the task's eval split; 0 = no evaluation
    eval_k: int = 8
    eval_temperature: float = 0.6  # R1's protocol [recipe §4]
    eval_top_p: float = 0.95
    eval_max_new_tokens: int = 0  # 0 = max_new_tokens
    eval_at_start: bool = True  # evaluate the initial policy too (an eval record at step 0)
    log_completions: int = 4  # completions written to completions.jsonl at every evaluation (TRL's log_completions)

    def validate(self) -> None:
        def check(ok: bool, key: str, rule: str) -> None:
            need(ok, f"grpo.{key}", getattr(self, key), rule)

        check(self.prompts_per_rollout >= 1, "prompts_per_rollout", "must be >= 1")
        check(self.group_size >= 2, "group_size", "must be >= 2 (advantages compare samples of one prompt)")
        check(0 < self.temperature <= 100, "temperature", "must be in (0, 100]")
        check(0 < self.top_p <= 1, "top_p", "must be in (0, 1]")
        check(self.max_new_tokens >= 1, "max_new_tokens", "must be >= 1")
        check(self.scale_rewards in REWARD_SCALES, "scale_rewards", f"must be one of {', '.join(REWARD_SCALES)}")
        check(self.std_eps > 0, "std_eps", "must be > 0")
        check(self.epochs >= 1, "epochs", "must be >= 1")
        check(self.eps_low >= 0, "eps_low", "must be >= 0 (>= 1: no lower clip, the ratio is positive)")
        check(self.eps_high >= 0, "eps_high", "must be >= 0")
        check(self.dual_clip == 0 or self.dual_clip > 1, "dual_clip", "must be 0 (off) or > 1")
        check(self.ratio_level in ("token", "sequence"), "ratio_level", "must be token or sequence")
        check(self.loss_agg in AGGREGATIONS, "loss_agg", f"must be one of {', '.join(AGGREGATIONS)}")
        check(self.old_logprobs in ("engine", "trainer"), "old_logprobs", "must be engine or trainer")
        check(self.tis_cap == 0 or self.tis_cap >= 1, "tis_cap", "must be 0 (off) or >= 1")
        check(
            self.tis_cap == 0 or self.old_logprobs == "trainer",
            "tis_cap",
            "needs grpo.old_logprobs=trainer (the weight is π_old(trainer) / π_sampler(engine))",
        )
        check(self.beta >= 0, "beta", "must be >= 0")
        check(self.ref_refresh >= 0, "ref_refresh", "must be >= 0 (0 = never)")
        check(self.max_gen_rounds >= 1, "max_gen_rounds", "must be >= 1")
        check(self.overlong_buffer >= 0, "overlong_buffer", "must be >= 0")
        check(self.template in (*TEMPLATES, "none"), "template", f"must be one of {', '.join(TEMPLATES)} or none")
        check(self.train_items >= 1, "train_items", "must be >= 1")
        check(self.eval_items >= 0 and self.eval_k >= 1, "eval_items", "eval_items >= 0 and eval_k >= 1")
        check(self.log_completions >= 0, "log_completions", "must be >= 0")
        if not self.reward:
            raise ConfigError("grpo.reward: give at least one component, e.g. {accuracy: 1.0, format: 1.0}")


@dataclass(frozen=True)
class Preset:
    options: dict[str, Any]
    source: str
    recommended: dict[str, Any] = field(default_factory=dict)  # core settings the source used (dotted keys)


# fmt: off
PRESETS: dict[str, Preset] = {
    "grpo": Preset({}, "DeepSeekMath §4.2 (lr 1e-6, 16 prompts × 64, batch 1024, max length 1024)",
                   {"optim.lr": 1e-6, "train.batch_size": 1024}),
    "r1-zero": Preset(
        {"beta": 0.001, "group_size": 16, "temperature": 1.0, "prompts_per_rollout": 512, "ref_refresh": 400,
         "eps_low": 10.0, "eps_high": 10.0, "max_new_tokens": 32768, "eval_k": 16},
        "Nature Methods, R1-Zero: lr 3e-6, β 0.001, G 16, T 1, 32 questions (512 outputs) per step, 8,192 "
        "outputs per rollout in 16 minibatches, reference reset every 400 steps; ε not stated (10 for R1 stage 1)",
        {"optim.lr": 3e-6, "train.batch_size": 512}),
    "dr-grpo": Preset({"scale_rewards": "none", "loss_agg": "seq-mean-token-sum-norm", "beta": 0.0},
                      "Dr. GRPO (arXiv 2503.20783)"),
    "dapo": Preset(
        {"eps_low": 0.2, "eps_high": 0.28, "loss_agg": "token-mean", "dynamic_sampling": True,
         "soft_overlong": True, "overlong_buffer": 4096, "max_new_tokens": 20480, "beta": 0.0,
         "group_size": 16, "prompts_per_rollout": 512},
        "DAPO (arXiv 2503.14476): lr 1e-6, 512 prompts × 16, minibatch 512 outputs (16 updates per rollout)",
        {"optim.lr": 1e-6, "train.batch_size": 512}),
    "gspo": Preset({"ratio_level": "sequence", "eps_low": 3e-4, "eps_high": 4e-4, "beta": 0.0},
                   "GSPO (arXiv 2507.18071; verl examples/gspo_trainer)"),
    "r1-zero-tiny": Preset(
        {"prompts_per_rollout": 16, "group_size": 8, "temperature": 1.0, "max_new_tokens": 96, "epochs": 1,
         "loss_agg": "token-mean", "beta": 1e-3, "ref_refresh": 100, "eps_low": 0.2, "eps_high": 0.2,
         "reward": {"accuracy": {"mode": "answer_tag"}, "format": 0.1}, "eval_k": 8},
        "shared/notes/r1-zero-at-tiny-scale.md: 16 × 8 at T 1.0, ≤ 96 tokens, acc + 0.1·format, μ 1, token-mean, "
        "Adam lr 2e-4, clip 1.0 (β 1e-3 added against the late dips the notes saw without KL)",
        {"optim.lr": 2e-4, "train.batch_size": 128}),
}
# fmt: on


def resolve_options(section: dict[str, Any] | None) -> GRPOOptions:
    """The `grpo:` section → options: its preset's values, then each key given (typed, checked, unknown keys named)."""
    section = dict(section or {})
    name = section.get("preset", "grpo")
    need(name in PRESETS, "grpo.preset", name, f"must be one of {', '.join(PRESETS)}")
    opts = build_section(GRPOOptions, {**PRESETS[name].options, **section}, "grpo")
    opts.validate()
    return opts
