"""Checkpoints cross the r1 ⇄ transformers boundary both ways, with logits equal to ≤ 1e-4 in fp32."""

from __future__ import annotations

import json

import pytest
import torch

transformers = pytest.importorskip("transformers")

from r1.errors import CheckpointError  # noqa: E402
from r1.model import ModelConfig, Transformer  # noqa: E402
from r1.model.checkpoint import load_pretrained, save_pretrained  # noqa: E402

YARN = {
    "type": "yarn",
    "rope_type": "yarn",
    "factor": 4.0,
    "original_max_position_embeddings": 64,
    "beta_fast": 32,
    "beta_slow": 1,
    "mscale": 1.0,
    "mscale_all_dim": 1.0,
}


def v3(**kw) -> ModelConfig:
    base = dict(
        model_type="deepseek_v3",
        vocab_size=101,
        hidden_size=32,
        intermediate_size=48,
        moe_intermediate_size=16,
        num_hidden_layers=3,
        first_k_dense_replace=1,
        num_attention_heads=4,
        n_routed_experts=8,
        n_shared_experts=1,
        num_experts_per_tok=2,
        n_group=4,
        topk_group=2,
        routed_scaling_factor=2.5,
        q_lora_rank=24,
        kv_lora_rank=16,
        qk_nope_head_dim=8,
        qk_rope_head_dim=8,
        v_head_dim=8,
        max_position_embeddings=256,
        num_nextn_predict_layers=1,
        initializer_range=0.2,
    )
    base.update(kw)
    return ModelConfig(**base)


def dense(model_type: str, **kw) -> ModelConfig:
    base = dict(
        model_type=model_type,
        vocab_size=101,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        max_position_embeddings=256,
        initializer_range=0.2,
    )
    base.update(kw)
    return ModelConfig(**base)


CONFIGS = {
    "v3-qlora-groups-yarn-mtp": v3(rope_scaling=YARN),
    "v3-no-qlora-one-group": v3(q_lora_rank=None, n_group=1, topk_group=1),
    "v3-groups-no-mtp": v3(num_nextn_predict_layers=0, n_group=2, topk_group=1, num_experts_per_tok=3),
    "qwen2-bias-tied": dense("qwen2", attention_bias=True, tie_word_embeddings=True),
    "llama-llama3-rope": dense(
        "llama",
        rope_theta=500000.0,
        rope_scaling={
            "rope_type": "llama3",
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 32,
        },
    ),
}


def _random_model(cfg: ModelConfig, seed: int = 0) -> Transformer:
    torch.manual_seed(seed)
    model = Transformer(cfg)
    with torch.no_grad():
        for moe in model.moe_layers():  # a non-zero bias makes the parity test cover biased selection
            moe.gate.e_score_correction_bias.uniform_(0, 0.2)
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0, 0.2)
    return model.eval()


def _ids(cfg: ModelConfig, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, cfg.vocab_size, (2, 40), generator=g)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_r1_checkpoint_loads_in_transformers(name, tmp_path):
    cfg = CONFIGS[name]
    ours = _random_model(cfg)
    save_pretrained(ours, tmp_path)
    theirs = transformers.AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.float32).eval()
    ids = _ids(cfg)
    with torch.no_grad():
        a = ours(ids).logits
        b = theirs(ids).logits
    assert (a - b).abs().max().item() <= 1e-4


@pytest.mark.parametrize("name", list(CONFIGS))
def test_transformers_checkpoint_loads_in_r1(name, tmp_path):
    cfg = CONFIGS[name]
    src = _random_model(cfg, seed=3)
    save_pretrained(src, tmp_path / "src")
    theirs = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "src", dtype=torch.float32).eval()
    theirs.save_pretrained(tmp_path / "hf")
    with pytest.warns(UserWarning, match="no MTP weights") if cfg.num_nextn_predict_layers else _nullcontext():
        ours = load_pretrained(tmp_path / "hf")
    ids = _ids(cfg, seed=5)
    with torch.no_grad():
        a = ours(ids).logits
        b = theirs(ids).logits
    assert (a - b).abs().max().item() <= 1e-4


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_mtp_weights_use_the_hf_layout_and_round_trip(tmp_path):
    cfg = CONFIGS["v3-qlora-groups-yarn-mtp"]
    model = _random_model(cfg)
    save_pretrained(model, tmp_path)
    from safetensors import safe_open

    with safe_open(str(tmp_path / "model.safetensors"), "pt") as f:
        keys = set(f.keys())
        L = cfg.num_hidden_layers
        for k in ("enorm", "hnorm", "eh_proj", "shared_head.norm", "embed_tokens", "shared_head.head"):
            assert f"model.layers.{L}.{k}.weight" in keys
        assert f"model.layers.{L}.mlp.experts.7.down_proj.weight" in keys
        assert f.get_tensor("model.layers.1.mlp.gate.e_score_correction_bias").dtype == torch.float32
    again = load_pretrained(tmp_path)
    ids = _ids(cfg)
    with torch.no_grad():
        assert torch.equal(model(ids, labels=ids).mtp_loss, again(ids, labels=ids).mtp_loss)


def test_bf16_save_keeps_router_bias_fp32(tmp_path):
    model = _random_model(CONFIGS["v3-no-qlora-one-group"])
    save_pretrained(model, tmp_path, dtype=torch.bfloat16)
    loaded = load_pretrained(tmp_path)
    assert loaded.model.embed_tokens.weight.dtype == torch.bfloat16
    for moe in loaded.moe_layers():
        assert moe.gate.e_score_correction_bias.dtype == torch.float32
    assert json.loads((tmp_path / "config.json").read_text())["torch_dtype"] == "bfloat16"


def test_sharded_checkpoint_with_index(tmp_path):
    model = _random_model(CONFIGS["v3-qlora-groups-yarn-mtp"])
    save_pretrained(model, tmp_path, max_shard_bytes=64 * 1024)
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) > 2 and shards[0].startswith("model-00001-of-")
    assert not (tmp_path / "model.safetensors").exists()
    ids = _ids(model.config)
    with torch.no_grad():
        assert torch.equal(model(ids).logits, load_pretrained(tmp_path)(ids).logits)
    theirs = transformers.AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.float32).eval()
    with torch.no_grad():
        assert (model(ids).logits - theirs(ids).logits).abs().max() <= 1e-4


def test_fp8_block_scales_are_dequantised(tmp_path):
    from safetensors.torch import save_file

    cfg = dense("llama", hidden_size=256, intermediate_size=320, num_attention_heads=4, head_dim=64)
    model = _random_model(cfg)
    save_pretrained(model, tmp_path)
    from r1.model.checkpoint import read_safetensors

    tensors = read_safetensors(tmp_path)
    name = "model.layers.0.mlp.down_proj.weight"  # [256, 320]: scales [2, 3], the last block column is partial
    w = tensors[name]
    scale = torch.rand(2, 3) + 0.5
    rep = scale.repeat_interleave(128, 0)[:256].repeat_interleave(128, 1)[:, :320]
    fp8 = (w / rep).to(torch.float8_e4m3fn)
    tensors[name] = fp8
    tensors[name + "_scale_inv"] = scale
    save_file(tensors, str(tmp_path / "model.safetensors"))
    loaded = load_pretrained(tmp_path)
    expect = (fp8.float() * rep).to(torch.bfloat16).float()
    got = loaded.model.layers[0].mlp.down_proj.weight.float()
    assert torch.equal(got, expect)
    assert (got - w).abs().max() < 0.1 * w.abs().max()  # and it is the original weight up to fp8 rounding


def test_mismatch_lists_missing_unexpected_and_misshaped_keys(tmp_path):
    model = _random_model(CONFIGS["llama-llama3-rope"])
    save_pretrained(model, tmp_path)
    from safetensors.torch import load_file, save_file

    t = load_file(str(tmp_path / "model.safetensors"))
    del t["model.layers.0.mlp.up_proj.weight"]
    t["model.layers.0.mlp.extra.weight"] = torch.zeros(2)
    t["model.norm.weight"] = torch.zeros(7)
    save_file(t, str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointError) as err:
        load_pretrained(tmp_path)
    msg = str(err.value)
    assert "missing: model.layers.0.mlp.up_proj.weight" in msg
    assert "unexpected: model.layers.0.mlp.extra.weight" in msg
    assert "mis-shaped: model.norm.weight: file (7,) vs model (32,)" in msg


def test_only_safetensors_are_read(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(CONFIGS["llama-llama3-rope"].to_hf_dict()))
    (tmp_path / "pytorch_model.bin").write_bytes(b"not read")
    with pytest.raises(CheckpointError, match="safetensors only"):
        load_pretrained(tmp_path)


def test_corrupt_file_is_named(tmp_path):
    model = _random_model(CONFIGS["llama-llama3-rope"])
    save_pretrained(model, tmp_path)
    f = tmp_path / "model.safetensors"
    f.write_bytes(f.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="model.safetensors: cannot read"):
        load_pretrained(tmp_path)


def _bf16_hf_checkpoint(tmp_path, norms_fp32: bool = False):
    """A transformers Llama (attention + MLP biases) written in bf16, as every published checkpoint is stored."""
    from hf_twins import hf_model

    d = {"model_type": "llama", "vocab_size": 101, "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2,
         "num_attention_heads": 4, "num_key_value_heads": 2, "attention_bias": True, "mlp_bias": True}  # fmt: skip
    theirs = hf_model(d, seed=11).to(torch.bfloat16)
    theirs.save_pretrained(tmp_path)
    if norms_fp32:  # a mixed-dtype file: norms in fp32, the rest in bf16
        from safetensors.torch import load_file, save_file

        t = load_file(str(tmp_path / "model.safetensors"))
        save_file({k: v.float() if "norm" in k else v for k, v in t.items()}, str(tmp_path / "model.safetensors"))
    return theirs


def test_bf16_checkpoint_loads_as_stored_or_in_the_dtype_asked(tmp_path):
    _bf16_hf_checkpoint(tmp_path)
    ours = load_pretrained(tmp_path)
    assert {p.dtype for p in ours.parameters()} == {torch.bfloat16}
    ids = _ids(ours.config)
    fp32 = load_pretrained(tmp_path, dtype=torch.float32)
    assert {p.dtype for p in fp32.parameters()} == {torch.float32}
    theirs32 = transformers.AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.float32).eval()
    with torch.no_grad():
        want = theirs32(ids).logits
        assert (fp32(ids).logits - want).abs().max() <= 1e-4  # the same bf16 weights, computed in fp32
        got = ours(ids).logits  # computed in bf16
        assert got.dtype == torch.bfloat16 and (got.float() - want).abs().max() < 0.05 * want.abs().max()
    assert json.loads((tmp_path / "config.json").read_text())["dtype"] == "bfloat16"


def test_mixed_dtype_checkpoint_loads_in_one_dtype(tmp_path):
    _bf16_hf_checkpoint(tmp_path, norms_fp32=True)
    ours = load_pretrained(tmp_path)  # most elements are bf16: the whole model is
    assert {p.dtype for p in ours.parameters()} == {torch.bfloat16}
    with torch.no_grad():
        assert ours(_ids(ours.config)).logits.isfinite().all()


def test_r1_bf16_save_records_the_stored_dtype(tmp_path):
    model = _random_model(CONFIGS["qwen2-bias-tied"]).to(torch.bfloat16)
    save_pretrained(model, tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["torch_dtype"] == "bfloat16"
    assert load_pretrained(tmp_path).lm_head.weight.dtype == torch.bfloat16


def test_fp8_deepseek_checkpoint_with_its_quantization_config(tmp_path):
    """R1's own layout: FP8 linear weights with `weight_scale_inv` blocks and `quantization_config` in config.json."""
    from safetensors.torch import save_file

    from r1.model.checkpoint import read_safetensors

    cfg = v3(num_nextn_predict_layers=0)
    save_pretrained(_random_model(cfg), tmp_path)
    tensors = read_safetensors(tmp_path)
    expect = {}
    g = torch.Generator().manual_seed(0)
    for name, w in list(tensors.items()):
        if w.dim() == 2 and "proj" in name:  # every linear layer, as in the published checkpoint
            scale = torch.rand(1, 1, generator=g) + 0.5
            tensors[name] = (w / scale).to(torch.float8_e4m3fn)
            tensors[name + "_scale_inv"] = scale
            expect[name] = (tensors[name].float() * scale).to(torch.bfloat16)
    save_file(tensors, str(tmp_path / "model.safetensors"))
    published = json.loads(open(_published("DeepSeek-R1")).read())
    hf = json.loads((tmp_path / "config.json").read_text())
    hf["quantization_config"] = published["quantization_config"]
    (tmp_path / "config.json").write_text(json.dumps(hf))
    loaded = load_pretrained(tmp_path, dtype=torch.float32)
    state = loaded.state_dict()
    for name, want in expect.items():
        assert torch.equal(state[name], want.float()), name
    assert load_pretrained(tmp_path).model.layers[0].self_attn.kv_b_proj.weight.dtype == torch.bfloat16


def _published(name: str):
    from pathlib import Path

    return Path(__file__).parent / "fixtures" / "published_configs" / name / "config.json"
