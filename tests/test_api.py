"""`r1.load(...)`: the Python API in the module docstring runs as written, goes through the engine, splits reasoning
from the answer like the server, streams the same text, and takes its sampling defaults from the folder."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import textwrap

import pytest

import r1
from r1.api import Delta, Reply
from r1.assets import ASSETS
from r1.engine import SamplingParams
from r1.engine.reasoning import prompt_opens_think, split_reasoning
from r1.engine.testing import save_tiny
from r1.errors import UserError

pytestmark = pytest.mark.usefixtures("one_thread")
QUESTION = "Compute 3+4*2 from left to right, mod 10."


@pytest.fixture(scope="module")
def base():
    return r1.load("base-tiny")


def docstring_snippet() -> str:
    doc = r1.api.__doc__
    block = doc.split("\n\n")[1]  # the indented example after the first line
    return textwrap.dedent(block)


def test_the_docstring_example_runs_as_written_in_five_lines():
    code = docstring_snippet()
    assert len(code.strip().splitlines()) == 5 and code.startswith("import r1\n")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "r1/api.py docstring", "exec"), {})
    printed = out.getvalue()
    # the reasoning, the answer, then the streamed answer; no markup reaches what a reader is shown
    assert " → " in printed and printed.split(" → ")[1].strip()
    assert not any(tag in printed for tag in ("<think>", "</think>", "<answer>", "</answer>")), printed


def test_chat_is_the_engine_with_the_reasoning_split_off(base):
    messages = [{"role": "user", "content": QUESTION}]
    reply = base.chat(messages, seed=3, temperature=1.0, max_tokens=40)
    assert isinstance(reply, Reply) and base.chat(QUESTION, seed=3, temperature=1.0, max_tokens=40) == reply
    ids = base.engine.encode(messages)
    params = SamplingParams(seed=3, temperature=1.0, top_p=0.95, max_tokens=40)  # top_p: the folder's default
    sample = base.engine.generate([ids], params)[0].samples[0]
    assert (reply.text, reply.finish_reason, reply.num_tokens) == (
        sample.text,
        sample.finish_reason,
        len(sample.tokens),
    )
    in_think = prompt_opens_think(base.tokenizer.decode(ids))
    assert (reply.reasoning_content, reply.content) == split_reasoning(sample.text, in_think)
    assert reply.text.lstrip().startswith("<think>") and "<answer>" in reply.text
    assert reply.content and "<answer>" not in reply.content  # the tags are markup, the answer is what they hold


def test_streaming_yields_the_same_reply_in_pieces(base):
    reply = base.chat(QUESTION, seed=5, temperature=1.0)
    deltas = list(base.chat(QUESTION, stream=True, seed=5, temperature=1.0))
    assert all(isinstance(d, Delta) for d in deltas) and len(deltas) > 2
    assert "".join(d.reasoning_content for d in deltas) == reply.reasoning_content
    assert "".join(d.content for d in deltas) == reply.content
    assert [d.finish_reason for d in deltas] == [None] * (len(deltas) - 1) + [reply.finish_reason]


def test_generate_continues_text_prompts_with_bos(base):
    prompt = f"User: {QUESTION} Assistant:"
    one = base.generate(prompt, seed=1, max_tokens=30)
    several = base.generate([prompt, prompt], n=2, seed=1, max_tokens=30)
    assert isinstance(one, Reply) and len(several) == 2 and all(len(group) == 2 for group in several)
    assert several[0][0] == one  # sample 0 of a request draws from (seed, 0), whatever n is
    ids = base.engine.encode(prompt, add_bos=True)
    assert ids[0] == base.tokenizer.bos_id
    sample = base.engine.generate([ids], SamplingParams(seed=1, temperature=0.6, top_p=0.95, max_tokens=30))
    assert one.text == sample[0].samples[0].text


def test_sampling_defaults_come_from_generation_config(tmp_path):
    folder = shutil.copytree(ASSETS / "base-tiny", tmp_path / "greedy")
    (folder / "generation_config.json").write_text(json.dumps({"do_sample": False, "eos_token_id": 1}))
    greedy = r1.load(folder)
    assert greedy.defaults == {"temperature": 0.0}
    first, second = greedy.chat(QUESTION), greedy.chat(QUESTION, seed=123)
    assert first == second  # greedy: the seed does not matter
    assert greedy.chat(QUESTION, temperature=1.0, seed=0) is not None  # a keyword overrides the default
    assert r1.load("base-tiny").defaults == {"temperature": 0.6, "top_p": 0.95}


def test_a_chat_template_that_opens_think_puts_everything_before_the_close_into_reasoning(tmp_path):
    model = r1.load(save_tiny(tmp_path / "r1-style"))  # DeepSeek-R1's chat template: the prompt ends in <think>\n
    reply = model.chat(QUESTION, seed=0, max_tokens=8)
    assert reply.reasoning_content is not None
    assert (reply.reasoning_content, reply.content) == split_reasoning(reply.text, True)


def test_mistakes_are_one_line_errors(base):
    with pytest.raises(UserError, match=r"no model folder nope \(shipped models, usable by name: base-tiny"):
        r1.load("nope")
    with pytest.raises(UserError, match=r"unknown sampling argument\(s\) \['temprature'\]"):
        base.chat(QUESTION, temprature=0.5)
    with pytest.raises(UserError, match="streams one reply"):
        base.chat(QUESTION, stream=True, n=2)
    with pytest.raises(UserError, match="top_p"):
        base.generate("x", top_p=2.0)
