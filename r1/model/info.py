"""Parameter and KV-cache accounting, computed on the meta device (no memory, seconds even for 671B)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import torch

from r1.model.cache import KVCache
from r1.model.config import ModelConfig
from r1.model.transformer import meta_model


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
    t0 = time.perf_counter()
    model = meta_model(cfg)
    build = time.perf_counter() - t0

    def count(module: torch.nn.Module) -> int:
        # the fp32 routing biases are buffers, but they are checkpoint tensors and the published totals count them
        return sum(p.numel() for p in module.parameters()) + count_buffers(module)

    def count_buffers(module: torch.nn.Module) -> int:
        return sum(b.numel() for b in module.buffers())

    total_with_mtp = count(model)
    mtp = count(model.mtp)
    total = total_with_mtp - mtp
    buffers = count_buffers(model) - count_buffers(model.mtp)
    embedding = model.model.embed_tokens.weight.numel()
    head = 0 if cfg.tie_word_embeddings else model.lm_head.weight.numel()
    inactive = routed = 0
    for layer in model.model.layers:
        if hasattr(layer.mlp, "experts"):
            r = count(layer.mlp.experts)
            routed += r
            inactive += r - r * cfg.num_experts_per_tok // cfg.n_routed_experts
    active = total - inactive
    kv = kv_elements(cfg)
    layers = cfg.num_hidden_layers
    return ModelInfo(
        total=total,
        parameters=total - buffers,
        buffers=buffers,
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
