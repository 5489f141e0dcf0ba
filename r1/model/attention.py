"""Attention: Multi-head Latent Attention (DeepSeek-V2/V3) and grouped-query attention (dense students).

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
from r1.model.rope import apply_rope_half, apply_rope_interleaved


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
            self.q_a_layernorm = RMSNorm(cfg.q_lora_rank, cfg.rms_norm_eps)
            self.q_b_proj = nn.Linear(cfg.q_lora_rank, h * d_qk, bias=False)
        self.kv_a_proj_with_mqa = nn.Linear(cfg.hidden_size, cfg.kv_lora_rank + self.d_rope, bias=False)
        self.kv_a_layernorm = RMSNorm(cfg.kv_lora_rank, cfg.rms_norm_eps)
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
        if impl == "absorb":
            return self._absorbed(q_nope, q_pe, ckv, k_pe, mask, positions_BT, cache)
        return self._naive(q_nope, q_pe, ckv, k_pe, mask, positions_BT, cache)

    def _naive(self, q_nope, q_pe, ckv, k_pe, mask, positions_BT, cache):
        B, T, H, _ = q_nope.shape
        kv = self.kv_b_proj(ckv).view(B, T, H, self.d_nope + self.d_v)
        k_nope, v = kv.split([self.d_nope, self.d_v], dim=-1)
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
    """Llama/Qwen2 attention: H query heads sharing H_kv key/value heads, rotate-half RoPE, optional qkv bias."""

    def __init__(self, cfg: ModelConfig, layer_idx: int) -> None:
        super().__init__()
        self.layer_idx = layer_idx
        self.n_heads, self.n_kv, self.d = cfg.num_attention_heads, cfg.num_key_value_heads, int(cfg.head_dim)
        self.scale = cfg.softmax_scale
        self.q_proj = nn.Linear(cfg.hidden_size, self.n_heads * self.d, bias=cfg.attention_bias)
        self.k_proj = nn.Linear(cfg.hidden_size, self.n_kv * self.d, bias=cfg.attention_bias)
        self.v_proj = nn.Linear(cfg.hidden_size, self.n_kv * self.d, bias=cfg.attention_bias)
        self.o_proj = nn.Linear(self.n_heads * self.d, cfg.hidden_size, bias=False)

    def forward(self, x_BTD, cos, sin, mask, positions_BT, cache: KVCache | None = None) -> torch.Tensor:
        B, T, _ = x_BTD.shape
        q, k, v = fused_linear(x_BTD, self.q_proj, self.k_proj, self.v_proj)
        q = apply_rope_half(q.view(B, T, self.n_heads, self.d), cos, sin)
        k = apply_rope_half(k.view(B, T, self.n_kv, self.d), cos, sin)
        v = v.view(B, T, self.n_kv, self.d)
        if cache is not None:
            k, v = cache.write(self.layer_idx, positions_BT, k, v)
        o = attend(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), mask, self.scale, self.n_kv != self.n_heads)
        return self.o_proj(o.transpose(1, 2).reshape(B, T, self.n_heads * self.d))
