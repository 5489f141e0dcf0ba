"""Helpers for tests that build the same network in r1 and in transformers and compare their logits."""

from __future__ import annotations

import contextlib
import json
import warnings
from pathlib import Path

import torch
import transformers

from r1.model import ModelConfig, Transformer
from r1.model.checkpoint import load_pretrained, save_pretrained

TOL = 1e-4  # fp32 logits, r1 vs transformers


def randomize(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Random values in every tensor, so no bias is zero and no norm weight is one: a parity test then covers them.
    1-D weights of norms around 1, routing-correction biases in [0, 0.2), everything else N(0, 0.2)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in [*model.named_parameters(), *model.named_buffers()]:
            if not t.is_floating_point() or name.endswith("inv_freq"):
                continue
            if name.endswith("e_score_correction_bias"):
                t.copy_(torch.rand(t.shape, generator=g) * 0.2)
            elif "norm" in name:
                t.copy_(1 + 0.2 * torch.randn(t.shape, generator=g))
            else:
                t.copy_(0.2 * torch.randn(t.shape, generator=g))
    return model.eval()


def ids_for(vocab: int, seed: int = 1, shape: tuple[int, int] = (2, 24)) -> torch.Tensor:
    return torch.randint(0, vocab, shape, generator=torch.Generator().manual_seed(seed))


def hf_model(config: dict, seed: int) -> transformers.PreTrainedModel:
    """transformers' own model for a config.json dict, fp32, random weights."""
    cfg = transformers.AutoConfig.for_model(**config)
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    return randomize(model, seed)


def quiet_mtp(cfg: ModelConfig):
    """transformers drops MTP weights: r1 then warns it keeps a fresh MTP module. Expect exactly that."""
    if cfg.num_nextn_predict_layers:
        import pytest

        return pytest.warns(UserWarning, match="no MTP weights")
    return contextlib.nullcontext()


def load_r1(path: Path) -> Transformer:
    from r1.model.checkpoint import load_config

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rope keys transformers ignores too (checked where they matter)
        cfg = load_config(path)
    with quiet_mtp(cfg):
        return load_pretrained(path, config=cfg)


def transformers_to_r1(config: dict, tmp: Path, seed: int = 0, write_config: dict | None = None) -> float:
    """Max |logit difference| after transformers writes a checkpoint (config.json replaced by `write_config`, the
    file as published, when given) and r1 loads it."""
    theirs = hf_model(config, seed)
    theirs.save_pretrained(tmp)
    if write_config is not None:
        (tmp / "config.json").write_text(json.dumps(write_config, indent=2))
    ours = load_r1(tmp)
    ids = ids_for(ours.config.vocab_size, seed + 1)
    with torch.no_grad():
        return (ours(ids).logits - theirs(ids).logits).abs().max().item()


def r1_to_transformers(config: dict, tmp: Path, seed: int = 0) -> float:
    """Max |logit difference| after r1 builds the model for a config.json dict, writes it, and transformers loads it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cfg = ModelConfig.from_hf_dict(config)
    torch.manual_seed(seed)
    ours = randomize(Transformer(cfg), seed)
    save_pretrained(ours, tmp)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = transformers.AutoModelForCausalLM.from_pretrained(tmp, dtype=torch.float32).eval()
    ids = ids_for(cfg.vocab_size, seed + 1)
    with torch.no_grad():
        return (ours(ids).logits - theirs(ids).logits).abs().max().item()
