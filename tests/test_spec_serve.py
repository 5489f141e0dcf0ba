"""Speculative decoding where users meet it: `r1 serve` (flags, `/metrics` read by an OpenAI client's session),
`r1 chat`, `r1.load`."""

from __future__ import annotations

import argparse

import httpx
import openai
import pytest

import r1
from r1.assets import model_path
from r1.cli import main as cli
from r1.engine import Engine
from r1.serve.app import create_app
from r1.serve.cli import register, serve_in_thread
from r1.serve.metrics import parse

pytestmark = pytest.mark.usefixtures("one_thread")

BASE = model_path("base-tiny")
ASK = [{"role": "user", "content": "Compute 3+4*2+7*5 from left to right, mod 10."}]


def test_the_server_reports_acceptance_and_tokens_in_prometheus_text():
    engine = Engine.from_pretrained(BASE, max_batch=4, max_len=256, speculative="on", num_speculative_tokens=2)
    with serve_in_thread(create_app(engine)) as base:
        client = openai.OpenAI(base_url=base + "/v1", api_key="none")
        tokens = 0
        for seed in range(3):
            r = client.chat.completions.create(model="r1", messages=ASK, max_tokens=40, temperature=0.6, seed=seed)
            tokens += r.usage.completion_tokens
        reply = httpx.get(base + "/metrics")
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = reply.text
    assert "# TYPE r1:spec_decode_num_accepted_tokens_total counter" in text
    m = parse(text)
    lab = '{model_name="r1"}'
    assert m[f"r1:generation_tokens_total{lab}"] == tokens
    drafted, accepted = (
        m[f"r1:spec_decode_num_draft_tokens_total{lab}"],
        m[f"r1:spec_decode_num_accepted_tokens_total{lab}"],
    )
    assert drafted == 2 * m[f"r1:spec_decode_num_drafts_total{lab}"] > 0
    assert 0 < accepted <= drafted
    per_pos = [m[f'r1:spec_decode_num_accepted_tokens_per_pos_total{{model_name="r1",position="{i}"}}'] for i in (0, 1)]
    assert sum(per_pos) == accepted and per_pos[0] >= per_pos[1]
    assert m[f"r1:spec_decode_draft_acceptance_rate{lab}"] == pytest.approx(accepted / drafted, abs=1e-6)
    assert m[f"r1:generation_tokens_per_second{lab}"] > 0
    # every token came from the prefill's first sample or from a speculative round
    assert m[f"r1:spec_decode_num_emitted_tokens_total{lab}"] == tokens - 3
    assert m[f"r1:num_requests_running{lab}"] == 0


def test_without_speculation_metrics_has_no_spec_series():
    engine = Engine.from_pretrained(BASE, max_batch=2, max_len=128, speculative="off")
    with serve_in_thread(create_app(engine)) as base:
        text = httpx.get(base + "/metrics").text
    assert "r1:generation_tokens_total" in text and "spec_decode" not in text


def _serve_args(*argv: str) -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    register(ap.add_subparsers())
    return ap.parse_args(["serve", "--model", "m", *argv])


def test_serve_flags_use_vllms_names():
    args = _serve_args("--speculative", "off", "--num-speculative-tokens", "3")
    assert (args.speculative, args.num_speculative_tokens) == ("off", 3)
    defaults = _serve_args()
    assert (defaults.speculative, defaults.num_speculative_tokens) == ("auto", None)
    with pytest.raises(SystemExit):
        _serve_args("--speculative", "sometimes")


def test_chat_and_load_take_the_same_settings(capsys):
    assert cli(["chat", "--model", str(BASE), "-p", ASK[0]["content"], "--temperature", "0", "--max-tokens", "30",
                "--speculative", "on", "--num-speculative-tokens", "2"]) == 0  # fmt: skip
    spoken = capsys.readouterr().out
    plain = r1.load("base-tiny", speculative="off").chat(ASK[0]["content"], temperature=0, max_tokens=30)
    assert plain.content and plain.content in spoken
    model = r1.load("base-tiny", speculative="on", num_speculative_tokens=3)
    assert model.engine.speculator.k == 3
    again = model.chat(ASK[0]["content"], temperature=0, max_tokens=30)
    assert (again.reasoning_content, again.content) == (plain.reasoning_content, plain.content)
    assert model.engine.stats["spec_rounds"] > 0
    assert cli(["chat", "--model", str(BASE), "-p", "hi", "--num-speculative-tokens", "0"]) == 2  # one-line error
    assert "num_speculative_tokens=0" in capsys.readouterr().err
