"""MTP speculative decoding: greedy outputs are plain decoding's tokens, sampled outputs keep the target
distribution, stops cut accepted runs exactly, logprobs are the model's, and the drafts are what the MTP modules
compute without a cache (the training equations)."""

from __future__ import annotations

import math

import pytest
import torch

from r1.assets import model_path
from r1.engine import Engine, SamplingParams
from r1.engine.sampling import BatchParams, sampling_logprobs
from r1.engine.speculative import PROBE_EVERY, rejection_sample
from r1.engine.testing import tiny_model, tiny_tokenizer
from r1.errors import UserError
from r1.model import Transformer, preset

pytestmark = pytest.mark.usefixtures("one_thread")

MAX_LEN = 128
PROMPTS = ["1 + 1 =", "Alice has 3 apples and buys 4 more. How many apples does she have?", "你好", "x"]


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


def deep_mtp_model(tok, depth: int, seed: int = 0) -> Transformer:
    """The `tiny` preset with `depth` MTP modules, random (peaked: init 0.1, so greedy has no near-ties)."""
    cfg = preset(
        "tiny",
        vocab_size=tok.vocab_size,
        eos_token_id=tok.eos_id,
        bos_token_id=tok.bos_id,
        max_position_embeddings=MAX_LEN,
        initializer_range=0.1,
        num_nextn_predict_layers=depth,
    )
    torch.manual_seed(seed)
    return Transformer(cfg).eval()


@pytest.fixture(scope="module")
def models(tok):
    return {1: tiny_model(tok, "tiny", max_len=MAX_LEN), 2: deep_mtp_model(tok, 2)}


@pytest.fixture(scope="module")
def base():
    """The shipped base, pretrained with MTP depth 1: its drafts are mostly right on its own kind of text."""
    plain = Engine.from_pretrained(model_path("base-tiny"), speculative="off", max_batch=8)
    return plain.model, plain.tokenizer


def base_prompts(tokenizer, n: int = 4) -> list[list[int]]:
    """In-distribution: held-in modchain problems opened with their first step (the model writes the rest)."""
    from r1.data.corpus import build_corpus

    out = []
    for r in build_corpus(n, seed=3, mix={"steps": 1.0}, levels={"modchain": {"5": 1.0, "6": 1.0}}):
        cut = r["response"].index("\n", r["response"].index("=")) + 1
        out.append([tokenizer.bos_id, *tokenizer.encode(r["prompt"] + r["response"][:cut])])
    return out


def engines(model, tokenizer, k: int, max_batch: int = 8):
    off = Engine(model, tokenizer, max_batch=max_batch, max_len=MAX_LEN, speculative="off")
    on = Engine(model, tokenizer, max_batch=max_batch, max_len=MAX_LEN, speculative="on", num_speculative_tokens=k)
    return off, on


# --------------------------------------------------------------------------------------------------- greedy
@pytest.mark.parametrize("depth", [1, 2])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_greedy_is_token_identical_to_plain_decoding(tok, models, depth, k):
    off, on = engines(models[depth], tok, k)
    params = SamplingParams(temperature=0, max_tokens=30, ignore_eos=True)
    want = off.generate(PROMPTS, params)
    got = on.generate(PROMPTS, params)
    for w, g in zip(want, got):
        assert g.samples[0].tokens == w.samples[0].tokens
        assert g.samples[0].finish_reason == w.samples[0].finish_reason == "length"
        assert g.samples[0].logprobs == [0.0] * 30
        assert max(abs(a - b) for a, b in zip(g.samples[0].model_logprobs, w.samples[0].model_logprobs)) < 1e-4
    st = on.stats
    assert st["spec_rounds"] > 0 and st["spec_draft_tokens"] == st["spec_drafts"] * k
    assert st["decode_steps"] < off.stats["decode_steps"] or st["spec_accepted_tokens"] == 0


@pytest.mark.parametrize("k", [1, 2, 3])
def test_greedy_on_a_model_trained_with_mtp_accepts_most_drafts_and_changes_nothing(base, k):
    model, tokenizer = base
    off, on = engines(model, tokenizer, k)
    prompts = base_prompts(tokenizer) + [tokenizer.encode(p) for p in PROMPTS[:2]]  # in and out of distribution
    params = SamplingParams(temperature=0, max_tokens=40)
    want = off.generate(prompts, params)
    got = on.generate(prompts, params)
    for w, g in zip(want, got):
        assert g.samples[0].tokens == w.samples[0].tokens
        assert g.samples[0].finish_reason == w.samples[0].finish_reason
        assert g.samples[0].text == w.samples[0].text
    st = on.stats
    assert on.speculator.accepted_per_position[0] > 0.5 * st["spec_drafts"]  # the trained depth: mostly right
    assert st["spec_accepted_tokens"] < st["spec_draft_tokens"]  # and rejections happened too
    assert st["spec_emitted_tokens"] / st["spec_drafts"] > 1.5  # tokens per verify step


# --------------------------------------------------------------------------------------------------- drafts
@torch.inference_mode()
def reference_drafts(model: Transformer, seq: list[int], k: int) -> list[int]:
    """The greedy drafts after `seq` computed with no cache, from the training equations: module j at index i takes
    h^j_i and Emb(t_{i+j+1}); past the trained depth the last module runs one index further on its own output."""
    D = len(model.mtp)
    n = len(seq) - 1  # the last token is not fed to the main model yet: the draft starts at index n - 1
    ids = torch.tensor([seq])
    h = model(ids[:, :n]).hidden  # h^0 at indices 0 … n-1
    drafts: list[int] = []
    full = list(seq)
    for j in range(min(D, k)):
        layer = model.mtp[j]
        emb = model.model.embed_tokens(torch.tensor([full[j + 1 : n + j + 1]]))
        pos = torch.arange(n)[None]
        cos, sin = _rope(model, pos)
        h_in, h = h, layer(h, emb, cos, sin, None, pos)
        d = int(model.lm_head(layer.shared_head.norm(h[:, -1])).argmax())
        drafts.append(d)
        full.append(d)
    layer = model.mtp[D - 1]
    for j in range(D, k):  # reuse: the module's own output at the last index stands in for the next hidden state
        m = n + j - D + 1  # indices 0 … m-1
        emb = model.model.embed_tokens(torch.tensor([full[D : D + m]]))
        pos = torch.arange(m)[None]
        cos, sin = _rope(model, pos)
        h_in = torch.cat((h_in, h[:, -1:]), dim=1)
        h = layer(h_in, emb, cos, sin, None, pos)
        d = int(model.lm_head(layer.shared_head.norm(h[:, -1])).argmax())
        drafts.append(d)
        full.append(d)
    return drafts


def _rope(model, pos):
    from r1.model.rope import rope_cos_sin

    return rope_cos_sin(pos, *model.rope(pos.device))


def record_drafts(sp) -> list[tuple[list[int], list[int]]]:
    """Spy on a speculator: each round's rows, as (tokens so far, the drafts made for them)."""
    seen = []
    original = sp.round

    def spy(rows, cache, fused, bp):
        seqs = [list(s.req.prompt) + list(s.tokens) for s in rows]
        out = original(rows, cache, fused, bp)
        seen.extend(zip(seqs, sp.last_drafts.tolist()))
        return out

    sp.round = spy
    return seen


@pytest.mark.parametrize("depth,k", [(1, 1), (1, 3), (2, 2), (2, 3)])
def test_drafts_are_the_mtp_modules_training_equations_without_a_cache(tok, models, depth, k):
    """Round after round (cache slots filled by the prefill catch-up, then by earlier rounds, rejected positions
    rolled back), each row's drafts equal a cache-free recomputation from the tokens so far."""
    model = models[depth]
    _, on = engines(model, tok, k)
    seen = record_drafts(on.speculator)
    on.generate(PROMPTS[:3], SamplingParams(temperature=0, max_tokens=12, ignore_eos=True))
    assert len(seen) >= 3 * 4
    for seq, drafts in seen:
        assert drafts == reference_drafts(model, seq, k)


@pytest.mark.parametrize("which,k", [("base", 1), ("depth 2", 3)])
def test_drafts_stay_exact_across_plain_steps_and_rows_finishing(tok, models, base, which, k):
    """`auto` decodes plainly while three rows run (over its limit of two), speculates once one finishes, and rows
    leave at different lengths: after every such change each draft still equals the cache-free recomputation."""
    model, tokenizer = base if which == "base" else (models[2], tok)
    eng = Engine(model, tokenizer, max_batch=8, max_len=MAX_LEN, num_speculative_tokens=k, speculative_max_batch=2)
    seen = record_drafts(eng.speculator)
    handles = [
        eng.submit(p, SamplingParams(temperature=0, max_tokens=n, ignore_eos=True))
        for p, n in zip(base_prompts(tokenizer, 3) if which == "base" else PROMPTS[:3], (6, 14, 22))
    ]
    eng._run_until(lambda: all(h.done() for h in handles))
    assert eng.stats["spec_rounds"] < eng.stats["decode_steps"] and len(seen) >= 6
    for seq, drafts in seen:
        assert drafts == reference_drafts(model, seq, k)


# --------------------------------------------------------------------------------------------------- sampling
def test_rejection_sampling_emits_the_target_distribution_whatever_the_draft():
    """The rule itself, on synthetic distributions: the first emitted token follows p_1, and given it was an
    accepted draft the second follows p_2 (χ² against the exact probabilities, 20k draws each)."""
    g = torch.Generator().manual_seed(0)
    V, k, N = 6, 2, 20_000
    p = torch.tensor([[0.4, 0.3, 0.1, 0.1, 0.1, 0.0], [0.05, 0.05, 0.5, 0.2, 0.2, 0.0], [1 / 6] * 6])
    q = torch.tensor([[0.1, 0.1, 0.2, 0.2, 0.2, 0.2], [0.5, 0.1, 0.1, 0.1, 0.1, 0.1]])
    P, Q = p.expand(N, -1, -1), q.expand(N, -1, -1)
    drafts = torch.stack([torch.multinomial(q[i], N, replacement=True, generator=g) for i in range(k)], 1)
    n_acc, final = rejection_sample(P, Q, drafts, torch.rand(N, k, generator=g, dtype=torch.float64),
                                    torch.rand(N, generator=g, dtype=torch.float64))  # fmt: skip
    first = torch.where(n_acc > 0, drafts[:, 0], final)
    assert chi2_pvalue(torch.bincount(first, minlength=V), p[0]) > 1e-3
    second = torch.where(n_acc > 1, drafts[:, 1], final)[n_acc > 0]
    assert chi2_pvalue(torch.bincount(second, minlength=V), p[1]) > 1e-3
    assert chi2_pvalue(torch.bincount(first, minlength=V), q[0]) < 1e-6  # the test tells p from q
    assert (first != 5).all() and (second != 5).all()  # never a token the target gives probability 0


def chi2_pvalue(counts: torch.Tensor, probs: torch.Tensor) -> float:
    """Pearson's χ² test of counts against probabilities (cells with probability 0 must be empty)."""
    counts, probs = counts.double(), probs.double()
    n = counts.sum()
    live = probs > 0
    assert counts[~live].sum() == 0, "a token with probability 0 was sampled"
    expected = probs[live] * n
    stat = float(((counts[live] - expected) ** 2 / expected).sum())
    dof = int(live.sum()) - 1
    return _chi2_sf(stat, dof)


def _chi2_sf(x: float, dof: int) -> float:
    """Survival function of χ²(dof) by the regularised upper incomplete gamma Q(dof/2, x/2) (series/continued
    fraction, as in Numerical Recipes), so the test needs no SciPy."""
    a, z = dof / 2.0, x / 2.0
    if z < a + 1:
        term = total = 1.0 / a
        n = 1
        while abs(term) > 1e-15 * abs(total):
            term *= z / (a + n)
            total += term
            n += 1
        return max(0.0, 1.0 - total * math.exp(-z + a * math.log(z) - math.lgamma(a)))
    b, c, d = z + 1 - a, 1e300, 1 / (z + 1 - a)
    h = d
    for i in range(1, 500):
        an = -i * (i - a)
        b += 2
        d = 1 / (an * d + b)
        c = b + an / c
        h *= d * c
    return h * math.exp(-z + a * math.log(z) - math.lgamma(a))


@torch.inference_mode()
def exact_joint(model, prompt: list[int], params: SamplingParams, depth: int) -> dict[tuple[int, ...], float]:
    """P(t_1 … t_depth) of the processed target distribution, by teacher forcing every prefix."""
    bp = BatchParams.build([params])
    out: dict[tuple[int, ...], float] = {(): 1.0}
    for _ in range(depth):
        nxt = {}
        for prefix, pr in out.items():
            logits = model(torch.tensor([prompt + list(prefix)])).logits[0, -1:].float()
            probs = sampling_logprobs(logits, bp).exp()[0]
            for t in torch.nonzero(probs > 0)[:, 0].tolist():
                nxt[prefix + (t,)] = pr * float(probs[t])
        out = nxt
    return out


# top-p cuts a varying part of the top 6; the trained base is so sure of itself that it needs heat to vary
SAMPLED = {
    ("random", "top-k"): SamplingParams(temperature=1.0, top_k=3),
    ("random", "top-p"): SamplingParams(temperature=1.3, top_k=6, top_p=0.7),
    ("trained", "top-k"): SamplingParams(temperature=2.0, top_k=3),
    ("trained", "top-p"): SamplingParams(temperature=3.0, top_k=6, top_p=0.7),
}


@pytest.mark.parametrize("which,name", sorted(SAMPLED))
def test_sampled_tokens_follow_the_target_distribution(tok, models, base, which, name):
    """χ² over 3008 seeded samples of the first three tokens (the second and third come from the first
    speculative round: accepted drafts, a corrected token or the bonus one) against the exact joint probabilities.
    The random model's MTP module is unrelated to it (most drafts corrected); the shipped base's was trained
    with it (most accepted)."""
    model, tokenizer = (models[1], tok) if which == "random" else base
    params = SAMPLED[(which, name)]
    eng = Engine(model, tokenizer, max_batch=64, max_len=MAX_LEN, speculative="on", num_speculative_tokens=2)
    prompt = [tokenizer.bos_id, *tokenizer.encode(PROMPTS[0])]
    counts: dict[tuple[int, ...], int] = {}
    for seed in range(47):
        p = params.with_(max_tokens=3, ignore_eos=True, n=64, seed=seed)
        for smp in eng.generate([prompt], p)[0].samples:
            counts[tuple(smp.tokens)] = counts.get(tuple(smp.tokens), 0) + 1
    st = eng.stats
    assert st["spec_accepted_tokens"] < st["spec_draft_tokens"]  # corrected drafts
    assert which == "random" or st["spec_accepted_tokens"] > 0.3 * st["spec_draft_tokens"]  # and accepted ones
    joint = exact_joint(model, prompt, params, 3)
    assert set(counts) <= set(joint)  # nothing the target cannot produce
    cells = sorted(joint, key=joint.get, reverse=True)
    big = [c for c in cells if joint[c] * 3008 >= 5]  # pool the cells too rare for the χ² approximation
    observed = [counts.get(c, 0) for c in big] + [sum(counts.get(c, 0) for c in cells if c not in big)]
    expected = [joint[c] for c in big] + [sum(joint[c] for c in cells if c not in big)]
    assert len(big) >= 4
    assert chi2_pvalue(torch.tensor(observed), torch.tensor(expected)) > 1e-3


def test_sampled_logprobs_are_the_target_models(tok, models):
    """Both logprobs of every emitted token (accepted drafts included) are the full forward's at its position."""
    from tests.test_engine import reference_logprobs

    model = models[1]
    _, on = engines(model, tok, 2)
    prompt = tok.encode(PROMPTS[1])
    s = on.generate([prompt], SamplingParams(temperature=0.7, top_k=40, top_p=0.9, max_tokens=16, seed=5,
                                             ignore_eos=True))[0].samples[0]  # fmt: skip
    ids = prompt + s.tokens
    with torch.inference_mode():
        logits = model(torch.tensor([ids])).logits[0, len(prompt) - 1 : -1].float()
    tokens = torch.tensor(s.tokens)
    assert (torch.tensor(s.model_logprobs) - logits.log_softmax(-1).gather(1, tokens[:, None])[:, 0]).abs().max() < 1e-4
    ref = torch.stack([reference_logprobs(row, 0.7, 40, 0.9)[t] for row, t in zip(logits, tokens)])
    assert (torch.tensor(s.logprobs) - ref).abs().max() < 1e-4


def test_top_logprobs_of_accepted_tokens_are_plain_decodings(base):
    model, tokenizer = base
    off, on = engines(model, tokenizer, 2)
    prompts = base_prompts(tokenizer, 2)
    params = SamplingParams(temperature=0, max_tokens=20, top_logprobs=3)
    for w, g in zip(off.generate(prompts, params), on.generate(prompts, params)):
        a, b = w.samples[0].top_logprobs, g.samples[0].top_logprobs
        assert len(a) == len(b) == len(w.samples[0].tokens)
        for x, y in zip(a, b):
            assert [t for t, _, _ in x] == [t for t, _, _ in y]
            assert max(abs(m - n) for (_, _, m), (_, _, n) in zip(x, y)) < 1e-4
    assert on.stats["spec_accepted_tokens"] > 0


# --------------------------------------------------------------------------------------------------- batches
def test_a_mixed_batch_gives_each_request_what_it_gets_alone(tok, models):
    """Different lengths, greedy and sampled (top-p, top-k), n > 1, a stop string: every sample is the same alone
    or batched (speculation on: seeded rounds draw only from their own streams), greedy ones as plain decoding."""
    _, on = engines(models[1], tok, 2)
    off, _ = engines(models[1], tok, 2)
    params = [
        SamplingParams(temperature=0, max_tokens=14, ignore_eos=True),
        SamplingParams(temperature=1.0, top_p=0.9, max_tokens=12, seed=1, n=2),
        SamplingParams(temperature=0.8, top_k=20, max_tokens=10, seed=2, stop=["e"]),
        SamplingParams(temperature=1.2, max_tokens=9, seed=3, ignore_eos=True),
    ]
    batched = on.generate(PROMPTS, params)
    for prompt, p, got in zip(PROMPTS, params, batched):
        alone = on.generate([prompt], p)[0]
        assert [s.tokens for s in got.samples] == [s.tokens for s in alone.samples]
        assert [s.finish_reason for s in got.samples] == [s.finish_reason for s in alone.samples]
    assert batched[1].samples[0].tokens != batched[1].samples[1].tokens
    assert batched[0].samples[0].tokens == off.generate([PROMPTS[0]], params[0])[0].samples[0].tokens
    again = on.generate(PROMPTS, params)  # same seeds, same tokens
    assert [[s.tokens for s in c.samples] for c in again] == [[s.tokens for s in c.samples] for c in batched]


def test_stops_inside_an_accepted_run_cut_exactly_where_plain_decoding_does(base):
    """max_tokens, stop strings, stop ids and EOS that fall inside a run of accepted drafts: no token past them."""
    model, tokenizer = base
    off, on = engines(model, tokenizer, 3)
    prompts = base_prompts(tokenizer, 3)
    full = [c.samples[0] for c in off.generate(prompts, SamplingParams(temperature=0, max_tokens=60))]
    assert all(s.finish_reason == "stop" for s in full)  # EOS, reached inside speculation below too
    cases = [SamplingParams(temperature=0, max_tokens=60)]
    cases += [SamplingParams(temperature=0, max_tokens=m) for m in (2, 5, 7, 11)]
    cases += [SamplingParams(temperature=0, max_tokens=60, stop=["="]), SamplingParams(temperature=0, stop=["\n<"])]
    cases += [SamplingParams(temperature=0, max_tokens=60, stop_token_ids=[full[0].tokens[6]])]
    for params in cases:
        want = off.generate(prompts, params)
        got = on.generate(prompts, params)
        for w, g in zip(want, got):
            assert g.samples[0].tokens == w.samples[0].tokens, params
            assert (g.samples[0].text, g.samples[0].finish_reason) == (w.samples[0].text, w.samples[0].finish_reason)
            assert len(g.samples[0].tokens) <= params.max_tokens
    assert on.stats["spec_emitted_tokens"] > on.stats["spec_drafts"] * 2  # runs of several tokens were cut


def test_streaming_emits_every_accepted_token_in_order(base):
    model, tokenizer = base
    _, on = engines(model, tokenizer, 3)
    prompt = base_prompts(tokenizer, 1)[0]
    events = list(on.stream(prompt, SamplingParams(temperature=0, max_tokens=40)))
    done = events[-1].completion.samples[0]
    assert [e.token_id for e in events if hasattr(e, "token_id")] == done.tokens
    assert "".join(getattr(e, "text", "") for e in events) == done.text


def test_requests_near_the_end_of_the_context_still_speculate_and_stop_at_it(tok, models):
    _, on = engines(models[2], tok, 3)
    off, _ = engines(models[2], tok, 3)
    prompt = tok.encode(PROMPTS[1])
    params = SamplingParams(temperature=0, max_tokens=500, ignore_eos=True)
    got, want = on.generate([prompt], params)[0].samples[0], off.generate([prompt], params)[0].samples[0]
    assert got.tokens == want.tokens and got.finish_reason == "length"
    assert len(prompt) + len(got.tokens) == MAX_LEN


# --------------------------------------------------------------------------------------------------- policy
def test_auto_speculates_at_small_batch_and_not_beyond_its_limit(base):
    model, tokenizer = base
    prompts = base_prompts(tokenizer, 4)
    params = SamplingParams(temperature=0, max_tokens=30)
    small = Engine(model, tokenizer, max_batch=8, max_len=MAX_LEN, speculative_max_batch=4)
    small.generate(prompts, params)
    assert small.stats["spec_rounds"] == small.stats["decode_steps"] > 0
    big = Engine(model, tokenizer, max_batch=8, max_len=MAX_LEN, speculative_max_batch=3)
    big.generate(prompts, params)  # 4 rows decode together: above the limit until one finishes
    assert big.stats["spec_rounds"] < big.stats["decode_steps"]
    first_steps = big.stats["decode_steps"] - big.stats["spec_rounds"]
    assert first_steps >= 5  # the shortest output is longer than that: plain steps while all four were running


def test_auto_stops_speculating_when_drafts_are_rejected_and_probes_again(tok):
    """A model whose MTP module is untrained (as a checkpoint saved by transformers gives): `auto` notices the
    drafts are rejected and decodes plainly, retrying one round every PROBE_EVERY steps; `on` keeps speculating."""
    model = tiny_model(tok, "tiny", seed=3, max_len=MAX_LEN)
    with torch.no_grad():
        model.mtp[0].eh_proj.weight.zero_()  # the drafts ignore the main model: a constant guess
    params = SamplingParams(temperature=0, max_tokens=100, ignore_eos=True)
    auto = Engine(model, tok, max_batch=4, max_len=MAX_LEN)
    auto.generate([PROMPTS[0]], params)
    st = auto.stats
    assert st["spec_accepted_tokens"] < 0.2 * st["spec_draft_tokens"]
    assert st["spec_rounds"] <= 4 + st["decode_steps"] // PROBE_EVERY
    on = Engine(model, tok, max_batch=4, max_len=MAX_LEN, speculative="on")
    on.generate([PROMPTS[0]], params)
    assert on.stats["spec_rounds"] == on.stats["decode_steps"]


def test_off_and_models_without_mtp_do_not_speculate_and_bad_settings_are_one_line_errors(tok, models):
    assert Engine(models[1], tok, speculative="off").speculator is None
    dense = tiny_model(tok, "tiny-qwen2", max_len=MAX_LEN)
    assert Engine(dense, tok).speculator is None  # auto: nothing to draft with
    with pytest.raises(UserError, match="no MTP module"):
        Engine(dense, tok, speculative="on")
    with pytest.raises(UserError, match="speculative='maybe'"):
        Engine(models[1], tok, speculative="maybe")
    with pytest.raises(UserError, match="num_speculative_tokens=0"):
        Engine(models[1], tok, num_speculative_tokens=0)
    with pytest.raises(UserError, match="max_batch=0"):
        Engine(models[1], tok, speculative_max_batch=0)


def test_batch_jobs_decode_without_speculation_so_samples_do_not_depend_on_the_batch():
    """`auto` speculates while few rows decode, which changes a seeded sampled row's draws; the evaluator's engine
    (as the pipeline's, GRPO's and the generate stage's) is built with speculation off, so an evaluation gives the
    same samples whatever the batch size."""
    from r1.engine.adapters import make_generate_fn
    from r1.eval.cli import engine_generate_fn
    from r1.eval.evaluate import evaluate
    from r1.tasks.base import get_task

    items = get_task("modchain").generate(2, seed=3, difficulty="4-6", split="eval")

    def texts(fn) -> list[str]:
        sampling = dict(temperature=1.0, top_p=1.0, max_new_tokens=96, template="r1-zero-short", seed=5)
        return [s["text"] for s in evaluate(items, fn, k=4, progress=False, **sampling).samples]

    small_batches = texts(
        make_generate_fn(Engine.from_pretrained(model_path("base-tiny"), max_batch=4, speculative="off"))
    )
    assert texts(engine_generate_fn("base-tiny")) == small_batches
    auto = texts(make_generate_fn(Engine.from_pretrained(model_path("base-tiny"), speculative="auto")))
    assert auto != small_batches  # what an evaluation would report under `auto`: other, equally distributed draws
