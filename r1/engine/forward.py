"""The model's forward pass as generation runs it: the same weights, fewer and larger kernels.

Training code is shaped for thousands of tokens per call; a decode step has B tokens (often one), where the cost is
per-op overhead. Two paths, both checked against `Transformer.forward` in `tests/test_engine.py`:

- `hidden` (prefill, any T): the model's own modules in `Transformer.forward`'s order, except MoE dispatch: one
  token runs its k experts directly; on CPU the expert-sorted tokens run as one grouped GEMM per projection over
  the experts' weights stacked once (`torch._grouped_mm`: each expert on its own rows, no padding); elsewhere a
  few tokens per expert are padded into one batched GEMM, and many experts with few tokens loop over the active
  ones.
- `decode` (T = 1, absorbed MLA cache, fp32 or bf16 weights): the step written out with the latent cache, following
  the model's equations (attention.py) with cached fused weights: one GEMM for [q_a | kv_a], RoPE on q and k in one
  complex multiply, scores as one `baddbmm` against the latent with the mask added, expert and MLP gate|up in one
  GEMM. In bf16, RoPE and the softmax run in fp32 as in the model's own path.

Derived weights (concatenations, stacks) are built from the parameters and rebuilt by `refresh()` when a parameter
changed: tensor version counters see most in-place updates and swapped tensors are seen by identity, but fused
AdamW updates without moving the counters, so `Engine.generate` rebuilds them at every call (`refresh(force=True)`,
cheap next to generating) and RL weight updates between calls are always picked up. The background scheduler used
by the server refreshes by version stamp at each admission; weights changed mid-flight apply from the next one.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from r1.model.attention import MLA
from r1.model.cache import KVCache
from r1.model.layers import MLP, RMSNorm
from r1.model.moe import MoE
from r1.model.rope import rope_cos_sin
from r1.model.transformer import Transformer

GROUPED_MM = hasattr(torch, "_grouped_mm")
CACHE_LIMIT_BYTES = 1 << 30  # derived-weight copies allowed; beyond it (big MoE models) use the modules as they are


class InferenceForward:
    """`hidden(ids, positions, cache)` for any T, `last_logits` picking the fast decode step when it applies."""

    def __init__(
        self, model: Transformer, cache_limit_bytes: int = CACHE_LIMIT_BYTES, head_dtype: torch.dtype | None = None
    ) -> None:
        self.model = model
        self.head_dtype = head_dtype
        cfg = model.config
        layers = list(model.model.layers)
        self.layers = layers
        # Fast decode: DeepSeek attention everywhere, fp32 or bf16 weights (fp16 keeps the model's SDPA numerics).
        dtype = model.lm_head.weight.dtype
        mla = all(isinstance(layer.self_attn, MLA) for layer in layers)
        self.fast_decode_ok = cfg.is_deepseek and mla and dtype in (torch.float32, torch.bfloat16)
        self._weights: dict[tuple[int, str], tuple[tuple, object]] = {}
        self.cache_limit_bytes = cache_limit_bytes
        self._cache_bytes = 0
        self._rows: torch.Tensor | None = None
        self.refresh()

    # -------------------------------------------------------------------------------------------- weights
    def refresh(self, force: bool = False) -> None:
        """Rebuild derived weights whose source parameters changed (cheap when nothing did).

        Version counters miss in-place updates made outside autograd's bookkeeping (fused AdamW, `copy_` under
        `no_grad` on some paths), so callers that change weights say so with `force=True`.
        """
        if force:
            self._weights.clear()
        self._cache_bytes = 0
        for i, layer in enumerate(self.layers):
            if self.fast_decode_ok:
                a = layer.self_attn
                first = a.q_a_proj if hasattr(a, "q_a_proj") else a.q_proj
                self._derive((i, "qkv_a"), [first.weight, a.kv_a_proj_with_mqa.weight], lambda w: torch.cat(w))
            if isinstance(layer.mlp, MoE):
                moe = layer.mlp
                experts = [p for e in moe.experts for p in (e.gate_proj.weight, e.up_proj.weight, e.down_proj.weight)]
                self._derive((i, "experts"), experts, _stack_experts)
                if moe.shared_experts is not None:
                    self._derive((i, "shared"), _mlp_params(moe.shared_experts), _fuse_mlp)
            elif isinstance(layer.mlp, MLP) and layer.mlp.gate_proj.bias is None:  # biased (Llama mlp_bias): as is
                self._derive((i, "mlp"), _mlp_params(layer.mlp), _fuse_mlp)
        head = self.model.lm_head.weight
        if self.head_dtype is not None and self.head_dtype != head.dtype:
            self._derive((-1, "lm_head"), [head], lambda w: w[0].to(self.head_dtype))

    def _derive(self, key: tuple[int, str], sources: list[torch.Tensor], build: Callable[[list[torch.Tensor]], object]):
        stamp = tuple((id(t), t._version) for t in sources)
        size = sum(t.numel() * t.element_size() for t in sources)
        old = self._weights.get(key)
        if self._cache_bytes + size > self.cache_limit_bytes:
            self._weights.pop(key, None)
            return
        self._cache_bytes += size
        if old is None or old[0] != stamp:
            with torch.no_grad():
                self._weights[key] = (stamp, build([t.detach() for t in sources]))

    def _w(self, i: int, name: str):
        hit = self._weights.get((i, name))
        return None if hit is None else hit[1]

    # -------------------------------------------------------------------------------------------- general
    def hidden(self, ids_BT: torch.Tensor, positions_BT: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """Final-norm hidden states [B, T, D]; K/V of every token written into `cache` at its position."""
        m = self.model
        cache.kv_len = int(positions_BT.max()) + 1
        slots = torch.arange(cache.kv_len, device=positions_BT.device)
        mask = (slots[None, None, None, :] <= positions_BT[:, None, :, None]).expand(-1, 1, -1, -1)
        inv_freq, factor = m.rope(ids_BT.device)
        cos, sin = rope_cos_sin(positions_BT, inv_freq, factor)
        h = m.model.embed_tokens(ids_BT)
        for i, layer in enumerate(self.layers):
            h = h + layer.self_attn(layer.input_layernorm(h), cos, sin, mask, positions_BT, cache)
            x = layer.post_attention_layernorm(h)
            if isinstance(layer.mlp, MoE):
                B, T, D = x.shape
                h = h + self._moe(i, layer.mlp, x.reshape(B * T, D)).view(B, T, D)
            else:
                h = h + self._mlp(i, "mlp", layer.mlp, x)
        return m.model.norm(h)

    def last_logits(self, ids_BT: torch.Tensor, positions_BT: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """Logits [B, V] of each row's last position (the decode step when T = 1 and the fast path applies)."""
        if ids_BT.shape[1] == 1 and self.fast_decode_ok and cache.mla_impl == "absorb":
            return self.decode(ids_BT[:, 0], positions_BT[:, 0], cache)
        return self.logits(self.hidden(ids_BT, positions_BT, cache)[:, -1])

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """The vocabulary projection of final-norm hidden states, in `head_dtype` when one was asked for."""
        w = self._w(-1, "lm_head")
        return self.model.lm_head(h) if w is None else F.linear(h.to(w.dtype), w)

    # -------------------------------------------------------------------------------------------- decode
    def decode(self, ids_B: torch.Tensor, pos_B: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """One decode step on the absorbed-MLA cache: token ids [B] at positions [B] -> logits [B, V]."""
        m = self.model
        B = ids_B.shape[0]
        S = cache.kv_len = int(pos_B.max()) + 1
        slots = torch.arange(S, device=pos_B.device)
        neg = torch.zeros(B, 1, S, dtype=m.lm_head.weight.dtype, device=pos_B.device)
        neg.masked_fill_(slots > pos_B[:, None, None], float("-inf"))
        inv_freq, factor = m.rope(ids_B.device)
        cos, sin = rope_cos_sin(pos_B[:, None], inv_freq, factor)  # [B, 1, R/2]
        rot = torch.complex(cos, sin)
        if self._rows is None or self._rows.shape[0] < B:
            self._rows = torch.arange(max(B, 64), device=ids_B.device)
        rows = self._rows[:B]
        h = m.model.embed_tokens(ids_B)
        for i, layer in enumerate(self.layers):
            h = h + self._mla_decode(i, layer.self_attn, _norm(layer.input_layernorm, h), rot, neg, rows, pos_B, cache)
            x = _norm(layer.post_attention_layernorm, h)
            h = h + (self._moe(i, layer.mlp, x) if isinstance(layer.mlp, MoE) else self._mlp(i, "mlp", layer.mlp, x))
        return self.logits(_norm(m.model.norm, h))

    def _mla_decode(self, i: int, a: MLA, x: torch.Tensor, rot, neg, rows, pos, cache: KVCache) -> torch.Tensor:
        """score(s) = scale·((W_UKᵀ q_nope)·ĉ_s + q_pe·k_pe_s), o = W_UV Σ_s p(s) ĉ_s — attention.py's absorbed form."""
        B, H, dn, dr, dv, C = x.shape[0], a.n_heads, a.d_nope, a.d_rope, a.d_v, a.kv_lora_rank
        lora = hasattr(a, "q_a_proj")
        first = a.q_a_proj if lora else a.q_proj
        w_qkv = self._w(i, "qkv_a")
        if w_qkv is not None:
            q_first, ckv, k_pe = F.linear(x, w_qkv).split([first.out_features, C, dr], dim=-1)
        else:
            q_first = F.linear(x, first.weight)
            ckv, k_pe = F.linear(x, a.kv_a_proj_with_mqa.weight).split([C, dr], dim=-1)
        q = F.linear(_norm(a.q_a_layernorm, q_first), a.q_b_proj.weight) if lora else q_first
        q_nope, q_pe = q.view(B, H, dn + dr).split([dn, dr], dim=-1)
        pe = torch.cat((q_pe, k_pe[:, None]), dim=1).reshape(B, H + 1, dr // 2, 2)  # RoPE q and k together
        low = x.dtype != torch.float32  # bf16 weights: RoPE and the softmax in fp32, as the model's own path does
        pe = torch.view_as_real(torch.view_as_complex(pe.float() if low else pe) * rot).flatten(-2)
        if low:
            pe = pe.to(x.dtype)
        kv_new = torch.cat((_norm(a.kv_a_layernorm, ckv), pe[:, H]), dim=-1)  # [B, C + R]: what the token leaves
        buf = cache.buffers[a.layer_idx][0]
        buf[rows, pos] = kv_new if kv_new.dtype == buf.dtype else kv_new.to(buf.dtype)
        kv = buf[:B, : neg.shape[-1]]  # [B, S, C + R]
        if kv.dtype != x.dtype:  # a cache kept in another dtype than the weights
            kv = kv.to(x.dtype)
        w = a.kv_b_proj.weight.view(H, dn + dv, C)
        q_lat = torch.bmm(q_nope.transpose(0, 1), w[:, :dn]).transpose(0, 1)  # [B, H, C]
        scores = torch.baddbmm(neg, torch.cat((q_lat, pe[:, :H]), dim=-1), kv.transpose(1, 2), alpha=a.scale)
        p = scores.softmax(dim=-1, dtype=torch.float32).to(x.dtype) if low else scores.softmax(dim=-1)
        o = torch.bmm(p, kv[:, :, :C])  # [B, H, C]
        o = torch.bmm(o.transpose(0, 1), w[:, dn:].transpose(1, 2)).transpose(0, 1)  # [B, H, dv]
        return F.linear(o.reshape(B, H * dv), a.o_proj.weight)

    # ---------------------------------------------------------------------------------------- MLP and MoE
    def _mlp(self, i: int, name: str, mlp: MLP, x: torch.Tensor) -> torch.Tensor:
        fused = self._w(i, name)
        if fused is None:
            return mlp(x)
        w_gu, w_down = fused
        g, u = F.linear(x, w_gu).chunk(2, dim=-1)
        return F.linear(F.silu(g) * u, w_down)

    def _moe(self, i: int, moe: MoE, x: torch.Tensor) -> torch.Tensor:
        """MoE on tokens x [N, D] with the model's router."""
        _, idx, w = moe.gate(x)
        stacks = self._w(i, "experts")
        if x.shape[0] == 1:
            y = None
            for e, we in zip(idx[0].tolist(), w[0].tolist()):
                if stacks is not None:
                    g, u = (x @ stacks[0][e]).chunk(2, dim=-1)
                    out = (F.silu(g) * u) @ stacks[1][e]
                else:
                    out = moe.experts[e](x)
                y = out * we if y is None else y + out * we
        else:
            y = self._dispatch(moe, x, idx, w, stacks)
        if moe.shared_experts is not None:
            y = y + self._mlp(i, "shared", moe.shared_experts, x)
        return y

    def _dispatch(self, moe: MoE, x: torch.Tensor, idx: torch.Tensor, w: torch.Tensor, stacks) -> torch.Tensor:
        flat = idx.flatten()
        counts_t = torch.bincount(flat, minlength=moe.n_experts)
        # CPU: one grouped GEMM per projection over the expert-sorted tokens, each expert on its own rows (padding
        # every expert to the busiest one's load spent ~3x the FLOPs at decode's few tokens per expert: 10% of a
        # step). Elsewhere: padded batched GEMMs while padding costs at most 4x the real work, else the model's loop.
        grouped = GROUPED_MM and x.device.type == "cpu" and x.dtype in (torch.float32, torch.bfloat16)
        counts = counts_t.tolist()
        if stacks is None or (not grouped and moe.n_experts * max(counts) > 4 * len(flat)):
            return moe._run_looped(x, flat, w.flatten(), counts).to(x.dtype)  # fp32 with 16-bit x (fp32 weights)
        w_gu, w_down = stacks  # [E, D, 2I], [E, I, D]
        order = flat.argsort(stable=True)
        token = order // moe.top_k
        x_sorted = x.index_select(0, token)
        if grouped:
            offs = counts_t.cumsum(0).to(torch.int32)
            g, u = torch._grouped_mm(x_sorted, w_gu, offs=offs).chunk(2, dim=-1)
            y_sorted = torch._grouped_mm(F.silu(g) * u, w_down, offs=offs)
        else:
            expert = flat[order]
            slot = torch.arange(len(flat), device=x.device) - (counts_t.cumsum(0) - counts_t)[expert]
            x_pad = x.new_zeros(moe.n_experts, max(counts), x.shape[1]).index_put_((expert, slot), x_sorted)
            g, u = torch.bmm(x_pad, w_gu).chunk(2, dim=-1)
            y_sorted = torch.bmm(F.silu(g) * u, w_down)[expert, slot]
        y_sorted = y_sorted * w.flatten()[order, None].to(y_sorted.dtype)
        return torch.zeros_like(x).index_add_(0, token, y_sorted)


def _norm(norm: RMSNorm, x: torch.Tensor) -> torch.Tensor:
    """RMSNorm without the module call or its hand-written backward: the same maths as layers.RMSNorm, for decoding."""
    if x.dtype == torch.float32 and norm.weight.dtype == torch.float32:
        return F.rms_norm(x, (x.shape[-1],), norm.weight, norm.eps)  # one call: normalise, then scale
    return norm.weight * F.rms_norm(x.float(), (x.shape[-1],), eps=norm.eps).to(x.dtype)


def _mlp_params(mlp: MLP) -> list[torch.Tensor]:
    return [mlp.gate_proj.weight, mlp.up_proj.weight, mlp.down_proj.weight]


def _fuse_mlp(w: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """[gate; up] as one [2I, D] weight, and down [D, I]."""
    return torch.cat((w[0], w[1])).contiguous(), w[2]


def _stack_experts(w: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """[E, D, 2I] gate|up and [E, I, D] down, laid out for x @ W."""
    gate, up, down = w[0::3], w[1::3], w[2::3]
    gu = torch.stack([torch.cat((g, u)).t() for g, u in zip(gate, up)]).contiguous()
    return gu, torch.stack([d.t() for d in down]).contiguous()
