"""GRPO's objective (DeepSeekMath Eq. 3, DeepSeek-R1 Eq. 1), maximised over θ; the loss is its negation:

    J(θ) = E_{q, {o_i} ~ π_old(·|q)} [ 1/G Σ_i 1/|o_i| Σ_t ( min(ρ_it Â_i, clip(ρ_it, 1 − ε_low, 1 + ε_high) Â_i)
                                                           − β · KL_k3(π_θ ‖ π_ref)_it ) ]
    ρ_it = π_θ(o_it | q, o_i<t) / π_old(o_it | q, o_i<t)         Â_i = (r_i − mean_G r) / (std_G r + eps)
    KL_k3 = π_ref/π_θ − log(π_ref/π_θ) − 1                       (per token, ≥ 0; in the loss, never in Â)

Variants are options (r1.train.grpo.options): `scale_rewards` (Dr. GRPO drops the std), `loss_agg` (the 1/G Σ 1/|o_i|
Σ_t above, DAPO's token mean Σ_i Σ_t / Σ_i |o_i|, Dr. GRPO's Σ_i Σ_t / (G·L)), `ratio_level: sequence` (GSPO: ρ_i =
exp of the mean token log-ratio), `dual_clip` (Â < 0 capped at −c·Â), `tis_cap` (each token's term × min(π_old /
π_sampler, C): the sampler is not the trainer). With μ = 1 and one minibatch per rollout π_θ = π_old, so ρ = 1 and
the loss is ~0, while its gradient −Â ∇log π is not (tests/test_grpo.py checks it against REINFORCE).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

REWARD_SCALES: dict[str, Callable[[torch.Tensor], torch.Tensor | None]] = {
    "group": lambda r: r.std(-1, keepdim=True),  # DeepSeekMath / R1 (unbiased std, as TRL and verl)
    "batch": lambda r: r.std().expand_as(r),  # TRL scale_rewards="batch"
    "none": lambda r: None,  # Dr. GRPO
}


def group_advantages(rewards: torch.Tensor, scale: str = "group", eps: float = 1e-4) -> torch.Tensor:
    """Â [groups, G] from rewards [groups, G]: one scalar per sample, given to all its tokens."""
    centered = rewards - rewards.mean(-1, keepdim=True)
    std = REWARD_SCALES[scale](rewards)
    return centered if std is None else centered / (std + eps)


def k3_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """k3 per token; `expm1(d) − d` keeps it ≥ 0 in floating point for tiny d, d capped at 20 against overflow."""
    d = (ref_logp - logp).clamp(max=20.0)
    return (torch.expm1(d) - d).clamp(min=0.0)


def token_mean(x: torch.Tensor, mask: torch.Tensor, L: int = 0) -> tuple[torch.Tensor, float]:
    n = mask.sum()
    return (x * mask).sum() / n.clamp(min=1), float(n)


def seq_mean_token_mean(x: torch.Tensor, mask: torch.Tensor, L: int) -> tuple[torch.Tensor, float]:
    n = mask.sum(-1)
    live = (n > 0).float()  # a fully masked completion (mask_truncated) is not a sequence of the mean
    return ((x * mask).sum(-1) / n.clamp(min=1) * live).sum() / live.sum().clamp(min=1), float(live.sum())


# per-token losses x [B, T], mask [B, T] → (mean over `weight` units, weight): the core's weighted mean over
# micro-batches then makes each mode exact over the whole minibatch
AGGREGATIONS: dict[str, Callable[[torch.Tensor, torch.Tensor, int], tuple[torch.Tensor, float]]] = {
    "seq-mean-token-mean": seq_mean_token_mean,  # GRPO: 1/G Σ_i 1/|o_i| Σ_t
    "token-mean": token_mean,  # DAPO: Σ_i Σ_t / Σ_i |o_i|
    "seq-mean-token-sum-norm": lambda x, m, L: ((x * m).sum() / (x.shape[0] * L), float(x.shape[0])),  # Dr. GRPO
    "seq-mean-token-sum": lambda x, m, L: ((x * m).sum() / x.shape[0], float(x.shape[0])),  # verl: 1/G Σ_i Σ_t
}


def policy_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    o: Any,
    ref_logp: torch.Tensor | None = None,
    is_weight: torch.Tensor | None = None,
):
    """−J on one micro-batch → (loss, weight, metrics). logp (with gradient), old_logp, ref_logp, is_weight, mask:
    [B, T] per completion token; advantages [B]; `o` the GRPOOptions."""
    # 1. ρ per token, or GSPO's per sequence (the geometric mean, its gradient spread over the tokens)
    log_ratio = logp - old_logp
    if o.ratio_level == "sequence":
        seq = (log_ratio * mask).sum(-1) / mask.sum(-1).clamp(min=1)
        log_ratio = seq.detach()[:, None] + logp - logp.detach()
    ratio = torch.exp(log_ratio.clamp(-20.0, 20.0))
    # 2. the pessimistic min of ρÂ and clip(ρ)Â, as a loss; dual clip caps the loss of Â < 0; TIS reweights
    A = advantages[:, None]
    pg = torch.maximum(-A * ratio, -A * ratio.clamp(1 - o.eps_low, 1 + o.eps_high))
    if o.dual_clip:
        pg = torch.where(A < 0, torch.minimum(pg, -A * o.dual_clip), pg)
    if is_weight is not None:
        pg = pg * is_weight
    # 3. β · k3 to the frozen reference; 4. aggregation
    kl = k3_kl(logp, ref_logp) if ref_logp is not None and o.beta > 0 else None
    aggregate = AGGREGATIONS[o.loss_agg]
    pg_loss, weight = aggregate(pg, mask, o.max_new_tokens)
    kl_loss = o.beta * aggregate(kl, mask, o.max_new_tokens)[0] if kl is not None else pg_loss.new_zeros(())
    with torch.no_grad():
        metrics = {
            "pg_loss": pg_loss.detach(),
            "kl_loss": kl_loss.detach(),
            "clip/low": token_mean(((ratio < 1 - o.eps_low) & (A < 0)).float(), mask)[0],
            "clip/high": token_mean(((ratio > 1 + o.eps_high) & (A > 0)).float(), mask)[0],
            "ratio_mean": token_mean(ratio, mask)[0],
            "adv_logprob_change": token_mean(A * (logp - old_logp), mask)[0],  # how far updates moved toward Â > 0
        }
        if kl is not None:
            metrics["kl"] = token_mean(kl, mask)[0]
        if o.dual_clip:
            metrics["clip/dual"] = token_mean(((ratio > o.dual_clip) & (A < 0)).float(), mask)[0]
    return pg_loss + kl_loss, weight, metrics
