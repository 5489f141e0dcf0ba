"""Preallocated KV caches (docs/architecture.md, "Caches are rows").

A token's keys go to its absolute position in its row, so rows advance independently and stale slots beyond a row's
length are masked by position. Per layer: MLA absorbed, [B, S, kv_lora_rank + qk_rope_head_dim] (ĉ and the rotated
rope key, 576 values per token for DeepSeek-V3); MLA naive, per-head keys and values; GQA, [B, S, H_kv, d_head].
For MTP speculation a cache also holds the first `mtp_layers` modules' slots (`buffers[num_hidden_layers + k]`) and
`hidden_states` [B, S, D] (the main model's final-norm output, then each module's), under the same rule, so rolling
back rejected tokens is only a shorter length.
"""

from __future__ import annotations

import torch

from r1.model.config import ModelConfig


class KVCache:
    def __init__(
        self,
        cfg: ModelConfig,
        batch_size: int,
        max_len: int,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
        mla_impl: str = "absorb",
        mtp_layers: int = 0,
        hidden_states: int = 0,
        hidden_dtype: torch.dtype | None = None,
    ) -> None:
        if mla_impl not in ("absorb", "naive"):
            raise ValueError(f"mla_impl={mla_impl!r}: must be 'absorb' or 'naive'")
        if not 0 <= mtp_layers <= cfg.num_nextn_predict_layers:
            raise ValueError(f"mtp_layers={mtp_layers}: the model has {cfg.num_nextn_predict_layers} MTP modules")
        self.cfg, self.batch_size, self.max_len = cfg, batch_size, max_len
        self.mla_impl = mla_impl if cfg.is_deepseek else "gqa"
        self.buffers: list[tuple[torch.Tensor, ...]] = []
        for _ in range(cfg.num_hidden_layers + mtp_layers):
            shapes = self.slot_shapes(cfg, self.mla_impl)
            self.buffers.append(tuple(torch.zeros(batch_size, max_len, *s, dtype=dtype, device=device) for s in shapes))
        self.mtp_layers = mtp_layers
        hd = hidden_dtype or dtype
        self.hidden = [
            torch.zeros(batch_size, max_len, cfg.hidden_size, dtype=hd, device=device) for _ in range(hidden_states)
        ]
        self.kv_len = 0  # slots attended this forward; set by the model from the positions

    @staticmethod
    def slot_shapes(cfg: ModelConfig, mla_impl: str) -> list[tuple[int, ...]]:
        """Per-token shapes of the tensors one layer caches."""
        if mla_impl == "absorb":
            return [(cfg.kv_lora_rank + cfg.qk_rope_head_dim,)]
        if mla_impl == "naive":
            h = cfg.num_attention_heads
            return [(h, cfg.qk_head_dim), (h, cfg.v_head_dim)]
        return [(cfg.num_key_value_heads, cfg.head_dim), (cfg.num_key_value_heads, cfg.head_dim)]

    @classmethod
    def elements_per_token(cls, cfg: ModelConfig, mla_impl: str = "absorb") -> int:
        """Cached values per token per layer."""
        impl = mla_impl if cfg.is_deepseek else "gqa"
        total = 0
        for shape in cls.slot_shapes(cfg, impl):
            n = 1
            for s in shape:
                n *= s
            total += n
        return total

    def bytes_per_token(self) -> int:
        """Cache bytes per token over all layers (MTP slots and hidden states included)."""
        per_layer = sum(b[0, 0].numel() * b.element_size() for b in self.buffers[0])
        return per_layer * len(self.buffers) + sum(h[0, 0].numel() * h.element_size() for h in self.hidden)

    def write(self, layer: int, positions_BT: torch.Tensor, *new: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Store the new tokens' tensors at their positions; return the first `kv_len` slots of each buffer, in
        the new tensors' dtype (a cache kept in another dtype than the model computes in is cast on read)."""
        bufs = self.buffers[layer]
        rows = torch.arange(positions_BT.shape[0], device=positions_BT.device)[:, None].expand_as(positions_BT)
        for buf, t in zip(bufs, new):
            buf[rows, positions_BT] = t.to(buf.dtype)
        return tuple(b[:, : self.kv_len].to(t.dtype) for b, t in zip(bufs, new))

    def copy_rows(self, src: torch.Tensor, dst: torch.Tensor, length: int | None = None) -> None:
        """Copy cached slots of rows `src` into rows `dst` (e.g. one prefill shared by n samples)."""
        n = self.max_len if length is None else length
        for b in [*(b for bufs in self.buffers for b in bufs), *self.hidden]:
            b[dst, :n] = b[src, :n]
