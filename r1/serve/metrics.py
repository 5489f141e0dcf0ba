"""`GET /metrics`: the engine's counters in Prometheus' text format, under vLLM's metric names with an `r1:` prefix.

    r1:num_requests_running / r1:num_requests_waiting        gauges: sequences decoding now / requests queued
    r1:prompt_tokens_total / r1:generation_tokens_total        counters (prefilled prompt tokens, sampled tokens)
    r1:decode_steps_total                                      counter: decode forwards (a speculative round is one)
    r1:generation_tokens_per_second                            gauge: sampled tokens/s since the previous scrape
    r1:spec_decode_num_drafts_total                            counter: speculative row-rounds (vLLM's num_drafts)
    r1:spec_decode_num_draft_tokens_total                      counter: tokens the MTP modules drafted
    r1:spec_decode_num_accepted_tokens_total                   counter: drafted tokens the model accepted
    r1:spec_decode_num_accepted_tokens_per_pos_total{position} counter: accepted at draft position i (0-based)
    r1:spec_decode_num_emitted_tokens_total                    counter: tokens speculative rounds produced
    r1:spec_decode_draft_acceptance_rate                       gauge: accepted / drafted since start

Every sample carries `model_name`, as vLLM's do, so dashboards written for vLLM read these after a prefix change.
"""

from __future__ import annotations

import threading
import time

from r1.engine.engine import Engine

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    """Renders the exposition; remembers the previous scrape to turn the token counter into a rate."""

    def __init__(self, engine: Engine, model_name: str) -> None:
        self.engine, self.model_name = engine, model_name
        self._lock = threading.Lock()
        self._last = (time.monotonic(), engine.stats.get("generated_tokens", 0))

    def render(self) -> str:
        eng = self.engine
        st = dict(eng.stats)
        now = time.monotonic()
        with self._lock:
            t0, n0 = self._last
            tokens = st.get("generated_tokens", 0)
            rate = (tokens - n0) / (now - t0) if now > t0 else 0.0
            self._last = (now, tokens)
        label = f'model_name="{_escape(self.model_name)}"'
        out: list[str] = []

        def metric(name: str, kind: str, doc: str, value: float, extra: str = "") -> None:
            out.append(f"# HELP r1:{name} {doc}")
            out.append(f"# TYPE r1:{name} {kind}")
            out.append(f"r1:{name}{{{label}{extra}}} {float(value)}")

        metric("num_requests_running", "gauge", "Sequences being decoded.", eng.num_active())
        metric("num_requests_waiting", "gauge", "Requests waiting for cache rows.", eng.num_pending())
        metric("prompt_tokens_total", "counter", "Prompt tokens prefilled.", st.get("prefill_tokens", 0))
        metric("generation_tokens_total", "counter", "Tokens generated.", tokens)
        metric("decode_steps_total", "counter", "Decode forwards (a speculative round counts once).",
               st.get("decode_steps", 0))  # fmt: skip
        metric("generation_tokens_per_second", "gauge", "Tokens generated per second since the previous scrape.",
               round(rate, 3))  # fmt: skip
        sp = eng.speculator
        if sp is not None:
            drafted, accepted = st.get("spec_draft_tokens", 0), st.get("spec_accepted_tokens", 0)
            metric("spec_decode_num_drafts_total", "counter", "Speculative rounds, counted per sequence.",
                   st.get("spec_drafts", 0))  # fmt: skip
            metric("spec_decode_num_draft_tokens_total", "counter", "Tokens drafted by the MTP modules.", drafted)
            metric("spec_decode_num_accepted_tokens_total", "counter", "Drafted tokens accepted.", accepted)
            name = "spec_decode_num_accepted_tokens_per_pos_total"
            out.append(f"# HELP r1:{name} Drafted tokens accepted, per draft position.")
            out.append(f"# TYPE r1:{name} counter")
            for i, n in enumerate(list(sp.accepted_per_position)):
                out.append(f'r1:{name}{{{label},position="{i}"}} {float(n)}')
            metric("spec_decode_num_emitted_tokens_total", "counter", "Tokens produced by speculative rounds.",
                   st.get("spec_emitted_tokens", 0))  # fmt: skip
            metric("spec_decode_draft_acceptance_rate", "gauge", "Accepted / drafted tokens since start.",
                   round(accepted / drafted, 6) if drafted else 0.0)  # fmt: skip
        return "\n".join(out) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def parse(text: str) -> dict[str, float]:
    """Samples of an exposition as {"name{labels}": value} (benchmarks and tests read the server this way)."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out
