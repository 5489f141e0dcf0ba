"""`r1 chat`: one-shot mode on a real (tiny, random) model, and the reasoning/answer display on scripted streams."""

from __future__ import annotations

import argparse
import io
import re

import pytest

from r1 import chat
from r1.cli import main as cli
from r1.engine.requests import Sample, SampleDone, TokenEvent
from r1.engine.sampling import SamplingParams
from r1.engine.testing import save_tiny, tiny_tokenizer

pytestmark = pytest.mark.usefixtures("one_thread")


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    chat.register(parser.add_subparsers())
    return parser.parse_args(["chat", *argv])


class ScriptedEngine:
    """Streams a fixed response in small pieces and records the conversations it was asked to continue."""

    def __init__(self, responses: list[str]) -> None:
        self.tokenizer = tiny_tokenizer()
        self.responses = list(responses)
        self.seen: list[list[dict]] = []

    def stream(self, prompt, params=None):
        self.seen.append([dict(m) for m in prompt])
        text = self.responses.pop(0)
        for i in range(0, len(text), 3):
            yield TokenEvent(0, 0, text[i : i + 3], 0.0, 0.0)
        yield SampleDone(Sample(0, [], text, [], [], "stop"), "")


def test_one_shot_with_a_real_model(tmp_path, capsys):
    save_tiny(tmp_path / "m", max_len=128)
    argv = ["chat", "--model", str(tmp_path / "m"), "-p", "What is 2 + 2?", "--max-tokens", "12", "--seed", "1"]
    assert cli(argv) == 0
    first = capsys.readouterr().out
    args = parse(*argv[1:])
    buf = io.StringIO()
    assert chat.run(args, out=buf) == 0
    assert buf.getvalue() == first  # seeded: reproducible
    assert first.startswith(("[reasoning]\n", "[answer]\n")) and "[answer]\n" in first
    assert cli(["chat", "--model", str(tmp_path / "missing"), "-p", "hi"]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_reasoning_and_answer_are_shown_apart_and_history_keeps_the_answer():
    eng = ScriptedEngine(["Let me think.\n</think>\n\nHello!", "Short.</think>Bye."])
    buf = io.StringIO()
    session = chat.ChatSession(eng, SamplingParams(), buf, color=False)
    assert session.turn("hi") == ("Let me think.\n", "Hello!")
    assert buf.getvalue() == "[reasoning]\nLet me think.\n\n[answer]\nHello!\n"
    session.turn("and now?")
    assert eng.seen[1] == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "and now?"},
    ]
    tty = io.StringIO()
    chat.ChatSession(ScriptedEngine(["plan</think>ok"]), SamplingParams(), tty, color=True).turn("x")
    shown = tty.getvalue()
    assert shown.startswith(f"{chat.DIM}{chat.BOLD}thinking…") and f"{chat.DIM}pla" in shown  # reasoning dimmed
    assert re.sub(r"\x1b\[\d+m", "", shown) == "thinking…\nplan\n\nok\n"


def test_repl_commands():
    eng = ScriptedEngine(["a</think>one", "b</think>two"])
    buf = io.StringIO()
    session = chat.ChatSession(eng, SamplingParams(seed=3), buf)
    inputs = iter(["hi", "/reset", "/bogus", "   ", "again", "/exit", "never read"])
    assert session.repl(lambda _: next(inputs)) == 0
    assert session.messages == [{"role": "user", "content": "again"}, {"role": "assistant", "content": "two"}]
    assert "[history cleared]" in buf.getvalue() and "unknown command /bogus" in buf.getvalue()
    assert next(inputs) == "never read"


def test_markup_never_reaches_the_screen_whoever_opens_the_think_block():
    # the built-in template's prompt opened <think>; the scripted model writes it again, and R1-Zero answer tags
    eng = ScriptedEngine(["<think>\nplan\n</think>\n<answer>4</answer>", "direct</think> <answer>5</answer>"])
    buf = io.StringIO()
    session = chat.ChatSession(eng, SamplingParams(), buf, color=False)
    assert session.turn("2+2?") == ("\nplan\n", "4")
    assert session.turn("and 2+3?") == ("direct", "5")
    shown = buf.getvalue()
    assert not any(tag in shown for tag in ("<think>", "</think>", "<answer>", "</answer>")), shown
    assert session.messages[1] == {"role": "assistant", "content": "4"}  # history keeps the clean answer
