"""The causal language model: DeepSeek-V3 (MLA + DeepSeekMoE + MTP) or a dense Llama/Qwen2/Qwen3 student.

Module names mirror the Hugging Face checkpoints (`model.embed_tokens`, `model.layers.N.self_attn.q_a_proj`, …)
so `state_dict()` is the file layout; only the MTP modules live apart, in `mtp.K`, and are stored on disk under
`model.layers.{num_hidden_layers + K}` (see `checkpoint.py`).

Written for one device. Parallelism (FSDP2, later expert parallelism) is applied from outside.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from r1.model.attention import GQA, MLA
from r1.model.cache import KVCache
from r1.model.config import ModelConfig
from r1.model.layers import MLP, RMSNorm
from r1.model.moe import MoE
from r1.model.prefix import SharedPrompts
from r1.model.rope import inv_frequencies, rope_cos_sin

IGNORE_INDEX = -100
_CE_CHUNK = 1 << 18  # logits per row chunk of the fused cross-entropy (1 MiB in fp32)


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
            out.logits = self.lm_head(h[:, -logits_to_keep:] if logits_to_keep else h)
            if labels is not None:
                out.lm_loss = _next_token_loss(out.logits, labels)
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
        weight = self.lm_head.weight
        dev = h.device.type
        dtype = torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else h.dtype
        return weight.to(dtype), dtype, torch.is_grad_enabled() and (h.requires_grad or weight.requires_grad)

    def _logits_and_loss(self, h_BTC: torch.Tensor, labels_BT: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """lm_head logits and the next-token loss, fused so the [B·T, V] logit gradient is never materialized."""
        B, T, C = h_BTC.shape
        weight, dtype, need_grad = self._head_inputs(h_BTC)
        with torch.autocast(h_BTC.device.type, enabled=False):
            logits, loss = _LinearCrossEntropy.apply(
                h_BTC.reshape(B * T, C).to(dtype), weight, _shifted_targets(labels_BT), need_grad
            )
        return logits.view(B, T, -1), loss

    def _score(self, h_BTC: torch.Tensor, index_M: torch.Tensor, target_M: torch.Tensor, entropy: bool):
        """log π(target) at the flattened positions `index_M` (and the entropy there), through the fused head."""
        weight, dtype, need_grad = self._head_inputs(h_BTC)
        h_MC = h_BTC.reshape(-1, h_BTC.shape[-1]).index_select(0, index_M)
        with torch.autocast(h_BTC.device.type, enabled=False):
            logp, ent = _LinearLogProb.apply(h_MC.to(dtype), weight, target_M, need_grad, entropy)
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
    """Build modules on the meta device without running their initialisers.

    nn.Linear and nn.Embedding initialise themselves in their constructors, and on meta tensors those initialisers
    go through torch's Python reference kernels, which import torch._dynamo: about a second the first time in a
    process, for values nobody reads. They are skipped while the tree is built.
    """
    saved = nn.Linear.reset_parameters, nn.Embedding.reset_parameters
    nn.Linear.reset_parameters = nn.Embedding.reset_parameters = _no_init  # type: ignore[method-assign]
    try:
        with torch.device("meta"):
            yield
    finally:
        nn.Linear.reset_parameters, nn.Embedding.reset_parameters = saved  # type: ignore[method-assign]


def _no_init(self: nn.Module) -> None:
    return None


def _shifted_targets(labels_BT: torch.Tensor) -> torch.Tensor:
    """Position t's target is labels[t + 1]; the last position gets IGNORE_INDEX. Flattened to [B·T]."""
    return F.pad(labels_BT[:, 1:], (0, 1), value=IGNORE_INDEX).reshape(-1)


def _next_token_loss(logits_BTV: torch.Tensor, labels_BT: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of position t predicting labels[t + 1], in fp32, ignoring IGNORE_INDEX (0 if none)."""
    target = _shifted_targets(labels_BT)
    if not (target != IGNORE_INDEX).any():
        return logits_BTV.sum() * 0.0  # keeps the graph; no token to learn from
    logits = logits_BTV.reshape(target.shape[0], -1).float()
    return F.cross_entropy(logits, target, ignore_index=IGNORE_INDEX)


class _LinearCrossEntropy(torch.autograd.Function):
    """logits = h Wᵀ and their token-mean cross-entropy, with the loss gradient formed in the forward pass.

    The gradient of the summed CE w.r.t. the logits, softmax − onehot (zero on ignored rows), is computed on
    cache-sized row chunks right after each chunk's log-softmax, instead of the unfused path's passes over all of
    [N, V] (log-probs out, a zero-filled NLL gradient, a log-softmax backward). In fp32 it is kept as separate
    row chunks and backward forms dh and dW chunk by chunk: no [N, V] gradient is ever allocated (at 32 MiB and
    up, every fresh allocation is new mmap'd memory, page-faulted in on first write). A 16-bit gradient goes into
    one buffer and through one GEMM per input, so dW's sum over tokens (which cancels heavily) accumulates in
    fp32 inside the GEMM instead of being rounded per chunk. The mean's 1/n is applied in backward as
    (incoming gradient)/n to dh and dW, as the NLL backward applies it: a trainer that backpropagates loss × n
    gets the exact unit scale. The logits are still returned, and a gradient arriving through them is added.
    """

    @staticmethod
    def forward(ctx, h_NC, w_VC, target_N, need_grad: bool):
        logits = F.linear(h_NC, w_VC)
        N, V = logits.shape
        acc = torch.promote_types(logits.dtype, torch.float32)  # the softmax runs in fp32 or wider
        valid = target_N != IGNORE_INDEX
        ignored = (~valid).nonzero().flatten()
        tgt = torch.where(valid, target_N, 0)[:, None]
        logp_target = torch.empty(N, dtype=acc, device=logits.device)
        rows = max(1, _CE_CHUNK // V)
        whole = torch.empty_like(logits) if need_grad and logits.element_size() < 4 else None
        chunks = []
        for a in range(0, N, rows):
            b = min(a + rows, N)
            logp = torch.log_softmax(logits[a:b], dim=-1, dtype=acc)
            logp_target[a:b] = logp.gather(1, tgt[a:b])[:, 0]
            if need_grad:
                g = logp.exp_().scatter_add_(1, tgt[a:b], logp.new_full((b - a, 1), -1.0))
                g.index_fill_(0, ignored[(ignored >= a) & (ignored < b)] - a, 0.0)
                if whole is not None:
                    whole[a:b] = g
                else:
                    chunks.append(g.to(logits.dtype))
        n = valid.sum()
        ctx.save_for_backward(h_NC, w_VC)
        ctx.chunks, ctx.rows, ctx.n = ([whole] if whole is not None else chunks), rows, n
        ctx.set_materialize_grads(False)
        return logits, -logp_target.masked_fill(~valid, 0.0).sum() / n.clamp(min=1)

    @staticmethod
    def backward(ctx, g_logits, g_loss):
        h, w = ctx.saved_tensors
        need_h, need_w = ctx.needs_input_grad[:2]
        dh = dw = None
        if g_loss is not None and ctx.chunks:
            if len(ctx.chunks) == 1:
                dh = ctx.chunks[0] @ w if need_h else None
                dw = ctx.chunks[0].t() @ h if need_w else None
            else:
                dh = torch.empty_like(h) if need_h else None
                dw = torch.zeros_like(w) if need_w else None
                for i, g in enumerate(ctx.chunks):
                    a, b = i * ctx.rows, i * ctx.rows + g.shape[0]
                    if need_h:
                        torch.mm(g, w, out=dh[a:b])
                    if need_w:
                        dw.addmm_(g.t(), h[a:b])
            n = ctx.n.clamp(min=1)
            scale = float(g_loss) / float(n) if g_loss.device.type == "cpu" else g_loss / n
            if not (isinstance(scale, float) and scale == 1.0):
                dh = dh.mul_(scale) if dh is not None else None
                dw = dw.mul_(scale) if dw is not None else None
        if g_logits is not None:
            if need_h:
                dh = g_logits @ w if dh is None else dh.add_(g_logits @ w)
            if need_w:
                dw = g_logits.t() @ h if dw is None else dw.add_(g_logits.t() @ h)
        return dh, dw, None, None


class _LinearLogProb(torch.autograd.Function):
    """log softmax(h Wᵀ)[target] for each row, and (no gradient) the entropy of that distribution.

    Row chunks of about 1 MiB of logits at a time: each chunk's logits GEMM, a log-softmax in fp32 for the target's
    log-prob and the entropy −Σ p·log p, and p kept for backward, whose dh and dW GEMMs run chunk by chunk on p
    itself (see backward). No [M, V] tensor is allocated in fp32 (above 32 MiB every
    allocation is fresh mmap'd memory, page-faulted in on first write, and a chunk stays in cache between its
    GEMM and its softmax); a 16-bit p goes into one buffer so dW's sum over rows accumulates in fp32 inside one
    GEMM, as in _LinearCrossEntropy. Without a gradient or entropy each chunk is a logsumexp and a gather.
    """

    @staticmethod
    def forward(ctx, h_MC, w_VC, target_M, need_grad: bool, want_entropy: bool):
        M, V = h_MC.shape[0], w_VC.shape[0]
        acc = torch.promote_types(h_MC.dtype, torch.float32)
        tgt = target_M[:, None]
        logp_t = torch.empty(M, dtype=acc, device=h_MC.device)
        ent = torch.zeros(M, dtype=acc, device=h_MC.device)
        rows = max(1, _CE_CHUNK // V)
        low = need_grad and h_MC.element_size() < 4
        whole = torch.empty(M, V, dtype=h_MC.dtype, device=h_MC.device) if low else None
        chunks = []
        for a in range(0, M, rows):
            b = min(a + rows, M)
            x = F.linear(h_MC[a:b], w_VC)
            if not (need_grad or want_entropy):
                logp_t[a:b] = x.gather(1, tgt[a:b])[:, 0].to(acc) - torch.logsumexp(x.to(acc), dim=-1)
                continue
            logp = torch.log_softmax(x, dim=-1, dtype=acc)
            logp_t[a:b] = logp.gather(1, tgt[a:b])[:, 0]
            p = torch.exp(logp, out=x) if x.dtype == acc and not want_entropy else logp.exp()
            if want_entropy:
                ent[a:b] = -logp.mul_(p).sum(-1)
            if whole is not None:
                whole[a:b] = p
            elif need_grad:
                chunks.append(p)
        ctx.mark_non_differentiable(ent)
        if need_grad:
            ctx.save_for_backward(h_MC, w_VC, target_M)
            ctx.probs, ctx.rows = ([whole] if whole is not None else chunks), rows
        return logp_t, ent

    @staticmethod
    def backward(ctx, g_logp, g_ent):
        # d logits = g·(onehot − p), never formed: its onehot half is a gather / index_add of W and g·h rows, and
        # its p half goes through the GEMMs with g applied to the small [M, C] side (p W then ·g; pᵀ (g·h)).
        h, w, target = ctx.saved_tensors
        probs, rows = ctx.probs, ctx.rows
        need_h, need_w = ctx.needs_input_grad[:2]
        if len(probs) == 1:
            rows = h.shape[0]
        acc = torch.promote_types(h.dtype, torch.float32)
        g = g_logp.to(acc)[:, None]
        gh = h.to(acc) * g
        dh = w.to(acc).index_select(0, target) * g if need_h else None
        dw = torch.zeros(w.shape, dtype=acc, device=w.device).index_add_(0, target, gh) if need_w else None
        gh_in = gh.to(h.dtype)
        for i, p in enumerate(probs):
            a = i * rows
            b = a + p.shape[0]
            if need_h:
                dh[a:b] -= (p @ w).to(acc) * g[a:b]
            if need_w:
                if p.dtype == acc:
                    dw.addmm_(p.t(), gh_in[a:b], alpha=-1.0)
                else:
                    dw -= (p.t() @ gh_in[a:b]).to(acc)
        return (dh.to(h.dtype) if need_h else None), (dw.to(w.dtype) if need_w else None), None, None, None
