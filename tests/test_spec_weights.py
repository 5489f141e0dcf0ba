"""The MTP modules speculative decoding drafts with survive every stage and every save: pretrain → SFT → GRPO →
the published folder → `load_pretrained`, through the shipped configs as their comments run them (shortened)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from r1.cli import main as cli
from r1.engine import Engine, SamplingParams
from r1.model.checkpoint import load_pretrained, save_pretrained
from r1.tokenizer import Tokenizer

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[1]
FAST = ["train.threads=1", "checkpoint.every=0", "logging.progress=false", "logging.plots=false", "train.steps=2"]
GRPO = ["grpo.prompts_per_rollout=2", "grpo.group_size=4", "train.batch_size=8", "grpo.max_new_tokens=12",
        "grpo.train_items=8", "grpo.eval_items=2", "grpo.eval_k=2", "train.eval_every=0",
        "train.dtype=fp32"]  # fmt: skip


def mtp_tensors(folder: Path) -> dict[str, torch.Tensor]:
    """The checkpoint's MTP tensors, as stored: `model.layers.{num_hidden_layers}.*`."""
    L = json.loads((folder / "config.json").read_text())["num_hidden_layers"]
    tensors = load_file(str(folder / "model.safetensors"))
    return {k: v for k, v in tensors.items() if k.startswith(f"model.layers.{L}.")}


def test_mtp_weights_survive_pretrain_sft_grpo_publish_and_load(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    runs = {}
    stages = [
        ("pretrain", "pretrain-tiny", ["data.builtin=200", "train.batch_size=2", "data.seq_len=64"]),
        ("sft", "sft-tiny", ["train.batch_size=2"]),
        ("grpo", "r1-zero-tiny", GRPO),
    ]
    previous = None
    for name, config, fast in stages:
        base = [f"model.path={previous}"] if previous else []
        out = tmp_path / name
        argv = ["train", "--config", str(REPO / "configs" / f"{config}.yaml"), *base, *fast, *FAST, f"train.out={out}"]
        assert cli(argv) == 0
        runs[name] = out / "model"
        previous = runs[name]
    assert "freshly initialised" not in capsys.readouterr().err  # no stage lost the module on load

    stored = {name: mtp_tensors(folder) for name, folder in runs.items()}
    L = json.loads((runs["grpo"] / "config.json").read_text())["num_hidden_layers"]
    for name, tensors in stored.items():
        for part in ("eh_proj.weight", "enorm.weight", "hnorm.weight", "shared_head.norm.weight",
                     "self_attn.kv_a_proj_with_mqa.weight", "mlp.gate.e_score_correction_bias"):  # fmt: skip
            assert f"model.layers.{L}.{part}" in tensors, (name, part)
    key = f"model.layers.{L}.eh_proj.weight"
    # SFT trains the module further (its loss includes MTP's) from the pretrained values, not from a new init
    drift = (stored["sft"][key] - stored["pretrain"][key]).norm() / stored["pretrain"][key].norm()
    assert 0 < drift < 0.2
    # GRPO's loss has no MTP term: the module is carried through unchanged (its stored copies of the shared
    # embedding and head follow the main model's, which GRPO trains)
    shared = (f"model.layers.{L}.embed_tokens.weight", f"model.layers.{L}.shared_head.head.weight")
    assert all(torch.equal(stored["grpo"][k], stored["sft"][k]) for k in stored["sft"] if k not in shared)
    final = load_file(str(runs["grpo"] / "model.safetensors"))
    assert torch.equal(final[shared[0]], final["model.embed_tokens.weight"])
    assert torch.equal(final[shared[1]], final["lm_head.weight"])

    model = load_pretrained(runs["grpo"])
    assert torch.equal(model.mtp[0].eh_proj.weight, stored["grpo"][key])
    resaved = tmp_path / "resaved"
    save_pretrained(model, resaved)  # r1's own save keeps them too
    assert mtp_tensors(resaved).keys() == stored["grpo"].keys()
    assert all(torch.equal(v, stored["grpo"][k]) for k, v in mtp_tensors(resaved).items())
    save_pretrained(model, tmp_path / "bf16", dtype=torch.bfloat16)  # and so does a save in another dtype
    assert mtp_tensors(tmp_path / "bf16").keys() == stored["grpo"].keys()

    # and the final model drafts with them
    tok = Tokenizer.load(runs["grpo"])
    plain = Engine(model, tok, max_batch=2, speculative="off")
    spec = Engine(model, tok, max_batch=2, speculative="on", num_speculative_tokens=2)
    prompt = tok.encode("User: Compute 3+4*2 from left to right, mod 10. Assistant:")
    params = SamplingParams(temperature=0, max_tokens=24, ignore_eos=True)
    assert spec.generate([prompt], params)[0].samples[0].tokens == plain.generate([prompt], params)[0].samples[0].tokens
    assert spec.stats["spec_rounds"] > 0


def test_transformers_drops_the_mtp_module_and_r1_says_so_when_it_loads_such_a_folder(tmp_path):
    transformers = pytest.importorskip("transformers")
    from r1.assets import model_path

    base = model_path("base-tiny")
    hf = transformers.AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    L = hf.config.num_hidden_layers
    assert not any(k.startswith(f"model.layers.{L}.") for k in hf.state_dict())
    hf.save_pretrained(tmp_path / "hf")
    Tokenizer.load(base).save(tmp_path / "hf")
    with pytest.warns(UserWarning, match="MTP"):  # the module is freshly initialised, and r1 says so
        again = load_pretrained(tmp_path / "hf")
    assert not torch.equal(again.mtp[0].eh_proj.weight, load_pretrained(base).mtp[0].eh_proj.weight)
