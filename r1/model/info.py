"""Parameter and KV-cache accounting, computed on the meta device (no memory, seconds even for 671B)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import torch

from r1.model.cache import KVCache
from r1.model.config import ModelConfig
from r1.model.layers import RMSNorm
from r1.model.transformer import DecoderLayer, MTPLayer, meta_modules


@dataclass
class ModelInfo:
    # Counts are of the main model's checkpoint tensors (MTP modules excluded; tied embeddings once): `total` is
    # `parameters` (what torch's model.parameters() sums to, in r1 and transformers alike) plus `buffers`, the fp32
    # routing biases (e_score_correction_bias) that are buffers in both but stored in the checkpoint.
    total: int
    parameters: int
    buffers: int
    active: int  # per token: routed experts count only the top-k of each MoE layer
    active_without_embeddings: int  # active minus the input embedding and the output head
    embedding: int
    head: int
    routed_experts: int
    mtp: int  # parameters unique to the MTP modules (embedding and head are shared)
    kv_elements_per_token_per_layer: dict[str, int]
    kv_bytes_per_token_bf16: dict[str, int]  # over all layers
    build_seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


def model_info(cfg: ModelConfig) -> ModelInfo:
    """Counts of the modules r1 builds for `cfg`. Decoder layers of one kind (dense or MoE) are identical, so one of
    each kind is built and multiplied: seconds become milliseconds for 671B's 14,848 expert MLPs."""
    t0 = time.perf_counter()
    first_of_kind: dict[bool, tuple[int, int]] = {}  # is MoE -> (first layer index, layers of that kind)
    for i in range(cfg.num_hidden_layers):
        idx, n = first_of_kind.get(cfg.is_moe_layer(i), (i, 0))
        first_of_kind[cfg.is_moe_layer(i)] = (idx, n + 1)
    with meta_modules():
        kinds = [(DecoderLayer(cfg, idx), n) for idx, n in first_of_kind.values()]
        mtp_layers = [MTPLayer(cfg, cfg.num_hidden_layers + k) for k in range(cfg.num_nextn_predict_layers)]
        final_norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
    build = time.perf_counter() - t0

    def params(module: torch.nn.Module) -> int:
        return sum(p.numel() for p in module.parameters())

    def buffers(module: torch.nn.Module) -> int:  # the fp32 routing biases: checkpoint tensors, counted in totals
        return sum(b.numel() for b in module.buffers())

    embedding = cfg.vocab_size * cfg.hidden_size
    head = 0 if cfg.tie_word_embeddings else embedding
    n_params = embedding + head + params(final_norm) + sum(params(layer) * n for layer, n in kinds)
    n_buffers = sum(buffers(layer) * n for layer, n in kinds)
    total = n_params + n_buffers
    inactive = routed = 0
    for layer, n in kinds:
        if hasattr(layer.mlp, "experts"):
            r = params(layer.mlp.experts) + buffers(layer.mlp.experts)
            routed += r * n
            inactive += (r - r * cfg.num_experts_per_tok // cfg.n_routed_experts) * n
    active = total - inactive
    mtp = sum(params(m) + buffers(m) for m in mtp_layers)
    kv = kv_elements(cfg)
    layers = cfg.num_hidden_layers
    return ModelInfo(
        total=total,
        parameters=n_params,
        buffers=n_buffers,
        active=active,
        active_without_embeddings=active - embedding - head,
        embedding=embedding,
        head=head,
        routed_experts=routed,
        mtp=mtp,
        kv_elements_per_token_per_layer=kv,
        kv_bytes_per_token_bf16={k: v * 2 * layers for k, v in kv.items()},
        build_seconds=build,
    )


def kv_elements(cfg: ModelConfig) -> dict[str, int]:
    """Cached values per token per layer: MLA absorbed/naive, and MHA with the same heads (d_h = v_head_dim)."""
    if cfg.is_dense:
        gqa = KVCache.elements_per_token(cfg)
        return {"gqa": gqa, "mha_same_heads": 2 * cfg.num_attention_heads * int(cfg.head_dim)}
    return {
        "mla_absorbed": KVCache.elements_per_token(cfg, "absorb"),
        "mla_naive": KVCache.elements_per_token(cfg, "naive"),
        "mha_same_heads": 2 * cfg.num_attention_heads * cfg.v_head_dim,
    }
