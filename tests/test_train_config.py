"""Training configs (strict keys, types, overrides), lr schedules and AdamW parameter groups."""

from __future__ import annotations

import pytest
import torch
from trainer_fixtures import tiny_config

from r1.errors import ConfigError
from r1.model import Transformer
from r1.train.config import ScheduleSection, TrainConfig, config_changes, load_config, model_config, shaping
from r1.train.optim import lr_factor, param_groups


def test_shipped_configs_load_and_round_trip():
    for name in ("configs/pretrain-tiny.yaml", "configs/sft-tiny.yaml"):
        cfg = load_config(name)
        again = TrainConfig.from_dict(cfg.to_dict())
        assert again == cfg
    cfg = load_config("configs/pretrain-tiny.yaml")
    assert cfg.optim.betas == [0.9, 0.95] and cfg.optim.weight_decay == 0.1 and cfg.optim.grad_clip == 1.0
    assert cfg.schedule.kind == "cosine" and cfg.schedule.warmup_steps > 0


def test_unknown_key_lists_valid_keys_and_suggests_the_closest():
    with pytest.raises(ConfigError) as e:
        load_config(None, ["train.stpes=5"])
    msg = str(e.value)
    assert "train.stpes" in msg and "did you mean 'steps'" in msg and "batch_size" in msg and "seed" in msg
    with pytest.raises(ConfigError, match="unknown key 'optimizer'.*did you mean 'optim'"):
        load_config(None, ["optimizer.lr=1"])
    with pytest.raises(ConfigError, match="did you mean 'hidden_size'"):
        load_config(None, ["model.hiden_size=64"])


def test_dotted_overrides_and_yaml_file(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("model: tiny\noptim:\n  lr: 3e-4\ntrain:\n  steps: 7\n")
    cfg = load_config(f, ["optim.betas=[0.8, 0.9]", "model.hidden_size=64", "train.dtype=bf16"])
    assert cfg.optim.lr == 3e-4 and isinstance(cfg.optim.lr, float)  # PyYAML reads 3e-4 as a string
    assert cfg.train.steps == 7 and cfg.optim.betas == [0.8, 0.9] and cfg.train.dtype == "bf16"
    assert cfg.model.preset == "tiny" and cfg.model.overrides == {"hidden_size": 64}
    assert cfg.to_dict()["model"] == {"preset": "tiny", "path": None, "hidden_size": 64}
    assert load_config(None, ["model=/some/dir"]).model.path == "/some/dir"


def test_type_and_value_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"train\.steps: expected an integer, got 'many'"):
        load_config(None, ["train.steps=many"])
    with pytest.raises(ConfigError, match=r"optim\.lr: expected a number"):
        load_config(None, ["optim.lr=fast"])
    with pytest.raises(ConfigError, match=r"train\.dtype='fp8': must be one of fp32, bf16"):
        load_config(None, ["train.dtype=fp8"])
    with pytest.raises(ConfigError, match=r"model\.num_hidden_layers: expected an integer"):
        load_config(None, ["model.num_hidden_layers=2.5"])
    with pytest.raises(ConfigError, match="divisible by the number of processes"):
        load_config(None, ["train.batch_size=3"]).accumulation(2)
    assert load_config(None, ["train.batch_size=8", "train.micro_batch_size=2"]).accumulation(2) == (2, 2)


def test_schedules_at_key_steps():
    cos = ScheduleSection(kind="cosine", warmup_steps=10, min_lr_ratio=0.1)
    assert lr_factor(0, 110, cos) == pytest.approx(0.1)  # the first step already moves
    assert lr_factor(9, 110, cos) == pytest.approx(1.0)
    assert lr_factor(10, 110, cos) == pytest.approx(1.0)
    assert lr_factor(59, 110, cos) == pytest.approx(0.55, abs=0.02)  # half way down the cosine
    assert lr_factor(109, 110, cos) == pytest.approx(0.1)
    wsd = ScheduleSection(kind="wsd", warmup_steps=10, min_lr_ratio=0.0, decay_fraction=0.2)
    assert lr_factor(50, 100, wsd) == 1.0 and lr_factor(79, 100, wsd) == 1.0
    assert lr_factor(89, 100, wsd) == pytest.approx(0.5)
    assert lr_factor(99, 100, wsd) == pytest.approx(0.0)
    assert lr_factor(50, 100, ScheduleSection(kind="constant", warmup_steps=0)) == 1.0


def test_no_weight_decay_on_norms_and_biases_and_no_router_bias_in_optimizer(tmp_path):
    cfg = tiny_config(tmp_path)
    model = Transformer(model_config(cfg.model))
    decay, no_decay = param_groups(model, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim >= 2 for p in decay["params"]) and all(p.ndim == 1 for p in no_decay["params"])
    assert "model.embed_tokens.weight" in decay["names"] and "lm_head.weight" in decay["names"]
    assert any(n.endswith("input_layernorm.weight") for n in no_decay["names"])
    names = set(decay["names"]) | set(no_decay["names"])
    assert not any("e_score_correction_bias" in n for n in names)
    assert len(names) == len(list(model.parameters()))
    assert all(isinstance(b, torch.Tensor) for b in model.buffers())


def test_config_changes_list_what_differs_and_which_shape_the_steps_taken(tmp_path):
    before = tiny_config(tmp_path).to_dict()
    before["train"].pop("allow_config_change")  # a config written before the key existed still compares
    after = tiny_config(
        tmp_path, optim__lr=1e-3, train__steps=9, train__resume=True, logging__plots=True, model__hidden_size=32
    )
    changes = config_changes(before, after)
    assert changes == {
        "model.hidden_size": (64, 32),
        "optim.lr": (3e-3, 1e-3),
        "train.steps": (6, 9),
        "logging.plots": (False, True),
    }  # train.resume: how it was launched, never compared
    assert [k for k in changes if shaping(k)] == ["model.hidden_size", "optim.lr"]
    assert not shaping("train.steps") and not shaping("train.micro_batch_size") and shaping("train.batch_size")
    assert config_changes(before, tiny_config(tmp_path / "elsewhere")) == {}  # train.out is not a setting
    with pytest.raises(ConfigError, match=r"train\.overwrite=True: excludes train\.resume"):
        tiny_config(tmp_path, train__resume=True, train__overwrite=True)


def test_a_stage_owns_its_section_and_the_config_core_imports_no_stage(tmp_path):
    """`grpo:` is kept as a mapping and checked by the stage when it is built (unknown keys named, with the closest
    valid one); a section of another stage, or one for a stage that has none, is an error naming it."""
    import subprocess
    import sys

    from r1.train.core import Trainer

    code = "import sys, r1.train.config; print(sorted(m for m in sys.modules if m.startswith('r1.train.')))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "r1.train.config" in loaded and "r1.train.grpo" not in loaded
    cfg = load_config("r1-zero-tiny", ["grpo.bta=0.1", f"train.out={tmp_path / 'x'}"])
    assert cfg.options["bta"] == 0.1 and cfg.to_dict()["grpo"]["bta"] == 0.1  # kept, written back under its name
    with pytest.raises(ConfigError, match=r"unknown key 'grpo\.bta'; did you mean 'beta'\? valid keys in grpo: pre"):
        Trainer(cfg)
    with pytest.raises(ConfigError, match=r"grpo: the options of stage grpo, but this config's stage is 'sft'"):
        load_config("sft-tiny", ["grpo.beta=0.1"])
    with pytest.raises(ConfigError, match="stage pretrain has no options of its own"):
        Trainer(load_config(None, ["pretrain.steps=3", f"train.out={tmp_path / 'y'}"]))
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()  # refused before anything is written
