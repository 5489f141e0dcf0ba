"""config.json means what transformers means: each family's defaults for omitted keys, refusals for what r1 lacks.

Every family's checkpoint, written by transformers from its config class with default values (only sizes shrunk),
loads in r1 with transformers' logits; r1's checkpoints load in transformers with r1's logits.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

transformers = pytest.importorskip("transformers")

from hf_twins import TOL, r1_to_transformers, transformers_to_r1  # noqa: E402

from r1.errors import ConfigError  # noqa: E402
from r1.model import ModelConfig, Transformer  # noqa: E402
from r1.model.checkpoint import load_config  # noqa: E402
from r1.model.families import BASE_KEYS, FAMILIES, unhandled_keys  # noqa: E402
from r1.model.info import model_info  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

_DENSE = dict(vocab_size=128, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4)
_MLA = dict(kv_lora_rank=16, q_lora_rank=24, qk_rope_head_dim=8, qk_nope_head_dim=8, v_head_dim=8)
# Only size keys are set; every feature key keeps the family's default. (DeepseekV2's class leaves
# num_experts_per_tok unset, which no model can run with: it is given, as a size.)
SIZES = {
    "qwen2": dict(_DENSE, num_key_value_heads=2),
    "qwen3": dict(_DENSE, num_key_value_heads=2, head_dim=16),
    "llama": dict(_DENSE, num_key_value_heads=2),
    "deepseek_v3": dict(_DENSE, **_MLA, num_hidden_layers=4, num_key_value_heads=4, moe_intermediate_size=16,
                        n_routed_experts=16),
    "deepseek_v2": dict(_DENSE, **_MLA, moe_intermediate_size=16, n_routed_experts=8, num_experts_per_tok=2),
}  # fmt: skip


def minimal(model_type: str, **features) -> dict:
    """A config.json with model_type and sizes only (plus `features`): every other key is the family's default."""
    return {"model_type": model_type, "architectures": [FAMILIES[model_type].architecture], **SIZES[model_type],
            **features}  # fmt: skip


# Feature variants: the defaults above, plus these keys (each a feature r1 implements).
VARIANTS = {
    "qwen2-defaults": minimal("qwen2"),  # no attention_bias key: Qwen2 has q/k/v biases anyway
    "qwen3-defaults": minimal("qwen3"),  # q/k RMSNorm per head
    "llama-defaults": minimal("llama"),
    "deepseek_v3-defaults": minimal("deepseek_v3"),  # sigmoid, noaux_tc, 8 groups keep 4, top-8, MTP depth 1
    "deepseek_v2-defaults": minimal("deepseek_v2"),  # no scoring_func key: softmax; greedy; no renormalisation
    "deepseek_v2-group-limited": minimal("deepseek_v2", topk_method="group_limited_greedy", n_group=4, topk_group=2),
    "deepseek_v3-no-q-lora": minimal("deepseek_v3", q_lora_rank=None),
    "llama-attention-and-mlp-bias": minimal("llama", attention_bias=True, mlp_bias=True),
    "qwen3-attention-bias-tied": minimal("qwen3", attention_bias=True, tie_word_embeddings=True),
    "qwen3-yarn-untruncated": minimal("qwen3", max_position_embeddings=256, rope_parameters={
        "rope_type": "yarn", "rope_theta": 1e6, "factor": 4.0, "original_max_position_embeddings": 64,
        "truncate": False, "attention_factor": 0.9}),
    "llama-llama3-rope-v5-spelling": minimal("llama", max_position_embeddings=256, rope_parameters={
        "rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
        "high_freq_factor": 4.0, "original_max_position_embeddings": 32}),
}  # fmt: skip


# --------------------------------------------------------------------------------------------- defaults
@pytest.mark.parametrize("model_type", list(FAMILIES))
def test_family_defaults_are_the_transformers_config_class_defaults(model_type):
    fam = FAMILIES[model_type]
    cls = getattr(transformers, fam.config_class)
    base = {f.name for f in dataclasses.fields(transformers.PreTrainedConfig)}
    theirs = {f.name: f.default for f in dataclasses.fields(cls) if f.name not in base}
    assert fam.defaults == theirs
    assert fam.aliases == cls.attribute_map
    assert transformers.AutoConfig.for_model(model_type).architectures in (None, [fam.architecture])


@pytest.mark.parametrize("model_type", list(FAMILIES))
def test_every_key_of_the_family_config_class_is_handled(model_type):
    # each key is implemented, checked against what r1 implements, or known not to change the computation
    assert unhandled_keys(minimal(model_type)) == set()
    written = transformers.AutoConfig.for_model(**minimal(model_type)).to_dict()
    assert unhandled_keys({**written, "model_type": model_type}) == set()
    assert "dtype" in BASE_KEYS and "transformers_version" in BASE_KEYS


@pytest.mark.parametrize("model_type", list(FAMILIES))
def test_omitted_keys_read_as_transformers_reads_them(model_type):
    ours = ModelConfig.from_hf_dict(minimal(model_type))
    theirs = transformers.AutoConfig.for_model(**minimal(model_type))
    assert ours.num_key_value_heads == theirs.num_key_value_heads
    assert ours.rms_norm_eps == theirs.rms_norm_eps and ours.rope_theta == theirs.rope_parameters["rope_theta"]
    assert ours.max_position_embeddings == theirs.max_position_embeddings
    assert (ours.bos_token_id, ours.eos_token_id) == (theirs.bos_token_id, theirs.eos_token_id)
    assert ours.tie_word_embeddings == theirs.tie_word_embeddings
    if ours.is_dense:
        assert ours.head_dim == getattr(theirs, "head_dim", theirs.hidden_size // theirs.num_attention_heads)
    else:
        for key in ("n_shared_experts", "routed_scaling_factor", "first_k_dense_replace", "kv_lora_rank"):
            assert getattr(ours, key) == getattr(theirs, key), key
    # and the networks have the same tensors
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(theirs)
    assert model_info(ours).parameters == sum(p.numel() for p in model.parameters())


def test_the_issue_cases():
    q = ModelConfig.from_hf_dict(minimal("qwen2", attention_bias=False))  # transformers ignores the key
    assert q.attention_bias and not q.o_proj_bias
    v2 = ModelConfig.from_hf_dict(minimal("deepseek_v2"))
    assert (v2.scoring_func, v2.topk_method, v2.norm_topk_prob) == ("softmax", "greedy", False)
    v3 = ModelConfig.from_hf_dict(minimal("deepseek_v3"))
    assert (v3.scoring_func, v3.topk_method, v3.norm_topk_prob, v3.n_group, v3.topk_group) == (
        "sigmoid", "noaux_tc", True, 8, 4)  # fmt: skip
    assert ModelConfig(model_type="deepseek_v2", n_routed_experts=4, num_experts_per_tok=2,
                       moe_intermediate_size=8).scoring_func == "softmax"  # fmt: skip


# --------------------------------------------------------------------------------------------- parity
@pytest.mark.parametrize("name", list(VARIANTS))
@pytest.mark.parametrize("written_config", ["as-transformers-writes-it", "sizes-only"])
def test_transformers_checkpoint_loads_in_r1(name, written_config, tmp_path):
    config = VARIANTS[name]
    write = None if written_config == "as-transformers-writes-it" else config
    assert transformers_to_r1(config, tmp_path, seed=3, write_config=write) <= TOL


@pytest.mark.parametrize("name", list(VARIANTS))
def test_r1_checkpoint_loads_in_transformers(name, tmp_path):
    assert r1_to_transformers(VARIANTS[name], tmp_path, seed=5) <= TOL


def test_qwen3_checkpoint_names_are_transformers_own(tmp_path):
    cfg = ModelConfig.from_hf_dict(minimal("qwen3", attention_bias=True))
    names = set(Transformer(cfg).state_dict())
    with torch.device("meta"):
        theirs = transformers.AutoModelForCausalLM.from_config(transformers.AutoConfig.for_model(
            **minimal("qwen3", attention_bias=True)))  # fmt: skip
    assert names == set(theirs.state_dict())
    assert "model.layers.0.self_attn.q_norm.weight" in names and "model.layers.1.self_attn.o_proj.bias" in names


# --------------------------------------------------------------------------------------------- refusals
REFUSED = [
    ("qwen2", dict(use_sliding_window=True, max_window_layers=1), "use_sliding_window", "sliding-window"),
    ("qwen3", dict(use_sliding_window=True, sliding_window=16, max_window_layers=0), "use_sliding_window",
     "sliding-window"),
    ("qwen2", dict(layer_types=["full_attention", "sliding_attention"]), "layer_types", "sliding-window"),
    ("llama", dict(hidden_act="gelu"), "hidden_act", "silu only"),
    ("qwen3", dict(hidden_act="relu"), "hidden_act", "silu only"),
    ("llama", dict(attention_dropout=0.1), "attention_dropout", "must be 0"),
    ("llama", dict(rope_scaling={"rope_type": "linear", "factor": 2.0}), "rope_type='linear'", "yarn, llama3"),
    ("qwen2", dict(rope_scaling={"type": "dynamic", "factor": 2.0}), "rope_type='dynamic'", "yarn, llama3"),
    ("llama", dict(rope_parameters={"rope_type": "longrope", "short_factor": [1], "long_factor": [1]}),
     "rope_type='longrope'", "yarn, llama3"),
    ("llama", dict(rope_parameters={"rope_type": "llama3", "factor": 8.0}), "rope_parameters",
     "high_freq_factor, low_freq_factor"),
    ("llama", dict(partial_rotary_factor=0.5), "partial_rotary_factor", "whole head"),
    ("llama", dict(quantization_config={"quant_method": "gptq", "bits": 4}), "quantization_config", "FP8"),
    ("deepseek_v3", dict(quantization_config={"quant_method": "fp8", "weight_block_size": [64, 64]}),
     "quantization_config", "128x128"),
    ("deepseek_v2", dict(topk_method="noaux_tc"), "topk_method", "DeepSeek-V3's"),
    ("deepseek_v2", dict(scoring_func="sigmoid"), "scoring_func", "softmax"),
    ("deepseek_v2", dict(norm_topk_prob=True), "norm_topk_prob", "never renormalises"),
    ("deepseek_v3", dict(scoring_func="softmax"), "scoring_func", "sigmoid"),
    ("deepseek_v3", dict(topk_method="greedy"), "topk_method", "noaux_tc"),
    ("deepseek_v3", dict(rope_interleave=False), "rope_interleave", "interleaved"),
    ("deepseek_v3", dict(attention_bias=True), "attention_bias", "not implemented"),
    ("deepseek_v2", dict(mlp_bias=True), "mlp_bias", "not implemented"),
    ("deepseek_v3", dict(moe_layer_freq=2), "moe_layer_freq", "must be 1"),
    ("deepseek_v3", dict(num_key_value_heads=1), "num_key_value_heads", "must equal num_attention_heads=4"),
    ("deepseek_v2", dict(topk_method="group_limited_greedy"), "n_group", "needs n_group and topk_group"),
    ("deepseek_v2", dict(num_experts_per_tok=None), "num_experts_per_tok", "must be an integer"),
    ("deepseek_v3", dict(n_routed_experts=None), "n_routed_experts", "needs experts"),
    ("qwen2", dict(model_type="qwen2_moe"), "model_type='qwen2_moe'", "not supported"),
    ("llama", dict(hidden_size="64"), "hidden_size", "must be an integer"),
    ("qwen2", dict(rope_parameters={"rope_type": "default", "rope_theta": -1}), "rope_theta", "positive"),
]  # fmt: skip


@pytest.mark.parametrize("model_type, change, key, why", REFUSED, ids=[f"{r[0]}-{r[2]}" for r in REFUSED])
def test_architecture_keys_r1_lacks_are_refused_naming_key_and_file(model_type, change, key, why, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({**minimal(model_type), **change}))
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path)
    msg = str(err.value)
    assert msg.startswith(f"{tmp_path / 'config.json'}: ") and key in msg and why in msg, msg
    assert "\n" not in msg


@pytest.mark.parametrize(
    "model_type, change",
    [
        ("llama", dict(pretraining_tp=4)),  # transformers 5 no longer reads it
        ("qwen2", dict(use_sliding_window=True, max_window_layers=2)),  # no layer reaches the window
        ("qwen2", dict(use_sliding_window=False, sliding_window=8, layer_types=["full_attention"] * 2)),
        ("deepseek_v3", dict(ep_size=8, seq_aux=True, aux_loss_alpha=0.001, output_router_logits=True)),
        ("qwen3", dict(use_cache=False, torch_dtype="bfloat16", transformers_version="4.51.0", unknown_key=1)),
        ("deepseek_v2", dict(num_experts=8)),  # the class's attribute_map spelling of n_routed_experts
    ],
)
def test_keys_that_do_not_change_the_network_are_accepted(model_type, change):
    base = ModelConfig.from_hf_dict(minimal(model_type))
    changed = ModelConfig.from_hf_dict(minimal(model_type, **change))
    assert dataclasses.replace(changed, seq_aux_loss_alpha=base.seq_aux_loss_alpha) == base


def test_unknown_rope_keys_warn_and_are_ignored_as_transformers_ignores_them():
    yarn = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64}
    plain = ModelConfig.from_hf_dict(minimal("qwen3", max_position_embeddings=256, rope_scaling=yarn))
    with pytest.warns(UserWarning, match=r"\['attn_factor'\] are not yarn RoPE parameters"):
        odd = ModelConfig.from_hf_dict(
            minimal("qwen3", max_position_embeddings=256, rope_scaling={**yarn, "attn_factor": 0.5})
        )
    from r1.model.rope import inv_frequencies

    a, b = inv_frequencies(plain), inv_frequencies(odd)
    assert torch.equal(a[0], b[0]) and a[1] == b[1] == pytest.approx(0.1 * torch.log(torch.tensor(4.0)).item() + 1)
