"""Sampling parameters and the vectorised sampler: temperature, top-k, top-p, per-request seeds.

One decode step samples every row of the batch with one set of tensor ops, whatever mix of parameters the rows
carry. Randomness comes from inverse-CDF sampling with one uniform per row and step, drawn from that sample's own
`torch.Generator`; a sample's tokens therefore depend only on its own seed and logits, never on which other
requests share the batch (batched and one-at-a-time generation agree).

Order of the transforms, as in Hugging Face and vLLM: temperature, then top-k, then top-p on the distribution that
top-k left (renormalised). Two log-probabilities come back per token:
- `logprob`: under the distribution actually sampled from (after temperature/top-k/top-p). Greedy decoding samples
  from a point mass, so its `logprob` is 0.
- `model_logprob`: `log_softmax` of the raw logits, what RL needs for the policy ratio and KL terms.
A request may also ask for the `top_logprobs` most likely tokens of each step (the server's OpenAI `top_logprobs`);
they are computed only for the rows that ask, after sampling, so the default path does no extra work.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from r1.errors import UserError

CDF_BLOCK = 64  # tokens per block of the sampler's two-level inverse CDF

UNIFORM_CHUNK = 64  # uniforms drawn per generator call; amortises the per-row cost over many steps
MASK64 = (1 << 64) - 1


@dataclass(frozen=True)
class SamplingParams:
    """How to sample one request. Invalid values raise `UserError` naming the parameter and its valid range.

    `max_tokens` counts generated tokens, the final EOS/stop token included; generation also ends when the sequence
    fills the engine's context (`finish_reason` "length"). `stop` strings end a sample and are cut from its text, as
    OpenAI does; `stop_token_ids` end it like EOS. `ignore_eos` keeps going past EOS (benchmarks, fixed-length runs).
    `seed` makes a request reproducible on its own: sample j draws from a generator seeded by (seed, j).
    `top_logprobs` > 0 also reports, per generated token, that many most likely tokens with both logprobs.
    """

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_tokens: int = 256
    stop_token_ids: tuple[int, ...] = ()
    stop: tuple[str, ...] = ()
    seed: int | None = None
    n: int = 1
    ignore_eos: bool = False
    top_logprobs: int = 0

    def __post_init__(self) -> None:
        # Accept lists (and a single stop string) for convenience; store tuples so params stay hashable and frozen.
        stop = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())
        object.__setattr__(self, "stop", stop)
        object.__setattr__(self, "stop_token_ids", tuple(self.stop_token_ids or ()))
        self.validate()

    def validate(self) -> None:
        t = self.temperature
        if _bad_number(t) or not 0.0 <= t <= 100.0:
            raise UserError(f"temperature={t!r}: must be a number in [0, 100] (0 = greedy)")
        if _bad_number(self.top_p) or not 0.0 < self.top_p <= 1.0:
            raise UserError(f"top_p={self.top_p!r}: must be a number in (0, 1]")
        if not _is_int(self.top_k) or self.top_k < 0:
            raise UserError(f"top_k={self.top_k!r}: must be an integer >= 0 (0 = no top-k)")
        if not _is_int(self.max_tokens) or self.max_tokens < 1:
            raise UserError(f"max_tokens={self.max_tokens!r}: must be an integer >= 1")
        if not _is_int(self.n) or self.n < 1:
            raise UserError(f"n={self.n!r}: must be an integer >= 1")
        if not _is_int(self.top_logprobs) or self.top_logprobs < 0:
            raise UserError(f"top_logprobs={self.top_logprobs!r}: must be an integer >= 0 (0 = none)")
        if self.seed is not None and (not _is_int(self.seed) or not -(2**63) <= self.seed < 2**64):
            raise UserError(f"seed={self.seed!r}: must be an integer in [-2**63, 2**64) or None")
        for tid in self.stop_token_ids:
            if not _is_int(tid) or tid < 0:
                raise UserError(f"stop_token_ids: {tid!r} is not a token id (an integer >= 0)")
        for s in self.stop:
            if not isinstance(s, str) or not s:
                raise UserError(f"stop: {s!r} is not a non-empty string")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    def with_(self, **changes) -> SamplingParams:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _bad_number(x) -> bool:
    return isinstance(x, bool) or not isinstance(x, (int, float)) or math.isnan(x)


def sample_seed(seed: int | None, index: int) -> int:
    """A 64-bit seed for sample `index` of a request (splitmix64), so the n samples of one seed differ.

    Without a seed, fresh OS entropy: unseeded requests must not repeat each other.
    """
    if seed is None:
        return secrets.randbits(63)
    z = (seed * 0x9E3779B97F4A7C15 + (index + 1) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


class UniformStream:
    """Uniforms in [0, 1) from one sample's own generator, drawn in chunks to keep per-step overhead low."""

    __slots__ = ("_gen", "_buf", "_pos")

    def __init__(self, seed: int) -> None:
        self._gen = torch.Generator().manual_seed(seed)
        self._buf: list[float] = []
        self._pos = 0

    def next(self) -> float:
        if self._pos == len(self._buf):
            self._buf = torch.rand(UNIFORM_CHUNK, generator=self._gen, dtype=torch.float64).tolist()
            self._pos = 0
        self._pos += 1
        return self._buf[self._pos - 1]


@dataclass
class BatchParams:
    """Per-row sampling parameters as tensors, rebuilt only when the batch's rows change.

    The flags let a step skip whole stages: no sort unless some row truncates, no top-k masking unless some row
    asks for it, no second softmax when every sampled row has temperature 1.
    """

    temperature: torch.Tensor  # [B] float32; 0 = greedy
    top_k: torch.Tensor  # [B] int64; 0 = off
    top_p: torch.Tensor  # [B] float32; 1 = off
    all_greedy: bool
    any_greedy: bool
    truncate: bool  # some row uses top-k or top-p
    any_top_k: bool = False
    unit_temperature: bool = False  # every non-greedy row has temperature 1: sampling probs = model probs
    top_logprobs: int = 0  # the largest `top_logprobs` any row asks for (0: no row does)
    # per-batch columns of the top-k/top-p cut, derived once per vocabulary size instead of at every step
    _cut: tuple[int, torch.Tensor, torch.Tensor, torch.Tensor, bool] | None = field(
        default=None, repr=False, compare=False
    )

    @classmethod
    def build(cls, params: list[SamplingParams], device: torch.device | str = "cpu") -> BatchParams:
        sampled = [p for p in params if not p.greedy]
        return cls(
            temperature=torch.tensor([p.temperature for p in params], dtype=torch.float32, device=device),
            top_k=torch.tensor([p.top_k for p in params], dtype=torch.long, device=device),
            top_p=torch.tensor([p.top_p for p in params], dtype=torch.float32, device=device),
            all_greedy=not sampled,
            any_greedy=len(sampled) < len(params),
            truncate=any(p.top_k > 0 or p.top_p < 1.0 for p in sampled),
            any_top_k=any(p.top_k > 0 for p in sampled),
            unit_temperature=all(p.temperature == 1.0 for p in sampled),
            top_logprobs=max((p.top_logprobs for p in params), default=0),
        )

    def cut_columns(self, V: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, bool]:
        """(top-k as a [B, 1] count, V where off; top_p [B, 1]; rows without top-p [B, 1]; whether any row is
        without top-p) for a vocabulary of V tokens."""
        if self._cut is None or self._cut[0] != V:
            k = torch.where(self.top_k > 0, self.top_k.clamp(max=V), torch.full_like(self.top_k, V))[:, None]
            p = self.top_p[:, None]
            open_p = p >= 1.0
            self._cut = (V, k, p, open_p, bool(open_p.any()))
        return self._cut[1:]

    def index(self, rows: torch.Tensor) -> BatchParams:
        return BatchParams(
            self.temperature[rows],
            self.top_k[rows],
            self.top_p[rows],
            self.all_greedy,
            self.any_greedy,
            self.truncate,
            self.any_top_k,
            self.unit_temperature,
            self.top_logprobs,
        )


def sampling_logprobs(logits_BV: torch.Tensor, bp: BatchParams) -> torch.Tensor:
    """Log-probabilities [B, V] of the distribution each row samples from; tokens cut by top-k/top-p get -inf.

    The sampler itself never materialises this (it only needs the sampled tokens' values); tests compare it with an
    independent computation of the renormalised truncated distribution.
    """
    scaled_lp = _scaled_logprobs(logits_BV.float(), bp)
    keep = _keep_mask(scaled_lp.exp(), bp)
    if keep is None:
        return scaled_lp
    kept_mass = (scaled_lp.exp() * keep).sum(-1, keepdim=True)
    return (scaled_lp - kept_mass.log()).masked_fill(~keep, float("-inf"))


def top_logprobs(
    logits_BV: torch.Tensor, bp: BatchParams, tokens_B: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The k most likely tokens of each row: (ids [B, k], logprob [B, k], model_logprob [B, k]), most likely first.

    Ranked by the model's distribution; temperature, top-k and top-p keep that order, so the same ids are also the
    most likely under the distribution sampled from, where `logprob` is read (-inf for tokens the truncation cut).
    A greedy row sampled from a point mass on its token: 0 there, -inf elsewhere, as `sample` reports.
    """
    logits = logits_BV.float()
    k = min(k, logits.shape[-1])
    model_lp = logits.log_softmax(-1)
    model_top, ids = model_lp.topk(k, dim=-1)
    if bp.all_greedy:
        lp = torch.full_like(model_top, float("-inf"))
    else:
        lp = sampling_logprobs(logits, bp).gather(1, ids)
    if bp.any_greedy:
        point_mass = torch.where(ids == tokens_B[:, None], 0.0, float("-inf"))
        lp = torch.where((bp.temperature == 0)[:, None], point_mass, lp)
    return ids, lp, model_top


def _scaled_logprobs(logits: torch.Tensor, bp: BatchParams, model_lp: torch.Tensor | None = None) -> torch.Tensor:
    if bp.unit_temperature and model_lp is not None:
        return model_lp
    if bp.unit_temperature:
        return logits.log_softmax(-1)
    temp = torch.where(bp.temperature > 0, bp.temperature, torch.ones_like(bp.temperature))
    return (logits / temp[:, None]).log_softmax(-1)


def _keep_mask(probs: torch.Tensor, bp: BatchParams) -> torch.Tensor | None:
    """Which tokens survive top-k then top-p (None: all of them); see `_threshold`."""
    threshold = _threshold(probs, bp)
    return None if threshold is None else probs >= threshold


def _threshold(probs: torch.Tensor, bp: BatchParams) -> torch.Tensor | None:
    """Per row, the smallest probability that survives top-k then top-p ([B, 1]; None: no row truncates).

    Thresholds are found on the sorted probability *values* (on CPU numpy sorts values ~30x faster than torch sorts
    with indices) and applied in vocabulary order. A token survives top-k if its probability is at least the k-th
    largest, and top-p if the (top-k renormalised) mass of the tokens ranked before it is below top_p; tokens tied
    at a threshold are all kept, as in Hugging Face's top-k.
    """
    if not bp.truncate:
        return None
    V = probs.shape[-1]
    k, top_p, open_p, any_open = bp.cut_columns(V)
    desc = _sort_values_descending(probs)
    cum = desc.cumsum(-1)
    mass_k = cum.gather(1, k - 1) if bp.any_top_k else cum[:, -1:]  # what top-k keeps, to renormalise by
    # Token j (descending rank) is in the nucleus iff the mass ranked before it, cum[j-1], is below top_p·mass_k:
    # so the nucleus size is 1 + the number of cum entries below that limit.
    in_nucleus = torch.searchsorted(cum, top_p * mass_k).add_(1)
    count = torch.minimum(in_nucleus, k)
    if any_open:
        count = torch.where(open_p, k, count)
    return desc.gather(1, count.sub_(1))


def _sort_values_descending(x_BV: torch.Tensor) -> torch.Tensor:
    if x_BV.device.type == "cpu":
        return torch.from_numpy(np.ascontiguousarray(np.sort(x_BV.numpy(), axis=-1)[:, ::-1]))
    return x_BV.sort(dim=-1, descending=True).values


def sample(
    logits_BV: torch.Tensor, bp: BatchParams, uniforms_B: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sample one token per row. Returns (tokens [B] int64, logprob [B], model_logprob [B]).

    Inverse-CDF in vocabulary order: the token is the first whose cumulative kept probability exceeds u·(kept mass).
    Tokens with probability 0 (cut, or underflowed) are never chosen: the threshold stays strictly below the total.
    The sampled token's logprob is its scaled logprob minus the log of the kept mass (the renormalisation).
    """
    logits = logits_BV.float()
    if not (bp.truncate or bp.any_greedy):
        return _sample_full(logits, bp, uniforms_B)
    model_lp = logits.log_softmax(-1)
    greedy_tok = logits.argmax(-1) if bp.any_greedy else None
    if bp.all_greedy:
        assert greedy_tok is not None
        zeros = torch.zeros(logits.shape[0], dtype=torch.float32, device=logits.device)
        return greedy_tok, zeros, model_lp.gather(1, greedy_tok[:, None])[:, 0]
    scaled_lp = _scaled_logprobs(logits, bp, model_lp)
    probs = scaled_lp.exp()
    threshold = _threshold(probs, bp)
    if threshold is not None:
        probs.masked_fill_(probs < threshold, 0.0)  # the cut tokens; what survives keeps its exact value
    tok, total = _inverse_cdf(probs, uniforms_B)
    picked = scaled_lp.gather(1, tok)
    slp = (picked - total.log())[:, 0]
    if greedy_tok is None:
        # unit temperature: scaled_lp is model_lp, the token's model logprob is the value already gathered
        return tok[:, 0], slp, (picked if scaled_lp is model_lp else model_lp.gather(1, tok))[:, 0]
    tok = tok[:, 0]
    greedy = bp.temperature == 0
    tok = torch.where(greedy, greedy_tok, tok)
    slp = torch.where(greedy, torch.zeros_like(slp), slp)
    return tok, slp, model_lp.gather(1, tok[:, None])[:, 0]


def _sample_full(
    logits: torch.Tensor, bp: BatchParams, uniforms_B: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`sample` for rows that all sample from the whole (temperature-scaled) distribution, as RL rollouts do:
    one softmax instead of log-softmax + exp, and the sampled token's log-probability read off it."""
    scaled = logits if bp.unit_temperature else logits / bp.temperature[:, None]
    probs = torch.softmax(scaled, dim=-1)
    tok, total = _inverse_cdf(probs, uniforms_B)
    lp = probs.gather(1, tok).log_()
    slp = (lp - total.log())[:, 0]
    if bp.unit_temperature:
        model_lp = lp[:, 0]
    else:
        model_lp = (logits.gather(1, tok) - torch.logsumexp(logits, dim=-1, keepdim=True))[:, 0]
    return tok[:, 0], slp, model_lp


def _inverse_cdf(weights_BV: torch.Tensor, uniforms_B: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row, the first token (in vocabulary order) whose cumulative weight exceeds u·total: ([B, 1], total [B, 1]).

    Two levels, as a full-vocabulary prefix sum is a serial scan per row (the slowest op of a CPU decode step): the
    cumulative sums of blocks of CDF_BLOCK tokens pick the block, then one prefix sum inside it picks the token.
    Each threshold stays strictly below the total it is compared with, so a zero-weight token is never chosen.
    """
    B, V = weights_BV.shape
    nb = -(-V // CDF_BLOCK)
    w = weights_BV if V == nb * CDF_BLOCK else torch.nn.functional.pad(weights_BV, (0, nb * CDF_BLOCK - V))
    blocks = w.view(B, nb, CDF_BLOCK)
    cdf = torch.zeros(B, nb + 1, dtype=w.dtype, device=w.device)
    torch.cumsum(blocks.sum(-1), -1, out=cdf[:, 1:])  # cdf[:, j] = weight before block j
    total = cdf[:, -1:]
    zero = _zero(w)
    x = torch.minimum(uniforms_B.to(w.dtype)[:, None] * total, torch.nextafter(total, zero))
    j = torch.searchsorted(cdf, x, right=True).sub_(1).clamp_(max=nb - 1)  # the first block whose sum passes x
    inner = blocks.gather(1, j[:, :, None].expand(B, 1, CDF_BLOCK))[:, 0].cumsum(-1)  # [B, CDF_BLOCK]
    y = torch.minimum(x - cdf.gather(1, j), torch.nextafter(inner[:, -1:], zero))
    i = torch.searchsorted(inner, y, right=True)
    return i.add_(j, alpha=CDF_BLOCK).clamp_(max=V - 1), total


_ZEROS: dict[tuple[torch.dtype, torch.device], torch.Tensor] = {}


def _zero(like: torch.Tensor) -> torch.Tensor:
    """A 0-dim zero of like's dtype and device, made once (nextafter's direction, broadcast)."""
    key = (like.dtype, like.device)
    z = _ZEROS.get(key)
    if z is None:
        z = _ZEROS[key] = torch.zeros((), dtype=like.dtype, device=like.device)
    return z
