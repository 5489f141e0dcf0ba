"""fp32, bf16 and fp16 checkpoints through every entry point: the resolver, the engine, the server, the CLIs, training.

The 16-bit checkpoints are written the way users get them: the shipped base-tiny (a trained tiny DeepSeek-V3) and
random tiny Qwen2 / Llama models saved in bf16 / fp16 by r1's `save_pretrained` or by transformers' own classes,
with the shipped tokenizer. Their outputs are checked against the same weights run in fp32, not only for running:
bf16 keeps ~3 significant digits, so single logits differ by ~0.1 and a near-tied MoE routing choice (the shipped
model has one with a 3e-5 margin in this file's probe text) may flip; the checks allow that on a few positions.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import httpx
import openai
import pytest
import torch
from trainer_fixtures import assert_identical, state_copy, tiny_config, token_corpus, train_run, write_config

from r1 import dtypes
from r1.cli import main as cli
from r1.dtypes import autocast_dtype, checkpoint_dtype, inference_dtype, native_bf16, parse_dtype
from r1.engine import Engine, SamplingParams
from r1.engine.testing import tiny_model
from r1.errors import ConfigError, UserError
from r1.model.checkpoint import load_pretrained, read_safetensors, save_pretrained
from r1.serve.app import create_app
from r1.serve.cli import generation_defaults, serve_in_thread
from r1.tokenizer import Tokenizer
from r1.train import train
from r1.train.pretrain import PretrainStage

BASE = Path(__file__).resolve().parents[1] / "r1" / "assets" / "base-tiny"
LOW = (torch.bfloat16, torch.float16)
# per-token |Δ logprob| vs fp32 on the same weights, median over tokens: what each format's rounding gives
MEDIAN_TOL = {torch.bfloat16: 0.05, torch.float16: 0.01}
MAX_LEN = 256

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return Tokenizer.load(BASE)


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory, tok):
    """{(kind, dtype): directory}: base-tiny ("tiny") and random tiny-qwen2 / tiny-llama, in fp32, bf16 and fp16."""
    root = tmp_path_factory.mktemp("dtypes")
    models = {"tiny": load_pretrained(BASE)}
    models.update({k: tiny_model(tok, k, max_len=MAX_LEN) for k in ("tiny-qwen2", "tiny-llama")})
    out = {}
    for kind, model in models.items():
        for dt in (torch.float32, *LOW):
            d = root / f"{kind}-{dtypes.dtype_name(dt)}"
            save_pretrained(model, d, dtype=dt)
            tok.save(d)
            out[kind, dt] = d
    return out


def prompts(tok: Tokenizer) -> list[list[int]]:
    """base-tiny's own format (plain chat template) and a raw text prompt."""
    chats = ["What is 3 + 4, then times 2?", "Compute 5 * 6 mod 7 step by step."]
    ids = [
        tok.apply_chat_template([{"role": "user", "content": c}], add_generation_prompt=True, tokenize=True)
        for c in chats
    ]
    return [*ids, [tok.bos_id, *tok.encode("The answer is")]]


@torch.inference_mode()
def teacher_forced(model, prompt: list[int], tokens: list[int]) -> torch.Tensor:
    """fp32 log-probs [len(tokens), V] of a cache-free forward at the positions that predicted `tokens`."""
    logits = model(torch.tensor([prompt + tokens])).logits[0].float()
    return logits.log_softmax(-1)[len(prompt) - 1 : -1]


def compare_with_fp32(ref_model, prompt_ids, samples) -> tuple[float, float, list[float]]:
    """(share of steps where fp32 also picks the sampled token, median |Δ model_logprob|, all the Δs)."""
    agree, diffs = [], []
    for ids, s in zip(prompt_ids, samples):
        lp = teacher_forced(ref_model, ids, s.tokens)
        t = torch.tensor(s.tokens)
        agree += (lp.argmax(-1) == t).tolist()
        diffs += (torch.tensor(s.model_logprobs) - lp.gather(1, t[:, None])[:, 0]).abs().tolist()
    return sum(agree) / len(agree), float(torch.tensor(diffs).median()), diffs


# ================================================================================================= resolver
def test_parse_dtype_names_and_errors():
    assert parse_dtype("bfloat16") is parse_dtype("bf16") is parse_dtype("torch.bfloat16") is torch.bfloat16
    assert parse_dtype("float16") is parse_dtype("FP16") is parse_dtype(torch.float16) is torch.float16
    assert parse_dtype("auto") is None and parse_dtype(None) is None
    with pytest.raises(UserError, match=r"--dtype 'fp8': must be one of auto, float32, bfloat16, float16"):
        parse_dtype("fp8")
    with pytest.raises(UserError, match="--dtype torch.int8"):
        parse_dtype(torch.int8)


def test_native_bf16_needs_the_capability_and_a_faster_probe(monkeypatch):
    check = native_bf16.__wrapped__  # the uncached function: each case below measures afresh
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    monkeypatch.setattr(dtypes, "_probe_seconds", lambda dtype: pytest.fail("no probe without the capability"))
    assert check("cpu") == (False, "CPU capability AVX2: no native bf16 matmuls")
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    monkeypatch.setattr(dtypes, "_probe_seconds", lambda dtype: {torch.float32: 1.0, torch.bfloat16: 2.0}[dtype])
    ok, why = check("cpu")  # AVX512 without AVX512-BF16/AMX: bf16 converts through fp32 and is slower
    assert not ok and "0.5x the speed of fp32" in why
    monkeypatch.setattr(dtypes, "_probe_seconds", lambda dtype: {torch.float32: 1.0, torch.bfloat16: 0.4}[dtype])
    assert check("cpu") == (True, "CPU AVX512 with native bf16 (a 256² bf16 matmul ran 2.5x faster than fp32)")


def test_native_bf16_on_this_machine_is_measured_once_and_fits_its_capability():
    first = native_bf16("cpu")
    assert native_bf16("cpu") is first  # cached per process
    if torch.backends.cpu.get_cpu_capability() in ("DEFAULT", "NO AVX", "AVX2"):
        assert first[0] is False


def test_auto_picks_by_checkpoint_and_device_and_says_it_once(monkeypatch, capsys):
    monkeypatch.setattr(dtypes, "_said", set())
    assert inference_dtype("auto", torch.float32) is torch.float32  # the engine's fp32 path stays the default
    assert "computing in float32 (checkpoint float32; as stored)" in capsys.readouterr().err
    native, why = native_bf16("cpu")
    for stored in LOW:
        assert inference_dtype(None, stored) is (torch.bfloat16 if native else torch.float32)
    err = capsys.readouterr().err
    assert err.count(why) == 2 and err.count("\n") == 2  # one line per distinct decision
    assert inference_dtype("auto", torch.float16) and capsys.readouterr().err == ""  # said already
    assert inference_dtype("float32", torch.bfloat16) is torch.float32  # an explicit dtype is obeyed
    assert inference_dtype("float16", torch.float32) is torch.float16
    assert "float16 on CPU" in capsys.readouterr().err
    monkeypatch.setattr(dtypes, "native_bf16", lambda device: (False, "no bf16 here"))
    assert inference_dtype("auto", torch.bfloat16) is torch.float32
    # CUDA: bf16 wherever the GPU has it (fp32 checkpoints too, as vLLM); else fp16 only for fp16 checkpoints
    for stored, want in (
        (torch.float32, torch.float32),
        (torch.bfloat16, torch.float32),
        (torch.float16, torch.float16),
    ):
        assert inference_dtype("auto", stored, "cuda") is want
    monkeypatch.setattr(dtypes, "native_bf16", lambda device: (device == "cuda", "the GPU supports bf16"))
    assert all(inference_dtype("auto", stored, "cuda") is torch.bfloat16 for stored in (torch.float32, *LOW))
    assert autocast_dtype("auto", "cuda") is torch.bfloat16


def test_train_autocast_dtype():
    assert autocast_dtype("fp32") is None
    assert autocast_dtype("bf16") is torch.bfloat16 and autocast_dtype("fp16") is torch.float16
    assert autocast_dtype("auto") is (torch.bfloat16 if native_bf16("cpu")[0] else None)
    with pytest.raises(ConfigError, match="train.dtype='fp8'"):
        autocast_dtype("fp8")
    with pytest.raises(ConfigError, match=r"train\.dtype='half': must be one of fp32, bf16, fp16, auto"):
        tiny_config("unused", train__dtype="half")


def test_checkpoint_dtype_reads_the_headers(ckpts, tmp_path):
    for (kind, dt), d in ckpts.items():
        assert checkpoint_dtype(d) is dt, (kind, dt)
    assert checkpoint_dtype(tmp_path) is torch.float32  # nothing there: the loader reports it


# ================================================================================================= engine
@pytest.mark.parametrize("dtype", LOW, ids=["bf16", "fp16"])
def test_the_shipped_model_in_16_bit_generates_what_fp32_does(tok, ckpts, dtype):
    """Prefill, fast decode, greedy and seeded top-p sampling, logprobs: the same text as fp32 on these weights."""
    d = ckpts["tiny", dtype]
    eng = Engine.from_pretrained(d, dtype=dtype, max_batch=16, max_len=MAX_LEN)
    assert {p.dtype for p in eng.model.parameters()} == {dtype}
    assert eng.model.decodes_on_latent(eng.scheduler.cache) == (dtype == torch.bfloat16)
    ref = Engine.from_pretrained(d, dtype="float32", max_batch=16, max_len=MAX_LEN)
    ids = prompts(tok)
    greedy = SamplingParams(temperature=0, max_tokens=20, ignore_eos=True)
    ours = [c.samples[0] for c in eng.generate(ids, greedy)]
    theirs = [c.samples[0] for c in ref.generate(ids, greedy)]
    for a, b in zip(ours, theirs):  # a trained model's next token is rarely a near-tie: long common prefixes
        common = next((i for i, (x, y) in enumerate(zip(a.tokens, b.tokens)) if x != y), len(a.tokens))
        assert common >= 12, (a.text, b.text)
    agree, median, _ = compare_with_fp32(ref.model, ids, ours)
    assert agree >= 0.9 and median < MEDIAN_TOL[dtype]
    sampled = SamplingParams(temperature=1.0, top_p=0.9, max_tokens=12, n=2, seed=3, ignore_eos=True)
    out = eng.generate(ids, sampled)
    samples = [s for c in out for s in c.samples]
    assert len({tuple(s.tokens) for s in samples}) > 3  # really sampling
    assert all(lp <= 1e-6 for s in samples for lp in s.logprobs + s.model_logprobs)
    agree, median, _ = compare_with_fp32(ref.model, [i for i in ids for _ in range(2)], samples)
    assert median < MEDIAN_TOL[dtype]
    again = eng.generate(ids, sampled)  # seeded: reproducible in 16-bit too
    assert [s.tokens for c in again for s in c.samples] == [s.tokens for s in samples]


@pytest.mark.parametrize("dtype", LOW, ids=["bf16", "fp16"])
@pytest.mark.parametrize("kind", ["tiny-qwen2", "tiny-llama"])
def test_dense_models_in_16_bit(tok, ckpts, kind, dtype):
    eng = Engine.from_pretrained(ckpts[kind, dtype], dtype=dtype, max_batch=8, max_len=MAX_LEN)
    ref = load_pretrained(ckpts[kind, dtype], dtype=torch.float32)
    ids = prompts(tok)
    out = eng.generate(ids, SamplingParams(temperature=0, max_tokens=24, ignore_eos=True))
    agree, median, diffs = compare_with_fp32(ref, ids, [c.samples[0] for c in out])
    assert agree >= 0.8 and median < MEDIAN_TOL[dtype] and max(diffs) < 20 * MEDIAN_TOL[dtype]


@pytest.mark.parametrize("kind", ["tiny", "tiny-qwen2"])
def test_decode_step_in_16_bit_matches_forward(tok, ckpts, kind):
    """The engine's prefill and bf16 latent decode step against the model's own forward in the same dtype."""
    for dtype in LOW:
        model = load_pretrained(ckpts[kind, dtype], dtype=dtype)
        fused = model.fused_weights()
        g = torch.Generator().manual_seed(0)
        rows, close = 0, 0
        for B, T in [(1, 7), (3, 1), (5, 9), (24, 1)]:
            ids = torch.randint(0, tok.vocab_size, (B, T), generator=g)
            pos = torch.arange(T).expand(B, T) + torch.randint(0, 5, (B, 1), generator=g)
            ours_cache, ref_cache = model.new_cache(B, 32), model.new_cache(B, 32)
            with torch.inference_mode():
                for cache in (ours_cache, ref_cache):
                    model(ids, positions=pos, cache=cache)
                nxt, npos = ids[:, -1:], pos[:, -1:] + 1
                ours = model.decode_step(nxt, npos, ours_cache, fused)[:, -1]
                ref = model(nxt, positions=npos, cache=ref_cache, logits_to_keep=1).logits[:, -1]
            assert ours.dtype == dtype
            row = (ours.float() - ref.float()).abs().amax(-1)
            rows, close = rows + B, close + int((row < 0.2).sum())
        assert close >= 0.85 * rows  # the rest: near-tied expert choices that rounding flipped


MIXED = [  # (weights, cache, head): a cache or vocabulary projection in another dtype than the weights
    (torch.float32, torch.bfloat16, None),  # fp32 fast decode reading a bf16 cache
    (torch.bfloat16, torch.float32, None),
    (torch.float16, torch.bfloat16, torch.float32),
    (torch.float32, torch.float16, torch.bfloat16),
]


@pytest.mark.parametrize(("kind", "mla_impl"), [("tiny", "absorb"), ("tiny", "naive"), ("tiny-qwen2", "gqa")])
@pytest.mark.parametrize(("weights", "cache", "head"), MIXED, ids=["fp32-bf16", "bf16-fp32", "fp16-bf16", "fp32-fp16"])
def test_mixed_cache_and_head_dtypes(tok, ckpts, kind, mla_impl, weights, cache, head):
    model = load_pretrained(ckpts[kind, torch.bfloat16], dtype=weights)
    impl = "absorb" if mla_impl == "gqa" else mla_impl  # dense models have one cache layout
    eng = Engine(model, tok, max_batch=4, max_len=64, mla_impl=impl, cache_dtype=cache, head_dtype=head)
    ids = prompts(tok)[:2]
    out = eng.generate(ids, SamplingParams(temperature=0, max_tokens=6, ignore_eos=True))
    ref = load_pretrained(ckpts[kind, torch.bfloat16], dtype=torch.float32)
    agree, median, _ = compare_with_fp32(ref, ids, [c.samples[0] for c in out])
    assert agree >= 0.8 and median < 0.05


def test_a_16_bit_checkpoint_without_mtp_weights_trains_in_its_dtype(tmp_path, tok):
    """transformers drops the MTP module when it saves: it starts fresh, in the checkpoint's dtype."""
    save_pretrained(load_pretrained(BASE), tmp_path / "full", dtype=torch.bfloat16)
    tensors = read_safetensors(tmp_path / "full")
    mtp = f"model.layers.{json.loads((BASE / 'config.json').read_text())['num_hidden_layers']}."
    (tmp_path / "hf").mkdir()
    shutil.copy(tmp_path / "full" / "config.json", tmp_path / "hf")
    from safetensors.torch import save_file

    save_file({k: v for k, v in tensors.items() if not k.startswith(mtp)}, tmp_path / "hf" / "model.safetensors")
    with pytest.warns(UserWarning, match="no MTP weights"):
        model = load_pretrained(tmp_path / "hf")
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    bias = model.moe_layers()[0].gate.e_score_correction_bias
    assert bias.dtype == torch.float32
    ids = torch.tensor([prompts(tok)[0] + tok.encode(" 14</answer>")])
    out = model.train()(ids, labels=ids)  # plain bf16, no autocast: MTP, router and norms on bf16 activations
    out.loss.backward()
    assert torch.isfinite(out.loss) and torch.isfinite(out.mtp_loss)
    assert model.mtp[0].eh_proj.weight.grad.dtype == torch.bfloat16


# ============================================================================================ transformers
@pytest.mark.parametrize("dtype", LOW, ids=["bf16", "fp16"])
@pytest.mark.parametrize("kind", ["tiny", "tiny-qwen2", "tiny-llama"])
def test_checkpoints_written_by_transformers_in_16_bit(tok, ckpts, tmp_path, kind, dtype):
    """transformers loads our fp32 file in 16-bit and saves it (its own writer, dtype in config.json, no MTP); our
    engine then computes what transformers computes in that dtype."""
    transformers = pytest.importorskip("transformers")
    theirs = transformers.AutoModelForCausalLM.from_pretrained(ckpts[kind, torch.float32], dtype=dtype).eval()
    theirs.save_pretrained(tmp_path)
    tok.save(tmp_path)
    assert checkpoint_dtype(tmp_path) is dtype
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no MTP weights (V3): expected, see the test above
        eng = Engine.from_pretrained(tmp_path, dtype=dtype, max_len=MAX_LEN)
    ids = torch.tensor([prompts(tok)[0] + tok.encode(" 3 + 4 = 7, 7 * 2 = 14</think>\n<answer>14</answer>")])
    T = ids.shape[1]
    with torch.inference_mode():
        fused = eng.scheduler.fused
        ours = eng.model.decode_step(ids, torch.arange(T)[None], eng.model.new_cache(1, T), fused)[0].float()
        ref = theirs(ids).logits[0].float()
    row = (ours - ref).abs().amax(-1)
    assert (row < 4 * MEDIAN_TOL[dtype]).float().mean() >= 0.95, row.tolist()
    assert (ours.argmax(-1) == ref.argmax(-1)).float().mean() >= 0.95


# ================================================================================================= server
@pytest.mark.parametrize(("kind", "dtype"), [("tiny", "bfloat16"), ("tiny-qwen2", "float16")])
def test_server_answers_on_16_bit_checkpoints(tok, ckpts, kind, dtype):
    """What `r1 serve --dtype X` builds, on a checkpoint stored in 16 bits: every request answered, none a 500."""
    stored = torch.float16 if kind == "tiny-qwen2" else torch.bfloat16
    d = ckpts[kind, stored]
    engine = Engine.from_pretrained(d, dtype=dtype, max_batch=8, max_len=MAX_LEN)
    reference = Engine.from_pretrained(d, dtype="float32", max_batch=8, max_len=MAX_LEN)
    app = create_app(engine, "m", generation_defaults(d))
    with serve_in_thread(app) as base:
        assert httpx.get(base + "/health").json()["status"] == "ok"
        client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0, timeout=60)
        msgs = [{"role": "user", "content": "What is 3 + 4, then times 2?"}]
        r = client.chat.completions.create(model="m", messages=msgs, max_tokens=12, temperature=0)
        assert r.usage.completion_tokens > 0 and r.choices[0].finish_reason in ("stop", "length")
        r = client.chat.completions.create(model="m", messages=msgs, max_tokens=10, n=2, seed=1, temperature=1)
        assert len(r.choices) == 2
        chunks = list(client.chat.completions.create(model="m", messages=msgs, max_tokens=10, stream=True, seed=2))
        assert chunks[-1].choices[0].finish_reason in ("stop", "length")
        text = "The answer is"
        r = client.completions.create(model="m", prompt=text, max_tokens=12, temperature=0)
        want = reference.generate([engine.encode(text, add_bos=True)], SamplingParams(temperature=0, max_tokens=12))
        # the 16-bit answer begins like the fp32 one on the same weights (the shipped model: all of it)
        assert r.choices[0].text[:6] == want[0].samples[0].text[:6]
        bad = httpx.post(base + "/v1/completions", json={"model": "m", "prompt": text, "temperature": -1})
        assert bad.status_code == 400  # user errors stay 4xx


# ==================================================================================================== CLIs
def test_chat_cli_takes_every_dtype(ckpts, capsys, monkeypatch):
    monkeypatch.setattr(dtypes, "_said", set())
    d = str(ckpts["tiny", torch.bfloat16])
    texts = {}
    for dt in ("auto", "bfloat16", "float16", "float32"):
        argv = ["chat", "--model", d, "-p", "What is 3 + 4, then times 2?", "--max-tokens", "12", "--seed", "1"]
        assert cli([*argv, "--dtype", dt]) == 0
        cap = capsys.readouterr()
        assert "[answer]\n" in cap.out
        texts[dt] = cap.out
        if dt == "auto":
            assert cap.err.count("--dtype auto: computing in") == 1 and "checkpoint bfloat16" in cap.err
    assert len(set(texts.values())) <= 3  # bf16 and auto-on-a-bf16-CPU are the same run; all seeded and sane
    with pytest.raises(SystemExit):
        cli(["chat", "--model", d, "-p", "hi", "--dtype", "fp8"])
    assert "invalid choice: 'fp8'" in capsys.readouterr().err


def test_eval_cli_takes_a_dtype(ckpts, tmp_path, capsys):
    d = str(ckpts["tiny", torch.bfloat16])
    results = {}
    for dt in ("bfloat16", "float32"):
        out = tmp_path / dt
        argv = [
            "eval",
            "--task",
            "modchain",
            "--n-items",
            "4",
            "-k",
            "1",
            "--temperature",
            "0",
            "--model",
            d,
            "--template",
            "r1",
            "--max-new-tokens",
            "48",
            "--dtype",
            dt,
            "--out",
            str(out),
            "--no-progress",
        ]
        assert cli(argv) == 0
        capsys.readouterr()
        results[dt] = [json.loads(line)["text"] for line in (out / "samples.jsonl").read_text().splitlines()]
    same = sum(a == b for a, b in zip(results["bfloat16"], results["float32"]))
    assert same >= 3, results  # greedy, same weights: bf16 answers as fp32 does (a rounding flip allowed)


# ================================================================================================ training
def test_train_fp16_scales_the_loss_and_resumes_exactly(tmp_path):
    """fp16 autocast with GradScaler, as HF Trainer's fp16=True: overflowing steps skipped, the scale halved, master
    weights fp32, and the scale is part of the checkpoint (a resumed run ends with the same weights)."""
    docs = token_corpus()
    common = dict(
        train__dtype="fp16",
        train__steps=6,
        schedule__kind="constant",
        schedule__warmup_steps=0,
        checkpoint__every=3,
        checkpoint__keep_last=3,
    )
    cfg = tiny_config(tmp_path / "full", **common)
    full = train(cfg, PretrainStage(cfg, data=docs))
    assert {p.dtype for p in full.model.parameters()} == {torch.float32}
    steps = [json.loads(r) for r in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    scales = [r["loss_scale"] for r in steps if r["event"] == "step"]
    assert scales[0] == 65536.0 and min(scales) < scales[0]  # GradScaler's start, then halvings on overflow
    assert all(b in (a, a / 2, a * 2) for a, b in zip(scales, scales[1:]))
    ref = state_copy(full.model)
    shutil.copytree(tmp_path / "full", tmp_path / "resumed")
    shutil.rmtree(tmp_path / "resumed" / "checkpoints" / "step-000006")
    cfg = tiny_config(tmp_path / "resumed", train__resume=True, **common)
    resumed = train(cfg, PretrainStage(cfg, data=docs))
    assert_identical(resumed.model, ref)


def test_training_starts_from_a_bf16_checkpoint_with_fp32_master_weights(tmp_path, monkeypatch, capsys):
    cfg = tiny_config(tmp_path / "first", train__steps=1)
    first = train(cfg, PretrainStage(cfg, data=token_corpus()))
    save_pretrained(first.model, tmp_path / "bf16", dtype=torch.bfloat16)
    monkeypatch.setattr(dtypes, "_said", set())
    cfg = tiny_config(tmp_path / "second", train__steps=2, train__dtype="auto", model__path=str(tmp_path / "bf16"))
    second = train(cfg, PretrainStage(cfg, data=token_corpus()))
    assert {p.dtype for p in second.model.parameters()} == {torch.float32}
    assert capsys.readouterr().err.count("train.dtype=auto: ") == 1


def test_grpo_from_a_bf16_checkpoint(tmp_path, ckpts):
    """R1-Zero from a bf16 base (as every published one is): fp32 master weights, so the engine's rollout
    log-probs are the trainer's up to fp32 noise."""
    base = {
        "stage": "grpo",
        "model": str(ckpts["tiny", torch.bfloat16]),
        "train.batch_size": 4,
        "train.micro_batch_size": 2,
        "train.steps": 2,
        "train.threads": 1,
        "schedule.kind": "constant",
        "schedule.warmup_steps": 0,
        "logging.progress": False,
        "logging.plots": False,
        "logging.report": False,
        "grpo.prompts_per_rollout": 2,
        "grpo.group_size": 4,
        "grpo.max_new_tokens": 8,
        "grpo.train_items": 8,
    }
    config = write_config(
        tmp_path / "grpo.yaml", [f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in base.items()]
    )
    result = train_run(config, tmp_path / "run")
    assert {p.dtype for p in result.model.parameters()} == {torch.float32}
    steps = [json.loads(r) for r in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    first = next(r for r in steps if r["event"] == "step")
    assert first["logprob_diff_max"] < 1e-4 and first["length_mean"] > 0


@pytest.mark.slow
@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch built without distributed")
def test_fp16_loss_scaling_agrees_across_fsdp2_processes(tmp_path):
    """GradScaler under FSDP2: an overflow on one rank's shard skips the step on every rank (the found-inf flag
    is all-reduced), so 2 processes skip the same steps and follow the single-process losses."""

    from trainer_fixtures import tiny_overrides, torchrun, write_jsonl

    from r1.train.config import load_config

    data = write_jsonl(tmp_path / "train.jsonl", token_corpus())
    common = [f"data.paths=[{data}]", "train.steps=4", "train.dtype=fp16"]
    train(load_config(None, [*tiny_overrides(tmp_path / "one"), *common]))
    proc = torchrun(*tiny_overrides(tmp_path / "two"), *common, "train.micro_batch_size=1")
    assert proc.returncode == 0, proc.stdout[-3000:]
    runs = {}
    for name in ("one", "two"):
        lines = (tmp_path / name / "metrics.jsonl").read_text().splitlines()
        runs[name] = [r for r in map(json.loads, lines) if r["event"] == "step"]
    assert [r["loss_scale"] for r in runs["one"]] == [r["loss_scale"] for r in runs["two"]]
    assert runs["one"][-1]["loss_scale"] < 65536.0  # some steps overflowed and were skipped
    torch.testing.assert_close(
        torch.tensor([r["loss"] for r in runs["two"]]),
        torch.tensor([r["loss"] for r in runs["one"]]),
        rtol=2e-4,
        atol=0,
    )
