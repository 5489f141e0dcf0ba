"""The decode step keeps the dense students' features: Llama's attention and MLP biases, Qwen3's q/k norms."""

from __future__ import annotations

import pytest
import torch

from r1.model import preset
from r1.model.transformer import Transformer

pytestmark = pytest.mark.usefixtures("one_thread")


def _random(cfg):
    torch.manual_seed(0)
    model = Transformer(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or "norm" in name:  # not zeros and ones: their terms must show
                p.add_(0.3 * torch.randn_like(p))
    return model


@pytest.mark.parametrize("cache_limit", [0, 1 << 30])  # modules as they are / fused weights where they apply
@pytest.mark.parametrize(
    "cfg",
    [
        preset("tiny-llama", attention_bias=True, mlp_bias=True, initializer_range=0.1),
        preset("tiny-qwen3", attention_bias=True, initializer_range=0.1),
    ],
    ids=["llama-biases", "qwen3-qk-norm"],
)
def test_decode_step_matches_forward(cfg, cache_limit):
    model = _random(cfg)
    fused = model.fused_weights(limit_bytes=cache_limit)
    g = torch.Generator().manual_seed(1)
    B, T = 3, 7
    ids = torch.randint(0, cfg.vocab_size, (B, T), generator=g)
    pos = torch.arange(T).expand(B, T)
    ours_cache, ref_cache = model.new_cache(B, 32), model.new_cache(B, 32)
    with torch.inference_mode():
        for cache in (ours_cache, ref_cache):
            model(ids, positions=pos, cache=cache)
        nxt, npos = ids[:, -1:], pos[:, -1:] + 1
        ours = model.decode_step(nxt, npos, ours_cache, fused)[:, -1]
        ref = model(nxt, positions=npos, cache=ref_cache, logits_to_keep=1).logits[:, -1]
        full = model(torch.cat((ids, nxt), 1), positions=torch.cat((pos, npos), 1)).logits[:, -1]
    assert (ours - ref).abs().max() < 1e-4 and (ref - full).abs().max() < 1e-4
