"""`r1 serve` as OpenAI clients meet it, on a model folder r1 did not write.

The folder is written by transformers (`Qwen2ForCausalLM.save_pretrained`, random weights) with a ChatML tokenizer
built here with `tokenizers` and saved by `PreTrainedTokenizerFast.save_pretrained` (Qwen2.5-style `<|im_start|>`
template, `<|im_end|>` as EOS). The official `openai` client drives a real uvicorn server; logprobs are checked
against transformers' own forward of the same folder.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import openai
import pytest
import torch
from serving import r1_serve, wait_idle

from r1.data.tokenizer_corpus import default_training_text
from r1.engine import Engine
from r1.serve.app import create_app
from r1.serve.cli import serve_in_thread, served_names

transformers = pytest.importorskip("transformers")

MAX_LEN = 256
MSG = [{"role": "user", "content": "What is 2 + 3?"}]
CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def write_hf_chatml_qwen2(path) -> None:
    """A tiny random Qwen2 and a ChatML byte-level BPE, both written by transformers' save_pretrained."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    backend.train_from_iterator(list(default_training_text(500)), trainer)
    tok = transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<|endoftext|>", chat_template=CHATML
    )
    tok.save_pretrained(path)
    # Qwen2's config.json has no attention_bias key (Qwen2 always has q/k/v biases): r1 must know that on its own.
    cfg = transformers.Qwen2Config(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=MAX_LEN,
        eos_token_id=tok.eos_token_id,
        bos_token_id=None,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    transformers.Qwen2ForCausalLM(cfg).save_pretrained(path, safe_serialization=True)


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("hf") / "qwen2-chatml"
    write_hf_chatml_qwen2(path)
    return path


@pytest.fixture(scope="module")
def theirs(hf_dir):
    """The same folder loaded by transformers, for reference logprobs."""
    # Not AutoTokenizer: for a qwen2 folder transformers 5 swaps in Qwen2Tokenizer, which rebuilds Qwen's own
    # pre-tokenizer (digits split one by one) instead of the one this tokenizer.json holds. tokenizer.json is the
    # file r1 and vLLM's fast path read, so the reference reads it as is.
    tok = transformers.PreTrainedTokenizerFast.from_pretrained(hf_dir)
    model = transformers.AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
    return tok, model


@pytest.fixture(scope="module")
def served(hf_dir, one_thread):
    engine = Engine.from_pretrained(hf_dir, max_batch=32, max_len=MAX_LEN)
    app = create_app(engine, served_names(None, hf_dir))
    with serve_in_thread(app) as base:
        yield base, engine


@pytest.fixture(scope="module")
def client(served):
    return openai.OpenAI(base_url=served[0] + "/v1", api_key="unused", max_retries=0, timeout=60)


@torch.inference_mode()
def reference_logprobs(theirs, messages, completion_ids: list[int]) -> torch.Tensor:
    """transformers' log_softmax at each generated position: [len(completion_ids), V]."""
    tok, model = theirs
    prompt = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False)
    ids = torch.tensor([list(prompt) + completion_ids])
    return model(ids).logits[0, len(prompt) - 1 : -1].float().log_softmax(-1)


def test_served_names_default_to_r1_and_the_folder(served, client, hf_dir):
    assert [m.id for m in client.models.list().data] == ["r1", hf_dir.name]
    assert client.models.retrieve(hf_dir.name).id == hf_dir.name
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4")
    for name in ("r1", hf_dir.name):
        r = client.chat.completions.create(model=name, messages=MSG, max_tokens=3)
        assert r.model == "r1" and r.choices[0].message.content is not None
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="gpt-4", messages=MSG)
    assert err.value.body["param"] == "model" and "'r1'" in err.value.body["message"]
    assert served_names(["a", "b", "a"], hf_dir) == ["a", "b"]


def test_the_client_sends_only_what_it_is_given(served):
    """Strictness is safe for stock clients: plain calls of the official client carry no extra fields."""
    sent: list[dict] = []
    hook = {"request": [lambda req: sent.append(json.loads(req.content))]}
    with httpx.Client(event_hooks=hook) as http:
        c = openai.OpenAI(base_url=served[0] + "/v1", api_key="unused", max_retries=0, http_client=http)
        c.chat.completions.create(model="r1", messages=MSG, max_tokens=2)
        list(c.chat.completions.create(model="r1", messages=MSG, max_tokens=2, stream=True))
        c.completions.create(model="r1", prompt="Hi", max_tokens=2)
        with c.chat.completions.stream(model="r1", messages=MSG, max_tokens=2) as s:
            s.until_done()
    assert [sorted(b) for b in sent] == [
        ["max_tokens", "messages", "model"],
        ["max_tokens", "messages", "model", "stream"],
        ["max_tokens", "model", "prompt"],
        ["max_tokens", "messages", "model", "stream"],
    ]


def token_id(entry) -> int:
    assert entry.token.startswith("token_id:"), entry.token
    return int(entry.token.removeprefix("token_id:"))


def test_chat_logprobs_are_transformers_logprobs_and_streaming_agrees(client, theirs):
    kw = dict(model="r1", messages=MSG, max_tokens=12, seed=4, temperature=0.8, top_p=0.9, n=2, logprobs=True,
              top_logprobs=3, extra_body={"ignore_eos": True})  # fmt: skip
    full = client.chat.completions.create(**kw)
    as_ids = client.chat.completions.create(
        **{**kw, "extra_body": {"ignore_eos": True, "return_tokens_as_token_ids": True}}
    )
    tok = theirs[0]
    assert full.usage.completion_tokens == 24
    for c, c_ids in zip(full.choices, as_ids.choices):
        msg = c.message
        assert msg.content == c_ids.message.content  # same seed, same text
        assert msg.model_extra["reasoning"] is None and msg.model_extra["reasoning_content"] is None  # no <think>
        content = c.logprobs.content
        ids = [token_id(e) for e in c_ids.logprobs.content]
        assert len(content) == len(ids) == 12
        assert tok.decode(ids) == msg.content
        assert [e.token for e in content] == [tok.decode([i]) for i in ids]
        assert b"".join(bytes(e.bytes) for e in content) == tok.decode(ids).encode() or "\ufffd" in msg.content
        # Raw mode (the default, vLLM's): the model's own distribution, whatever temperature/top_p did.
        ref = reference_logprobs(theirs, MSG, ids)
        for step, (e, i) in enumerate(zip(c_ids.logprobs.content, ids)):
            assert abs(e.logprob - ref[step, i].item()) < 1e-4
            assert [token_id(t) for t in e.top_logprobs] == ref[step].topk(3).indices.tolist()
            assert max(abs(t.logprob - ref[step, token_id(t)].item()) for t in e.top_logprobs) < 1e-4
    stream = client.chat.completions.create(**kw, stream=True)
    streamed: dict[int, list] = {0: [], 1: []}
    text: dict[int, str] = {0: "", 1: ""}
    for chunk in stream:
        for c in chunk.choices:
            text[c.index] += c.delta.content or ""
            if c.logprobs is not None:
                streamed[c.index] += c.logprobs.content
    for c in full.choices:
        assert text[c.index] == c.message.content
        assert [e.model_dump() for e in streamed[c.index]] == [e.model_dump() for e in c.logprobs.content]


def test_processed_logprobs_are_the_distribution_sampled_from(served, theirs):
    _, engine = served
    app = create_app(engine, "r1", logprobs_mode="processed_logprobs")  # a second front end on the running engine
    with serve_in_thread(app) as base:
        c = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0, timeout=60)
        kw = dict(model="r1", messages=MSG, max_tokens=6, logprobs=True, top_logprobs=3)
        greedy = c.chat.completions.create(**kw, temperature=0.0).choices[0].logprobs.content
        assert [(e.logprob, [t.logprob for t in e.top_logprobs]) for e in greedy] == [
            (0.0, [0.0, -9999.0, -9999.0])
        ] * 6
        assert all(e.token == e.top_logprobs[0].token for e in greedy)  # a point mass on the argmax
        extra = {"top_k": 3, "ignore_eos": True, "return_tokens_as_token_ids": True}
        hot = c.chat.completions.create(**kw, temperature=0.7, seed=1, extra_body=extra).choices[0].logprobs.content
    ids = [token_id(e) for e in hot]
    ref = reference_logprobs(theirs, MSG, ids)
    for step, e in enumerate(hot):
        top3 = (ref[step] / 0.7).topk(3)  # log_softmax scaled by 1/T keeps the order; renormalise over the kept 3
        want = top3.values - top3.values.logsumexp(-1)
        assert [token_id(t) for t in e.top_logprobs] == top3.indices.tolist()
        assert max(abs(t.logprob - w) for t, w in zip(e.top_logprobs, want.tolist())) < 1e-4
        assert ids[step] in top3.indices.tolist()  # top-k 3 never samples outside the 3


def test_completions_logprobs_legacy_shape_streaming_and_echo(client, theirs):
    tok = theirs[0]
    kw = dict(model="r1", prompt="Hello", max_tokens=10, logprobs=2, n=2, seed=5, temperature=1.0)
    extra = {"ignore_eos": True}
    full = client.completions.create(**kw, extra_body=extra)
    as_ids = client.completions.create(**kw, extra_body={**extra, "return_tokens_as_token_ids": True})
    prompt = tok.encode("Hello", add_special_tokens=False)
    for c, ci in zip(full.choices, as_ids.choices):
        lp, ids = c.logprobs, [int(t.removeprefix("token_id:")) for t in ci.logprobs.tokens]
        assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset) == 10
        assert c.text == ci.text == tok.decode(ids) and lp.tokens == [tok.decode([i]) for i in ids]
        with torch.inference_mode():
            ref = theirs[1](torch.tensor([prompt + ids])).logits[0, len(prompt) - 1 : -1].float().log_softmax(-1)
        assert max(abs(v - ref[k, i].item()) for k, (v, i) in enumerate(zip(lp.token_logprobs, ids))) < 1e-4
        for k, (top, i) in enumerate(zip(ci.logprobs.top_logprobs, ids)):
            best = ref[k].topk(2).indices.tolist()
            assert set(top) == {f"token_id:{t}" for t in {*best, i}}  # the 2 most likely, and the sampled one
        clean = [k for k in range(11) if "\ufffd" not in tok.decode(ids[:k])]
        assert all(lp.text_offset[k] == len(tok.decode(ids[:k])) for k in clean if k < 10)
    pieces: dict[int, list] = {0: [], 1: []}
    for chunk in client.completions.create(**kw, extra_body=extra, stream=True):
        for ch in chunk.choices:
            pieces[ch.index].append(ch)
    for c in full.choices:
        got = pieces[c.index]
        assert "".join(ch.text for ch in got) == c.text
        for field in ("tokens", "token_logprobs", "top_logprobs", "text_offset"):
            joined = [x for ch in got if ch.logprobs is not None for x in getattr(ch.logprobs, field)]
            assert joined == getattr(c.logprobs, field), field
    echoed = client.completions.create(model="r1", prompt="Hello", max_tokens=4, seed=5, echo=True)
    plain = client.completions.create(model="r1", prompt="Hello", max_tokens=4, seed=5)
    assert echoed.choices[0].text == "Hello" + plain.choices[0].text
    streamed = client.completions.create(model="r1", prompt="Hello", max_tokens=4, seed=5, echo=True, stream=True)
    assert "".join(ch.choices[0].text for ch in streamed if ch.choices) == echoed.choices[0].text


def test_stop_string_keeps_the_token_it_matched_in(client):
    kw = dict(model="r1", messages=MSG, max_tokens=30, temperature=0.0, logprobs=True, extra_body={"ignore_eos": True})
    text = client.chat.completions.create(**kw).choices[0].message.content
    # a two-character stop string of whole characters that first occurs where it is taken from
    clean = [
        i
        for i in range(3, len(text) - 2)
        if text[i : i + 2].strip() and "\ufffd" not in text[i : i + 2] and text.index(text[i : i + 2]) == i
    ]
    stop = text[clean[0] : clean[0] + 2]
    r = client.chat.completions.create(**kw, stop=[stop])
    (choice,) = r.choices
    assert choice.finish_reason == "stop" and choice.message.content == text[: text.index(stop)]
    content = choice.logprobs.content
    assert len(content) == r.usage.completion_tokens  # the token holding the stop string is reported
    spelled = b"".join(bytes(e.bytes) for e in content).decode(errors="replace")
    assert spelled.startswith(choice.message.content) and stop in spelled


def test_eos_ends_a_sample_and_is_not_reported(client):
    for seed in range(10):  # random weights emit <|im_end|> about once in 400 tokens: find a seed where one does
        r = client.chat.completions.create(model="r1", messages=MSG, max_tokens=48, n=16, seed=seed, logprobs=True)
        stopped = [c for c in r.choices if c.finish_reason == "stop"]
        if stopped:
            break
    assert stopped, "no sample reached EOS in 10 seeds"
    assert sum(len(c.logprobs.content) for c in r.choices) == r.usage.completion_tokens - len(stopped)
    for c in stopped:
        assert "<|im_end|>" not in c.message.content and c.logprobs.content[-1].token != "<|im_end|>"
        assert b"".join(bytes(e.bytes) for e in c.logprobs.content).decode(errors="replace") == c.message.content


def test_64_concurrent_streams(served):
    base, engine = served

    async def one(c: openai.AsyncOpenAI, i: int) -> tuple[str, str | None, int]:
        stream = await c.chat.completions.create(
            model="r1", messages=[{"role": "user", "content": f"Question {i}"}], max_tokens=8, seed=i, stream=True,
            logprobs=i % 2 == 0, extra_body={"ignore_eos": True},
        )  # fmt: skip
        text, finish, logprobs = "", None, 0
        async for chunk in stream:
            for ch in chunk.choices:
                text += ch.delta.content or ""
                finish = ch.finish_reason or finish
                logprobs += len(ch.logprobs.content) if ch.logprobs else 0
        return text, finish, logprobs

    async def main() -> list:
        async with openai.AsyncOpenAI(base_url=base + "/v1", api_key="unused", max_retries=0, timeout=120) as c:
            return await asyncio.gather(*(one(c, i) for i in range(64)), return_exceptions=True)

    results = asyncio.run(main())
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, errors[:3]
    assert all(finish == "length" for _, finish, _ in results)
    assert [n for _, _, n in results] == [8 if i % 2 == 0 else 0 for i in range(64)]
    assert wait_idle(engine, 2.0) and engine.scheduler.rows == []  # every cache row freed


@pytest.mark.slow  # a fresh interpreter importing torch: ~3-7 s; the fixture above serves the same names in-process
def test_r1_serve_answers_the_readme_example(hf_dir):
    """`r1 serve --model DIR` as a user runs it, and the README's client call, `model="r1"`, unchanged."""
    args = ("--max-len", "128", "--max-batch", "4", "--threads", "1", "--log-level", "warning")
    with r1_serve(str(hf_dir), *args) as base:
        client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0, timeout=60)
        r = client.chat.completions.create(model="r1", messages=[{"role": "user", "content": "What is 7*8?"}])
        assert r.model == "r1" and r.choices[0].message.content is not None
        assert r.choices[0].message.reasoning_content is None  # the README reads it so; ChatML has no <think>
        assert [m.id for m in client.models.list().data] == ["r1", hf_dir.name]
