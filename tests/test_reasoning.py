"""The reasoning survives every decoder, and splits the same whole or streamed, whichever side opened `<think>`."""

from __future__ import annotations

import random

import pytest

from r1.engine.reasoning import ReasoningStream, split_reasoning, strip_markup
from r1.engine.testing import save_tiny, tiny_tokenizer
from r1.tokenizer import ANSWER_CLOSE, ANSWER_OPEN, REASONING_TAGS, SPECIAL_TOKENS, THINK_CLOSE, THINK_OPEN

# (generated text, prompt opened <think>, reasoning, answer)
CASES = [
    # R1's later prompt opened the block: the text starts inside it
    ("Let me add.\n2+2=4\n</think>\n\nThe answer is 4.", True, "Let me add.\n2+2=4\n", "The answer is 4."),
    # ... and a model that writes the opener anyway (the original template's habit) splits the same way
    ("<think>\nLet me add.\n</think>\n\n4", True, "\nLet me add.\n", "4"),
    ("\n <think>x</think>4", True, "x", "4"),
    # a prompt that did not open it (plain `User: … Assistant:` prompts, R1-Zero format)
    (" <think>\n3+4=7\n</think>\n<answer>7</answer>", False, "\n3+4=7\n", "7"),
    ("<think>a</think> <answer> 7 </answer> ", False, "a", "7  "),
    ("no reasoning: <answer>7</answer>.", False, None, "no reasoning: 7."),
    ("  plain answer", False, None, "  plain answer"),
    # markup never reaches the answer; the reasoning is kept verbatim, <answer> inside it included
    ("plan <answer>draft</answer></think>final</think> <think>more", True, "plan <answer>draft</answer>", "final more"),
    ("never closed <answer>5</answer>", True, "never closed <answer>5</answer>", ""),
    ("<thi", False, None, "<thi"),
    ("<thi", True, "<thi", ""),
    ("", True, "", ""),
    ("", False, None, ""),
    ("<answer", False, None, "<answer"),
    ("</think><answer>", True, "", ""),
    ("a <b> c</think> x < y <z", True, "a <b> c", "x < y <z"),
]


@pytest.mark.parametrize("text, in_think, reasoning, answer", CASES)
def test_split_reasoning(text, in_think, reasoning, answer):
    assert split_reasoning(text, in_think) == (reasoning, answer)
    assert not any(tag in answer for tag in (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE))


def _streamed(text: str, in_think: bool, cuts: list[int]) -> tuple[str | None, str]:
    stream = ReasoningStream(in_think)
    r, a = "", ""
    for i, j in zip([0, *cuts], [*cuts, len(text)]):
        dr, da = stream.feed(text[i:j])
        r, a = r + dr, a + da
    dr, da = stream.finish()
    return (r + dr if stream.saw_reasoning else None), a + da


@pytest.mark.parametrize("text, in_think, reasoning, answer", CASES)
def test_streamed_split_equals_whole_for_random_chunkings(text, in_think, reasoning, answer):
    rng = random.Random(text)
    for _ in range(200):
        cuts = sorted(rng.sample(range(1, len(text)), rng.randint(0, max(0, len(text) - 1)))) if len(text) > 1 else []
        assert _streamed(text, in_think, cuts) == (reasoning, answer), cuts


def test_streamed_split_equals_whole_on_random_texts():
    pieces = [THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE, "<", "</", "<th", "</ans", " ", "\n", "x", "7", "<a"]
    rng = random.Random(0)
    for _ in range(400):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        in_think = rng.random() < 0.5
        cuts = sorted(set(rng.randint(1, max(1, len(text) - 1)) for _ in range(rng.randint(0, 6)))) if text else []
        cuts = [c for c in cuts if 0 < c < len(text)]
        assert _streamed(text, in_think, cuts) == split_reasoning(text, in_think), (text, in_think, cuts)


def test_strip_markup_keeps_the_text():
    assert strip_markup("\n<answer> 12 </answer>") == "12 "
    assert strip_markup("a</think>b<think>c") == "abc"


def test_reasoning_tags_survive_skip_special_tokens():
    tok = tiny_tokenizer()
    text = f"{THINK_OPEN}\nplan\n{THINK_CLOSE}\n{ANSWER_OPEN}7{ANSWER_CLOSE}"
    ids = tok.encode(SPECIAL_TOKENS[0] + text + SPECIAL_TOKENS[1])
    assert tok.decode(ids, skip_special_tokens=True) == text


def test_transformers_pipeline_shows_the_reasoning_tags(tmp_path, one_thread):
    """`transformers.pipeline` decodes with skip_special_tokens=True (as vLLM does by default): the tags stay, the
    special tokens go. The random model may only pick the tags or `<｜User｜>` (a special token): what is shown is
    tags and nothing else."""
    transformers = pytest.importorskip("transformers")
    pipe = transformers.pipeline("text-generation", model=str(save_tiny(tmp_path / "m", max_len=64)), device="cpu")
    tok = pipe.tokenizer
    allowed = {tok.convert_tokens_to_ids(t) for t in (*REASONING_TAGS, SPECIAL_TOKENS[3])}
    suppress = [i for i in range(len(tok)) if i not in allowed]
    out = pipe("2 + 2 =", max_new_tokens=8, do_sample=False, suppress_tokens=suppress, return_full_text=False)
    generated = out[0]["generated_text"]
    assert generated and set(generated.replace(THINK_OPEN, "").replace(THINK_CLOSE, "").replace(ANSWER_OPEN, "")
               .replace(ANSWER_CLOSE, "")) == set()  # fmt: skip
    assert SPECIAL_TOKENS[3] not in generated
