"""What a Hugging Face `config.json` means, family by family, as transformers 5.25 reads it.

`FAMILIES` holds each config class's defaults (tests compare them with the installed classes); `read_hf_config` turns
a file's dict into ModelConfig fields. Keys r1 implements become fields; keys that change the computation in a way r1
does not implement (sliding windows, another activation or RoPE type, MLA biases, …) are a ConfigError naming the key
and the file, never a silent default; keys that do not change it are accepted. Behaviour transformers hard-wires
(Qwen2's q/k/v biases, V2's softmax, V3's sigmoid routing) must agree with the keys DeepSeek's own code reads
(`scoring_func`, `topk_method`, …): the two readings would otherwise differ, and r1 refuses to pick one silently.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

from r1.errors import ConfigError

# Keys of transformers' PreTrainedConfig base class: bookkeeping, never the architecture.
BASE_KEYS = frozenset({
    "architectures", "chunk_size_feed_forward", "dtype", "id2label", "is_encoder_decoder", "label2id",
    "output_hidden_states", "problem_type", "return_dict", "transformers_version", "torch_dtype", "_name_or_path",
    "output_attentions", "auto_map", "model_type",
})  # fmt: skip
_DENSE_COMMON = {
    "hidden_act": "silu", "initializer_range": 0.02, "rms_norm_eps": 1e-6, "use_cache": True,
    "tie_word_embeddings": False, "rope_parameters": None, "attention_dropout": 0.0, "pad_token_id": None,
}  # fmt: skip
_QWEN = {
    **_DENSE_COMMON, "vocab_size": 151936, "hidden_size": 4096, "intermediate_size": 22016, "num_hidden_layers": 32,
    "num_attention_heads": 32, "num_key_value_heads": 32, "max_position_embeddings": 32768, "use_sliding_window": False,
    "sliding_window": 4096, "max_window_layers": 28, "layer_types": None, "bos_token_id": None, "eos_token_id": None,
}  # fmt: skip
_LLAMA = {
    **_DENSE_COMMON, "vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
    "num_attention_heads": 32, "num_key_value_heads": None, "max_position_embeddings": 2048, "bos_token_id": 1,
    "eos_token_id": 2, "pretraining_tp": 1, "attention_bias": False, "mlp_bias": False, "head_dim": None,
}  # fmt: skip
_DEEPSEEK_V2 = {
    **_LLAMA, "vocab_size": 102400, "first_k_dense_replace": 0, "kv_lora_rank": 512, "q_lora_rank": 1536,
    "n_group": None, "n_routed_experts": 64, "output_router_logits": False, "n_shared_experts": 2,
    "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "routed_scaling_factor": 1.0, "topk_group": None,
    "topk_method": "greedy", "norm_topk_prob": False, "v_head_dim": 128, "num_experts_per_tok": None,
    "moe_intermediate_size": 1407,
}  # fmt: skip
_DEEPSEEK_V3 = {
    "vocab_size": 129280, "hidden_size": 7168, "intermediate_size": 18432, "moe_intermediate_size": 2048,
    "num_hidden_layers": 61, "num_attention_heads": 128, "num_key_value_heads": 128, "n_shared_experts": 1,
    "n_routed_experts": 256, "output_router_logits": False, "routed_scaling_factor": 2.5, "kv_lora_rank": 512,
    "q_lora_rank": 1536, "qk_rope_head_dim": 64, "v_head_dim": 128, "qk_nope_head_dim": 128, "n_group": 8,
    "topk_group": 4, "num_experts_per_tok": 8, "first_k_dense_replace": 3, "norm_topk_prob": True, "hidden_act": "silu",
    "max_position_embeddings": 4096, "initializer_range": 0.02, "rms_norm_eps": 1e-6, "use_cache": True,
    "pad_token_id": None, "bos_token_id": 0, "eos_token_id": 1, "pretraining_tp": 1, "tie_word_embeddings": False,
    "rope_parameters": None, "rope_interleave": True, "attention_bias": False, "attention_dropout": 0.0,
    "num_mtp_layers": 1,
}  # fmt: skip


@dataclass(frozen=True)
class Family:
    model_type: str
    architecture: str  # the transformers class `architectures` names
    config_class: str  # the transformers config class the defaults come from
    defaults: dict[str, Any]
    aliases: dict[str, str] = field(default_factory=dict)  # the class's attribute_map: file key -> field


FAMILIES: dict[str, Family] = {
    f.model_type: f
    for f in (
        Family("deepseek_v3", "DeepseekV3ForCausalLM", "DeepseekV3Config", _DEEPSEEK_V3,
               {"num_local_experts": "n_routed_experts", "num_mtp_layers": "num_nextn_predict_layers"}),
        Family("deepseek_v2", "DeepseekV2ForCausalLM", "DeepseekV2Config", _DEEPSEEK_V2,
               {"num_experts": "n_routed_experts"}),
        Family("qwen2", "Qwen2ForCausalLM", "Qwen2Config", _QWEN),
        Family("qwen3", "Qwen3ForCausalLM", "Qwen3Config", {**_QWEN, "head_dim": 128, "attention_bias": False}),
        Family("llama", "LlamaForCausalLM", "LlamaConfig", _LLAMA),
    )
}  # fmt: skip

# Keys that change nothing r1 computes for a causal LM forward (generation bookkeeping, parallel layouts, routing
# statistics outputs, a tensor-parallel split transformers 5 no longer reads, DeepSeek's training-loss switches).
INERT_KEYS = frozenset(
    {"use_cache", "output_router_logits", "pretraining_tp", "ep_size", "seq_aux", "use_mrope", "qk_head_dim"}
)
ROPE_TYPES = ("default", "yarn", "llama3")
_YARN_KEYS = {"rope_type", "type", "rope_theta", "factor", "original_max_position_embeddings", "attention_factor",
              "beta_fast", "beta_slow", "mscale", "mscale_all_dim", "truncate"}  # fmt: skip
_LLAMA3_KEYS = {"rope_type", "type", "rope_theta", "factor", "original_max_position_embeddings", "low_freq_factor",
                "high_freq_factor"}  # fmt: skip


class _Reader:
    """The file's keys over the family's defaults; `take` marks a key handled, `refuse` raises naming it."""

    def __init__(self, d: dict[str, Any], family: Family, source: str) -> None:
        self.family, self.source = family, source
        given = {family.aliases.get(k, k): v for k, v in d.items()}
        defaults = {family.aliases.get(k, k): v for k, v in family.defaults.items()}
        self.values = {**defaults, **given}
        self.given = set(given)
        self.taken: set[str] = set()

    def take(self, key: str, default: Any = None) -> Any:
        self.taken.add(key)
        return self.values.get(key, default)

    def refuse(self, key: str, why: str) -> None:
        raise ConfigError(f"{self.source}: {key}={self.values.get(key)!r}: {why}")

    def integer(self, key: str, default: Any = None, optional: bool = False) -> int | None:
        v = self.take(key, default)
        if v is None and optional:
            return None
        if not isinstance(v, int) or isinstance(v, bool):
            self.refuse(key, "must be an integer" + (" or null" if optional else ""))
        return v

    def number(self, key: str) -> float:
        v = self.take(key)
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            self.refuse(key, "must be a number")
        return float(v)

    def boolean(self, key: str) -> bool:
        v = self.take(key)
        if not isinstance(v, bool):
            self.refuse(key, "must be true or false")
        return v

    def must_equal(self, key: str, want: Any, why: str) -> None:
        if self.take(key, want) != want:
            self.refuse(key, why)


def read_hf_config(d: dict[str, Any], source: str = "config.json") -> dict[str, Any]:
    """ModelConfig keyword arguments for an HF config dict (legacy `rope_scaling` or v5 `rope_parameters`)."""
    return _read(d, source)[0]


def unhandled_keys(d: dict[str, Any]) -> set[str]:
    """Keys of the family's config class that reading `d` did not look at (empty: every key is handled)."""
    fam = FAMILIES[d["model_type"]]
    _, reader = _read(d, "check")
    return {fam.aliases.get(k, k) for k in fam.defaults} - reader.taken


def _read(d: dict[str, Any], source: str) -> tuple[dict[str, Any], _Reader]:
    model_type = d.get("model_type")
    if model_type not in FAMILIES:
        raise ConfigError(
            f"{source}: model_type={model_type!r} is not supported; expected one of {', '.join(FAMILIES)}"
        )
    r = _Reader(d, FAMILIES[model_type], source)
    out: dict[str, Any] = {"model_type": model_type}
    for key in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads"):
        out[key] = r.integer(key)
    out["max_position_embeddings"] = r.integer("max_position_embeddings")
    out["rms_norm_eps"] = r.number("rms_norm_eps")
    out["initializer_range"] = r.number("initializer_range")
    out["tie_word_embeddings"] = r.boolean("tie_word_embeddings")
    for key in ("bos_token_id", "pad_token_id"):
        out[key] = r.integer(key, optional=True)
    eos = r.take("eos_token_id")
    if isinstance(eos, list):  # several stop ids (Llama 3.1): the first is the model's EOS, the rest are for generation
        eos = eos[0] if eos else None
    if eos is not None and (not isinstance(eos, int) or isinstance(eos, bool)):
        r.refuse("eos_token_id", "must be a token id, a list of token ids, or null")
    out["eos_token_id"] = eos
    r.must_equal("hidden_act", "silu", "r1 implements SwiGLU with silu only")
    if r.take("attention_dropout", 0.0) not in (0, 0.0):
        r.refuse("attention_dropout", "r1 does not implement attention dropout; must be 0")
    _read_quantization(r)
    out.update(_read_rope(r, out["max_position_embeddings"]))
    if model_type in ("deepseek_v3", "deepseek_v2"):
        out.update(_read_deepseek(r, out))
    else:
        out.update(_read_dense(r, out))
    for key in INERT_KEYS:
        r.take(key)
    r.taken |= BASE_KEYS
    _read_r1_block(r, d, out)
    return out, r


def _read_r1_block(r: _Reader, d: dict[str, Any], out: dict[str, Any]) -> None:
    """r1's own training knobs (`r1` block); DeepSeek's `aux_loss_alpha` is the sequence-balance weight α."""
    block = r.take("r1") or {}
    if not isinstance(block, dict):
        r.refuse("r1", "must be a mapping of r1's training knobs")
    if "aux_loss_alpha" in r.given and "seq_aux_loss_alpha" not in block:
        out["seq_aux_loss_alpha"] = r.number("aux_loss_alpha")
    r.take("aux_loss_alpha")
    for key in ("mtp_loss_weight", "seq_aux_loss_alpha", "bias_update_speed"):
        if key in block:
            out[key] = block[key]


def _read_quantization(r: _Reader) -> None:
    q = r.take("quantization_config")
    if q is None:
        return
    method = q.get("quant_method") if isinstance(q, dict) else None
    if method == "compressed-tensors":  # weight-only int8/int4; quant_config.py says which schemes r1 runs
        from r1.model.quant_config import read_quantization_config

        read_quantization_config(q, r.source)
        return
    block = q.get("weight_block_size") if isinstance(q, dict) else None
    if method != "fp8" or block not in (None, [128, 128]):
        r.refuse(
            "quantization_config",
            "r1 reads FP8 weights with 128x128 `weight_scale_inv` blocks (DeepSeek-V3's, dequantised on load) and "
            "weight-only int8/int4 compressed-tensors checkpoints",
        )


def _read_rope(r: _Reader, max_pos: int) -> dict[str, Any]:
    """rope_theta and the scaling dict, by transformers' precedence: legacy `rope_scaling` over `rope_parameters`,
    `rope_theta` inside the dict over the top-level key over 10000."""
    legacy = r.take("rope_scaling")
    params = r.take("rope_parameters")
    key = "rope_scaling" if legacy else "rope_parameters"
    rope = legacy or params or {}
    if not isinstance(rope, dict):
        r.refuse(key, "must be a mapping or null")
    rope = dict(rope)
    labels = set(r.values.get("layer_types") or ())
    if labels & set(rope):
        r.refuse(key, "per-layer-type RoPE parameters are not implemented in r1")
    theta = rope.pop("rope_theta", r.take("rope_theta", 10000.0))
    if not isinstance(theta, (int, float)) or isinstance(theta, bool) or theta <= 0:
        raise ConfigError(f"{r.source}: rope_theta={theta!r}: must be a positive number")
    partial = rope.get("partial_rotary_factor", r.take("partial_rotary_factor", 1.0))
    if partial not in (1, 1.0, None):
        raise ConfigError(f"{r.source}: partial_rotary_factor={partial!r}: r1 rotates the whole head; must be 1")
    rope.pop("partial_rotary_factor", None)
    kind = rope.get("rope_type", rope.get("type", "default"))
    if kind not in ROPE_TYPES:
        raise ConfigError(f"{r.source}: {key}.rope_type={kind!r}: r1 implements {', '.join(ROPE_TYPES)} RoPE only")
    if kind == "default":
        return {"rope_theta": float(theta), "rope_scaling": None}
    top_original = r.take("original_max_position_embeddings")
    if top_original is not None:  # transformers gives a top-level value priority (Phi-3 style configs)
        rope["original_max_position_embeddings"] = top_original
    rope.setdefault("original_max_position_embeddings", max_pos)
    known = _YARN_KEYS if kind == "yarn" else _LLAMA3_KEYS
    if kind == "llama3":
        missing = sorted({"factor", "low_freq_factor", "high_freq_factor"} - set(rope))
        if missing:
            raise ConfigError(f"{r.source}: {key}: llama3 RoPE needs {', '.join(missing)}")
    elif rope.get("factor") is None:  # transformers: the ratio of the extended to the original context
        rope["factor"] = max_pos / rope["original_max_position_embeddings"]
    unknown = sorted(set(rope) - known)
    if unknown:
        # transformers warns and ignores them; so does r1, to compute what transformers computes. (DeepSeek-R1-0528-
        # Qwen3-8B's `attn_factor` is one: vLLM multiplies YaRN's attention factor by it, transformers does not.)
        warnings.warn(
            f"{r.source}: {key} keys {unknown} are not {kind} RoPE parameters in transformers; ignored as "
            "transformers ignores them",
            stacklevel=4,
        )
    rope["rope_type"] = kind
    return {"rope_theta": float(theta), "rope_scaling": rope}


def _read_sliding(r: _Reader, layers: int) -> None:
    """Qwen2/Qwen3: layers i >= max_window_layers use a sliding window when use_sliding_window is true."""
    use = r.boolean("use_sliding_window")
    window = r.take("sliding_window")
    first = r.take("max_window_layers")
    types = r.take("layer_types")
    if types is None:
        sliding = use and window is not None and isinstance(first, int) and first < layers
        if sliding:
            r.refuse("use_sliding_window", f"sliding-window attention (layers >= max_window_layers={first}) is not "
                     "implemented in r1")  # fmt: skip
        return
    if not isinstance(types, list) or any(t not in ("full_attention", "sliding_attention") for t in types):
        r.refuse("layer_types", "must be a list of 'full_attention' / 'sliding_attention'")
    if "sliding_attention" in types:
        r.refuse("layer_types", "sliding-window attention layers are not implemented in r1")


def _read_dense(r: _Reader, out: dict[str, Any]) -> dict[str, Any]:
    mt = r.family.model_type
    heads = out["num_attention_heads"]
    kv = r.integer("num_key_value_heads", optional=True)
    head_dim = r.integer("head_dim", optional=True)  # Qwen2's class lacks it, its modeling code still reads it
    res: dict[str, Any] = {
        "num_key_value_heads": heads if kv is None else kv,
        "head_dim": out["hidden_size"] // heads if head_dim is None else head_dim,
    }
    if mt == "qwen2":
        r.take("attention_bias")  # Qwen2Attention always has q/k/v biases and an unbiased o_proj
        res["attention_bias"] = True
    else:
        res["attention_bias"] = r.boolean("attention_bias")
    if mt == "llama":
        res["mlp_bias"] = r.boolean("mlp_bias")
    else:
        r.take("mlp_bias")  # Qwen MLPs are unbiased whatever a file says
        _read_sliding(r, out["num_hidden_layers"])
    return res


def _read_deepseek(r: _Reader, out: dict[str, Any]) -> dict[str, Any]:
    mt = r.family.model_type
    v2 = mt == "deepseek_v2"
    res: dict[str, Any] = {}
    heads = out["num_attention_heads"]
    kv = r.integer("num_key_value_heads", optional=True)
    if kv is not None and kv != heads:
        r.refuse("num_key_value_heads", f"MLA expands K/V for every head: must equal num_attention_heads={heads}")
    r.take("head_dim")  # transformers sets it to qk_rope_head_dim itself
    res["num_key_value_heads"] = heads
    if r.take("attention_bias", False):
        r.refuse("attention_bias", "biases on MLA's q_a/kv_a/o projections are not implemented in r1")
    if r.take("mlp_bias", False):
        r.refuse("mlp_bias", "biased DeepSeek MLPs are not implemented in r1")
    interleaved = r.take("rope_interleave", True)  # a V3 key; DeepseekV2 always rotates interleaved pairs
    if not v2 and interleaved is not True:
        r.refuse("rope_interleave", "r1's MLA rotates interleaved pairs (the released weights' layout) only")
    res["q_lora_rank"] = r.integer("q_lora_rank", optional=True)
    for key in ("kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim"):
        res[key] = r.integer(key)
    layers = out["num_hidden_layers"]
    first = r.integer("first_k_dense_replace")
    experts = r.integer("n_routed_experts", optional=True) or 0
    res["first_k_dense_replace"] = first
    res["n_routed_experts"] = experts
    res["moe_intermediate_size"] = r.integer("moe_intermediate_size")
    res["n_shared_experts"] = r.integer("n_shared_experts", optional=True) or 0
    res["routed_scaling_factor"] = r.number("routed_scaling_factor")
    res["num_nextn_predict_layers"] = r.integer("num_nextn_predict_layers", 0)
    r.must_equal("moe_layer_freq", 1, "transformers makes every layer from first_k_dense_replace on MoE; must be 1")
    res["moe_layer_freq"] = 1
    scoring = "softmax" if v2 else "sigmoid"
    r.must_equal("scoring_func", scoring, f"transformers' {r.family.config_class} scores experts with {scoring}")
    res["scoring_func"] = scoring
    if v2:
        method = r.take("topk_method")
        if method not in ("greedy", "group_limited_greedy"):
            r.refuse("topk_method", "DeepseekV2 routes with 'greedy' or 'group_limited_greedy' ('noaux_tc', the "
                     "bias-corrected routing, is DeepSeek-V3's: model_type deepseek_v3)")  # fmt: skip
        if r.take("norm_topk_prob"):
            r.refuse("norm_topk_prob", "transformers' DeepseekV2 never renormalises the top-k weights; must be false")
        res["topk_method"], res["norm_topk_prob"] = method, False
    else:
        r.must_equal("topk_method", "noaux_tc", "transformers' DeepseekV3 routes with noaux_tc (bias-corrected, "
                     "group-limited top-k)")  # fmt: skip
        res["topk_method"], res["norm_topk_prob"] = "noaux_tc", r.boolean("norm_topk_prob")
    grouped = res["topk_method"] in ("noaux_tc", "group_limited_greedy")
    n_group = r.integer("n_group", optional=True)
    topk_group = r.integer("topk_group", optional=True)
    if experts and grouped and (n_group is None or topk_group is None):
        r.refuse("n_group" if n_group is None else "topk_group", f"{res['topk_method']} routing needs n_group and "
                 "topk_group")  # fmt: skip
    res["n_group"], res["topk_group"] = n_group or 1, topk_group or 1
    if experts:
        res["num_experts_per_tok"] = r.integer("num_experts_per_tok")
    else:
        r.take("num_experts_per_tok")
        res["num_experts_per_tok"] = 0
        if first < layers:
            r.refuse("n_routed_experts", f"layers from first_k_dense_replace={first} on are MoE: needs experts")
    return res
