"""The R1 family's published configs (tests/fixtures/published_configs): exact parameter counts, and both-ways
logit parity with transformers for a tiny model with each config's features (only sizes shrunk)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import warnings
from pathlib import Path

import pytest

transformers = pytest.importorskip("transformers")

from hf_twins import TOL, r1_to_transformers, transformers_to_r1  # noqa: E402

from r1.cli import main as cli  # noqa: E402
from r1.model.checkpoint import load_config  # noqa: E402
from r1.model.info import model_info  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

FIXTURES = Path(__file__).parent / "fixtures" / "published_configs"
_spec = importlib.util.spec_from_file_location("published_configs_build", FIXTURES / "build.py")
build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build)

# transformers 5.25 on the meta device: sum of model.parameters(), and the persistent buffers (the fp32
# e_score_correction_bias of each MoE layer) that the checkpoint also stores. README.md records the same numbers.
COUNTS = {
    "DeepSeek-R1": (671_026_404_352, 14_848),
    "DeepSeek-V3": (671_026_404_352, 14_848),
    "DeepSeek-R1-Distill-Qwen-1.5B": (1_777_088_000, 0),
    "DeepSeek-R1-Distill-Qwen-7B": (7_615_616_512, 0),
    "DeepSeek-R1-Distill-Qwen-14B": (14_770_033_664, 0),
    "DeepSeek-R1-Distill-Qwen-32B": (32_763_876_352, 0),
    "DeepSeek-R1-Distill-Llama-8B": (8_030_261_248, 0),
    "DeepSeek-R1-Distill-Llama-70B": (70_553_706_496, 0),
    "DeepSeek-R1-0528-Qwen3-8B": (8_190_735_360, 0),
}
NAMES = list(COUNTS)


def published(name: str) -> dict:
    return json.loads((FIXTURES / name / "config.json").read_text())


def r1_config(name: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # R1-0528-Qwen3-8B's `attn_factor` (tested in test_hf_configs.py)
        return load_config(FIXTURES / name)


def test_every_fixture_is_listed():
    assert sorted(p.name for p in build.fixture_dirs()) == sorted(NAMES)


@pytest.mark.parametrize("name", build.EXACT)
def test_exact_fixtures_are_the_published_bytes(name):
    # sha256 as recorded in SOURCES.md (git blob ids there identify the same bytes on the hub)
    sources = (FIXTURES / "SOURCES.md").read_text()
    for f in ("config.json", "generation_config.json"):
        digest = hashlib.sha256((FIXTURES / name / f).read_bytes()).hexdigest()
        assert f"`{name}/{f}` |" in sources and digest in sources, f


def test_built_fixtures_are_what_build_py_writes(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        written = build.write_built(tmp_path)
    assert len(written) == len(NAMES) - len(build.EXACT)
    for f in written:
        ours, committed = json.loads(f.read_text()), published(f.parent.name)
        assert ours == committed, f.parent.name


@pytest.mark.parametrize("name", NAMES)
def test_parameter_count_equals_transformers(name, capsys):
    params, buffers = COUNTS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert build.transformers_counts(FIXTURES / name) == (params, buffers)
    info = model_info(r1_config(name))
    assert (info.parameters, info.buffers, info.total) == (params, buffers, params + buffers)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert cli(["model", "info", "--model", str(FIXTURES / name)]) == 0
    out = capsys.readouterr().out
    assert f"({params + buffers:,})   (main model's checkpoint tensors, without MTP)" in out
    if buffers:
        assert f"= {params:,} parameters + {buffers:,} fp32 routing-bias buffers" in out


def test_distill_qwen_15b_has_its_qkv_biases():
    cfg = r1_config("DeepSeek-R1-Distill-Qwen-1.5B")
    assert "attention_bias" not in published("DeepSeek-R1-Distill-Qwen-1.5B")
    assert cfg.attention_bias and not cfg.o_proj_bias and model_info(cfg).total == 1_777_088_000


# ------------------------------------------------------------------------------------------ tiny twins
def tiny(name: str) -> dict:
    """The published config with its sizes shrunk and nothing else changed (token ids moved into the small
    vocabulary; FP8 `quantization_config` dropped: the tiny weights are fp32, FP8 is tested in test_hf_parity)."""
    d = published(name)
    d.pop("quantization_config", None)
    layers = 4 if d["model_type"].startswith("deepseek") else 2  # R1 keeps first_k_dense_replace = 3
    d.update(vocab_size=256, hidden_size=64, intermediate_size=96, num_hidden_layers=layers, num_attention_heads=4)
    if d["model_type"].startswith("deepseek"):
        d.update(num_key_value_heads=4, moe_intermediate_size=16, n_routed_experts=16, kv_lora_rank=16,
                 q_lora_rank=24, qk_nope_head_dim=8, qk_rope_head_dim=8, v_head_dim=8)  # fmt: skip
        d.pop("head_dim", None), d.pop("qk_head_dim", None)
    else:
        d.update(num_key_value_heads=2)
        if "head_dim" in d:
            d["head_dim"] = 16
    if d.get("layer_types"):
        d["layer_types"] = d["layer_types"][:layers]
    for key in ("bos_token_id", "eos_token_id"):
        if d.get(key) is not None:
            d[key] = {"bos_token_id": 1, "eos_token_id": 2}[key]
    return d


def test_tiny_twins_keep_the_published_features():
    r1 = r1_config("DeepSeek-R1")
    t = load_tiny("DeepSeek-R1")
    for key in (
        "n_group",
        "topk_group",
        "num_experts_per_tok",
        "routed_scaling_factor",
        "norm_topk_prob",
        "first_k_dense_replace",
        "rope_scaling",
        "rope_theta",
        "rms_norm_eps",
        "max_position_embeddings",
    ):
        assert getattr(t, key) == getattr(r1, key), key
    q3 = load_tiny("DeepSeek-R1-0528-Qwen3-8B")
    assert q3.qk_norm and q3.rope_type == "yarn" and q3.rope_scaling["factor"] == 4.0 and not q3.tie_word_embeddings
    assert load_tiny("DeepSeek-R1-Distill-Llama-8B").rope_type == "llama3"
    assert load_tiny("DeepSeek-R1-Distill-Qwen-14B").rms_norm_eps == 1e-5


def load_tiny(name: str):
    from r1.model import ModelConfig

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ModelConfig.from_hf_dict(tiny(name))


@pytest.mark.parametrize("name", NAMES)
def test_transformers_checkpoint_of_published_config_loads_in_r1(name, tmp_path):
    # config.json is the (shrunk) published file itself, not transformers' re-serialisation of it
    assert transformers_to_r1(tiny(name), tmp_path, seed=7, write_config=tiny(name)) <= TOL


@pytest.mark.parametrize("name", NAMES)
def test_r1_checkpoint_of_published_config_loads_in_transformers(name, tmp_path):
    assert r1_to_transformers(tiny(name), tmp_path, seed=9) <= TOL
