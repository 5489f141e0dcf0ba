"""The causal language model: DeepSeek-V3 (MLA + DeepSeekMoE + MTP) or a dense Llama/Qwen2/Qwen3 student.

Module names mirror the Hugging Face checkpoints (`model.embed_tokens`, `model.layers.N.self_attn.q_a_proj`, …)
so `state_dict()` is the file layout; only the MTP modules live apart, in `mtp.K`, and are stored on disk under
`model.layers.{num_hidden_layers + K}` (see `checkpoint.py`).

Written for one device. Parallelism (FSDP2, later expert parallelism) is applied from outside.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from r1.model.attention import GQA, MLA, LatentStep
from r1.model.cache import KVCache
from r1.model.config import ModelConfig
from r1.model.kernels.heads import (
    IGNORE_INDEX,  # noqa: F401  (re-exported: the label that masks a position)
    LinearCrossEntropy,
    LinearLogProb,
    next_token_loss,
    shifted_targets,
)
from r1.model.layers import MLP, RMSNorm
from r1.model.moe import MoE
from r1.model.prefix import SharedPrompts
from r1.model.rope import inv_frequencies, rope_cos_sin
from r1.model.weights import FusedWeights, Fusion, linear, weight

# Decode copies of the weights (concatenations, stacks) allowed per engine; beyond it (big MoE models) the decode
# step uses the modules as they are.
FUSED_LIMIT_BYTES = 1 << 30

# Tokens per row up to which a cached forward runs MLA's absorbed decode kernel (decoding, speculative verification,
# MTP drafting); longer chunks (prefill) take the general path, whose attention is one SDPA call over the chunk.
LATENT_MAX_TOKENS = 8


@dataclass
class ModelOutput:
    logits: torch.Tensor | None = None
    loss: torch.Tensor | None = None  # lm_loss + λ·mtp_loss + balance_loss
    lm_loss: torch.Tensor | None = None
    mtp_loss: torch.Tensor | None = None  # mean over MTP depths, before λ
    balance_loss: torch.Tensor | None = None  # already multiplied by α
    expert_counts: torch.Tensor | None = None  # [n_moe_layers, n_routed_experts] tokens routed this forward
    hidden: torch.Tensor | None = None  # final-norm hidden states
    token_logprobs: torch.Tensor | None = None  # [M] fp32: log π(target | position) for `score`
    token_entropy: torch.Tensor | None = None  # [M] fp32, no gradient: the entropy at those positions


class DecoderLayer(nn.Module):
    def __init__(self, cfg: ModelConfig, layer_idx: int) -> None:
        super().__init__()
        self.self_attn = MLA(cfg, layer_idx) if cfg.is_deepseek else GQA(cfg, layer_idx)
        dense = cfg.hidden_size, cfg.intermediate_size, cfg.mlp_bias
        self.mlp = MoE(cfg) if cfg.is_moe_layer(layer_idx) else MLP(*dense)
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
        x = linear(torch.cat((self.enorm(emb_next), self.hnorm(h_prev)), dim=-1), self.eh_proj)
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
        self._arange: dict[torch.device, torch.Tensor] = {}  # cache rows 0, 1, … for the decode step
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
        self,
        batch_size: int,
        max_len: int,
        dtype: torch.dtype | None = None,
        mla_impl: str = "absorb",
        mtp_layers: int = 0,
        hidden_states: int = 0,
    ) -> KVCache:
        """A row cache for `decode_step`; `mtp_layers` adds slots for the first MTP modules' attention and
        `hidden_states` buffers of per-position hidden states (in the weights' dtype), as speculative decoding needs."""
        p = weight(self.lm_head)
        return KVCache(
            self.config, batch_size, max_len, dtype or p.dtype, p.device, mla_impl, mtp_layers, hidden_states, p.dtype
        )

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
        shared: SharedPrompts | None = None,
        score: tuple[torch.Tensor, torch.Tensor] | None = None,
        entropy: bool = False,
    ) -> ModelOutput:
        """Run the model on token ids [B, T].

        positions: absolute positions [B, T] (default 0..T-1). With a cache, each token's K/V is stored at its
        position and attends to every cached slot at or before it.
        labels: [B, T] aligned with input_ids (shifted inside, IGNORE_INDEX = -100 masks); gives the losses.
        segment_ids: [B, T] document ids for packed sequences; attention stays inside a document.
        logits_to_keep: if > 0, only the last n positions' logits (decoding needs only the last).
        shared: completions and their shared prompts as one flat row (prefix.py); input_ids and positions are
        taken from it (pass None).
        score: (index [M] into the flattened [B·T] positions, target ids [M]) → out.token_logprobs, the log-prob
        of each target at its position, through a fused head that never forms [M, V] log-probs (and no logits
        are returned); `entropy` adds out.token_entropy.
        """
        if shared is not None:
            input_ids, positions = shared.flat_ids(), shared.flat_positions()
        B, T = input_ids.shape
        dev = input_ids.device
        if positions is None:
            positions = torch.arange(T, device=dev).expand(B, T)
        mask = shared if shared is not None else self._mask(positions, cache, segment_ids)
        inv_freq, factor = self.rope(dev)
        cos, sin = rope_cos_sin(positions, inv_freq, factor)
        h = self.model.embed_tokens(input_ids)
        for layer in self.model.layers:
            h = layer(h, cos, sin, mask, positions, cache)
        h = self.model.norm(h)

        out = ModelOutput(hidden=h)
        if score is not None:
            out.token_logprobs, out.token_entropy = self._score(h, *score, entropy)
        elif labels is not None and not logits_to_keep:
            out.logits, out.lm_loss = self._logits_and_loss(h, labels)
        elif return_logits or labels is not None:
            out.logits = linear(h[:, -logits_to_keep:] if logits_to_keep else h, self.lm_head)
            if labels is not None:
                out.lm_loss = next_token_loss(out.logits, labels)
        if labels is not None:
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

    # ------------------------------------------------------------------------------------------ decoding
    def decode_step(
        self,
        input_ids: torch.Tensor,
        positions: torch.Tensor,
        cache: KVCache,
        fused: FusedWeights | None = None,
        hidden: bool = False,
    ) -> torch.Tensor:
        """The cached forward generation runs: token ids [B, T] at positions [B, T] → logits [B, T, V] (in the head's
        dtype), or with `hidden` the final-norm hidden states [B, T, D].

        Each token's K/V goes into `cache` row b at its position, and it attends to every slot at or before it, so
        rows may be at different places (prefill chunks, continuous batching). The same modules as `forward`, with
        decoding's kernels where they differ: MoE through `MoE.decode` (grouped GEMMs, no statistics); a single token
        per row on MLA's latent cache through `MLA.decode` (fp32 or bf16 weights; fp16 keeps `forward`'s SDPA
        numerics). `fused`: the weight copies those kernels reuse (`fused_weights`); without it, the modules as they
        are. Both paths are pinned against `forward` in tests/test_engine.py. Run it without autograd
        (`torch.inference_mode()`), as the engine does.
        """
        if input_ids.shape[1] <= LATENT_MAX_TOKENS and self.decodes_on_latent(cache):
            B, T = input_ids.shape
            step = self._latent_plan(positions, cache)
            h = self.model.embed_tokens(input_ids.reshape(B * T))
            for layer in self.model.layers:
                h = self._latent_layer(layer, h, step, cache, fused)
            h = self.model.norm.decode(h).view(B, T, -1)
        else:
            mask = self._mask(positions, cache, None)
            cos, sin = rope_cos_sin(positions, *self.rope(input_ids.device))
            h = self.model.embed_tokens(input_ids)
            for layer in self.model.layers:
                h = h + layer.self_attn(layer.input_layernorm(h), cos, sin, mask, positions, cache)
                h = h + layer.mlp.decode(layer.post_attention_layernorm(h), fused)
            h = self.model.norm(h)
        return h if hidden else self.head(h, fused)

    def _latent_plan(self, pos_BT: torch.Tensor, cache: KVCache) -> LatentStep:
        """What every layer of an absorbed decode step over T tokens per row shares (see `LatentStep`)."""
        B, T = pos_BT.shape
        S = cache.kv_len = int(pos_BT.max()) + 1
        dev = pos_BT.device
        mask = torch.zeros(B, T, S, dtype=weight(self.lm_head).dtype, device=dev)
        mask.masked_fill_(torch.arange(S, device=dev) > pos_BT[:, :, None], float("-inf"))
        if T > 1:  # a row's T tokens × H heads are one query axis in MLA.decode
            mask = mask.repeat_interleave(self.config.num_attention_heads, dim=1)
        pos = pos_BT.reshape(B * T)
        cos, sin = rope_cos_sin(pos[:, None], *self.rope(dev))  # [N, 1, R/2]
        rows = self._rows(B, dev) if T == 1 else self._rows(B, dev).repeat_interleave(T)
        return LatentStep(pos, rows, torch.complex(cos, sin), mask, T)

    @staticmethod
    def _latent_layer(layer: DecoderLayer, h: torch.Tensor, step: LatentStep, cache: KVCache, fused) -> torch.Tensor:
        h = h + layer.self_attn.decode(layer.input_layernorm.decode(h), step, cache, fused)
        return h + layer.mlp.decode(layer.post_attention_layernorm.decode(h), fused)

    def mtp_decode(
        self,
        depth: int,
        h_prev: torch.Tensor,
        input_ids: torch.Tensor,
        positions: torch.Tensor,
        cache: KVCache,
        fused: FusedWeights | None = None,
    ) -> torch.Tensor:
        """MTP module `depth` (0-based) as a cached forward, for drafting: h^{k-1} [B, T, D] and the ids of the
        tokens one step ahead [B, T] at positions [B, T] → h^k [B, T, D], before `shared_head.norm` (what the next
        depth takes, as in training). Its attention keeps its own slots in `cache` (see `new_cache(mtp_layers=)`)."""
        layer = self.mtp[depth]
        B, T = input_ids.shape
        emb = self.model.embed_tokens(input_ids)
        if T <= LATENT_MAX_TOKENS and self.decodes_on_latent(cache):
            step = self._latent_plan(positions, cache)
            x = torch.cat((layer.enorm.decode(emb.view(B * T, -1)), layer.hnorm.decode(h_prev.reshape(B * T, -1))), -1)
            return self._latent_layer(layer, linear(x, layer.eh_proj), step, cache, fused).view(B, T, -1)
        mask = self._mask(positions, cache, None)
        cos, sin = rope_cos_sin(positions, *self.rope(input_ids.device))
        x = linear(torch.cat((layer.enorm(emb), layer.hnorm(h_prev)), dim=-1), layer.eh_proj)
        x = x + layer.self_attn(layer.input_layernorm(x), cos, sin, mask, positions, cache)
        return x + layer.mlp.decode(layer.post_attention_layernorm(x), fused)

    def mtp_head(self, depth: int, h: torch.Tensor, fused: FusedWeights | None = None) -> torch.Tensor:
        """Logits of MTP module `depth` from its `mtp_decode` output: the shared head after the module's own norm."""
        return self.head(self.mtp[depth].shared_head.norm.decode(h), fused)

    def decodes_on_latent(self, cache: KVCache) -> bool:
        """Whether `decode_step` runs single tokens through MLA's absorbed step on this cache."""
        return cache.mla_impl == "absorb" and self._latent_dtype()

    def _latent_dtype(self) -> bool:
        return self.config.is_deepseek and weight(self.lm_head).dtype in (torch.float32, torch.bfloat16)

    def _rows(self, B: int, device: torch.device) -> torch.Tensor:
        rows = self._arange.get(device)
        if rows is None or rows.shape[0] < B:
            rows = self._arange[device] = torch.arange(max(B, 64), device=device)
        return rows[:B]

    def head(self, h: torch.Tensor, fused: FusedWeights | None = None) -> torch.Tensor:
        """The vocabulary projection of final-norm hidden states; in `fused`'s head dtype when it holds one."""
        w = fused.get(self.lm_head) if fused is not None else None
        return linear(h, self.lm_head) if w is None else F.linear(h.to(w.dtype), w)

    def fused_weights(
        self, head_dtype: torch.dtype | None = None, limit_bytes: int = FUSED_LIMIT_BYTES
    ) -> FusedWeights:
        """The weight copies `decode_step` reuses: [q_a | kv_a] per MLA layer (where the latent step runs), the
        routed experts stacked and [gate | up] per MLP and shared expert, and the head in `head_dtype` (e.g. bf16
        when the trainer's logits are bf16 GEMMs too). Refresh it after changing weights (`refresh(force=True)`)."""
        return FusedWeights(lambda: self._fusions(head_dtype), limit_bytes)

    def _fusions(self, head_dtype: torch.dtype | None) -> Iterator[Fusion]:
        latent = self._latent_dtype()
        for layer in [*self.model.layers, *self.mtp]:  # the MTP modules decode too when they draft
            if latent:
                yield from layer.self_attn.fusions()
            yield from layer.mlp.fusions()
        w = weight(self.lm_head)
        if head_dtype is not None and head_dtype != w.dtype:
            yield self.lm_head, [w], lambda t: t[0].to(head_dtype)

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

    def _head_inputs(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.dtype, bool]:
        """What the fused heads take: the head weight, the dtype they compute in (autocast's, if on), and whether a
        gradient is needed. They run with autocast off and cast themselves."""
        w = weight(self.lm_head)
        dev = h.device.type
        dtype = torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else h.dtype
        return w.to(dtype), dtype, torch.is_grad_enabled() and (h.requires_grad or w.requires_grad)

    def _logits_and_loss(self, h_BTC: torch.Tensor, labels_BT: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """lm_head logits and the next-token loss, fused so the [B·T, V] logit gradient is never materialized."""
        B, T, C = h_BTC.shape
        w, dtype, need_grad = self._head_inputs(h_BTC)
        with torch.autocast(h_BTC.device.type, enabled=False):
            logits, loss = LinearCrossEntropy.apply(
                h_BTC.reshape(B * T, C).to(dtype), w, shifted_targets(labels_BT), need_grad
            )
        return logits.view(B, T, -1), loss

    def _score(self, h_BTC: torch.Tensor, index_M: torch.Tensor, target_M: torch.Tensor, entropy: bool):
        """log π(target) at the flattened positions `index_M` (and the entropy there), through the fused head."""
        w, dtype, need_grad = self._head_inputs(h_BTC)
        h_MC = h_BTC.reshape(-1, h_BTC.shape[-1]).index_select(0, index_M)
        with torch.autocast(h_BTC.device.type, enabled=False):
            logp, ent = LinearLogProb.apply(h_MC.to(dtype), w, target_M, need_grad, entropy)
        return logp, (ent if entropy else None)

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
            losses.append(self._logits_and_loss(layer.shared_head.norm(h), labels[:, k:])[1])
        return torch.stack(losses).mean() if losses else h.new_zeros(())


def meta_model(cfg: ModelConfig) -> Transformer:
    """The module tree on the meta device, parameters left uninitialised: to count them, or to load weights into
    (`load_state_dict(..., assign=True)`)."""
    with meta_modules():
        return Transformer(cfg)


@contextlib.contextmanager
def meta_modules():
    """Build modules on the meta device without running their initialisers: on meta tensors nn.Linear's and
    nn.Embedding's go through torch's Python reference kernels, which import torch._dynamo (about a second the first
    time in a process, for values nobody reads)."""
    saved = nn.Linear.reset_parameters, nn.Embedding.reset_parameters
    nn.Linear.reset_parameters = nn.Embedding.reset_parameters = _no_init  # type: ignore[method-assign]
    try:
        with torch.device("meta"):
            yield
    finally:
        nn.Linear.reset_parameters, nn.Embedding.reset_parameters = saved  # type: ignore[method-assign]


def _no_init(self: nn.Module) -> None:
    return None
