"""Per-token logprobs in OpenAI's two shapes (chat `content` entries; completions' `tokens`, `token_logprobs`,
`top_logprobs`, `text_offset`), built token by token so streamed and whole responses agree.

`logprobs_mode`, as vLLM names it: "raw_logprobs" (default) is log_softmax of the model's logits before temperature,
top-k and top-p, the same whatever the sampling settings (what scoring and calibration want); "processed_logprobs"
is the distribution each token was sampled from (greedy: 0 for its token, -inf for the rest). -inf is sent as
-9999.0, OpenAI's value (JSON has no infinity). Every generated token whose text is in the response is reported,
so a final EOS or stop id is not. `bytes` are the token's exact bytes for byte-level BPE and SentencePiece
byte-fallback tokens; `token` is their UTF-8 text (U+FFFD for part of a character) or "token_id:{id}" with vLLM's
`return_tokens_as_token_ids`.
"""

from __future__ import annotations

import json
import math
import re
from typing import TYPE_CHECKING, Any

from r1.tokenizer import IncrementalDecoder, Tokenizer

if TYPE_CHECKING:  # `r1 serve --help` reads LOGPROBS_MODES and should not wait for torch
    from r1.engine.requests import Sample, TopLogprobs

LOGPROBS_MODES = ("raw_logprobs", "processed_logprobs")
VERY_UNLIKELY = -9999.0
_BYTE_FALLBACK = re.compile(r"<0x([0-9A-Fa-f]{2})>")


def _byte_level_alphabet() -> dict[str, int]:
    """GPT-2's byte-to-printable-character table, inverted: the character each byte is written as in the vocab."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[chr(b)] = b
        else:
            chars[chr(256 + extra)] = b
            extra += 1
    return chars


class TokenBytes:
    """Each token id's exact bytes and display text, computed once per id."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer
        backend = tokenizer.backend
        self._added = {i: t.content for i, t in backend.get_added_tokens_decoder().items()}
        decoder = (json.loads(backend.to_str()).get("decoder") or {}) if backend.decoder is not None else {}
        kinds = {d.get("type") for d in decoder.get("decoders", [decoder]) if isinstance(d, dict)}
        self._alphabet = _byte_level_alphabet() if "ByteLevel" in kinds else None
        self._cache: dict[int, tuple[str, list[int]]] = {}

    def __call__(self, token_id: int) -> tuple[str, list[int]]:
        hit = self._cache.get(token_id)
        if hit is None:
            raw = self._bytes(token_id)
            hit = self._cache[token_id] = (raw.decode("utf-8", errors="replace"), list(raw))
        return hit

    def _bytes(self, token_id: int) -> bytes:
        if token_id in self._added:
            return self._added[token_id].encode()
        piece = self.tokenizer.id_to_token(token_id)
        if piece is None:
            return b""
        if self._alphabet is not None and all(c in self._alphabet for c in piece):
            return bytes(self._alphabet[c] for c in piece)
        m = _BYTE_FALLBACK.fullmatch(piece)
        if m:
            return bytes([int(m.group(1), 16)])
        return self.tokenizer.decode([token_id]).encode()


def _finite(x: float) -> float:
    return x if math.isfinite(x) and x > VERY_UNLIKELY else VERY_UNLIKELY


def reported_count(sample: Sample) -> int:
    """Tokens whose logprobs a response reports: all but a final stop token id (its text is not in the response)."""
    return len(sample.tokens) - (1 if isinstance(sample.stop_reason, int) and sample.tokens else 0)


class LogprobsBuilder:
    """One sample's logprobs, fed token by token; `take()` returns what was added since the last call, shaped."""

    def __init__(self, vocab: TokenBytes, processed: bool, chat: bool, as_ids: bool = False) -> None:
        self._vocab, self._processed, self._chat, self._as_ids = vocab, processed, chat, as_ids
        self._decoder = None if chat else IncrementalDecoder(vocab.tokenizer)
        self._offset = 0  # characters of text before the next token (legacy text_offset)
        self._pending: list[Any] = []
        self.taken = 0  # entries already returned by take()

    def add(self, token_id: int, logprob: float, model_logprob: float, top: TopLogprobs | None) -> None:
        value = _finite(logprob if self._processed else model_logprob)
        alternatives = [(t, _finite(lp if self._processed else mlp)) for t, lp, mlp in top or []]
        if self._chat:
            tops = [{"token": self._name(t), "logprob": v, "bytes": self._vocab(t)[1]} for t, v in alternatives]
            entry = {"token": self._name(token_id), "logprob": value, "bytes": self._vocab(token_id)[1],
                     "top_logprobs": tops}  # fmt: skip
        else:
            assert self._decoder is not None
            offset = self._offset
            self._offset += len(self._decoder.push(token_id))
            tops = {self._name(t): v for t, v in alternatives}
            tops.setdefault(self._name(token_id), value)  # OpenAI's legacy API always includes the sampled token
            entry = (self._name(token_id), value, tops, offset)
        self._pending.append(entry)

    def _name(self, token_id: int) -> str:
        return f"token_id:{token_id}" if self._as_ids else self._vocab(token_id)[0]

    def add_sample(self, sample: Sample) -> None:
        tops = sample.top_logprobs or [None] * len(sample.tokens)
        rows = zip(sample.tokens, sample.logprobs, sample.model_logprobs, tops)
        for _, row in zip(range(reported_count(sample)), rows):
            self.add(*row)

    def keep_first(self, total: int) -> None:
        """Drop pending entries beyond the first `total` of the sample (the final stop token, when it ends)."""
        del self._pending[max(0, total - self.taken) :]

    def take(self) -> dict[str, Any]:
        entries, self._pending = self._pending, []
        self.taken += len(entries)
        if self._chat:
            return {"content": entries, "refusal": None}
        if not entries:
            return {"tokens": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []}
        tokens, values, tops, offsets = (list(col) for col in zip(*entries))
        return {"tokens": tokens, "token_logprobs": values, "top_logprobs": tops, "text_offset": offsets}
