"""`SamplingParams.top_logprobs`: the most likely tokens per step, checked against a cache-free forward of the model."""

from __future__ import annotations

import pytest
import torch

from r1.engine import Engine, SamplingParams
from r1.engine.testing import tiny_model, tiny_tokenizer
from r1.errors import UserError

MAX_LEN = 96
K = 5

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


@pytest.fixture(scope="module")
def model(tok):
    return tiny_model(tok, "tiny", max_len=MAX_LEN)


@pytest.fixture(scope="module")
def engine(tok, model):
    return Engine(model, tok, max_batch=8, max_len=MAX_LEN)


def reference_sampling_logprobs(logits_V: torch.Tensor, temperature: float, top_k: int, top_p: float) -> torch.Tensor:
    """softmax(l/T), keep top-k, renormalise, keep the smallest top-p nucleus, renormalise (float64, spelled out)."""
    p = (logits_V.double() / temperature).softmax(-1)
    if top_k:
        p = torch.where(p >= p.sort(descending=True).values[top_k - 1], p, 0.0)
        p = p / p.sum()
    keep, mass = torch.zeros_like(p, dtype=torch.bool), 0.0
    for i in p.argsort(descending=True).tolist():
        if mass >= top_p:
            break
        keep[i], mass = True, mass + p[i].item()
    p = torch.where(keep, p, 0.0)
    return (p / p.sum()).log()


@pytest.mark.parametrize(
    "temperature, top_k, top_p",
    [(0.0, 0, 1.0), (1.0, 0, 1.0), (0.7, 0, 1.0), (0.8, 0, 0.6), (1.0, 3, 1.0)],
)
def test_top_logprobs_match_a_full_forward(tok, model, engine, temperature, top_k, top_p):
    params = SamplingParams(temperature, top_p, top_k, max_tokens=8, seed=3, ignore_eos=True, top_logprobs=K)
    prompt = tok.encode("Alice has 3 apples and buys 4 more.")
    s = engine.generate([prompt], params)[0].samples[0]
    assert s.top_logprobs is not None and len(s.top_logprobs) == len(s.tokens) == 8
    with torch.inference_mode():
        logits = model(torch.tensor([prompt + s.tokens])).logits[0, len(prompt) - 1 : -1].float()
    for step, (row, top) in enumerate(zip(logits, s.top_logprobs)):
        model_lp = row.log_softmax(-1)
        ids = [t for t, _, _ in top]
        assert len(ids) == K and ids == model_lp.topk(K).indices.tolist()
        assert max(abs(m - model_lp[t].item()) for t, _, m in top) < 1e-4
        if temperature == 0:  # a point mass on the argmax
            assert [lp for _, lp, _ in top] == [0.0] + [float("-inf")] * (K - 1)
        else:
            ref = reference_sampling_logprobs(row, temperature, top_k, top_p)
            for t, lp, _ in top:
                assert (lp == ref[t].item() == float("-inf")) or abs(lp - ref[t].item()) < 1e-4
        tok_id = s.tokens[step]
        if tok_id in ids:  # the sampled token's own logprobs agree with its entry
            _, lp, m = top[ids.index(tok_id)]
            assert abs(lp - s.logprobs[step]) < 1e-5 and abs(m - s.model_logprobs[step]) < 1e-5


def test_asking_changes_no_tokens_of_its_own_or_of_batch_neighbours(tok, engine):
    prompts = [tok.encode("1 + 1 ="), tok.encode("Hello there")]
    plain = SamplingParams(temperature=0.9, top_p=0.9, max_tokens=12, seed=11, ignore_eos=True, n=2)
    alone = engine.generate(prompts, plain)
    mixed = engine.generate(prompts, [plain.with_(top_logprobs=2), plain])  # one row asks, its neighbours don't
    for a, m in zip(alone, mixed):
        for sa, sm in zip(a.samples, m.samples):
            assert sa.tokens == sm.tokens and sa.logprobs == sm.logprobs
    assert all(s.top_logprobs is not None and len(s.top_logprobs[0]) == 2 for s in mixed[0].samples)
    assert all(s.top_logprobs is None for s in mixed[1].samples)


def test_streamed_events_carry_the_same_top_logprobs(tok, engine):
    params = SamplingParams(temperature=1.0, max_tokens=6, seed=2, ignore_eos=True, top_logprobs=3)
    events = list(engine.stream(tok.encode("Hello"), params))
    streamed = [ev.top_logprobs for ev in events if hasattr(ev, "top_logprobs")]
    done = events[-1].completion.samples[0]
    assert streamed == done.top_logprobs and len(streamed) == 6


def test_top_logprobs_must_be_a_count():
    with pytest.raises(UserError, match="top_logprobs"):
        SamplingParams(top_logprobs=-1)
