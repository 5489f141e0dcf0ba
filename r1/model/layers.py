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
        return _RMSNorm.apply(x, self.weight, self.eps)


class _RMSNorm(torch.autograd.Function):
    """y = w · x / sqrt(mean(x²) + eps) in fp32, with a hand-written backward.

    Autograd through the composite (square, mean, rsqrt, products) runs a chain of elementwise kernels each way
    and keeps their intermediates. Here the forward is one norm reduction and two scalings, saving only x and
    r = 1/rms(x) per row; backward is dx = r·(g − x̂·mean(g·x̂)) with g = dy·w, x̂ = r·x, and dw = Σ dy·x̂.
    Measured on the tiny preset's training step: 4% faster in fp32, 14% under bf16 autocast.
    Computed in fp32 or wider. The output has the dtype of x·w: fp32 for fp32 weights (an fp32 w times a bf16 x
    under autocast gives fp32 as well); with 16-bit weights and input, x̂ is rounded to x's dtype and then scaled by w
    in that dtype, as Hugging Face's RMSNorm does, so 16-bit models stay 16-bit and match transformers.
    """

    @staticmethod
    def forward(ctx, x, w, eps: float):
        acc = torch.promote_types(torch.promote_types(x.dtype, torch.float32), w.dtype)
        xf = x.to(acc)
        C = x.shape[-1]
        r = torch.rsqrt(torch.linalg.vector_norm(xf, dim=-1, keepdim=True).square_().div_(C).add_(eps))
        ctx.save_for_backward(xf, w, r)
        ctx.x_dtype = x.dtype
        if torch.promote_types(x.dtype, w.dtype) != acc:
            return (xf * r).to(x.dtype) * w
        return (xf * r).mul_(w)

    @staticmethod
    def backward(ctx, dy):
        xf, w, r = ctx.saved_tensors
        C = xf.shape[-1]
        dy = dy.to(xf.dtype)
        dx = dw = None
        if ctx.needs_input_grad[0]:
            g = dy * w
            coef = torch.linalg.vecdot(g, xf).unsqueeze_(-1).mul_(r.pow(3)).div_(-C)  # −r³·mean(g·x)
            dx = g.mul_(r).addcmul_(xf, coef).to(ctx.x_dtype)
        if ctx.needs_input_grad[1]:
            # a plain sum over tokens (cascaded, as autograd's would be), not a GEMV's sequential dot product
            dw = (dy * xf).mul_(r).reshape(-1, C).sum(0).to(w.dtype)
        return dx, dw, None


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
    """SwiGLU: down(silu(gate(x)) ⊙ up(x)). Used for dense layers, shared experts and each routed expert; biased
    projections only for Llama's `mlp_bias`."""

    def __init__(self, dim: int, hidden: int, bias: bool = False) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(dim, hidden, bias=bias)
        self.up_proj = nn.Linear(dim, hidden, bias=bias)
        self.down_proj = nn.Linear(hidden, dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = fused_linear(x, self.gate_proj, self.up_proj)
        return self.down_proj(F.silu(gate) * up)
