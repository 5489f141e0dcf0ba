"""GRPO (DeepSeekMath, DeepSeek-R1) as a stage of the shared training core; Dr. GRPO, DAPO and GSPO as presets.

One optimizer step of this stage, the rest being the core's (AdamW, schedule, clipping, checkpoints, metrics):

    rollout   (every `steps_per_rollout` steps) P prompts × G samples from the engine with each token's log π_old;
              rewards from the registry (every component logged); advantages normalised within each group
    minibatch the rollout is split into P·G / train.batch_size minibatches, visited μ (`epochs`) times; one
              minibatch per optimizer step, split into micro-batches by the core's accumulation
    loss      `policy_loss` below: ratios → clipped surrogate → k3 KL → aggregation

    r1 train --config configs/r1-zero-tiny.yaml                    # R1-Zero on a tiny base, on a CPU
    r1 train --config configs/r1-zero-tiny.yaml grpo.preset=dr-grpo grpo.beta=0.0

Presets (`grpo.preset`) set options; any key under `grpo:` overrides its preset's value, one key at a time:

| preset       | source                   | what it sets                                                       |
|--------------|--------------------------|--------------------------------------------------------------------|
| grpo         | DeepSeekMath §4.2        | β 0.04, ε 0.2, seq-mean-token-mean, Â = (r − mean)/std per group    |
| r1-zero      | Nature Methods (R1-Zero) | β 0.001, G 16, T 1.0, 512 prompts per rollout = 16 minibatches of  |
|              |                          | 32 prompts, reference reset every 400 steps, 32,768 new tokens;    |
|              |                          | ε 10: R1-Zero's is not published, 10 is R1 stage 1's (recipe §3.2) |
| dr-grpo      | Dr. GRPO                 | Â = r − mean (no std), constant-length sum (L = max_new_tokens)    |
| dapo         | DAPO                     | ε 0.2/0.28, token-mean, dynamic sampling, soft overlong, β 0        |
| gspo         | GSPO (verl example)      | sequence-level ratio, ε 3e-4/4e-4, β 0                             |
| r1-zero-tiny | notes/r1-zero-at-tiny-…  | 16 prompts × 8, T 1.0, ≤ 96 tokens, μ 1, token-mean, β 1e-3,        |
|              |                          | reward accuracy + 0.1·format                                       |

Presets also name the core settings their source used (`Preset.recommended`: lr, batch size); a run that differs
gets one line saying so, not an error: the YAML decides.

Why the logged `loss` is ~0 (recipe §6 item 1). With μ = 1 and one minibatch per rollout, π_θ = π_old when the loss
is computed, so every ratio is exactly 1 and the surrogate is −Σ Â / n; Â is centred within each group, so that is 0
(exactly 0 for seq-mean aggregation, near 0 for token-mean). The gradient is not 0: it is the policy gradient
−Σ Â ∇log π (tests/test_grpo.py checks this against REINFORCE with the group-mean baseline). Watch `reward`,
`accuracy` and held-out `eval_pass@1`, not `loss`. The loss splits into `pg_loss` + `kl_loss` (β·KL);
`adv_logprob_change` = mean Â·(log π_θ − log π_old) shows how far earlier updates on this rollout moved
probability toward better samples (0 on a rollout's first minibatch, by construction).

π_old. The engine returns two log-probabilities per token: under the distribution it sampled from (temperature,
top-p) and under the unmodified model. The ratio needs the model's, and `old_logprobs: engine` uses them with no
extra forward. The trainer's recomputation differs a little (bf16 autocast, other kernels; the first minibatch of
each rollout logs `logprob_diff_max`); `old_logprobs: trainer` recomputes π_old with the trainer before training,
and `tis_cap: C` multiplies each token's surrogate by min(π_old / π_sampler, C) (truncated importance sampling,
TRL's vLLM correction), which also covers temperature and top-p sampling.

Exact resume. A rollout is a pure function of the weights at rollout time, the prompt cursor and the run seed (each
request is seeded by (seed, rollout, round) + prompt index; the engine's sampling never touches global RNG). A run
killed mid-cycle (μ > 1 or several minibatches) cannot regenerate its rollout, because those weights are gone: each
such rollout is written to `grpo/rollout-NNNNNN.safetensors` when generated, and the reference model (β > 0) to
`grpo/reference-step-NNNNNN.safetensors` when (re)set; files no checkpoint needs are deleted.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import difflib
import json
import math
import random
import sys
import time
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from r1.dtypes import autocast_dtype
from r1.errors import ConfigError, UserError
from r1.io import atomic_path
from r1.rewards.judge import REFLECTION_WORDS
from r1.tasks.templates import TEMPLATES
from r1.train.config import TrainConfig, coerce
from r1.train.core import LossOutput, Stage, StageContext
from r1.train.rollout import (
    Rollout,
    completion_logprobs,
    completion_mask,
    forward_logprobs,
    load_rollout,
    pack_samples,
    response_stats,
    reward_stats,
    round_seed,
    sample_groups,
    save_rollout,
)


# ============================================================================================== options
@dataclass
class GRPOOptions:
    """Everything under `grpo:` in a config. Defaults are the `grpo` preset (DeepSeekMath)."""

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
    loss_agg: str = "seq-mean-token-mean"  # see AGGREGATIONS
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
    eval_at_start: bool = True  # evaluate the initial policy too (logged as baseline/* on step 1)

    def validate(self) -> None:
        def need(ok: bool, key: str, rule: str) -> None:
            if not ok:
                raise ConfigError(f"grpo.{key}={getattr(self, key)!r}: {rule}")

        need(self.prompts_per_rollout >= 1, "prompts_per_rollout", "must be >= 1")
        need(self.group_size >= 2, "group_size", "must be >= 2 (advantages compare samples of one prompt)")
        need(0 < self.temperature <= 100, "temperature", "must be in (0, 100]")
        need(0 < self.top_p <= 1, "top_p", "must be in (0, 1]")
        need(self.max_new_tokens >= 1, "max_new_tokens", "must be >= 1")
        need(self.scale_rewards in REWARD_SCALES, "scale_rewards", f"must be one of {', '.join(REWARD_SCALES)}")
        need(self.std_eps > 0, "std_eps", "must be > 0")
        need(self.epochs >= 1, "epochs", "must be >= 1")
        need(self.eps_low >= 0, "eps_low", "must be >= 0 (>= 1: no lower clip, the ratio is positive)")
        need(self.eps_high >= 0, "eps_high", "must be >= 0")
        need(self.dual_clip == 0 or self.dual_clip > 1, "dual_clip", "must be 0 (off) or > 1")
        need(self.ratio_level in ("token", "sequence"), "ratio_level", "must be token or sequence")
        need(self.loss_agg in AGGREGATIONS, "loss_agg", f"must be one of {', '.join(AGGREGATIONS)}")
        need(self.old_logprobs in ("engine", "trainer"), "old_logprobs", "must be engine or trainer")
        need(self.tis_cap == 0 or self.tis_cap >= 1, "tis_cap", "must be 0 (off) or >= 1")
        need(self.tis_cap == 0 or self.old_logprobs == "trainer", "tis_cap",
             "needs grpo.old_logprobs=trainer (the weight is π_old(trainer) / π_sampler(engine))")
        need(self.beta >= 0, "beta", "must be >= 0")
        need(self.ref_refresh >= 0, "ref_refresh", "must be >= 0 (0 = never)")
        need(self.max_gen_rounds >= 1, "max_gen_rounds", "must be >= 1")
        need(self.overlong_buffer >= 0, "overlong_buffer", "must be >= 0")
        need(self.template in (*TEMPLATES, "none"), "template", f"must be one of {', '.join(TEMPLATES)} or none")
        need(self.train_items >= 1, "train_items", "must be >= 1")
        need(self.eval_items >= 0 and self.eval_k >= 1, "eval_items", "eval_items >= 0 and eval_k >= 1")
        if not self.reward:
            raise ConfigError("grpo.reward: give at least one component, e.g. {accuracy: 1.0, format: 1.0}")


@dataclass(frozen=True)
class Preset:
    options: dict[str, Any]
    source: str
    recommended: dict[str, Any] = field(default_factory=dict)  # core settings the source used (dotted keys)


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


def resolve_options(section: Mapping[str, Any] | None) -> GRPOOptions:
    """The `grpo:` section → options: its preset's values, then each key given (typed, checked, unknown keys named)."""
    section = dict(section or {})
    name = section.pop("preset", "grpo")
    if name not in PRESETS:
        raise ConfigError(f"grpo.preset={name!r}: must be one of {', '.join(PRESETS)}")
    valid = [f.name for f in dataclasses.fields(GRPOOptions) if f.name != "preset"]
    for key in section:
        if key not in valid:
            close = difflib.get_close_matches(str(key), valid, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"unknown key 'grpo.{key}'{hint} valid keys in grpo: preset, {', '.join(valid)}")
    hints = typing.get_type_hints(GRPOOptions)
    merged = {**PRESETS[name].options, **section}
    opts = GRPOOptions(preset=name, **{k: coerce(v, hints[k], f"grpo.{k}") for k, v in merged.items()})
    opts.validate()
    return opts


# ============================================================================================== the algorithm
# Advantage scale: Â = (r − mean_group(r)) / (scale + eps). Dr. GRPO drops the std (question-difficulty bias).
REWARD_SCALES: dict[str, Callable[[torch.Tensor], torch.Tensor | None]] = {
    "group": lambda r: r.std(-1, keepdim=True),  # DeepSeekMath / R1 (unbiased std, as TRL and verl)
    "batch": lambda r: r.std().expand_as(r),  # TRL scale_rewards="batch"
    "none": lambda r: None,  # Dr. GRPO
}


def group_advantages(rewards: torch.Tensor, scale: str = "group", eps: float = 1e-4) -> torch.Tensor:
    """Outcome advantages [groups, G] from rewards [groups, G]; one scalar per sample, given to all its tokens."""
    centered = rewards - rewards.mean(-1, keepdim=True)
    std = REWARD_SCALES[scale](rewards)
    return centered if std is None else centered / (std + eps)


def k3_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Schulman's k3 estimator of KL(π_θ‖π_ref) per token: π_ref/π_θ − log(π_ref/π_θ) − 1 ≥ 0, = 0 iff equal.
    `expm1(d) − d` keeps it ≥ 0 in floating point for tiny d; d is capped at 20 against overflow."""
    d = (ref_logp - logp).clamp(max=20.0)
    return (torch.expm1(d) - d).clamp(min=0.0)


# Aggregation of per-token losses x [B, T] with mask [B, T] → (mean over `weight` units, weight). The core takes the
# weighted mean over micro-batches, so each mode is exact over the whole minibatch.
Aggregation = Callable[[torch.Tensor, torch.Tensor, int], tuple[torch.Tensor, float]]


def _token_mean(x: torch.Tensor, mask: torch.Tensor, L: int) -> tuple[torch.Tensor, float]:
    n = mask.sum()
    return (x * mask).sum() / n.clamp(min=1), float(n)


def _seq_mean_token_mean(x: torch.Tensor, mask: torch.Tensor, L: int) -> tuple[torch.Tensor, float]:
    n = mask.sum(-1)
    live = (n > 0).float()  # a fully masked completion (mask_truncated) is not a sequence of the mean
    per_seq = (x * mask).sum(-1) / n.clamp(min=1)
    return (per_seq * live).sum() / live.sum().clamp(min=1), float(live.sum())


def _seq_mean_token_sum(x: torch.Tensor, mask: torch.Tensor, L: int) -> tuple[torch.Tensor, float]:
    return (x * mask).sum() / x.shape[0], float(x.shape[0])


def _seq_mean_token_sum_norm(x: torch.Tensor, mask: torch.Tensor, L: int) -> tuple[torch.Tensor, float]:
    return (x * mask).sum() / (x.shape[0] * L), float(x.shape[0])


AGGREGATIONS: dict[str, Aggregation] = {
    "seq-mean-token-mean": _seq_mean_token_mean,  # GRPO (DeepSeekMath Eq. 3): 1/G Σ_i 1/|o_i| Σ_t
    "token-mean": _token_mean,  # DAPO: Σ_i Σ_t / Σ_i |o_i|
    "seq-mean-token-sum-norm": _seq_mean_token_sum_norm,  # Dr. GRPO: Σ_i Σ_t / (G · L), L = max_new_tokens
    "seq-mean-token-sum": _seq_mean_token_sum,  # verl: 1/G Σ_i Σ_t
}


def policy_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    o: GRPOOptions,
    ref_logp: torch.Tensor | None = None,
    is_weight: torch.Tensor | None = None,
) -> tuple[torch.Tensor, float, dict[str, torch.Tensor]]:
    """The GRPO objective on one micro-batch, negated for minimisation → (loss, weight, metrics).

    logp (with gradient), old_logp, ref_logp, is_weight, mask: [B, T] per completion token; advantages: [B].
    """
    # 1. importance ratio ρ = π_θ / π_old: per token, or GSPO's per sequence (geometric mean, gradient per token)
    log_ratio = logp - old_logp
    if o.ratio_level == "sequence":
        seq = (log_ratio * mask).sum(-1) / mask.sum(-1).clamp(min=1)
        log_ratio = seq.detach()[:, None] + logp - logp.detach()
    ratio = torch.exp(log_ratio.clamp(-20.0, 20.0))
    # 2. clipped surrogate: the pessimistic min of ρÂ and clip(ρ, 1 − ε_low, 1 + ε_high)Â; dual clip caps Â < 0
    A = advantages[:, None]
    pg = torch.maximum(-A * ratio, -A * ratio.clamp(1 - o.eps_low, 1 + o.eps_high))
    if o.dual_clip:
        pg = torch.where(A < 0, torch.minimum(pg, -A * o.dual_clip), pg)
    if is_weight is not None:  # truncated importance sampling: sampler ≠ trainer
        pg = pg * is_weight
    # 3. KL to the frozen reference, in the loss (not in the reward: it must not enter Â)
    kl = k3_kl(logp, ref_logp) if ref_logp is not None and o.beta > 0 else None
    # 4. aggregation
    aggregate = AGGREGATIONS[o.loss_agg]
    pg_loss, weight = aggregate(pg, mask, o.max_new_tokens)
    kl_loss = o.beta * aggregate(kl, mask, o.max_new_tokens)[0] if kl is not None else pg_loss.new_zeros(())
    with torch.no_grad():
        mean = _token_mean
        metrics = {
            "pg_loss": pg_loss.detach(),
            "kl_loss": kl_loss.detach(),
            "clip/low": mean(((ratio < 1 - o.eps_low) & (A < 0)).float(), mask, 0)[0],
            "clip/high": mean(((ratio > 1 + o.eps_high) & (A > 0)).float(), mask, 0)[0],
            "ratio_mean": mean(ratio, mask, 0)[0],
            "adv_logprob_change": mean(A * (logp - old_logp), mask, 0)[0],
        }
        if kl is not None:
            metrics["kl"] = mean(kl, mask, 0)[0]
        if o.dual_clip:
            metrics["clip/dual"] = mean(((ratio > o.dual_clip) & (A < 0)).float(), mask, 0)[0]
    return pg_loss + kl_loss, weight, metrics


# ============================================================================================== the stage
class GRPOStage(Stage):
    """Rollouts from the engine, rewards from the registry, `policy_loss` on minibatches (see the module docstring).

    `items` / `eval_items` give task items directly (tests, notebooks); else `data.paths` / `data.eval_paths`
    (task-item JSONL, as `r1 tasks sample` writes), else `grpo.task`'s generator (train / eval split).
    """

    name = "grpo"
    progress_keys = ("reward", "accuracy")

    def __init__(self, cfg: TrainConfig, items: list[dict[str, Any]] | None = None,
                 eval_items: list[dict[str, Any]] | None = None) -> None:
        self.cfg = cfg
        self.opt = resolve_options(getattr(cfg, "grpo", None))
        self._given_items, self._given_eval = items, eval_items
        self.engine = None
        self.reference: nn.Module | None = None
        self.rollout: Rollout | None = None
        self.micro: list[dict[str, torch.Tensor]] = []
        self.step_metrics: dict[str, float] = {}
        # the data position (state_dict): which rollout, how many of its steps are done, prompts drawn, reference
        self.rollout_index = -1
        self.rollout_steps_done = 0
        self.prompts_used = 0
        self.ref_step = -1

    # ------------------------------------------------------------------------------------------ setup
    def setup(self, ctx: StageContext) -> None:
        super().setup(ctx)
        o, cfg = self.opt, self.cfg
        if ctx.world > 1:
            raise UserError("stage grpo runs in one process for now (the engine needs the full weights)")
        if ctx.tokenizer is None:
            raise UserError("stage grpo needs a tokenizer: set model.path to a checkpoint with one, or data.tokenizer")
        n, B = o.prompts_per_rollout * o.group_size, cfg.train.batch_size
        if n % B:
            raise ConfigError(f"train.batch_size={B}: must divide the rollout, grpo.prompts_per_rollout × "
                              f"grpo.group_size = {n} (one minibatch of batch_size samples per optimizer step)")
        self.minibatches = n // B
        self.steps_per_rollout = o.epochs * self.minibatches
        self.items = [self._templated(it) for it in self._load_items("train")]
        self.eval_items = self._load_items("eval") if o.eval_items else []
        self.prompt_ids = [self._encode(it) for it in self.items]
        spec = dict(o.reward)
        if o.soft_overlong:
            spec["soft_overlong"] = {"max_len": o.max_new_tokens, "buffer": o.overlong_buffer or None}
        from r1.rewards import build_reward

        self.reward = build_reward(spec)
        self.autocast = autocast_dtype(cfg.train.dtype, ctx.device)  # the trainer's, see r1.dtypes
        self.files = ctx.run_dir / "grpo"
        self.watchdog = Watchdog()
        self._note_recommended()

    def _load_items(self, split: str) -> list[dict[str, Any]]:
        o, d = self.opt, self.cfg.data
        given = self._given_items if split == "train" else self._given_eval
        paths = d.paths if split == "train" else d.eval_paths
        count = o.train_items if split == "train" else o.eval_items
        if given is not None:
            items = [dict(it) for it in given]
        elif paths:
            from r1.tasks.datasets import iter_jsonl

            missing = [p for p in paths if not Path(p).is_file()]
            if missing:
                raise UserError(f"stage grpo: {split} item file not found: {missing[0]}")
            items = [record for p in paths for _, _, record in iter_jsonl(Path(p))]
        else:
            from r1.tasks import get_task

            tasks = [o.task] if isinstance(o.task, str) else list(o.task)
            per = math.ceil(count / len(tasks))
            items = [it for t in tasks for it in get_task(t).generate(per, seed=self.cfg.train.seed,
                                                                      difficulty=o.difficulty, split=split)]
            if len(tasks) > 1:
                random.Random(f"grpo|{self.cfg.train.seed}|{split}").shuffle(items)
        if not items:
            raise UserError(f"stage grpo: no {split} items (grpo.task, data.paths / data.eval_paths)")
        return items[:count] if split == "eval" else items

    def _templated(self, item: dict[str, Any]) -> dict[str, Any]:
        from r1.tasks import apply_template

        return apply_template(item, self.opt.template) if self.opt.template != "none" else item

    def _encode(self, item: Mapping[str, Any]) -> list[int]:
        """Prompt ids exactly as the evaluator's generator builds them (BOS + text, or the chat template)."""
        tok = self.ctx.tokenizer
        if item.get("messages") is not None:
            return tok.apply_chat_template(item["messages"], add_generation_prompt=True, tokenize=True)
        ids = tok.encode(item["prompt"])
        return [tok.bos_id, *ids] if tok.bos_id is not None and ids[:1] != [tok.bos_id] else ids

    def _note_recommended(self) -> None:
        differ = []
        for key, want in PRESETS[self.opt.preset].recommended.items():
            section, name = key.split(".")
            have = getattr(getattr(self.cfg, section), name)
            if have != want:
                differ.append(f"{key}={want:g} (this run: {have:g})")
        if differ and self.ctx.rank == 0:
            print(f"grpo.preset {self.opt.preset} was published with {', '.join(differ)}", file=sys.stderr)

    # ------------------------------------------------------------------------------------------ core contract
    def next_batches(self) -> list[dict[str, torch.Tensor]]:
        # The core hands a stage its model only in `loss`, and a rollout needs the model: so the step's batches are
        # placeholders and the rollout (when one is due) happens at the step's first micro-batch.
        return [{"micro": torch.tensor(i)} for i in range(self.ctx.accumulation)]

    def eval_batches(self) -> list[dict[str, torch.Tensor]]:
        return [{"eval": torch.tensor(0)}] if self.eval_items else []

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> LossOutput:
        if "eval" in batch:
            metrics = self.held_out(model)
            return LossOutput(torch.tensor(1.0 - metrics["pass@1"]), 1.0, int(metrics.pop("tokens")), metrics)
        i = int(batch["micro"])
        if i == 0:
            self._begin_step(model)
        o, dev = self.opt, self.ctx.device
        mb = {k: v.to(dev) for k, v in self.micro[i].items()}
        logp, entropy, out = completion_logprobs(model, mb["input_ids"], mb["prompt_lens"], mb["completion_lens"],
                                                 entropy=True)
        mask = completion_mask(mb["completion_lens"]) * mb["trainable"][:, None].float()
        is_weight = None
        if o.tis_cap:
            is_weight = torch.exp(mb["old_logprobs"] - mb["sampler_logprobs"]).clamp(max=o.tis_cap)
        loss, weight, metrics = policy_loss(logp, mb["old_logprobs"], mb["advantages"], mask, o,
                                            mb.get("ref_logprobs"), is_weight)
        full = completion_mask(mb["completion_lens"])
        metrics["entropy"] = _token_mean(entropy, full, 0)[0]
        if self.first_pass:  # weights = those that sampled: any difference is numerics (dtype, kernels)
            diff = (logp.detach() - mb["old_logprobs"]).abs() * full
            metrics["logprob_diff_max"] = diff.max()
            metrics["logprob_diff_mean"] = _token_mean(diff, full, 0)[0]
        if is_weight is not None:
            metrics["tis_weight_mean"] = _token_mean(is_weight, full, 0)[0]
        metrics.update(self.step_metrics)
        tokens = int((mb["prompt_lens"] + mb["completion_lens"]).sum())
        counts = out.expert_counts if o.update_router_bias else None
        return LossOutput(loss, weight, tokens, metrics, counts)

    def state_dict(self) -> dict[str, Any]:
        return {"rollout": self.rollout_index, "rollout_steps_done": self.rollout_steps_done,
                "prompts_used": self.prompts_used, "ref_step": self.ref_step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            self.rollout_index = int(state["rollout"])
            self.rollout_steps_done = int(state["rollout_steps_done"])
            self.prompts_used = int(state["prompts_used"])
            self.ref_step = int(state["ref_step"])

    def describe(self) -> dict[str, Any]:
        return {"grpo": dataclasses.asdict(self.opt), "prompts": len(getattr(self, "items", [])),
                "eval_items": len(getattr(self, "eval_items", [])),
                "steps_per_rollout": getattr(self, "steps_per_rollout", None)}

    # ------------------------------------------------------------------------------------------ steps
    def _begin_step(self, model: nn.Module) -> None:
        """Make sure a rollout is ready (generate, or reload after a resume mid-cycle) and cut this step's minibatch."""
        self.step_metrics = {}
        if self.rollout is None and 0 <= self.rollout_index and self.rollout_steps_done < self.steps_per_rollout:
            path = self._path("rollout", self.rollout_index)
            if not path.is_file():
                raise UserError(f"resume: {path} is missing; the checkpoint was taken in the middle of that rollout")
            self.rollout = load_rollout(path)
        elif self.rollout is None or self.rollout_steps_done >= self.steps_per_rollout:
            self.rollout = self._new_rollout(model)
        k = self.rollout_steps_done
        epoch, j = divmod(k, self.minibatches)
        g = torch.Generator().manual_seed(round_seed(self.cfg.train.seed, self.rollout_index, 1000 + epoch))
        B = self.cfg.train.batch_size
        rows = torch.randperm(len(self.rollout), generator=g)[j * B : (j + 1) * B]
        mb = self.ctx.micro_batch_size
        self.micro = [self.rollout.rows(rows[s : s + mb]) for s in range(0, B, mb)]
        self.first_pass = k == 0 and self.opt.old_logprobs == "engine"
        self.rollout_steps_done = k + 1
        self.step_metrics.update(self.rollout.stats)

    def _new_rollout(self, model: nn.Module) -> Rollout:
        o, seed = self.opt, self.cfg.train.seed
        r = self.rollout_index + 1
        if r == 0 and o.eval_at_start and self.eval_items:
            t0 = time.perf_counter()
            self.step_metrics.update({f"baseline/{k}": v for k, v in self.held_out(model).items() if k != "tokens"})
            self.step_metrics["time/baseline_eval"] = time.perf_counter() - t0
        self._sync_reference(model, r * self.steps_per_rollout)
        params = self._sampling(o.temperature, o.top_p, o.max_new_tokens)
        kept, spare, seen = [], [], {"verdicts": [], "lengths": [], "total": [], "components": {}}
        t_gen = t_reward = 0.0
        rounds = 0
        for rnd in range(o.max_gen_rounds if o.dynamic_sampling else 1):
            rounds += 1
            idx = self._take_prompts(o.prompts_per_rollout)
            t0 = time.perf_counter()
            with self._generating(model):
                groups = sample_groups(self._engine(model), [self.prompt_ids[i] for i in idx], o.group_size,
                                       params, round_seed(seed, r, rnd))
            t1 = time.perf_counter()
            samples = [s for grp in groups for s in grp]
            items = [self.items[i] for i in idx for _ in range(o.group_size)]
            scored = self.reward.score([s.text for s in samples], items, [len(s.tokens) for s in samples])
            self._judge(samples, items, scored, seen)
            t_gen, t_reward = t_gen + t1 - t0, t_reward + time.perf_counter() - t1
            for g, i in enumerate(idx):
                total = scored.total[g * o.group_size : (g + 1) * o.group_size]
                varied = max(total) > min(total)
                (kept if varied or not o.dynamic_sampling else spare).append((i, groups[g], total))
            if len(kept) >= o.prompts_per_rollout:
                break
        chosen = (kept + spare)[: o.prompts_per_rollout]  # with dynamic sampling, zero-variance groups only top up
        t0 = time.perf_counter()
        rollout = self._build(model, chosen)
        t_logprobs = time.perf_counter() - t0
        rollout.stats.update(reward_stats(seen["components"], seen["total"], o.group_size))
        rollout.stats.update(response_stats(seen["verdicts"], seen["lengths"]))
        if o.dynamic_sampling:
            rollout.stats.update({"dynamic/gen_rounds": rounds, "dynamic/groups_varied": len(kept),
                                  "dynamic/groups_topped_up": max(0, o.prompts_per_rollout - len(kept))})
        generated = sum(seen["lengths"])
        self.step_metrics.update({"time/rollout": t_gen, "time/reward": t_reward, "time/logprobs": t_logprobs,
                                  "rollout_tokens": generated, "rollout_tokens_per_s": generated / max(t_gen, 1e-9)})
        self.rollout_index, self.rollout_steps_done = r, 0
        for name, message in self.watchdog.check(rollout.stats, o):
            self.step_metrics[f"warn/{name}"] = 1.0
            if self.ctx.rank == 0:
                print(f"\nwarning (grpo, rollout {r}): {message}", file=sys.stderr, flush=True)
        if self.steps_per_rollout > 1:  # a checkpoint may land mid-cycle: keep the samples it trains on
            save_rollout(self._path("rollout", r), rollout)
            self._prune()
        return rollout

    def _judge(self, samples: list[Any], items: list[dict[str, Any]], scored: Any, seen: dict[str, Any]) -> None:
        from r1.rewards.judge import judge

        for s, it in zip(samples, items):
            seen["lengths"].append(len(s.tokens))
            seen["verdicts"].append(judge(s.text, it, self.opt.template, finish_reason=s.finish_reason,
                                          reflection_words=self.opt.reflection_words))
        seen["total"] += scored.total
        for name, values in scored.components.items():
            seen["components"].setdefault(name, []).extend(values)

    def _build(self, model: nn.Module, chosen: list) -> Rollout:
        """The chosen groups as tensors, with advantages, and π_old / π_ref log-probabilities where needed."""
        o, G = self.opt, self.opt.group_size
        rewards = torch.tensor([total for _, _, total in chosen], dtype=torch.float32)
        samples = [s for _, grp, _ in chosen for s in grp]
        prompts = [self.prompt_ids[i] for i, _, _ in chosen for _ in range(G)]
        pad = self.ctx.tokenizer.pad_id if self.ctx.tokenizer.pad_id is not None else 0
        packed = pack_samples(prompts, samples, pad)
        trainable = torch.tensor([not (o.mask_truncated and s.finish_reason == "length") for s in samples])
        rollout = Rollout(
            input_ids=packed["input_ids"], prompt_lens=packed["prompt_lens"], completion_lens=packed["completion_lens"],
            advantages=group_advantages(rewards, o.scale_rewards, o.std_eps).flatten(),
            old_logprobs=packed["model_logprobs"], sampler_logprobs=packed["sampler_logprobs"], trainable=trainable)
        chunk = self.ctx.micro_batch_size
        if o.old_logprobs == "trainer":
            rollout.engine_logprobs = rollout.old_logprobs
            rollout.old_logprobs = forward_logprobs(model, packed, chunk, self.autocast)
            mask = completion_mask(packed["completion_lens"])
            diff = (rollout.old_logprobs - rollout.engine_logprobs).abs() * mask
            rollout.stats.update({"logprob_diff_max": float(diff.max()),
                                  "logprob_diff_mean": float(diff.sum() / mask.sum())})
        if self.reference is not None:
            rollout.ref_logprobs = forward_logprobs(self.reference, packed, chunk, self.autocast)
        return rollout

    def _take_prompts(self, n: int) -> list[int]:
        """The next n prompt indices: a fresh seeded permutation of the pool every epoch."""
        out, size = [], len(self.items)
        for c in range(self.prompts_used, self.prompts_used + n):
            epoch = c // size
            if getattr(self, "_perm_epoch", None) != epoch:
                self._perm = list(range(size))
                random.Random(f"grpo-prompts|{self.cfg.train.seed}|{epoch}").shuffle(self._perm)
                self._perm_epoch = epoch
            out.append(self._perm[c % size])
        self.prompts_used += n
        return out

    # ------------------------------------------------------------------------------------------ engine, reference
    def _sampling(self, temperature: float, top_p: float, max_tokens: int):
        from r1.engine import SamplingParams

        return SamplingParams(temperature=temperature, top_p=top_p, max_tokens=max_tokens)

    def _engine(self, model: nn.Module):
        """One engine around the trained model itself: no weight copy to sync.

        `Engine.generate` re-derives its fused weight copies at every call, so each rollout samples from the weights
        the last optimizer step left (fused AdamW updates in place without moving version counters).
        """
        if self.engine is None or self.engine.model is not model:
            from r1.engine import Engine

            o = self.opt
            longest = max(len(p) for p in self.prompt_ids)
            new = max(o.max_new_tokens, o.eval_max_new_tokens or o.max_new_tokens)
            limit = model.config.max_position_embeddings
            rows = max(o.prompts_per_rollout * o.group_size, 16 * o.eval_k if self.eval_items else 0)
            # under bf16 autocast the trainer's logits are bf16 GEMMs: the engine's vocabulary projection matches
            self.engine = Engine(model, self.ctx.tokenizer, max_batch=min(rows, 512),
                                 max_len=min(limit, longest + new + 8), head_dtype=self.autocast,
                                 threads=self.cfg.train.threads or None)  # a count the user set wins
        return self.engine

    @contextlib.contextmanager
    def _generating(self, model: nn.Module) -> Iterator[None]:
        """Generation as the engine runs it standalone: eval mode, no autocast (full precision but for the vocabulary
        projection under bf16 training, see `_engine`), then back."""
        was_training = model.training
        model.eval()
        try:
            with torch.autocast(self.ctx.device.type, enabled=False):
                yield
        finally:
            model.train(was_training)

    def _sync_reference(self, model: nn.Module, step: int) -> None:
        """β > 0: the frozen reference, a copy of the policy at `ref_step`, reset every `ref_refresh` steps."""
        o = self.opt
        if o.beta == 0:
            return
        if self.reference is None:
            self.reference = copy.deepcopy(model).eval().requires_grad_(False)
            if self.ref_step >= 0:  # resumed: the reference is not the checkpoint's weights
                path = self._path("reference", self.ref_step)
                if not path.is_file():
                    raise UserError(f"resume: the reference weights {path} are missing")
                self.reference.load_state_dict(load_file(str(path)))
            else:
                self._save_reference(step)
        if o.ref_refresh and step - self.ref_step >= o.ref_refresh:
            self.reference.load_state_dict(model.state_dict())
            self._save_reference(step)

    def _save_reference(self, step: int) -> None:
        self.ref_step = step
        path = self._path("reference", step)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            save_file({k: v.detach().clone().contiguous() for k, v in self.reference.state_dict().items()}, str(tmp))
        self._prune()

    def _path(self, kind: str, n: int) -> Path:
        return self.files / (f"rollout-{n:06d}.safetensors" if kind == "rollout" else
                             f"reference-step-{n:06d}.safetensors")

    def _prune(self) -> None:
        """Delete rollout / reference files that neither the current state nor any complete checkpoint needs."""
        from r1.train.checkpointing import CHECKPOINTS, COMPLETE, STATE_JSON

        need = {self._path("rollout", self.rollout_index).name, self._path("reference", self.ref_step).name}
        for ck in (self.ctx.run_dir / CHECKPOINTS).glob("step-*"):
            if (ck / COMPLETE).is_file():
                data = json.loads((ck / STATE_JSON).read_text(encoding="utf-8")).get("data", {})
                need.add(self._path("rollout", int(data.get("rollout", -1))).name)
                need.add(self._path("reference", int(data.get("ref_step", -1))).name)
        for f in self.files.glob("*.safetensors"):
            if f.name not in need:
                f.unlink(missing_ok=True)

    # ------------------------------------------------------------------------------------------ evaluation
    def held_out(self, model: nn.Module) -> dict[str, float]:
        """pass@1 (mean over k samples), cons@k, format rate, lengths, reflection rates on the eval split."""
        from r1.engine.adapters import make_generate_fn
        from r1.eval.evaluate import evaluate

        o = self.opt
        with self._generating(model):
            res = evaluate(self.eval_items, make_generate_fn(self._engine(model)), k=o.eval_k,
                           temperature=o.eval_temperature, top_p=o.eval_top_p,
                           max_new_tokens=o.eval_max_new_tokens or o.max_new_tokens,
                           template=None if o.template == "none" else o.template, seed=self.cfg.train.seed,
                           progress=False, reflection_words=o.reflection_words)
        ov, samples = res.overall, res.samples
        out = {"pass@1": ov["pass@1"], f"pass@{o.eval_k}": ov[f"pass@{o.eval_k}"],
               f"cons@{o.eval_k}": ov[f"cons@{o.eval_k}"], "format_rate": ov["format_rate"]}
        out.update(response_stats(res.verdicts, [s["num_tokens"] for s in samples], rates=False))
        out["tokens"] = float(sum(s["num_tokens"] for s in samples))
        return out

    # ------------------------------------------------------------------------------------------ outputs
    def plots(self, run_dir: Path, records: list[dict[str, Any]]) -> list[Path]:
        return write_grpo_plots(run_dir, records)

    def report_lines(self, records: list[dict[str, Any]]) -> list[str]:
        return grpo_report_lines(records, self.opt)


# ============================================================================================== watchdog
class Watchdog:
    """Says, once each, when a run is going nowhere, in the terms a user can act on: the failure modes GRPO users
    report most (recipe §6): a format reward stuck at 0, no learning signal because every group's rewards are
    equal, length collapse, and completions cut at the token limit. Advisory only: it never stops a run."""

    PATIENCE = 5  # consecutive rollouts

    def __init__(self) -> None:
        self.fired: set[str] = set()
        self.streak: dict[str, int] = {}
        self.first_length: float | None = None
        self.first_long: float = 0.0

    def check(self, stats: Mapping[str, float], o: GRPOOptions) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        length, long = stats.get("length_mean", 0.0), stats.get("long_form", 0.0)
        if self.first_length is None:
            self.first_length, self.first_long = length, long
        shorter = self.first_length >= 8 and length < 0.75 * self.first_length
        less_reasoning = self.first_long >= 0.1 and long < 0.5 * self.first_long
        conditions = {
            "format_stuck": ("reward/format" in stats and stats["reward/format"] == 0.0, True,
                             f"the format reward was 0 on every sample for {self.PATIENCE} rollouts: the model never "
                             f"writes the {o.template!r} answer format. Check grpo.template is the prompt the model "
                             "was trained with, or teach the format first (SFT on a few examples)"),
            "no_signal": (stats.get("frac_reward_zero_std", 0.0) >= 1.0, True,
                          f"every group had equal rewards for {self.PATIENCE} rollouts, so every advantage is 0 and "
                          "nothing is learned: the problems are all too easy or all too hard for this model. Change "
                          "grpo.difficulty, raise grpo.group_size, or set grpo.dynamic_sampling=true"),
            "length_collapse": (shorter or less_reasoning, True,
                                f"mean response length fell from {self.first_length:.1f} to {length:.1f} tokens and "
                                f"the share of answers that reason from {self.first_long:.2f} to {long:.2f}: the "
                                "policy is dropping its reasoning, usually because long answers score worse than "
                                "short ones for this base (see `r1 run`'s 'Before RL' check) or the lr is too high"),
            "truncated": (stats.get("truncated", 0.0) > 0.5, False,
                          f"over half of the completions hit max_new_tokens={o.max_new_tokens}: raise "
                          "grpo.max_new_tokens, or price length with grpo.soft_overlong=true"),
        }
        for name, (bad, needs_streak, message) in conditions.items():
            self.streak[name] = self.streak.get(name, 0) + 1 if bad else 0
            due = self.streak[name] >= (self.PATIENCE if needs_streak else 1)
            if due and name not in self.fired:
                self.fired.add(name)
                out.append((name, message))
        return out


# ============================================================================================== plots and report
def _series(records: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    pts = [(r["step"], r[key]) for r in records if r.get(key) is not None]
    return [p[0] for p in pts], [p[1] for p in pts]


def _eval_series(records: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    """Held-out metric vs step: the baseline (logged on step 1 as baseline/KEY) at step 0, then eval events."""
    steps = [r for r in records if r.get("event") == "step"]
    pts = [(0, r[f"baseline/{key}"]) for r in steps[:1] if f"baseline/{key}" in r]
    pts += [(r["step"], r[f"eval_{key}"]) for r in records if r.get("event") == "eval" and f"eval_{key}" in r]
    return [p[0] for p in pts], [p[1] for p in pts]


def write_grpo_plots(run_dir: Path, records: list[dict[str, Any]]) -> list[Path]:
    """grpo_accuracy.png (held-out pass@1/cons@k + training accuracy), grpo_length.png, grpo_reflection.png,
    grpo_rewards.png (components, zero-std share), grpo_policy.png (KL, entropy, clip fractions)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r for r in records if r.get("event") == "step"]
    if not steps:
        return []
    out_dir = Path(run_dir) / "plots"
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def figure(name: str, title: str, lines: list[tuple[str, tuple[list, list], str]], ylabel: str = "") -> None:
        lines = [x for x in lines if x[1][0]]
        if not lines:
            return
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for label, (xs, ys), style in lines:
            ax.plot(xs, ys, style, label=label, lw=1, ms=3)
        ax.set(xlabel="step", ylabel=ylabel, title=title)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(out_dir / name, dpi=90)
        plt.close(fig)
        written.append(out_dir / name)

    cons = next((k[5:] for r in records for k in r if k.startswith("eval_cons@")), None)
    figure("grpo_accuracy.png", "Accuracy", [
        ("held-out pass@1", _eval_series(records, "pass@1"), "o-"),
        (f"held-out {cons}", _eval_series(records, cons) if cons else ([], []), "s--"),
        ("training accuracy (rollouts)", _series(steps, "accuracy"), "-")], "accuracy")
    figure("grpo_length.png", "Response length (tokens)", [
        ("mean", _series(steps, "length_mean"), "-"), ("p90", _series(steps, "length_p90"), "-"),
        ("held-out mean", _eval_series(records, "length_mean"), "o-")], "tokens")
    figure("grpo_reflection.png", "Reflection words (share of responses)", [
        ("all responses", _series(steps, "reflection"), "-"),
        ("within long-form (non-empty think)", _series(steps, "reflection_long"), "-"),
        ("long-form share", _series(steps, "long_form"), ":"),
        ("held-out", _eval_series(records, "reflection"), "o-")])
    comps = sorted({k for r in steps for k in r if k.startswith("reward/") and not k.endswith("_std")})
    figure("grpo_rewards.png", "Rewards (rollout means)", [("total", _series(steps, "reward"), "-")]
           + [(k[7:], _series(steps, k), "-") for k in comps]
           + [("frac_reward_zero_std", _series(steps, "frac_reward_zero_std"), ":")])
    figure("grpo_policy.png", "Policy", [
        ("KL (k3)", _series(steps, "kl"), "-"), ("entropy", _series(steps, "entropy"), "-"),
        ("clip low", _series(steps, "clip/low"), ":"), ("clip high", _series(steps, "clip/high"), ":")])
    return written


def grpo_report_lines(records: list[dict[str, Any]], opts: GRPOOptions | None = None) -> list[str]:
    """The GRPO section of report.md: what to read, start → end, and the time split."""
    steps = [r for r in records if r.get("event") == "step"]
    if not steps:
        return []
    first, last = steps[0], steps[-1]
    lines = ["", "## GRPO", ""]
    if opts is not None:
        lines.append(f"Preset `{opts.preset}`: {opts.prompts_per_rollout} prompts × {opts.group_size} samples per "
                     f"rollout, μ {opts.epochs}, T {opts.temperature:g}, ≤ {opts.max_new_tokens} new tokens, "
                     f"β {opts.beta:g}, ε {opts.eps_low:g}/{opts.eps_high:g}, `{opts.loss_agg}`, advantages scaled "
                     f"by `{opts.scale_rewards}`, ratio per {opts.ratio_level}. Reward: `{json.dumps(opts.reward)}`.")
        lines.append("")
    lines += ["| metric | first step | last step |", "|---|---|---|"]
    keys = ["reward", *sorted(k for k in last if k.startswith("reward/") and not k.endswith("_std")),
            "accuracy", "format_rate", "frac_reward_zero_std", "length_mean", "length_p90", "truncated",
            "reflection", "reflection_long", "long_form", "kl", "entropy", "clip/low", "clip/high"]
    for k in keys:
        if k in first or k in last:
            lines.append(f"| {k} | {first.get(k, float('nan')):.4g} | {last.get(k, float('nan')):.4g} |")
    warned = sorted({k[5:] for r in steps for k in r if k.startswith("warn/")})
    xs, ys = _eval_series(records, "pass@1")
    if ys:
        lines.append(f"| held-out pass@1 | {ys[0]:.3f} (step {xs[0]}) | {ys[-1]:.3f} (step {xs[-1]}) |")
    gen = [r for r in steps if "time/rollout" in r]
    if gen:
        def total(key: str) -> float:
            return sum(r.get(key, 0.0) for r in steps)

        t_all = total("step_time") - total("time/baseline_eval")
        t_roll, t_rew, t_lp = total("time/rollout"), total("time/reward"), total("time/logprobs")
        t_train = max(t_all - t_roll - t_rew - t_lp, 1e-9)
        lines += ["", f"Time: rollout {t_roll:.1f} s ({100 * t_roll / t_all:.0f}%), reward {t_rew:.1f} s, "
                  f"π_old/π_ref forwards {t_lp:.1f} s, training {t_train:.1f} s. Rollout "
                  f"{sum(r['rollout_tokens'] for r in gen) / max(t_roll, 1e-9):,.0f} generated tokens/s; training "
                  f"{total('tokens') / t_train:,.0f} tokens/s (prompt + completion)."]
    if warned:
        lines += ["", f"**Warnings** (printed when they fired; see `grpo.Watchdog`): {', '.join(warned)}."]
    lines += ["", "`loss` is pg_loss + kl_loss and sits near 0 by construction when π_θ = π_old (μ = 1, one minibatch "
              "per rollout): the group-centred advantages average to 0 while the gradient does not. Read reward, "
              "accuracy and held-out pass@1. `eval_loss` is the held-out error rate 1 − pass@1."]
    return lines
