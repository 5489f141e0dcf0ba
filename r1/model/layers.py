"""Building blocks shared by every architecture: RMSNorm and the SwiGLU MLP."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm(nn.Module):
    """x / rms(x) · w, computed in fp32 and cast back (as DeepSeek and HF do); no bias, no +1 offset."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weight * F.rms_norm(x.float(), (x.shape[-1],), eps=self.eps).to(x.dtype)


def fused_linear(x: torch.Tensor, *layers: nn.Linear) -> list[torch.Tensor]:
    """Apply several projections of the same input as one GEMM, then split.

    One matmul instead of several saves kernel launches and, under autocast, repeated casts of `x`; at CPU scale
    those dominate. The weights stay separate parameters, so checkpoints keep their per-projection names.
    """
    weight = torch.cat([layer.weight for layer in layers])
    biases = [layer.bias for layer in layers]
    bias = torch.cat(biases) if all(b is not None for b in biases) else None
    return list(F.linear(x, weight, bias).split([layer.out_features for layer in layers], dim=-1))


class MLP(nn.Module):
    """SwiGLU: down(silu(gate(x)) ⊙ up(x)). Used for dense layers, shared experts and each routed expert."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(dim, hidden, bias=False)
        self.up_proj = nn.Linear(dim, hidden, bias=False)
        self.down_proj = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = fused_linear(x, self.gate_proj, self.up_proj)
        return self.down_proj(F.silu(gate) * up)
