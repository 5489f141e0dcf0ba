"""Attention: Multi-head Latent Attention (DeepSeek-V2/V3) and grouped-query attention (Llama/Qwen2/Qwen3).

MLA, per token x (spec §2; names are the HF checkpoint's):
    c_Q = RMSNorm(q_a_proj x)                   q = q_b_proj c_Q        (or q = q_proj x without q LoRA)
    [c_KV ‖ k_pe] = kv_a_proj_with_mqa x        ĉ = kv_a_layernorm(c_KV)
    q_h = [q_nope_h ‖ RoPE(q_pe_h)]             k_h = [k_nope_h ‖ RoPE(k_pe)]   with [k_nope_h ‖ v_h] = kv_b_proj ĉ
    o = o_proj concat_h softmax(q_h·k_h · scale) v_h

The absorbed form folds W_UK into the query and W_UV into the output, so attention runs over the latent
directly and the cache holds only ĉ (kv_lora_rank) and the rotated k_pe (qk_rope_head_dim) per token:
    score(t, s) = scale · ( (W_UK_hᵀ q_nope_h)·ĉ_s + q_pe_h·k_pe_s ),     o_h = W_UV_h Σ_s p(t, s) ĉ_s
`MLA.forward` runs either form over T tokens (training, scoring, prefill); `MLA.decode` is the absorbed form written
out for a decode step, one token per cache row. GQA decodes through its `forward` with a cache.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from r1.model.cache import KVCache
from r1.model.config import ModelConfig
from r1.model.kernels.attention import attend, blocked_causal_attention
from r1.model.layers import RMSNorm
from r1.model.prefix import SharedPrompts
from r1.model.rope import apply_rope_half, apply_rope_interleaved
from r1.model.weights import FusedWeights, Fusion, fused_linear, linear, weight

# MLA's latent norms use RMSNorm's default eps whatever rms_norm_eps says, in DeepSeek's code and transformers' alike.
LATENT_NORM_EPS = 1e-6


@dataclass
class LatentStep:
    """What every layer of one absorbed decode step shares: T tokens per cache row [0, B), N = B·T in all, row-major
    (T = 1 for plain decoding; T = k + 1 when speculative decoding verifies k drafted tokens)."""

    positions: torch.Tensor  # [N]
    rows: torch.Tensor  # [N]: each token's cache row
    rotation: torch.Tensor  # [N, 1, R/2] complex: RoPE at each token's position
    mask: torch.Tensor  # [B, T·H or 1, S] additive, in the weights' dtype: 0 up to the token's position, −inf after
    tokens_per_row: int = 1


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
            q = linear(self.q_a_layernorm(q_a), self.q_b_proj)
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
        kv = linear(ckv, self.kv_b_proj).view(B, T, H, self.d_nope + self.d_v)
        k_nope, v = kv.split([self.d_nope, self.d_v], dim=-1)
        if isinstance(mask, SharedPrompts):
            q = torch.cat((q_nope, q_pe), dim=-1)
            k = torch.cat((k_nope, k_pe[:, :, None, :].expand(B, T, H, self.d_rope)), dim=-1)
            return linear(mask.attend(q, k, v, self.scale).reshape(B, T, H * self.d_v), self.o_proj)
        if cache is None and q_nope.device.type == "cpu":
            # Training / full-sequence scoring on CPU: skip the masked half of the T×T square. q and k are built
            # head-major ([B, H, T, D], contiguous) by the concatenation itself.
            q = torch.cat((q_nope.transpose(1, 2), q_pe.transpose(1, 2)), dim=-1)
            k = torch.cat((k_nope.transpose(1, 2), k_pe[:, None].expand(B, H, T, self.d_rope)), dim=-1)
            o = blocked_causal_attention(q, k, v.transpose(1, 2), self.scale, mask)
            return linear(o.transpose(1, 2).reshape(B, T, H * self.d_v), self.o_proj)
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
        return linear(o.transpose(1, 2).reshape(B, T, H * self.d_v), self.o_proj)

    def _absorbed(self, q_nope, q_pe, ckv, k_pe, mask, positions_BT, cache):
        B, T, H, _ = q_nope.shape
        w = weight(self.kv_b_proj).view(H, self.d_nope + self.d_v, self.kv_lora_rank)
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
        return linear(o.reshape(B, T, H * self.d_v), self.o_proj)

    def decode(self, x_BD: torch.Tensor, step: LatentStep, cache: KVCache, fused: FusedWeights | None = None):
        """A few tokens per row on the latent cache (the absorbed form above, written out for a decode step):
        [q_a | kv_a] as one GEMM, RoPE on q_pe and k_pe in one complex multiply, the scores as one `baddbmm` against
        [ĉ ‖ k_pe] with the mask added (a row's T tokens and H heads are one query axis: they share its cache). With
        16-bit weights, RoPE and the softmax run in fp32, as in `forward`. x: [N, D], the step's tokens row-major."""
        N, H, dn, dr, dv, C = x_BD.shape[0], self.n_heads, self.d_nope, self.d_rope, self.d_v, self.kv_lora_rank
        T = step.tokens_per_row
        B = N // T
        lora = hasattr(self, "q_a_proj")
        first = self.q_a_proj if lora else self.q_proj
        w_qkv = fused.get(self) if fused is not None else None
        if w_qkv is None:
            w_qkv = torch.cat((weight(first), weight(self.kv_a_proj_with_mqa)))
        # split_with_sizes: Tensor.split is a Python wrapper, whose overhead shows in a decode step
        q_first, ckv, k_pe = F.linear(x_BD, w_qkv).split_with_sizes([first.out_features, C, dr], -1)
        q = linear(self.q_a_layernorm.decode(q_first), self.q_b_proj) if lora else q_first
        q_nope, q_pe = q.view(N, H, dn + dr).split([dn, dr], dim=-1)
        pe = torch.cat((q_pe, k_pe[:, None]), dim=1).reshape(N, H + 1, dr // 2, 2)  # RoPE q and k together
        low = x_BD.dtype != torch.float32
        pe = torch.view_as_real(torch.view_as_complex(pe.float() if low else pe) * step.rotation).flatten(-2)
        if low:
            pe = pe.to(x_BD.dtype)
        kv_new = torch.cat((self.kv_a_layernorm.decode(ckv), pe[:, H]), dim=-1)  # [B, C + R]: what the token leaves
        buf = cache.buffers[self.layer_idx][0]
        buf[step.rows, step.positions] = kv_new if kv_new.dtype == buf.dtype else kv_new.to(buf.dtype)
        kv = buf[:B, : step.mask.shape[-1]]  # [B, S, C + R]
        if kv.dtype != x_BD.dtype:  # a cache kept in another dtype than the weights
            kv = kv.to(x_BD.dtype)
        w = weight(self.kv_b_proj).view(H, dn + dv, C)
        q_lat = torch.bmm(q_nope.transpose(0, 1), w[:, :dn]).transpose(0, 1)  # [N, H, C]: W_UKᵀ q_nope
        q_all = torch.cat((q_lat, pe[:, :H]), dim=-1)
        if T > 1:
            q_all = q_all.view(B, T * H, C + dr)
        scores = torch.baddbmm(step.mask, q_all, kv.transpose(1, 2), alpha=self.scale)
        p = scores.softmax(dim=-1, dtype=torch.float32).to(x_BD.dtype) if low else scores.softmax(dim=-1)
        o = torch.bmm(p, kv[:, :, :C]).view(N, H, C)
        o = torch.bmm(o.transpose(0, 1), w[:, dn:].transpose(1, 2)).transpose(0, 1)  # [N, H, dv]: W_UV
        return linear(o.reshape(N, H * dv), self.o_proj)

    def fusions(self) -> Iterator[Fusion]:
        """The `FusedWeights` entry `decode` reads: [q_a; kv_a] (or [q; kv_a]) as one weight."""
        first = self.q_a_proj if hasattr(self, "q_a_proj") else self.q_proj
        yield self, [weight(first), weight(self.kv_a_proj_with_mqa)], torch.cat


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
            return linear(mask.attend(q, k, v, self.scale).reshape(B, T, self.n_heads * self.d), self.o_proj)
        if cache is None and q.device.type == "cpu":  # training / full-sequence scoring: see MLA._naive
            g = self.n_heads // self.n_kv
            k, v = (t.transpose(1, 2).repeat_interleave(g, dim=1) for t in (k, v))
            o = blocked_causal_attention(q.transpose(1, 2), k, v, self.scale, mask)
            return linear(o.transpose(1, 2).reshape(B, T, self.n_heads * self.d), self.o_proj)
        if cache is not None:
            k, v = cache.write(self.layer_idx, positions_BT, k, v)
        o = attend(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), mask, self.scale, self.n_kv != self.n_heads)
        return linear(o.transpose(1, 2).reshape(B, T, self.n_heads * self.d), self.o_proj)
