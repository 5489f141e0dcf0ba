"""The causal language model: DeepSeek-V3 (MLA + DeepSeekMoE + MTP) or a dense Llama/Qwen2 student.

Module names mirror the Hugging Face checkpoints (`model.embed_tokens`, `model.layers.N.self_attn.q_a_proj`, …)
so `state_dict()` is the file layout; only the MTP modules live apart, in `mtp.K`, and are stored on disk under
`model.layers.{num_hidden_layers + K}` (see `checkpoint.py`).

Written for one device. Parallelism (FSDP2, later expert parallelism) is applied from outside.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from r1.model.attention import GQA, MLA
from r1.model.cache import KVCache
from r1.model.config import ModelConfig
from r1.model.layers import MLP, RMSNorm
from r1.model.moe import MoE
from r1.model.rope import inv_frequencies, rope_cos_sin

IGNORE_INDEX = -100


@dataclass
class ModelOutput:
    logits: torch.Tensor | None = None
    loss: torch.Tensor | None = None  # lm_loss + λ·mtp_loss + balance_loss
    lm_loss: torch.Tensor | None = None
    mtp_loss: torch.Tensor | None = None  # mean over MTP depths, before λ
    balance_loss: torch.Tensor | None = None  # already multiplied by α
    expert_counts: torch.Tensor | None = None  # [n_moe_layers, n_routed_experts] tokens routed this forward
    hidden: torch.Tensor | None = None  # final-norm hidden states


class DecoderLayer(nn.Module):
    def __init__(self, cfg: ModelConfig, layer_idx: int) -> None:
        super().__init__()
        self.self_attn = MLA(cfg, layer_idx) if cfg.is_deepseek else GQA(cfg, layer_idx)
        self.mlp = MoE(cfg) if cfg.is_moe_layer(layer_idx) else MLP(cfg.hidden_size, cfg.intermediate_size)
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)

    def forward(self, x, cos, sin, mask, positions, cache: KVCache | None = None) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask, positions, cache)
        return x + self.mlp(self.post_attention_layernorm(x))


class SharedHead(nn.Module):
    """The MTP module's own final norm; the output projection itself is the main model's `lm_head`."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.norm = RMSNorm(dim, eps)


class MTPLayer(DecoderLayer):
    """Multi-token prediction module k: h' = eh_proj([enorm(Emb(t_{i+k})) ‖ hnorm(h^{k-1}_i)]), then one block.

    The embedding half comes first, as in every reference implementation and the released weights.
    """

    def __init__(self, cfg: ModelConfig, layer_idx: int) -> None:
        super().__init__(cfg, layer_idx)
        self.enorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.hnorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.eh_proj = nn.Linear(2 * cfg.hidden_size, cfg.hidden_size, bias=False)
        self.shared_head = SharedHead(cfg.hidden_size, cfg.rms_norm_eps)

    def forward(self, h_prev, emb_next, cos, sin, mask, positions, cache=None) -> torch.Tensor:  # type: ignore[override]
        x = self.eh_proj(torch.cat((self.enorm(emb_next), self.hnorm(h_prev)), dim=-1))
        return super().forward(x, cos, sin, mask, positions)


class Backbone(nn.Module):
    """HF's `model.` prefix: embeddings, the decoder stack and the final norm."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(cfg, i) for i in range(cfg.num_hidden_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)


class Transformer(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.config = cfg
        self.model = Backbone(cfg)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        if cfg.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight
        L = cfg.num_hidden_layers
        self.mtp = nn.ModuleList(MTPLayer(cfg, L + k) for k in range(cfg.num_nextn_predict_layers))
        self._rope: dict[torch.device, tuple[torch.Tensor, float]] = {}
        if not any(p.is_meta for p in self.parameters()):
            self.init_weights()

    # ------------------------------------------------------------------------------------------ setup
    @torch.no_grad()
    def init_weights(self, std: float | None = None) -> None:
        """N(0, std) for every matrix and embedding (DeepSeek-V3: 0.006), ones for norms, zeros for biases."""
        std = self.config.initializer_range if std is None else std
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, std)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Embedding):
                nn.init.normal_(m.weight, 0.0, std)
            elif isinstance(m, RMSNorm):
                nn.init.ones_(m.weight)
        for moe in self.moe_layers():
            nn.init.normal_(moe.gate.weight, 0.0, std)
            if moe.gate.use_bias:
                moe.gate.e_score_correction_bias.zero_()

    def moe_layers(self) -> list[MoE]:
        """Every MoE block, main layers first, then the MTP modules'."""
        return [m.mlp for m in [*self.model.layers, *self.mtp] if isinstance(m.mlp, MoE)]

    def set_mla_impl(self, impl: str) -> None:
        """'naive' or 'absorb' for cache-free forwards (a cache brings its own)."""
        if impl not in ("naive", "absorb"):
            raise ValueError(f"impl={impl!r}: must be 'naive' or 'absorb'")
        for layer in [*self.model.layers, *self.mtp]:
            if isinstance(layer.self_attn, MLA):
                layer.self_attn.impl = impl

    def new_cache(
        self, batch_size: int, max_len: int, dtype: torch.dtype | None = None, mla_impl: str = "absorb"
    ) -> KVCache:
        p = self.lm_head.weight
        return KVCache(self.config, batch_size, max_len, dtype or p.dtype, p.device, mla_impl)

    @torch.no_grad()
    def update_router_bias(self, counts: torch.Tensor, gamma: float | None = None) -> None:
        """Aux-loss-free balancing after an optimizer step; `counts` [n_moe_layers, E] sums the global batch."""
        gamma = self.config.bias_update_speed if gamma is None else gamma
        for moe, c in zip(self.moe_layers(), counts):
            moe.update_bias(c, gamma)

    def rope(self, device: torch.device) -> tuple[torch.Tensor, float]:
        if device not in self._rope:
            inv_freq, factor = inv_frequencies(self.config)
            self._rope[device] = (inv_freq.to(device), factor)
        return self._rope[device]

    # ------------------------------------------------------------------------------------------ forward
    def forward(
        self,
        input_ids: torch.Tensor,
        positions: torch.Tensor | None = None,
        cache: KVCache | None = None,
        labels: torch.Tensor | None = None,
        segment_ids: torch.Tensor | None = None,
        logits_to_keep: int = 0,
        return_logits: bool = True,
    ) -> ModelOutput:
        """Run the model on token ids [B, T].

        positions: absolute positions [B, T] (default 0..T-1). With a cache, each token's K/V is stored at its
        position and attends to every cached slot at or before it.
        labels: [B, T] aligned with input_ids (shifted inside, IGNORE_INDEX = -100 masks); gives the losses.
        segment_ids: [B, T] document ids for packed sequences; attention stays inside a document.
        logits_to_keep: if > 0, only the last n positions' logits (decoding needs only the last).
        """
        B, T = input_ids.shape
        dev = input_ids.device
        if positions is None:
            positions = torch.arange(T, device=dev).expand(B, T)
        mask = self._mask(positions, cache, segment_ids)
        inv_freq, factor = self.rope(dev)
        cos, sin = rope_cos_sin(positions, inv_freq, factor)
        h = self.model.embed_tokens(input_ids)
        for layer in self.model.layers:
            h = layer(h, cos, sin, mask, positions, cache)
        h = self.model.norm(h)

        out = ModelOutput(hidden=h)
        if return_logits or labels is not None:
            h_out = h[:, -logits_to_keep:] if logits_to_keep else h
            out.logits = self.lm_head(h_out)
        if labels is not None:
            out.lm_loss = _next_token_loss(out.logits, labels)
            out.loss = out.lm_loss
            if len(self.mtp):
                out.mtp_loss = self._mtp_loss(h, input_ids, labels, positions, segment_ids, cos, sin)
                out.loss = out.loss + self.config.mtp_loss_weight * out.mtp_loss
        moes = self.moe_layers()
        if moes:
            used = [m for m in moes if m.last_counts is not None]
            out.expert_counts = torch.stack([m.last_counts for m in used]) if used else None
            bal = [m.last_balance_loss for m in moes if m.last_balance_loss is not None]
            if bal and labels is not None:
                out.balance_loss = torch.stack(bal).sum()
                out.loss = out.loss + out.balance_loss
            for m in moes:  # do not leak one forward's routing into the next report
                m.last_counts, m.last_balance_loss = None, None
        return out

    def _mask(self, positions, cache, segment_ids) -> torch.Tensor | None:
        if cache is not None:
            cache.kv_len = int(positions.max()) + 1
            slots = torch.arange(cache.kv_len, device=positions.device)
            return (slots[None, None, None, :] <= positions[:, None, :, None]).expand(-1, 1, -1, -1)
        if segment_ids is not None:
            T = segment_ids.shape[1]
            causal = torch.ones(T, T, dtype=torch.bool, device=segment_ids.device).tril()
            same_doc = segment_ids[:, :, None] == segment_ids[:, None, :]
            return (causal & same_doc)[:, None]
        return None

    def _mtp_loss(self, h, input_ids, labels, positions, segment_ids, cos, sin) -> torch.Tensor:
        """Depth k predicts t_{i+k+1} from h^{k-1}_i and Emb(t_{i+k}); mean over depths of the token-mean CE."""
        T = input_ids.shape[1]
        losses = []
        for k, layer in enumerate(self.mtp, start=1):
            n = T - k
            if n < 2:
                break
            seg = segment_ids[:, :n] if segment_ids is not None else None
            mask = self._mask(positions[:, :n], None, seg)
            emb = self.model.embed_tokens(input_ids[:, k:])
            h = layer(h[:, :n], emb, cos[:, :n], sin[:, :n], mask, positions[:, :n])
            logits = self.lm_head(layer.shared_head.norm(h))
            losses.append(_next_token_loss(logits, labels[:, k:]))
        return torch.stack(losses).mean() if losses else h.new_zeros(())


def _next_token_loss(logits_BTV: torch.Tensor, labels_BT: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of position t predicting labels[t + 1], in fp32, ignoring IGNORE_INDEX."""
    V = logits_BTV.shape[-1]
    target = labels_BT[:, 1:].reshape(-1)
    if not (target != IGNORE_INDEX).any():
        return logits_BTV.sum() * 0.0  # keeps the graph; no token to learn from
    return F.cross_entropy(logits_BTV[:, :-1].reshape(-1, V).float(), target, ignore_index=IGNORE_INDEX)
