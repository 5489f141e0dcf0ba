"""One model config for the DeepSeek-V3 family and the dense (Llama/Qwen2/Qwen3) students.

Field names are the Hugging Face `config.json` keys, so a config round-trips without a translation table; meanings
and defaults are the family's own in transformers (`families.py`). `model_type` picks the architecture: `deepseek_v3`
/ `deepseek_v2` (MLA, DeepSeekMoE after `first_k_dense_replace` dense layers, MTP; V3 routes with sigmoid and
`noaux_tc`, V2 with softmax), or `qwen2` / `qwen3` / `llama` (GQA, rotate-half RoPE, SwiGLU; Qwen2's q/k/v biases,
Qwen3's q/k norms). The loss's knobs (λ, α, γ) live here too, so one object describes what `model(...)` computes.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from r1.errors import ConfigError
from r1.model.families import FAMILIES, read_hf_config

DEEPSEEK_TYPES = ("deepseek_v3", "deepseek_v2")
DENSE_TYPES = ("qwen2", "qwen3", "llama")
MODEL_TYPES = DEEPSEEK_TYPES + DENSE_TYPES

HF_ARCHITECTURES = {name: fam.architecture for name, fam in FAMILIES.items()}


@dataclass
class ModelConfig:
    model_type: str = "deepseek_v3"
    vocab_size: int = 2048
    hidden_size: int = 128
    intermediate_size: int = 352
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    # dense students only (GQA); MLA has no separate KV heads
    num_key_value_heads: int | None = None
    head_dim: int | None = None
    # biases on q/k/v (and o_proj for llama/qwen3); None: the family's own (Qwen2 always has q/k/v biases)
    attention_bias: bool | None = None
    mlp_bias: bool = False  # biases on gate/up/down (llama only)
    max_position_embeddings: int = 4096
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    # None (plain RoPE), {"type": "yarn", ...} or {"rope_type": "llama3", ...}
    rope_scaling: dict[str, Any] | None = None
    tie_word_embeddings: bool = False
    # MLA
    q_lora_rank: int | None = None
    kv_lora_rank: int = 64
    qk_nope_head_dim: int = 32
    qk_rope_head_dim: int = 16
    v_head_dim: int = 32
    # DeepSeekMoE
    n_routed_experts: int = 0
    n_shared_experts: int = 0
    num_experts_per_tok: int = 0
    moe_intermediate_size: int = 0
    first_k_dense_replace: int = 0
    moe_layer_freq: int = 1
    n_group: int = 1
    topk_group: int = 1
    # None: the family's routing (V3: sigmoid, noaux_tc, normalised top-k; V2: softmax, greedy, not normalised)
    scoring_func: str | None = None
    topk_method: str | None = None
    norm_topk_prob: bool | None = None
    routed_scaling_factor: float = 1.0
    # multi-token prediction depth D
    num_nextn_predict_layers: int = 0
    bos_token_id: int | None = 0
    eos_token_id: int | None = 1
    pad_token_id: int | None = None
    initializer_range: float = 0.006
    # loss knobs: L = L_main + mtp_loss_weight·mean_k(L_mtp^k) + seq_aux_loss_alpha·L_bal
    mtp_loss_weight: float = 0.3
    seq_aux_loss_alpha: float = 1e-4
    bias_update_speed: float = 1e-3
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        v2 = self.model_type == "deepseek_v2"
        if self.attention_bias is None:
            self.attention_bias = self.model_type == "qwen2"
        if self.scoring_func is None:
            self.scoring_func = "softmax" if v2 else "sigmoid"
        if self.topk_method is None:
            self.topk_method = "greedy" if v2 else "noaux_tc"
        if self.norm_topk_prob is None:
            self.norm_topk_prob = not v2
        if self.num_key_value_heads is None:
            self.num_key_value_heads = self.num_attention_heads
        if self.head_dim is None and self.is_dense:
            self.head_dim = self.hidden_size // max(self.num_attention_heads, 1)
        if self.rope_scaling:  # HF has used both spellings of the key; keep both so either reader finds it
            kind = self.rope_scaling.get("rope_type", self.rope_scaling.get("type"))
            self.rope_scaling = {**self.rope_scaling, "type": kind, "rope_type": kind}
        self.validate()

    # ----------------------------------------------------------------------------------------- derived
    @property
    def is_deepseek(self) -> bool:
        return self.model_type in DEEPSEEK_TYPES

    @property
    def is_dense(self) -> bool:
        return self.model_type in DENSE_TYPES

    @property
    def qk_norm(self) -> bool:
        """Qwen3 RMS-normalises every query and key head before RoPE."""
        return self.model_type == "qwen3"

    @property
    def o_proj_bias(self) -> bool:
        """Llama and Qwen3 bias o_proj along with q/k/v; Qwen2 biases q/k/v only."""
        return bool(self.attention_bias) and self.model_type in ("llama", "qwen3")

    @property
    def qk_head_dim(self) -> int:
        return self.qk_nope_head_dim + self.qk_rope_head_dim

    @property
    def rope_dim(self) -> int:
        return self.qk_rope_head_dim if self.is_deepseek else int(self.head_dim)

    @property
    def rope_type(self) -> str:
        if not self.rope_scaling:
            return "default"
        return str(self.rope_scaling.get("rope_type", self.rope_scaling.get("type", "default")))

    def is_moe_layer(self, layer_idx: int) -> bool:
        """Layers [0, first_k_dense_replace) are dense; MoE every `moe_layer_freq` layers after that."""
        return (
            self.is_deepseek
            and self.n_routed_experts > 0
            and layer_idx >= self.first_k_dense_replace
            and layer_idx % self.moe_layer_freq == 0
        )

    @property
    def softmax_scale(self) -> float:
        """1/sqrt(d_qk), times mscale² when YaRN is on (DeepSeek applies mscale to the attention logits)."""
        d = self.qk_head_dim if self.is_deepseek else int(self.head_dim)
        scale = d**-0.5
        if self.is_deepseek and self.rope_type == "yarn":
            m_all = self.rope_scaling.get("mscale_all_dim") or 0
            if m_all:
                m = yarn_mscale(float(self.rope_scaling["factor"]), float(m_all))
                scale *= m * m
        return scale

    # ----------------------------------------------------------------------------------------- checks
    def validate(self) -> None:
        def need(cond: bool, name: str, rule: str) -> None:
            if not cond:
                raise ConfigError(f"model config: {name}={getattr(self, name, None)!r}: {rule}")

        need(self.model_type in MODEL_TYPES, "model_type", f"must be one of {', '.join(MODEL_TYPES)}")
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size"):
            v = getattr(self, name)
            need(isinstance(v, int) and not isinstance(v, bool) and v > 0, name, "must be a positive integer")
        need(self.max_position_embeddings > 0, "max_position_embeddings", "must be positive")
        need(self.rms_norm_eps > 0, "rms_norm_eps", "must be positive")
        need(self.rope_theta > 0, "rope_theta", "must be positive")
        need(self.initializer_range > 0, "initializer_range", "must be positive")
        for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
            v = getattr(self, name)
            need(
                v is None or 0 <= v < self.vocab_size, name, f"must be a token id in [0, vocab_size={self.vocab_size})"
            )
        self._validate_family(need)
        if self.is_dense:
            need(self.num_key_value_heads > 0, "num_key_value_heads", "must be positive")
            divides = f"must divide num_attention_heads={self.num_attention_heads}"
            need(self.num_attention_heads % self.num_key_value_heads == 0, "num_key_value_heads", divides)
            even = self.head_dim > 0 and self.head_dim % 2 == 0
            need(even, "head_dim", "must be a positive even number (RoPE pairs)")
            need(self.n_routed_experts == 0, "n_routed_experts", f"must be 0 for dense model_type {self.model_type}")
            need(self.num_nextn_predict_layers == 0, "num_nextn_predict_layers", "MTP is a DeepSeek-V3 feature")
        else:
            q_rank = self.q_lora_rank
            need(q_rank is None or q_rank > 0, "q_lora_rank", "must be positive or null (no q LoRA)")
            for name in ("kv_lora_rank", "qk_nope_head_dim", "v_head_dim", "qk_rope_head_dim"):
                need(getattr(self, name) > 0, name, "must be positive")
            need(self.qk_rope_head_dim % 2 == 0, "qk_rope_head_dim", "must be even (RoPE rotates pairs)")
            in_range = f"must be in [0, num_hidden_layers={self.num_hidden_layers}]"
            need(0 <= self.first_k_dense_replace <= self.num_hidden_layers, "first_k_dense_replace", in_range)
            need(self.moe_layer_freq >= 1, "moe_layer_freq", "must be >= 1")
            need(self.num_nextn_predict_layers >= 0, "num_nextn_predict_layers", "must be >= 0")
            if self.n_routed_experts > 0:
                self._validate_moe(need)
        self._validate_rope(need)

    def _validate_family(self, need) -> None:
        """What the family's transformers modeling code hard-wires; a config saying otherwise would be misread."""
        mt = self.model_type
        if mt == "qwen2":
            need(self.attention_bias, "attention_bias", "Qwen2 always has q/k/v biases (use llama for an unbiased one)")
        need(not self.mlp_bias or mt == "llama", "mlp_bias", "MLP biases are implemented for llama only")
        if self.is_deepseek:
            need(not self.attention_bias, "attention_bias", "biases on MLA projections are not implemented in r1")
            every = "must be 1 (every layer from first_k_dense_replace is MoE)"
            need(self.moe_layer_freq == 1, "moe_layer_freq", every)
        if mt == "deepseek_v3":
            need(self.scoring_func == "sigmoid", "scoring_func", "deepseek_v3 routes with 'sigmoid' scores")
            need(self.topk_method == "noaux_tc", "topk_method", "deepseek_v3 routes with 'noaux_tc'")
        elif mt == "deepseek_v2":
            need(self.scoring_func == "softmax", "scoring_func", "deepseek_v2 routes with 'softmax' scores")
            greedy = self.topk_method in ("greedy", "group_limited_greedy")
            need(greedy, "topk_method", "deepseek_v2 routes with 'greedy' or 'group_limited_greedy'")
            need(not self.norm_topk_prob, "norm_topk_prob", "deepseek_v2 never renormalises the top-k weights")

    def _validate_moe(self, need) -> None:
        e = self.n_routed_experts
        need(self.moe_intermediate_size > 0, "moe_intermediate_size", "must be positive when experts exist")
        need(1 <= self.num_experts_per_tok <= e, "num_experts_per_tok", f"must be in [1, n_routed_experts={e}]")
        need(self.n_shared_experts >= 0, "n_shared_experts", "must be >= 0")
        need(self.n_group >= 1 and e % self.n_group == 0, "n_group", f"must divide n_routed_experts={e}")
        need(1 <= self.topk_group <= self.n_group, "topk_group", f"must be in [1, n_group={self.n_group}]")
        per_group = e // self.n_group
        need(
            self.topk_group * per_group >= self.num_experts_per_tok,
            "topk_group",
            f"keeps {self.topk_group}×{per_group} experts, fewer than num_experts_per_tok="
            f"{self.num_experts_per_tok}: top-k would pick masked experts",
        )
        if self.topk_method == "noaux_tc" and self.n_group > 1:
            top2 = "noaux_tc scores a group by its top-2 experts: needs >= 2 experts per group"
            need(per_group >= 2, "n_group", top2)
        need(self.routed_scaling_factor > 0, "routed_scaling_factor", "must be positive")

    def _validate_rope(self, need) -> None:
        if not self.rope_scaling:
            return
        kind = self.rope_type
        need(kind in ("yarn", "llama3", "default"), "rope_scaling", "type must be 'yarn', 'llama3' or absent")
        if kind in ("yarn", "llama3"):
            rs = self.rope_scaling
            need(float(rs.get("factor", 0)) >= 1, "rope_scaling", "factor must be >= 1")
            original = int(rs.get("original_max_position_embeddings", 0))
            need(original > 0, "rope_scaling", "needs original_max_position_embeddings > 0")

    # ----------------------------------------------------------------------------------------- HF I/O
    def to_hf_dict(self) -> dict[str, Any]:
        """The `config.json` transformers reads for this architecture (and DeepSeek's own code, for V2/V3)."""

        def own(names: str) -> dict[str, Any]:  # fields that are config.json keys of the same name
            return {n: getattr(self, n) for n in names.split()}

        d: dict[str, Any] = {
            "architectures": [HF_ARCHITECTURES[self.model_type]],
            **own("model_type vocab_size hidden_size intermediate_size num_hidden_layers num_attention_heads"),
            **own("num_key_value_heads"),
            "hidden_act": "silu",
            **own("max_position_embeddings rms_norm_eps rope_theta"),
            "rope_scaling": dict(self.rope_scaling) if self.rope_scaling else None,
            **own("tie_word_embeddings"),
            "attention_dropout": 0.0,
            **own("bos_token_id eos_token_id pad_token_id initializer_range"),
            "torch_dtype": "float32",
            "use_cache": True,
        }
        if self.is_dense:
            d["head_dim"] = self.head_dim
            if self.model_type == "llama":
                d.update(attention_bias=self.attention_bias, mlp_bias=self.mlp_bias, pretraining_tp=1)
            else:
                if self.model_type == "qwen3":  # Qwen2's class has no such key: its q/k/v biases are hard-wired
                    d["attention_bias"] = self.attention_bias
                d.update(use_sliding_window=False, sliding_window=None, max_window_layers=self.num_hidden_layers)
        else:
            moe = self.n_routed_experts > 0
            d.update(
                attention_bias=False,
                **own("q_lora_rank kv_lora_rank qk_nope_head_dim qk_rope_head_dim v_head_dim"),
                head_dim=self.qk_rope_head_dim,
                rope_interleave=True,
                **own("n_routed_experts n_shared_experts num_experts_per_tok moe_intermediate_size"),
                # without routed experts every layer is dense, which transformers spells as all layers "first"
                first_k_dense_replace=self.first_k_dense_replace if moe else self.num_hidden_layers,
                **own("moe_layer_freq n_group topk_group scoring_func topk_method norm_topk_prob"),
                **own("routed_scaling_factor num_nextn_predict_layers"),
                aux_loss_alpha=self.seq_aux_loss_alpha,
                seq_aux=True,
                ep_size=1,
            )
        d["r1"] = own("mtp_loss_weight seq_aux_loss_alpha bias_update_speed")
        return d

    @classmethod
    def from_hf_dict(cls, d: dict[str, Any], source: str = "config.json") -> ModelConfig:
        """Reads an HF config dict as transformers does: the family's defaults for every key the file omits, and a
        ConfigError naming the key and `source` for values that would build a different network (families.py)."""
        kwargs = read_hf_config(d, source)
        try:
            return cls(**kwargs)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {str(exc).removeprefix('model config: ')}") from None

    def replace(self, **changes: Any) -> ModelConfig:
        """A copy with some fields changed; unknown field names are an error listing the valid ones."""
        names = {f.name for f in dataclasses.fields(self)}
        bad = sorted(set(changes) - names)
        if bad:
            raise ConfigError(f"model config: unknown field(s) {bad}; valid fields: {', '.join(sorted(names))}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("extra")
        return d


def yarn_mscale(factor: float, m: float = 1.0) -> float:
    """YaRN's attention temperature: 0.1·m·ln(s) + 1 (1 when the context is not extended)."""
    return 1.0 if factor <= 1 else 0.1 * m * math.log(factor) + 1.0


# --------------------------------------------------------------------------------------------- presets
# Each preset is the `config.json` that `r1 model config --preset NAME` prints; presets/README.md says where each
# one's values come from.
PRESET_DIR = Path(__file__).with_name("presets")
PRESETS: dict[str, Path] = {path.stem: path for path in sorted(PRESET_DIR.glob("*.json"))}


def preset(name: str, **overrides: Any) -> ModelConfig:
    """A named config; `overrides` change fields (unknown names are an error)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown model preset {name!r}; valid presets: {', '.join(PRESETS)}")
    path = PRESETS[name]
    cfg = ModelConfig.from_hf_dict(json.loads(path.read_text()), source=str(path))
    return cfg.replace(**overrides) if overrides else cfg
