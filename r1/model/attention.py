"""Attention: Multi-head Latent Attention (DeepSeek-V2/V3) and grouped-query attention (Llama/Qwen2/Qwen3).

MLA, per token x (spec §2; names are the HF checkpoint's):
    c_Q = RMSNorm(q_a_proj x)                   q = q_b_proj c_Q        (or q = q_proj x without q LoRA)
    [c_KV ‖ k_pe] = kv_a_proj_with_mqa x        ĉ = kv_a_layernorm(c_KV)
    q_h = [q_nope_h ‖ RoPE(q_pe_h)]             k_h = [k_nope_h ‖ RoPE(k_pe)]   with [k_nope_h ‖ v_h] = kv_b_proj ĉ
    o = o_proj concat_h softmax(q_h·k_h · scale) v_h

The absorbed form folds W_UK into the query and W_UV into the output, so attention runs over the latent
directly and the cache holds only ĉ (kv_lora_rank) and the rotated k_pe (qk_rope_head_dim) per token:
    score(t, s) = scale · ( (W_UK_hᵀ q_nope_h)·ĉ_s + q_pe_h·k_pe_s ),     o_h = W_UV_h Σ_s p(t, s) ĉ_s
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from r1.model.cache import KVCache
from r1.model.config import ModelConfig
from r1.model.layers import RMSNorm, fused_linear
from r1.model.prefix import SharedPrompts
from r1.model.rope import apply_rope_half, apply_rope_interleaved

# Saved probabilities (elements, over all query blocks) above which the blocked kernel recomputes them in backward.
_SAVE_PROBS_MAX = 1 << 24
# Query rows per block: smaller blocks skip more of the masked triangle, larger ones make better GEMMs.
_BLOCK = {torch.float32: 32, torch.bfloat16: 64}
# Score rows are computed this many keys wide at least (masked columns past the causal edge): CPU softmax runs its
# vector kernel only on rows whose length is a multiple of the SIMD width (measured: 88 keys take 1.8x the time of
# 96 in fp32, 2.6x in bf16).
_KEY_ALIGN = 32
# MLA's latent norms use RMSNorm's default eps whatever rms_norm_eps says, in DeepSeek's code and transformers' alike.
LATENT_NORM_EPS = 1e-6


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


class MLA(nn.Module):
    def __init__(self, cfg: ModelConfig, layer_idx: int) -> None:
        super().__init__()
        self.layer_idx = layer_idx
        self.n_heads = cfg.num_attention_heads
        self.d_nope, self.d_rope, self.d_v = cfg.qk_nope_head_dim, cfg.qk_rope_head_dim, cfg.v_head_dim
        self.kv_lora_rank = cfg.kv_lora_rank
        self.scale = cfg.softmax_scale
        h, d_qk = self.n_heads, cfg.qk_head_dim
        if cfg.q_lora_rank is None:
            self.q_proj = nn.Linear(cfg.hidden_size, h * d_qk, bias=False)
        else:
            self.q_a_proj = nn.Linear(cfg.hidden_size, cfg.q_lora_rank, bias=False)
            self.q_a_layernorm = RMSNorm(cfg.q_lora_rank, LATENT_NORM_EPS)
            self.q_b_proj = nn.Linear(cfg.q_lora_rank, h * d_qk, bias=False)
        self.kv_a_proj_with_mqa = nn.Linear(cfg.hidden_size, cfg.kv_lora_rank + self.d_rope, bias=False)
        self.kv_a_layernorm = RMSNorm(cfg.kv_lora_rank, LATENT_NORM_EPS)
        self.kv_b_proj = nn.Linear(cfg.kv_lora_rank, h * (self.d_nope + self.d_v), bias=False)
        self.o_proj = nn.Linear(h * self.d_v, cfg.hidden_size, bias=False)
        # "absorb" folds kv_b_proj into q and o (what the cache needs); "naive" expands K and V per head.
        self.impl = "naive"

    def forward(self, x_BTD, cos, sin, mask, positions_BT, cache: KVCache | None = None) -> torch.Tensor:
        B, T, _ = x_BTD.shape
        if hasattr(self, "q_proj"):
            q, kv_a = fused_linear(x_BTD, self.q_proj, self.kv_a_proj_with_mqa)
        else:
            q_a, kv_a = fused_linear(x_BTD, self.q_a_proj, self.kv_a_proj_with_mqa)
            q = self.q_b_proj(self.q_a_layernorm(q_a))
        q_BTHD = q.view(B, T, self.n_heads, self.d_nope + self.d_rope)
        q_nope, q_pe = q_BTHD.split([self.d_nope, self.d_rope], dim=-1)
        q_pe = apply_rope_interleaved(q_pe, cos, sin)
        ckv, k_pe = kv_a.split([self.kv_lora_rank, self.d_rope], dim=-1)
        ckv = self.kv_a_layernorm(ckv)
        k_pe = apply_rope_interleaved(k_pe[:, :, None, :], cos, sin)[:, :, 0]
        impl = cache.mla_impl if cache is not None else self.impl
        if impl == "absorb" and not isinstance(mask, SharedPrompts):
            return self._absorbed(q_nope, q_pe, ckv, k_pe, mask, positions_BT, cache)
        return self._naive(q_nope, q_pe, ckv, k_pe, mask, positions_BT, cache)

    def _naive(self, q_nope, q_pe, ckv, k_pe, mask, positions_BT, cache):
        B, T, H, _ = q_nope.shape
        kv = self.kv_b_proj(ckv).view(B, T, H, self.d_nope + self.d_v)
        k_nope, v = kv.split([self.d_nope, self.d_v], dim=-1)
        if isinstance(mask, SharedPrompts):
            q = torch.cat((q_nope, q_pe), dim=-1)
            k = torch.cat((k_nope, k_pe[:, :, None, :].expand(B, T, H, self.d_rope)), dim=-1)
            return self.o_proj(mask.attend(q, k, v, self.scale).reshape(B, T, H * self.d_v))
        if cache is None and q_nope.device.type == "cpu":
            # Training / full-sequence scoring on CPU: skip the masked half of the T×T square. q and k are built
            # head-major ([B, H, T, D], contiguous) by the concatenation itself.
            q = torch.cat((q_nope.transpose(1, 2), q_pe.transpose(1, 2)), dim=-1)
            k = torch.cat((k_nope.transpose(1, 2), k_pe[:, None].expand(B, H, T, self.d_rope)), dim=-1)
            o = blocked_causal_attention(q, k, v.transpose(1, 2), self.scale, mask)
            return self.o_proj(o.transpose(1, 2).reshape(B, T, H * self.d_v))
        k = torch.cat((k_nope, k_pe[:, :, None, :].expand(B, T, H, self.d_rope)), dim=-1)
        q = torch.cat((q_nope, q_pe), dim=-1)
        if cache is not None:
            k, v = cache.write(self.layer_idx, positions_BT, k, v)
        pad = self.d_nope + self.d_rope - self.d_v
        if mask is None and pad > 0:
            # CPU SDPA's fused causal kernel needs equal q/k/v widths; without it, attention falls back to the
            # unfused path that computes the full T×T square. Zero columns in V leave the output unchanged.
            v = F.pad(v, (0, pad))
        o = attend(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), mask, self.scale)[..., : self.d_v]
        return self.o_proj(o.transpose(1, 2).reshape(B, T, H * self.d_v))

    def _absorbed(self, q_nope, q_pe, ckv, k_pe, mask, positions_BT, cache):
        B, T, H, _ = q_nope.shape
        w = self.kv_b_proj.weight.view(H, self.d_nope + self.d_v, self.kv_lora_rank)
        w_uk, w_uv = w[:, : self.d_nope], w[:, self.d_nope :]
        q_lat = torch.einsum("bthd,hdc->bthc", q_nope, w_uk)
        q = torch.cat((q_lat, q_pe), dim=-1)  # [B, T, H, C + R]
        kv = torch.cat((ckv, k_pe), dim=-1)  # [B, T, C + R]: all a token leaves behind
        if cache is not None:
            (kv,) = cache.write(self.layer_idx, positions_BT, kv)
        S = kv.shape[1]
        if mask is None:  # causal over the same tokens, made explicit because queries get folded with heads
            mask = torch.ones(T, S, dtype=torch.bool, device=q.device).tril(S - T)[None, None]
        # One shared K/V "head": fold the H query heads into the query axis (MQA) and attend once.
        q_fold = q.reshape(B, 1, T * H, -1)
        mask_fold = mask.expand(B, 1, T, S).repeat_interleave(H, dim=2)
        o = attend(q_fold, kv[:, None], kv[:, None, :, : self.kv_lora_rank], mask_fold, self.scale)
        o = torch.einsum("bthc,hvc->bthv", o.view(B, T, H, self.kv_lora_rank), w_uv)
        return self.o_proj(o.reshape(B, T, H * self.d_v))


class GQA(nn.Module):
    """Llama/Qwen2/Qwen3 attention: H query heads sharing H_kv key/value heads, rotate-half RoPE.

    Optional biases on q/k/v (Qwen2: always) and o_proj (Llama/Qwen3 `attention_bias`); Qwen3 RMS-normalises
    each query and key head (`q_norm`, `k_norm`, over head_dim) before RoPE.
    """

    def __init__(self, cfg: ModelConfig, layer_idx: int) -> None:
        super().__init__()
        self.layer_idx = layer_idx
        self.n_heads, self.n_kv, self.d = cfg.num_attention_heads, cfg.num_key_value_heads, int(cfg.head_dim)
        self.scale = cfg.softmax_scale
        self.q_proj = nn.Linear(cfg.hidden_size, self.n_heads * self.d, bias=cfg.attention_bias)
        self.k_proj = nn.Linear(cfg.hidden_size, self.n_kv * self.d, bias=cfg.attention_bias)
        self.v_proj = nn.Linear(cfg.hidden_size, self.n_kv * self.d, bias=cfg.attention_bias)
        self.o_proj = nn.Linear(self.n_heads * self.d, cfg.hidden_size, bias=cfg.o_proj_bias)
        if cfg.qk_norm:
            self.q_norm = RMSNorm(self.d, cfg.rms_norm_eps)
            self.k_norm = RMSNorm(self.d, cfg.rms_norm_eps)

    def forward(self, x_BTD, cos, sin, mask, positions_BT, cache: KVCache | None = None) -> torch.Tensor:
        B, T, _ = x_BTD.shape
        q, k, v = fused_linear(x_BTD, self.q_proj, self.k_proj, self.v_proj)
        q, k = q.view(B, T, self.n_heads, self.d), k.view(B, T, self.n_kv, self.d)
        if hasattr(self, "q_norm"):
            q, k = self.q_norm(q).to(q.dtype), self.k_norm(k).to(k.dtype)
        q = apply_rope_half(q, cos, sin)
        k = apply_rope_half(k, cos, sin)
        v = v.view(B, T, self.n_kv, self.d)
        if isinstance(mask, SharedPrompts):
            g = self.n_heads // self.n_kv
            k, v = (t.repeat_interleave(g, dim=2) for t in (k, v))
            return self.o_proj(mask.attend(q, k, v, self.scale).reshape(B, T, self.n_heads * self.d))
        if cache is None and q.device.type == "cpu":  # training / full-sequence scoring: see MLA._naive
            g = self.n_heads // self.n_kv
            k, v = (t.transpose(1, 2).repeat_interleave(g, dim=1) for t in (k, v))
            o = blocked_causal_attention(q.transpose(1, 2), k, v, self.scale, mask)
            return self.o_proj(o.transpose(1, 2).reshape(B, T, self.n_heads * self.d))
        if cache is not None:
            k, v = cache.write(self.layer_idx, positions_BT, k, v)
        o = attend(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), mask, self.scale, self.n_kv != self.n_heads)
        return self.o_proj(o.transpose(1, 2).reshape(B, T, self.n_heads * self.d))
