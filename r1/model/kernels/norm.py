"""RMSNorm kernels: one with a hand-written backward (training, scoring, prefill), one fused call for decoding."""

from __future__ import annotations

import torch
import torch.nn.functional as F


class RMSNormFunction(torch.autograd.Function):
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


def rms_norm_decode(x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    """The same maths without autograd bookkeeping, for the decode step: one fused `rms_norm` call in fp32; with
    16-bit inputs or weights, x̂ in fp32 rounded to x's dtype, then scaled by w (as RMSNormFunction does)."""
    if x.dtype == torch.float32 and w.dtype == torch.float32:
        return F.rms_norm(x, (x.shape[-1],), w, eps)  # one call: normalise, then scale
    return w * F.rms_norm(x.float(), (x.shape[-1],), eps=eps).to(x.dtype)
