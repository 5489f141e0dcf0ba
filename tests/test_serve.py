"""The OpenAI-compatible server, driven by the official `openai` client against a real uvicorn on loopback."""

from __future__ import annotations

import json
import threading

import httpx
import openai
import pytest
from serving import wait_idle

from r1.cli import main as cli
from r1.engine import Engine
from r1.engine.testing import save_tiny, tiny_tokenizer
from r1.serve.app import create_app
from r1.serve.cli import generation_defaults, serve_in_thread

MAX_LEN = 512
BODY_LIMIT = 32 * 1024
MSG = [{"role": "user", "content": "What is 2 + 3?"}]


@pytest.fixture(scope="module")
def served(tmp_path_factory, one_thread):
    model_dir = save_tiny(tmp_path_factory.mktemp("serve") / "tiny", max_len=MAX_LEN)
    engine = Engine.from_pretrained(model_dir, max_batch=8, max_len=MAX_LEN)
    app = create_app(engine, "tiny", generation_defaults(model_dir), max_body_bytes=BODY_LIMIT)
    with serve_in_thread(app) as base:
        yield base, engine


@pytest.fixture(scope="module")
def client(served):
    return openai.OpenAI(base_url=served[0] + "/v1", api_key="unused", max_retries=0, timeout=30)


def test_health_and_models(served, client):
    url, _ = served
    assert httpx.get(url + "/health").json()["status"] == "ok"
    (card,) = client.models.list().data
    assert card.id == "tiny" and card.object == "model"


def test_chat_with_reasoning_usage_and_length(client):
    kw = dict(model="tiny", messages=MSG, max_tokens=8, seed=1, extra_body={"ignore_eos": True})
    r = client.chat.completions.create(**kw)
    (choice,) = r.choices
    assert choice.finish_reason == "length"
    msg = choice.message
    # Random weights rarely close </think>: the generation prompt opened it, so the text is reasoning.
    reasoning = msg.model_extra["reasoning_content"]
    assert isinstance(reasoning, str) and isinstance(msg.content, str)
    assert msg.model_extra["reasoning"] == reasoning  # vLLM's name for the same field
    assert r.usage.completion_tokens == 8 and r.usage.prompt_tokens > 5
    reasoning_tokens = r.usage.completion_tokens_details.reasoning_tokens
    assert reasoning_tokens == 8 if not msg.content else 0 < reasoning_tokens < 8


def test_n_samples_and_seeded_streaming_matches_non_streaming(client):
    kw = dict(model="tiny", messages=MSG, max_tokens=10, seed=7, temperature=1.0, n=3, logprobs=True, top_logprobs=2)
    full = client.chat.completions.create(**kw)
    assert sorted(c.index for c in full.choices) == [0, 1, 2]
    stream = client.chat.completions.create(**kw, stream=True, stream_options={"include_usage": True})
    got = {i: ["", ""] for i in range(3)}
    finish, usage, logprobs = {}, None, {i: [] for i in range(3)}
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for c in chunk.choices:
            logprobs[c.index] += c.logprobs.content if c.logprobs else []
            extra = c.delta.model_extra or {}
            assert extra.get("reasoning") == extra.get("reasoning_content")
            got[c.index][0] += extra.get("reasoning_content") or ""
            got[c.index][1] += c.delta.content or ""
            if c.finish_reason:
                finish[c.index] = c.finish_reason
    for c in full.choices:
        assert got[c.index] == [c.message.model_extra["reasoning_content"] or "", c.message.content]
        assert finish[c.index] == c.finish_reason
        # Logprobs cover the reasoning too, and the stream's pieces add up to the whole response's.
        assert logprobs[c.index] == c.logprobs.content and 1 <= len(logprobs[c.index]) <= 10
        spelled = b"".join(bytes(e.bytes) for e in c.logprobs.content).decode(errors="replace")
        assert spelled.startswith(c.message.model_extra["reasoning_content"] or "")
    assert usage is not None and usage.completion_tokens == full.usage.completion_tokens


def test_stop_sequence_cuts_the_text(client):
    kw = dict(model="tiny", messages=MSG, max_tokens=24, temperature=0.0, extra_body={"ignore_eos": True})
    text = client.chat.completions.create(**kw).choices[0].message.model_extra["reasoning_content"]
    clean = [i for i in range(3, len(text) - 2) if text[i : i + 2].strip() and "\ufffd" not in text[: i + 2]]
    stop = text[clean[0] : clean[0] + 2]
    r = client.chat.completions.create(**kw, stop=[stop])
    assert r.choices[0].finish_reason == "stop"
    assert r.choices[0].message.model_extra["reasoning_content"] == text[: text.index(stop)]


def test_completions_endpoint(client):
    r = client.completions.create(model="tiny", prompt=["1 + 1 =", "Hello"], max_tokens=5, n=2, seed=3)
    assert sorted(c.index for c in r.choices) == [0, 1, 2, 3]
    tok = tiny_tokenizer()
    assert r.usage.prompt_tokens == len(tok.encode("1 + 1 =")) + len(tok.encode("Hello")) + 2  # each gets BOS
    assert 4 <= r.usage.completion_tokens <= 20
    pieces: dict[int, str] = {}
    for chunk in client.completions.create(model="tiny", prompt="Hello", max_tokens=6, seed=3, stream=True):
        for c in chunk.choices:
            pieces[c.index] = pieces.get(c.index, "") + c.text
    once = client.completions.create(model="tiny", prompt="Hello", max_tokens=6, seed=3)
    assert pieces[0] == once.choices[0].text


@pytest.mark.parametrize(
    "body, status, param",
    [
        ({"model": "gpt-4", "messages": MSG}, 404, "model"),
        ({"model": "tiny", "messages": MSG, "temperature": "hot"}, 400, "temperature"),
        ({"model": "tiny", "messages": MSG, "temperature": 2.5}, 400, "temperature"),
        ({"model": "tiny", "messages": MSG, "top_p": 0}, 400, "top_p"),
        ({"model": "tiny", "messages": MSG, "n": 17}, 400, "n"),
        ({"model": "tiny", "messages": MSG, "n": 0}, 400, "n"),
        ({"model": "tiny", "messages": MSG, "max_tokens": 0}, 400, "max_tokens"),
        ({"model": "tiny", "messages": MSG, "max_tokens": MAX_LEN}, 400, "max_tokens"),
        ({"model": "tiny", "messages": MSG, "stop": [""]}, 400, "stop"),
        ({"model": "tiny"}, 400, "messages"),
        ({"model": "tiny", "mesages": MSG}, 400, "mesages"),  # the misspelt name, not the missing one
        ({"model": "tiny", "messages": []}, 400, "messages"),
        ({"model": "tiny", "messages": [{"role": "robot", "content": "x"}]}, 400, "messages.0.role"),
        ({"model": "tiny", "messages": [{"role": "user", "content": "9 " * MAX_LEN}]}, 400, "messages"),
    ],
)
def test_invalid_chat_requests(served, body, status, param):
    r = httpx.post(served[0] + "/v1/chat/completions", json=body)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error" and err["param"] == param and err["message"]


CHAT = {"model": "tiny", "messages": MSG, "max_tokens": 2}
PROMPT = {"model": "tiny", "prompt": "Hello", "max_tokens": 2}


@pytest.mark.parametrize(
    "route, extra, param, code",
    [
        ("chat", {"temprature": 0.5}, "temprature", "unknown_parameter"),  # a typo is not silently dropped
        (
            "chat",
            {"messages": [{"role": "user", "content": "x", "weight": 1}]},
            "messages.0.weight",
            "unknown_parameter",
        ),
        (
            "chat",
            {"stream_options": {"include_usage": True, "continuous_usage_stats": True}},
            "stream_options.continuous_usage_stats",
            "unknown_parameter",
        ),
        ("chat", {"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools", "unsupported_parameter"),
        ("chat", {"tool_choice": "required"}, "tool_choice", "unsupported_parameter"),
        ("chat", {"functions": [{"name": "f"}]}, "functions", "unsupported_parameter"),
        ("chat", {"response_format": {"type": "json_object"}}, "response_format", "unsupported_parameter"),
        ("chat", {"logit_bias": {"5": 10}}, "logit_bias", "unsupported_parameter"),
        ("chat", {"presence_penalty": 0.5}, "presence_penalty", "unsupported_parameter"),
        ("chat", {"frequency_penalty": -1}, "frequency_penalty", "unsupported_parameter"),
        ("chat", {"reasoning_effort": "low"}, "reasoning_effort", "unsupported_parameter"),
        ("chat", {"modalities": ["text", "audio"]}, "modalities", "unsupported_parameter"),
        ("chat", {"top_logprobs": 2}, "top_logprobs", "unsupported_parameter"),  # needs logprobs: true
        ("chat", {"logprobs": True, "top_logprobs": 21}, "top_logprobs", "invalid_value"),
        ("chat", {"stream_options": {"include_usage": True}}, "stream_options", "unsupported_parameter"),
        (
            "chat",
            {"messages": [{"role": "tool", "content": "4", "tool_call_id": "a"}]},
            "messages.0.role",
            "invalid_value",
        ),
        ("chat", {"messages": [{"role": "user"}]}, "messages.0", "invalid_value"),
        ("completions", {"suffix": "end"}, "suffix", "unsupported_parameter"),
        ("completions", {"best_of": 3}, "best_of", "unsupported_parameter"),
        ("completions", {"echo": True, "logprobs": 1}, "echo", "unsupported_parameter"),
        ("completions", {"logprobs": 21}, "logprobs", "invalid_value"),
        ("completions", {"logprobs": True}, "logprobs", "invalid_value"),
        ("completions", {"messages": MSG}, "messages", "unknown_parameter"),
    ],
)
def test_parameters_it_cannot_honour_are_400_naming_them(served, route, extra, param, code):
    body = {**(CHAT if route == "chat" else PROMPT), **extra}
    r = httpx.post(f"{served[0]}/v1/{'chat/completions' if route == 'chat' else 'completions'}", json=body)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert (err["param"], err["code"], err["type"]) == (param, code, "invalid_request_error") and err["message"]


def test_parameters_that_cannot_change_the_output_are_accepted(client):
    harmless = dict(user="u1", metadata={"k": "v"}, store=False, service_tier="auto", safety_identifier="s",
                    prompt_cache_key="p", parallel_tool_calls=False, tools=[], tool_choice="none", frequency_penalty=0,
                    presence_penalty=0.0, logit_bias={}, response_format={"type": "text"}, modalities=["text"],
                    prediction={"type": "content", "content": "x"})  # fmt: skip
    kw = dict(model="tiny", max_tokens=6, seed=2, temperature=1.0)
    plain = client.chat.completions.create(messages=MSG, **kw)
    r = client.chat.completions.create(messages=MSG, **kw, **harmless)
    assert (
        r.choices[0].message.model_extra["reasoning_content"]
        == plain.choices[0].message.model_extra["reasoning_content"]
    )
    # A developer message is a system message; a participant's name has no place in the template.
    dev = [{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "Hi", "name": "ann"}]
    sys_ = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    a, b = (client.chat.completions.create(messages=m, **kw) for m in (dev, sys_))
    assert a.usage.prompt_tokens == b.usage.prompt_tokens
    assert (
        a.choices[0].message.model_extra["reasoning_content"] == b.choices[0].message.model_extra["reasoning_content"]
    )
    one = client.completions.create(model="tiny", prompt="Hello", max_tokens=4, seed=1, best_of=1, user="u", suffix="")
    assert (
        one.choices[0].text
        == client.completions.create(model="tiny", prompt="Hello", max_tokens=4, seed=1).choices[0].text
    )


def test_malformed_json_body_limit_and_client_errors(served, client):
    url, _ = served
    r = httpx.post(url + "/v1/chat/completions", content=b'{"model": "tiny", "messages": [', timeout=10)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    big = json.dumps({"model": "tiny", "messages": [{"role": "user", "content": "x" * BODY_LIMIT}]})
    r = httpx.post(url + "/v1/chat/completions", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
    chunked = httpx.post(url + "/v1/completions", content=iter([big.encode()[:20000], big.encode()[20000:]]))
    assert chunked.status_code == 413
    r = httpx.post(url + "/v1/completions", json={"model": "tiny", "prompt": "9 " * MAX_LEN})
    assert r.status_code == 400 and r.json()["error"]["code"] == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="tiny", messages=MSG, top_p=1.5)
    assert err.value.body["param"] == "top_p"
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=MSG)


def test_disconnect_frees_the_slot(served):
    url, engine = served
    body = {"model": "tiny", "messages": MSG, "max_tokens": 400, "ignore_eos": True, "stream": True}
    before = engine.stats["generated_tokens"]
    with httpx.Client(timeout=10) as http, http.stream("POST", url + "/v1/chat/completions", json=body) as r:
        lines = r.iter_lines()
        for _ in range(6):
            next(lines)
        assert engine.num_active() == 1
    assert wait_idle(engine, 1.0)
    assert engine.stats["generated_tokens"] - before < 300  # cancelled, not run to its 400 tokens
    # a non-streaming client that gives up is noticed too (polled while it waits)
    body = {**body, "stream": False}
    before = engine.stats["generated_tokens"]
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(url + "/v1/chat/completions", json=body, timeout=0.3)
    assert wait_idle(engine, 2.0)


def test_cli_errors(tmp_path, capsys):
    assert cli(["serve", "--model", str(tmp_path / "missing")]) == 2
    assert "error: " in capsys.readouterr().err


def test_concurrent_clients_share_batches(served, client):
    _, engine = served
    before = dict(engine.stats)
    results: list = [None] * 6

    def ask(i: int) -> None:
        results[i] = client.chat.completions.create(
            model="tiny", messages=MSG, max_tokens=30, seed=i, extra_body={"ignore_eos": True}
        )

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert all(r is not None and r.usage.completion_tokens == 30 for r in results)
    steps = engine.stats["decode_steps"] - before["decode_steps"]
    assert steps < 6 * 29  # rows decoded together, not one request after another
