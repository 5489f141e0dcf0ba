"""Building blocks shared by every architecture: RMSNorm and the SwiGLU MLP."""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from r1.model.kernels.norm import RMSNormFunction, rms_norm_decode
from r1.model.weights import FusedWeights, Fusion, fused_linear, linear, weight


class RMSNorm(nn.Module):
    """x / rms(x) · w, computed in fp32 and cast back (as DeepSeek and HF do); no bias, no +1 offset."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return RMSNormFunction.apply(x, weight(self), self.eps)

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """The same norm as one fused call without autograd bookkeeping (the decode step)."""
        return rms_norm_decode(x, weight(self), self.eps)


class MLP(nn.Module):
    """SwiGLU: down(silu(gate(x)) ⊙ up(x)). Used for dense layers, shared experts and each routed expert; biased
    projections only for Llama's `mlp_bias`."""

    def __init__(self, dim: int, hidden: int, bias: bool = False) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(dim, hidden, bias=bias)
        self.up_proj = nn.Linear(dim, hidden, bias=bias)
        self.down_proj = nn.Linear(hidden, dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = fused_linear(x, self.gate_proj, self.up_proj)
        return linear(F.silu(gate) * up, self.down_proj)

    def decode(self, x: torch.Tensor, fused: FusedWeights | None = None) -> torch.Tensor:
        """The same for the decode step, on `fused`'s copy ([gate | up] concatenated once, not per call); without
        one, `forward`."""
        hit = fused.get(self) if fused is not None else None
        if hit is None:
            return self.forward(x)
        w_gu, b_gu, w_down, b_down = hit
        g, u = F.linear(x, w_gu, b_gu).chunk(2, dim=-1)
        return F.linear(F.silu(g) * u, w_down, b_down)

    def fusions(self) -> Iterator[Fusion]:
        """The `FusedWeights` entry `decode` reads: ([gate; up], its bias, down, its bias)."""
        projs = (self.gate_proj, self.up_proj, self.down_proj)
        biased = self.gate_proj.bias is not None
        sources = [weight(m) for m in projs] + ([m.bias for m in projs] if biased else [])

        def build(t: list[torch.Tensor]):
            w_g, w_u, w_d, *b = t
            b_g, b_u, b_d = b or (None, None, None)
            return torch.cat((w_g, w_u)), (torch.cat((b_g, b_u)) if biased else None), w_d, b_d

        yield self, sources, build
