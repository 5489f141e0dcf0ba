"""The divergences of logit distillation, between the teacher's and the student's next-token distributions.

At one position, with p = softmax(z_teacher / τ), q = softmax(z_student / τ) (τ = `temperature`) and β ∈ [0, 1]
(`beta`, the generalized JSD of GKD, arXiv 2306.13649 Eq. 1, with TRL's meaning of β):

    β = 0       forward KL   KL(p ‖ q) = Σ_v p_v (log p_v − log q_v)       mode-covering: SFT on the soft labels
    β = 1       reverse KL   KL(q ‖ p) = Σ_v q_v (log q_v − log p_v)       mode-seeking (MiniLLM)
    0 < β < 1   JSD(β)       β·KL(p ‖ m) + (1 − β)·KL(q ‖ m),  m = β·p + (1 − β)·q      (β = ½: the symmetric JSD)

JSD(β) itself tends to 0 at both ends, so the ends are defined as the two KLs (TRL does the same). The loss of a
batch is the mean of the per-token divergence over its target tokens, TRL's reduction, with no τ² factor.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def token_divergence(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, beta: float, temperature: float = 1.0
) -> torch.Tensor:
    """The divergence at each of M positions, [M], from logits [M, V] (computed in fp32; no gradient to the teacher)."""
    log_q = F.log_softmax(student_logits.float() / temperature, dim=-1)
    log_p = F.log_softmax(teacher_logits.detach().float() / temperature, dim=-1)
    if beta == 0:
        return (log_p.exp() * (log_p - log_q)).sum(-1)
    if beta == 1:
        return (log_q.exp() * (log_q - log_p)).sum(-1)
    log_m = torch.logaddexp(log_p + math.log(beta), log_q + math.log1p(-beta))
    return beta * (log_p.exp() * (log_p - log_m)).sum(-1) + (1 - beta) * (log_q.exp() * (log_q - log_m)).sum(-1)
