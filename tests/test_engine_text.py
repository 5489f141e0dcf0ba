"""Text handling around the engine: reasoning/answer split (whole and streamed), stop strings, UTF-8-safe deltas."""

from __future__ import annotations

import pytest

from r1.engine.reasoning import ReasoningStream, count_reasoning_tokens, prompt_opens_think, split_reasoning
from r1.engine.testing import tiny_tokenizer
from r1.engine.text import TextTracker

CASES = [
    # (generated text, prompt opened <think>, reasoning, answer)
    ("Let me add.\n2+2=4\n</think>\n\nThe answer is 4.", True, "Let me add.\n2+2=4\n", "The answer is 4."),
    ("thinking forever without closing", True, "thinking forever without closing", ""),
    ("</think>direct", True, "", "direct"),
    ("a</think> b </think> c", True, "a", "b  c"),  # a stray tag is not left in the answer
    ("  <think>plan</think>\nanswer", False, "plan", "answer"),
    ("plain answer, no tags", False, None, "plain answer, no tags"),
    ("  spaced answer", False, None, "  spaced answer"),
    ("<thi", False, None, "<thi"),
    ("", True, "", ""),
]


@pytest.mark.parametrize("text, in_think, reasoning, answer", CASES)
def test_split_reasoning(text, in_think, reasoning, answer):
    assert split_reasoning(text, in_think) == (reasoning, answer)


@pytest.mark.parametrize("text, in_think, reasoning, answer", CASES)
def test_streamed_split_equals_whole_for_every_chunking(text, in_think, reasoning, answer):
    for size in (1, 2, 3, 5, 8):
        for offset in range(size):
            cuts = [0, *range(offset or size, len(text), size), len(text)]
            stream = ReasoningStream(in_think)
            r, a = "", ""
            for i, j in zip(cuts, cuts[1:]):
                dr, da = stream.feed(text[i:j])
                r, a = r + dr, a + da
            dr, da = stream.finish()
            r, a = r + dr, a + da
            assert (r if stream.saw_reasoning else None, a) == (reasoning, answer), (size, offset)


def test_prompt_opens_think_and_reasoning_tokens():
    assert prompt_opens_think("<｜User｜>hi<｜Assistant｜><think>\n")
    assert not prompt_opens_think("<｜Assistant｜><think>\nx</think>done<｜end▁of▁sentence｜><｜User｜>q")
    assert not prompt_opens_think("User: 1+1? Assistant:")
    assert count_reasoning_tokens([10, 11, 6, 12], 6, "xy") == 3
    assert count_reasoning_tokens([10, 11], 6, "xy") == 2
    assert count_reasoning_tokens([10, 11], 6, None) == 0


def test_text_tracker_holds_back_stop_prefixes_and_partial_characters():
    tok = tiny_tokenizer()
    text = "The answer: 42 apples. 你好🙂 END tail"
    ids = tok.encode(text)
    for stop, expect in [(("END",), "The answer: 42 apples. 你好🙂 "), (("apples", "42"), "The answer: ")]:
        tracker = TextTracker(tok, stop)
        shown = ""
        for t in ids:
            shown += tracker.push(t)
            assert "\ufffd" not in shown
            assert not any(s in shown for s in stop)
            if tracker.stop_string:
                break
        assert tracker.stop_string is not None
        shown += tracker.finish()
        assert shown == tracker.text == expect
    tracker = TextTracker(tok)
    shown = "".join(tracker.push(t) for t in ids) + tracker.finish()
    assert shown == text and tracker.stop_string is None
