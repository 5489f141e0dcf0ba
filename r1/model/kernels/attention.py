"""Attention kernels: causal attention over blocks of query rows (training and full-sequence scoring on CPU), and
the SDPA call every other path uses. Plain tensors in, plain tensors out: the modules in `r1/model/attention.py`
and `r1/model/prefix.py` decide which to run.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Saved probabilities (elements, over all query blocks) above which the blocked kernel recomputes them in backward.
_SAVE_PROBS_MAX = 1 << 24
# Query rows per block: smaller blocks skip more of the masked triangle, larger ones make better GEMMs.
_BLOCK = {torch.float32: 32, torch.bfloat16: 64}
# Score rows are computed this many keys wide at least (masked columns past the causal edge): CPU softmax runs its
# vector kernel only on rows whose length is a multiple of the SIMD width (measured: 88 keys take 1.8x the time of
# 96 in fp32, 2.6x in bf16).
_KEY_ALIGN = 32


class _BlockedCausal(torch.autograd.Function):
    """Causal attention of T queries [N, T, D] over S = off + T keys, one block of query rows at a time.

    The last T keys belong to the queries themselves; the first `off` (a shared prompt's, see prefix.py) are
    visible to every query. Query rows [a, b) see keys [0, off + b): the masked upper triangle is never computed,
    forward or backward, so the score and value GEMMs and the softmax cost about half of the full T×T square, and
    V needs no padding to the query width. Probabilities are kept for backward (recomputed when they would be
    large); the softmax gradient uses them directly, and K/V gradients accumulate over blocks in fp32 or wider.
    """

    @staticmethod
    def forward(ctx, q, k, v, hidden_BTS, heads: int, scale: float, block: int, need_grad: bool):
        N, T, _ = q.shape
        off = k.shape[1] - T
        kT = _padded_transpose(k)  # [N, D, S + zero columns]: each block's GEMM reads a prefix of it as is
        bias = _causal_bias(T, block, q.dtype, q.device, off)
        recompute = not need_grad or N * (T * (T + block) // 2 + off * T) > _SAVE_PROBS_MAX
        outs, probs = [], []
        for a in range(0, T, block):
            b = min(a + block, T)
            p = _block_probs(q, kT, bias, hidden_BTS, heads, scale, a, b, off)
            outs.append(torch.bmm(p[:, :, : off + b], v[:, : off + b]))
            if not recompute:
                probs.append(p)
        ctx.save_for_backward(q, k, kT, v, hidden_BTS, *probs)
        ctx.heads, ctx.scale, ctx.block = heads, scale, block
        return torch.cat(outs, dim=1)

    @staticmethod
    def backward(ctx, do):
        q, k, kT, v, hidden_BTS, *probs = ctx.saved_tensors
        heads, scale, block = ctx.heads, ctx.scale, ctx.block
        N, T, D = q.shape
        off = k.shape[1] - T
        do = do.to(v.dtype).contiguous()
        vT = v.transpose(1, 2).contiguous()
        bias = None if probs else _causal_bias(T, block, q.dtype, q.device, off)
        acc = torch.promote_types(q.dtype, torch.float32)  # K/V gradients sum over blocks
        dq = torch.empty_like(q)
        dk = torch.zeros(k.shape, dtype=acc, device=q.device)
        dv = torch.zeros(v.shape, dtype=acc, device=q.device)
        for i, a in enumerate(range(0, T, block)):
            b = min(a + block, T)
            p = probs[i] if probs else _block_probs(q, kT, bias, hidden_BTS, heads, scale, a, b, off)
            do_i = do[:, a:b]
            p = p[:, :, : off + b]  # the aligned columns past the causal edge are all 0
            dv[:, : off + b] += torch.bmm(p.transpose(1, 2), do_i)
            ds = torch._softmax_backward_data(torch.bmm(do_i, vT[:, :, : off + b]), p, -1, p.dtype)  # p·(dp − Σ p·dp)
            dq[:, a:b] = torch.bmm(ds, k[:, : off + b])
            dk[:, : off + b] += torch.bmm(ds.transpose(1, 2), q[:, a:b])
        return dq.mul_(scale), dk.mul_(scale).to(q.dtype), dv.to(v.dtype), None, None, None, None, None


def _causal_bias(T: int, block: int, dtype: torch.dtype, device: torch.device, off: int = 0) -> torch.Tensor:
    """[block, T + off + block + _KEY_ALIGN], −inf where column − T − off > row: columns [T − a, T − a + W) are
    the bias of query block [a, b) over keys [0, W), W ≥ off + b (the first `off` keys open to all, then the causal
    ones; any column past off + b is masked)."""
    rows = torch.arange(block, device=device)[:, None]
    cols = torch.arange(T + off + block + _KEY_ALIGN, device=device)[None, :]
    bias = torch.zeros(block, cols.shape[1], dtype=dtype, device=device)
    return bias.masked_fill_(cols - T - off > rows, float("-inf"))


def _padded_transpose(x: torch.Tensor) -> torch.Tensor:
    """x [N, S, D] as [N, D, S'] with S' = S rounded up to _KEY_ALIGN, the extra columns zero."""
    N, S, D = x.shape
    out = x.new_empty(N, D, -(-S // _KEY_ALIGN) * _KEY_ALIGN)
    out[:, :, S:].zero_()
    out[:, :, :S].copy_(x.transpose(1, 2))
    return out


def _block_probs(q, kT, bias, hidden_BTS, heads: int, scale: float, a: int, b: int, off: int = 0) -> torch.Tensor:
    """softmax(scale · q[a:b] kᵀ, causal) for query rows [a, b) over keys [0, W): [N, b − a, W], where W is off + b
    rounded up to _KEY_ALIGN (within kT's zero-padded width); the columns past off + b are exactly 0."""
    T, S = q.shape[1], off + b
    W = min(-(-S // _KEY_ALIGN) * _KEY_ALIGN, kT.shape[-1])
    s = torch.baddbmm(bias[: b - a, T - a : T - a + W], q[:, a:b], kT[:, :, :W], alpha=scale)
    if hidden_BTS is not None:
        B = hidden_BTS.shape[0]
        view = s.view(B, heads, b - a, W)
        if hidden_BTS.dim() == 2:  # [B, off]: padding among the shared keys only; the causal part is in the bias
            view[..., :off].masked_fill_(hidden_BTS[:, None, None, :], float("-inf"))
        else:
            view[..., :S].masked_fill_(hidden_BTS[:, None, a:b, :S], float("-inf"))
    return torch.softmax(s, dim=-1, out=s)


def blocked_causal_attention(
    q_BHTD, k_BHSD, v_BHSD, scale: float, mask_B1TS=None, block: int | None = None, shared_keys_BK=None
):
    """Causal attention that skips the masked upper triangle (training and full-sequence scoring).

    Keys may be longer than queries (S = off + T): the first `off` keys come before every query (a shared prompt)
    and the last T are the queries' own, causal. `mask_B1TS` (optional, True = attend) must already be causal,
    e.g. causal ∧ same-document for packed sequences; it is applied to the blocks computed. `shared_keys_BK`
    (True = attend) instead masks only the first `off` keys per row (a padded shared prompt). Under autocast,
    attention runs in the autocast dtype (as SDPA's math path would), with fp32 accumulation inside the GEMMs and
    the softmax.
    """
    B, H, T, _ = q_BHTD.shape
    S = k_BHSD.shape[2]
    dev = q_BHTD.device.type
    dtype = torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else q_BHTD.dtype
    q = q_BHTD.to(dtype).reshape(B * H, T, q_BHTD.shape[-1])
    k, v = (x.to(dtype).reshape(B * H, S, x.shape[-1]) for x in (k_BHSD, v_BHSD))
    hidden = ~mask_B1TS[:, 0] if mask_B1TS is not None else None
    if shared_keys_BK is not None and not bool(shared_keys_BK.all()):
        hidden = ~shared_keys_BK
    need_grad = torch.is_grad_enabled() and any(x.requires_grad for x in (q, k, v))  # else keep no probabilities
    with torch.autocast(dev, enabled=False):
        o = _BlockedCausal.apply(q, k, v, hidden, H, scale, block or _BLOCK.get(dtype, 64), need_grad)
    return o.view(B, H, T, -1)


def attend(q_BHTD, k_BHSD, v_BHSD, mask, scale: float, enable_gqa: bool = False) -> torch.Tensor:
    """SDPA; `mask` is None for plain causal attention over the same tokens, else a bool [B, 1, T, S] mask."""
    if mask is None:
        return F.scaled_dot_product_attention(
            q_BHTD, k_BHSD, v_BHSD, is_causal=True, scale=scale, enable_gqa=enable_gqa
        )
    return F.scaled_dot_product_attention(q_BHTD, k_BHSD, v_BHSD, attn_mask=mask, scale=scale, enable_gqa=enable_gqa)
