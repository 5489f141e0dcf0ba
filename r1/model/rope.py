"""Rotary position embeddings: plain RoPE, YaRN (DeepSeek-V3, Qwen3 long context) and Llama 3 frequency scaling.

The parameters mean what transformers' `modeling_rope_utils` makes of them (`families.py` fills its defaults).

Two pairings are used, and they are not interchangeable with the same weights:
- DeepSeek rotates *interleaved* pairs (x[2i], x[2i+1]); the released weights are laid out for it, so we rotate
  that way natively and load weights unchanged (spec §3, "the permutation issue").
- Llama/Qwen2/Qwen3 rotate *halves* (x[i], x[i + D/2]) — the NeoX convention their checkpoints expect.
"""

from __future__ import annotations

import math

import torch

from r1.model.config import ModelConfig


def inv_frequencies(cfg: ModelConfig) -> tuple[torch.Tensor, float]:
    """Per-pair angular frequencies f_i (D/2 of them) and the factor applied to cos/sin."""
    dim = cfg.rope_dim
    base = cfg.rope_theta
    pos_freqs = base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim)
    inv_freq = 1.0 / pos_freqs
    kind = cfg.rope_type
    if kind == "yarn":
        return _yarn(cfg, inv_freq, pos_freqs, dim, base)
    if kind == "llama3":
        return _llama3(cfg, inv_freq), 1.0
    return inv_freq, 1.0


def _yarn(cfg: ModelConfig, inv_freq, pos_freqs, dim: int, base: float) -> tuple[torch.Tensor, float]:
    rs = cfg.rope_scaling
    s = float(rs["factor"])
    original = int(rs["original_max_position_embeddings"])
    beta_fast = float(rs.get("beta_fast") or 32)
    beta_slow = float(rs.get("beta_slow") or 1)

    def correction_dim(rotations: float) -> float:
        # the pair index whose wavelength fits `rotations` times into the original context
        return dim * math.log(original / (rotations * 2 * math.pi)) / (2 * math.log(base))

    low, high = correction_dim(beta_fast), correction_dim(beta_slow)
    if rs.get("truncate", True):  # transformers' default; `truncate: false` keeps the fractional range
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, dim - 1)
    if low == high:
        high += 0.001
    ramp = ((torch.arange(dim // 2, dtype=torch.float32) - low) / (high - low)).clamp(0, 1)
    extrapolate = 1.0 - ramp  # 1: keep the frequency (high frequencies), 0: divide it by s (low frequencies)
    interpolated = 1.0 / (s * pos_freqs)
    freqs = interpolated * (1 - extrapolate) + inv_freq * extrapolate
    m, m_all = rs.get("mscale"), rs.get("mscale_all_dim")
    if rs.get("attention_factor") is not None:  # an explicit cos/sin factor wins over the mscale formulas
        attn_factor = float(rs["attention_factor"])
    elif m and m_all:
        attn_factor = _mscale(s, float(m)) / _mscale(s, float(m_all))
    else:
        attn_factor = _mscale(s, 1.0)
    return freqs, float(attn_factor)


def _mscale(s: float, m: float) -> float:
    return 1.0 if s <= 1 else 0.1 * m * math.log(s) + 1.0


def _llama3(cfg: ModelConfig, inv_freq: torch.Tensor) -> torch.Tensor:
    rs = cfg.rope_scaling
    factor = float(rs["factor"])
    low_ff, high_ff = float(rs.get("low_freq_factor", 1.0)), float(rs.get("high_freq_factor", 4.0))
    old_ctx = float(rs["original_max_position_embeddings"])
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > old_ctx / low_ff, inv_freq / factor, inv_freq)
    smooth = (old_ctx / wavelen - low_ff) / (high_ff - low_ff)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = (wavelen >= old_ctx / high_ff) & (wavelen <= old_ctx / low_ff)
    return torch.where(medium, smoothed, scaled)


def rope_cos_sin(
    positions_BT: torch.Tensor, inv_freq: torch.Tensor, factor: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin of position × frequency, shape [B, T, D/2], in fp32."""
    angles = positions_BT.to(torch.float32)[..., None] * inv_freq.to(positions_BT.device)
    cos, sin = angles.cos(), angles.sin()
    if factor != 1.0:
        cos, sin = cos * factor, sin * factor
    return cos, sin


def apply_rope_interleaved(x_BTHD: torch.Tensor, cos_BTd: torch.Tensor, sin_BTd: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (x[2i], x[2i+1]) by angle_i: DeepSeek's layout. x is [B, T, H, D].

    Each pair is a complex number times e^{i·angle}, as in DeepSeek's reference code: one fused complex multiply,
    where strided even/odd slices would cost several elementwise passes forward and backward.
    """
    rot = torch.complex(cos_BTd, sin_BTd)[:, :, None, :]
    x = torch.view_as_complex(x_BTHD.float().reshape(*x_BTHD.shape[:-1], -1, 2))
    return torch.view_as_real(x * rot).flatten(-2).to(x_BTHD.dtype)


def apply_rope_half(x_BTHD: torch.Tensor, cos_BTd: torch.Tensor, sin_BTd: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (x[i], x[i + D/2]) by angle_i: the Llama/Qwen2 layout. x is [B, T, H, D]."""
    cos, sin = cos_BTd[:, :, None, :].to(x_BTHD.dtype), sin_BTd[:, :, None, :].to(x_BTHD.dtype)
    x0, x1 = x_BTHD.chunk(2, dim=-1)
    return torch.cat((x0 * cos - x1 * sin, x1 * cos + x0 * sin), dim=-1)
