"""The engine against the model itself: greedy = full recompute, logprobs = full forward, batching changes nothing."""

from __future__ import annotations

import pytest
import torch

from r1.engine import Engine, SamplingParams
from r1.engine.adapters import make_generate_fn
from r1.engine.requests import RequestDone, SampleDone, TokenEvent
from r1.engine.sampling import CDF_BLOCK, BatchParams, _inverse_cdf, sample, sampling_logprobs
from r1.engine.testing import tiny_model, tiny_tokenizer
from r1.errors import UserError

MAX_LEN = 96


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


@pytest.fixture(scope="module")
def models(tok):
    return {kind: tiny_model(tok, kind, max_len=MAX_LEN) for kind in ("tiny", "tiny-qwen2")}


@pytest.fixture(scope="module")
def engine(tok, models):
    # plain decoding: under speculative="auto" a sampled request's tokens may depend on the load (test_spec.py)
    return Engine(models["tiny"], tok, max_batch=8, max_len=MAX_LEN, speculative="off")


PROMPTS = ["1 + 1 =", "Alice has 3 apples and buys 4 more. How many apples does she have?", "你好"]


@torch.inference_mode()
def full_logprobs(model, ids: list[int]) -> torch.Tensor:
    """log_softmax of a cache-free forward over the whole sequence: [T, V]."""
    return model(torch.tensor([ids])).logits[0].float().log_softmax(-1)


@pytest.mark.parametrize("kind", ["tiny", "tiny-qwen2"])
def test_greedy_matches_full_recompute(tok, models, kind):
    model = models[kind]
    eng = Engine(model, tok, max_batch=4, max_len=MAX_LEN)
    prompt = tok.encode(PROMPTS[1])
    out = eng.generate([prompt], SamplingParams(temperature=0, max_tokens=20, ignore_eos=True))[0].samples[0]
    ids = list(prompt)
    with torch.inference_mode():
        for _ in range(20):
            ids.append(int(model(torch.tensor([ids])).logits[0, -1].argmax()))
    assert out.tokens == ids[len(prompt) :]
    assert out.finish_reason == "length" and out.logprobs == [0.0] * 20  # greedy samples from a point mass
    ref = full_logprobs(model, ids)[len(prompt) - 1 : -1].gather(1, torch.tensor(out.tokens)[:, None])[:, 0]
    assert (torch.tensor(out.model_logprobs) - ref).abs().max() < 1e-4


@pytest.mark.parametrize("grouped", [True, False])  # experts as grouped GEMMs (CPU) / padded batched GEMMs
@pytest.mark.parametrize("cache_limit", [0, 1 << 30])  # modules as they are / fused and stacked weights
@pytest.mark.parametrize("kind", ["tiny", "tiny-qwen2"])
def test_decode_step_matches_forward(tok, models, kind, cache_limit, grouped, monkeypatch):
    """Prefill (any T) and the latent decode step give the model's logits, cache contents included."""
    monkeypatch.setattr("r1.model.kernels.experts.GROUPED_MM", grouped)
    model = models[kind]
    fused = model.fused_weights(limit_bytes=cache_limit)
    g = torch.Generator().manual_seed(0)
    for B, T in [(1, 1), (1, 7), (3, 1), (5, 9), (24, 1)]:
        ids = torch.randint(0, tok.vocab_size, (B, T), generator=g)
        pos = torch.arange(T).expand(B, T) + torch.randint(0, 5, (B, 1), generator=g)  # rows at different places
        ours_cache, ref_cache = model.new_cache(B, 32), model.new_cache(B, 32)
        with torch.inference_mode():
            for cache in (ours_cache, ref_cache):  # same history in both caches
                model(ids, positions=pos, cache=cache)
            nxt, npos = ids[:, -1:], pos[:, -1:] + 1
            ours = model.decode_step(nxt, npos, ours_cache, fused)[:, -1]
            ref = model(nxt, positions=npos, cache=ref_cache, logits_to_keep=1).logits[:, -1]
            assert (ours - ref).abs().max() < 1e-4, (B, T)
            hid = model.decode_step(ids, pos, model.new_cache(B, 32), fused, hidden=True)
            ref_hid = model(ids, positions=pos, cache=model.new_cache(B, 32), return_logits=False).hidden
            assert (hid - ref_hid).abs().max() < 1e-5, (B, T)
        for a, b in zip(ours_cache.buffers, ref_cache.buffers):
            assert all((x - y).abs().max() < 1e-5 for x, y in zip(a, b))
    assert model.decodes_on_latent(ours_cache) == (kind == "tiny")
    # a bf16 vocabulary projection (what a bf16 GRPO run samples with): the same logits up to bf16 rounding
    bf16 = model.fused_weights(limit_bytes=cache_limit, head_dtype=torch.bfloat16)
    with torch.inference_mode():
        h = model.decode_step(ids, pos, model.new_cache(B, 32), fused, hidden=True)[:, -1]
        want = model.head(h, fused)
        got = model.head(h, bf16)
    if cache_limit:
        assert got.dtype == torch.bfloat16 and 0 < (got.float() - want).abs().max() < 0.05
    else:  # no room for a derived copy: the module as it is
        assert torch.equal(got, want)


def test_fused_weights_see_weight_updates(tok):
    model = tiny_model(tok, seed=1, max_len=MAX_LEN)
    fused = model.fused_weights()
    ids = torch.randint(0, tok.vocab_size, (6, 1), generator=torch.Generator().manual_seed(0))
    pos = torch.zeros_like(ids)
    with torch.inference_mode():
        before = model.decode_step(ids, pos, model.new_cache(6, 4), fused, hidden=True)
    with torch.no_grad():  # what an optimizer step does: in-place updates
        for p in model.parameters():
            p.mul_(1.5)
    fused.refresh()
    with torch.inference_mode():
        after = model.decode_step(ids, pos, model.new_cache(6, 4), fused, hidden=True)
        ref = model(ids, positions=pos, cache=model.new_cache(6, 4), return_logits=False).hidden
    assert (after - ref).abs().max() < 1e-5 and (after - before).abs().max() > 1e-3


def test_absorbed_and_naive_mla_agree(tok, models):
    params = SamplingParams(temperature=1.0, max_tokens=16, seed=3, n=2, ignore_eos=True)
    runs = {}
    for impl in ("absorb", "naive"):
        eng = Engine(models["tiny"], tok, max_batch=4, max_len=MAX_LEN, mla_impl=impl)
        runs[impl] = eng.generate([PROMPTS[0]], params)[0].samples
    for a, b in zip(runs["absorb"], runs["naive"]):
        assert a.tokens == b.tokens
        assert max(abs(x - y) for x, y in zip(a.model_logprobs, b.model_logprobs)) < 1e-4


def test_batched_equals_one_at_a_time(tok, engine):
    """Different prompt lengths, n > 1, nucleus sampling: every sample is the same alone or in a batch."""
    params = [SamplingParams(temperature=1.0, top_p=0.9, max_tokens=12, seed=s, n=2) for s in (1, 2, 3)]
    batched = engine.generate(PROMPTS, params)
    for prompt, p, got in zip(PROMPTS, params, batched):
        alone = engine.generate([prompt], p)[0]
        assert [s.tokens for s in got.samples] == [s.tokens for s in alone.samples]
        assert [s.finish_reason for s in got.samples] == [s.finish_reason for s in alone.samples]
    assert batched[0].samples[0].tokens != batched[0].samples[1].tokens  # siblings draw different randomness


def test_logprobs_match_full_forward_and_truncated_distribution(tok, models, engine):
    model = models["tiny"]
    params = SamplingParams(temperature=0.7, top_k=40, top_p=0.8, max_tokens=10, seed=5, ignore_eos=True)
    prompt = tok.encode(PROMPTS[1])
    s = engine.generate([prompt], params)[0].samples[0]
    ids = prompt + s.tokens
    with torch.inference_mode():
        logits = model(torch.tensor([ids])).logits[0, len(prompt) - 1 : -1].float()
    tokens = torch.tensor(s.tokens)
    model_ref = logits.log_softmax(-1).gather(1, tokens[:, None])[:, 0]
    assert (torch.tensor(s.model_logprobs) - model_ref).abs().max() < 1e-4
    sampled_ref = torch.stack([reference_logprobs(row, 0.7, 40, 0.8)[t] for row, t in zip(logits, tokens)])
    assert torch.isfinite(sampled_ref).all()
    assert (torch.tensor(s.logprobs) - sampled_ref).abs().max() < 1e-4


def reference_logprobs(logits_V: torch.Tensor, temperature: float, top_k: int, top_p: float) -> torch.Tensor:
    """The sampling distribution spelled out: softmax(l/T), keep top-k, renormalise, keep the top-p nucleus."""
    p = (logits_V.double() / temperature).softmax(-1)
    if top_k:
        kth = p.sort(descending=True).values[top_k - 1]
        p = torch.where(p >= kth, p, 0.0)
        p = p / p.sum()
    order = p.argsort(descending=True)
    keep = torch.zeros_like(p, dtype=torch.bool)
    mass = 0.0
    for i in order.tolist():
        if mass >= top_p:
            break
        keep[i] = True
        mass += p[i].item()
    p = torch.where(keep, p, 0.0)
    return (p / p.sum()).log().float()


def test_sampler_distribution_per_row():
    torch.manual_seed(0)
    logits = torch.randn(4, 50) * 3
    rows = [(1.0, 0, 1.0), (0.5, 5, 1.0), (1.3, 0, 0.7), (0.8, 10, 0.5)]
    bp = BatchParams.build([SamplingParams(temperature=t, top_k=k, top_p=p) for t, k, p in rows])
    got = sampling_logprobs(logits, bp)
    for i, (t, k, p) in enumerate(rows):
        ref = reference_logprobs(logits[i], t, k, p)
        finite = torch.isfinite(ref)
        assert torch.equal(finite, torch.isfinite(got[i]))
        assert (got[i][finite] - ref[finite]).abs().max() < 1e-5
    # inverse-CDF in vocabulary order: u = 0 picks the first kept token, u just below 1 the last one
    tok, slp, _ = sample(logits, bp, torch.tensor([0.0, 0.0, 0.999999, 0.999999]))
    for i in range(4):
        kept = torch.isfinite(got[i]).nonzero()[:, 0]
        assert tok[i] == (kept[0] if i < 2 else kept[-1]) and abs(slp[i] - got[i][tok[i]]) < 1e-5
    # and the frequencies follow the distribution
    row = torch.tensor([[2.0, 0.0, 1.0, -1.0, 0.5]]).expand(20000, -1)
    bp = BatchParams.build([SamplingParams(temperature=0.9, top_p=0.9)] * 20000)
    tok, _, _ = sample(row, bp, torch.rand(20000, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))
    freq = torch.bincount(tok, minlength=5) / 20000
    assert (freq - sampling_logprobs(row[:1], bp.index(torch.tensor([0]))).exp()[0]).abs().max() < 0.01


@pytest.mark.parametrize("V", [64 * 5, 300, 7])
def test_two_level_inverse_cdf_matches_one_prefix_sum_and_never_picks_a_zero_weight(V):
    """Blocks pick the block, a prefix sum inside it the token: the same token as one float64 prefix sum over the
    whole row, with zero weights (whole blocks, block ends, the padded tail) never chosen, even at u → 1."""
    g = torch.Generator().manual_seed(V)
    w = torch.rand(256, V, generator=g, dtype=torch.float64)
    w[w < 0.5] = 0.0  # half the tokens cut, as top-k/top-p leave them
    w[:, : 2 * CDF_BLOCK if V > 3 * CDF_BLOCK else V // 3] = 0.0  # and whole leading blocks
    w[:, -1] = 0.0
    w[:, -2] += 0.1  # every row has some weight, as every sampler row does
    w[0] = 0.0
    w[0, V // 2] = 1.0  # one token carries everything
    u = torch.rand(256, generator=g, dtype=torch.float64)
    u[:8] = torch.tensor([0.0, 1 - 1e-16, 0.5, 1e-300, 1 - 2**-53, 0.25, 0.75, 0.999999])
    tok, total = _inverse_cdf(w, u)
    cdf = w.cumsum(-1)
    total_ref = cdf[:, -1:]
    x = torch.minimum(u[:, None] * total_ref, torch.nextafter(total_ref, torch.zeros_like(total_ref)))
    want = torch.searchsorted(cdf, x, right=True)
    assert bool((w.gather(1, tok) > 0).all())
    assert torch.equal(tok, want)
    assert (total[:, 0] - cdf[:, -1]).abs().max() < 1e-12
    assert tok[0, 0] == V // 2


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_untruncated_fast_sampler_equals_general_path(temperature):
    """Rows without top-k/top-p take a softmax-only path; top_k = V keeps every token but takes the general one."""
    torch.manual_seed(0)
    logits = torch.randn(64, 300) * 4
    u = torch.rand(64, dtype=torch.float64)
    fast = BatchParams.build([SamplingParams(temperature=temperature)] * 64)
    general = BatchParams.build([SamplingParams(temperature=temperature, top_k=300)] * 64)
    assert not fast.truncate and general.truncate
    (t1, s1, m1), (t2, s2, m2) = sample(logits, fast, u), sample(logits, general, u)
    assert torch.equal(t1, t2)
    assert (s1 - s2).abs().max() < 1e-5 and (m1 - m2).abs().max() < 1e-5
    assert (m1 - logits.log_softmax(-1).gather(1, t1[:, None])[:, 0]).abs().max() < 1e-5


def test_stop_ids_and_strings(tok, engine):
    base = SamplingParams(temperature=0, max_tokens=30, ignore_eos=True)
    full = engine.generate([PROMPTS[0]], base)[0].samples[0]
    stop_id = full.tokens[5]
    first = full.tokens.index(stop_id)
    s = engine.generate([PROMPTS[0]], base.with_(stop_token_ids=[stop_id]))[0].samples[0]
    assert s.finish_reason == "stop" and s.stop_reason == stop_id
    assert s.tokens == full.tokens[: first + 1] and s.text == tok.decode(full.tokens[:first])
    # a stop string that ends inside the text: cut there, never shown in the stream
    text = full.text
    stop = next(text[i : i + 3] for i in range(4, len(text) - 3) if "\ufffd" not in text[i : i + 3])
    cut = text[: text.index(stop)]
    s = engine.generate([PROMPTS[0]], base.with_(stop=[stop, "never-there"]))[0].samples[0]
    assert (s.finish_reason, s.stop_reason, s.text) == ("stop", stop, cut)
    streamed = "".join(ev.text for ev in engine.stream(PROMPTS[0], base.with_(stop=stop)) if hasattr(ev, "text"))
    assert streamed == cut


def test_chunked_prefill_changes_nothing(tok, models, engine):
    """Prompts longer than the prefill budget go in chunks, and groups split by the budget; tokens stay the same."""
    small = Engine(models["tiny"], tok, max_batch=8, max_len=MAX_LEN, prefill_tokens=8)
    prompts = [tok.encode(p) for p in PROMPTS]
    params = SamplingParams(temperature=0, max_tokens=6, ignore_eos=True)
    got = small.generate(prompts, params)
    assert small.stats["prefill_forwards"] > len(prompts)
    assert [c.samples[0].tokens for c in got] == [c.samples[0].tokens for c in engine.generate(prompts, params)]


def test_n_samples_share_one_prefill(tok, engine):
    before = dict(engine.stats)
    prompt = tok.encode(PROMPTS[1])
    out = engine.generate([prompt], SamplingParams(max_tokens=4, n=4, seed=0))[0]
    assert engine.stats["prefill_forwards"] - before["prefill_forwards"] == 1
    assert engine.stats["prefill_tokens"] - before["prefill_tokens"] == len(prompt)
    assert len(out.samples) == 4 and len({tuple(s.tokens) for s in out.samples}) > 1


def test_short_request_is_not_held_back_and_rows_are_reused(tok, models):
    eng = Engine(models["tiny"], tok, max_batch=3, max_len=MAX_LEN, speculative="off")  # counts plain steps
    long = eng.submit(PROMPTS[1], SamplingParams(max_tokens=60, ignore_eos=True, seed=0), stream=False)
    short = eng.submit(PROMPTS[0], SamplingParams(max_tokens=5, ignore_eos=True, seed=0), stream=False)
    queued = [eng.submit(PROMPTS[2], SamplingParams(max_tokens=4, n=2, seed=i), stream=False) for i in range(3)]
    eng._run_until(lambda: long.done() and all(h.done() for h in queued))
    assert short.finished_at_step <= 5  # prefill samples token 1, four decode steps the rest
    assert long.finished_at_step == 59
    assert max(h.finished_at_step for h in queued) < 30  # reused the rows the short ones freed, not after `long`
    assert eng.num_active() == 0 and eng.num_pending() == 0
    assert all(len(s.tokens) == 4 for h in queued for s in h.result().samples)


def test_background_thread_streams_and_cancel_frees_rows(tok, models):
    eng = Engine(models["tiny"], tok, max_batch=4, max_len=MAX_LEN)
    with eng:
        h = eng.submit(PROMPTS[2], SamplingParams(max_tokens=8, seed=1, n=2))
        events = list(h.events(timeout=10))
        assert isinstance(events[-1], RequestDone)
        done = {ev.sample.index: ev for ev in events if isinstance(ev, SampleDone)}
        for i, sample in enumerate(events[-1].completion.samples):
            pieces = [ev.text for ev in events if isinstance(ev, TokenEvent) and ev.sample == i]
            assert "".join(pieces) + done[i].text == sample.text
        endless = eng.submit(PROMPTS[0], SamplingParams(max_tokens=MAX_LEN, ignore_eos=True))
        next(endless.events(timeout=10))
        endless.cancel()
        assert endless.result(timeout=5).samples[0].finish_reason == "cancelled"
        assert eng.num_active() == 0
        # generate() from another thread while the engine thread runs: it waits on its handles
        out = eng.generate([PROMPTS[0]], SamplingParams(max_tokens=3))[0].samples[0]
        assert out.finish_reason in ("stop", "length")
    assert not eng.running


def test_invalid_params_and_prompts(tok, engine):
    for kwargs, name in [
        (dict(temperature=-0.1), "temperature"),
        (dict(top_p=0.0), "top_p"),
        (dict(top_p=1.5), "top_p"),
        (dict(top_k=-1), "top_k"),
        (dict(max_tokens=0), "max_tokens"),
        (dict(n=0), "n"),
        (dict(stop=[""]), "stop"),
        (dict(temperature=float("nan")), "temperature"),
    ]:
        with pytest.raises(UserError, match=name):
            SamplingParams(**kwargs)
    with pytest.raises(UserError, match="context"):
        engine.generate([list(range(10, 10 + MAX_LEN))])
    with pytest.raises(UserError, match="empty"):
        engine.generate([[]])
    with pytest.raises(UserError, match="max_batch"):
        engine.generate(["x"], SamplingParams(n=9))
    assert engine.num_pending() == 0


def test_cache_sizes(tok, models):
    ds = Engine(models["tiny"], tok).cache_bytes_per_token()
    cfg = models["tiny"].config
    assert ds == cfg.num_hidden_layers * (cfg.kv_lora_rank + cfg.qk_rope_head_dim) * 4
    q = models["tiny-qwen2"].config
    assert Engine(models["tiny-qwen2"], tok).cache_bytes_per_token() == q.num_hidden_layers * 2 * 2 * 32 * 4
    assert Engine(models["tiny"], tok, mla_impl="naive").cache_bytes_per_token() > ds


def test_generate_fn_adapter(tok, engine):
    gen = make_generate_fn(engine)
    items = [{"prompt": "2 + 2 ="}, {"messages": [{"role": "user", "content": "hi"}]}]
    out = gen(items, 3, {"temperature": 0.6, "top_p": 0.95, "max_new_tokens": 6, "seed": 7})
    assert [len(o) for o in out] == [3, 3]
    for group in out:
        for s in group:
            assert set(s) == {"text", "num_tokens", "finish_reason"} and 1 <= s["num_tokens"] <= 6
    again = gen(items, 3, {"temperature": 0.6, "top_p": 0.95, "max_new_tokens": 6, "seed": 7})
    assert again == out
    with pytest.raises(UserError, match="unknown sampling"):
        gen(items, 1, {"temprature": 1.0})


def test_generate_samples_from_weights_changed_in_place_without_version_bump(tok):
    # fused AdamW updates parameters in place without moving their version counters; RL relies on the engine
    # sampling from the current weights at every generate() call
    model = tiny_model(tok, "tiny", seed=3)
    engine = Engine(model, tok, max_batch=4, max_len=64)
    prompt = tok.encode("2+3=")
    params = SamplingParams(temperature=1.0, max_tokens=8, seed=0, ignore_eos=True)
    engine.generate([prompt], params)
    with torch.no_grad():
        for p in model.parameters():
            p.data.mul_(1.3)  # .data: a write the version counter does not see
    sample = engine.generate([prompt], params)[0].samples[0]
    ids = torch.tensor([prompt + sample.tokens])
    with torch.no_grad():
        logp = model(ids).logits.float().log_softmax(-1)[0, len(prompt) - 1 : -1]
    expect = logp.gather(1, torch.tensor(sample.tokens)[:, None])[:, 0]
    assert torch.allclose(torch.tensor(sample.model_logprobs), expect, atol=1e-4)
