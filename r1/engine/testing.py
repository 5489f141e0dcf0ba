"""Tiny random models and tokenizers for tests and benchmarks of anything that generates (engine, RL, eval, server).

The weights are random, so the text is gibberish, but every code path (MLA or GQA cache, MoE routing, sampling,
stop handling, streaming) runs for real in well under a second on a CPU.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import torch

from r1.data.tokenizer_corpus import default_training_text
from r1.model import Transformer, preset
from r1.tokenizer import Tokenizer


@lru_cache(maxsize=4)
def tiny_tokenizer(vocab_size: int = 512) -> Tokenizer:
    """A BPE trained on 3000 lines of the built-in corpus (cached: training it again would only cost time)."""
    return Tokenizer.train(default_training_text(3000), vocab_size=vocab_size)


def tiny_model(
    tokenizer: Tokenizer, kind: str = "tiny", seed: int = 0, max_len: int = 512, init_std: float = 0.1
) -> Transformer:
    """A random `kind` preset ("tiny" = DeepSeek-V3 shape, "tiny-qwen2", "tiny-llama") matching `tokenizer`.

    `init_std` 0.1 (not the preset's 0.006) gives peaked next-token distributions, so greedy decoding has no
    near-ties that float noise could flip.
    """
    cfg = preset(
        kind,
        vocab_size=tokenizer.vocab_size,
        eos_token_id=tokenizer.eos_id,
        bos_token_id=tokenizer.bos_id,
        max_position_embeddings=max_len,
        initializer_range=init_std,
    )
    torch.manual_seed(seed)
    return Transformer(cfg).eval()


def save_tiny(path: str | os.PathLike, kind: str = "tiny", seed: int = 0, max_len: int = 512) -> Path:
    """Write a tiny random model and its tokenizer into one directory, as `Engine.from_pretrained` expects."""
    from r1.model.checkpoint import save_pretrained

    tok = tiny_tokenizer()
    save_pretrained(tiny_model(tok, kind, seed, max_len), path)
    tok.save(path)
    return Path(path)
