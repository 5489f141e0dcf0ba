"""`r1.load`: a model folder, or a model shipped with r1, as an object to talk to.

    import r1
    model = r1.load("base-tiny")                       # a shipped model by name, or any folder: "runs/<run>/model"
    reply = model.chat("Compute 3+4*2 from left to right, mod 10.")
    print(reply.reasoning_content, "→", reply.content)  # the reasoning apart from the answer, as the server returns
    for delta in model.chat("Compute 7*8+1 from left to right, mod 10.", stream=True): print(delta.content, end="")

Everything goes through the one engine (`r1.engine.Engine`) that `r1 chat`, `r1 serve`, evaluation and RL use, and
the reasoning is split from the answer by the same rule as the server's `reasoning_content` (`r1.engine.reasoning`).
Sampling defaults come from the folder's generation_config.json, as the server's do; keyword arguments override
them per call. Without `max_tokens`, a reply runs until the end-of-sequence token or the end of the context.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from r1.engine import Engine
    from r1.engine.sampling import SamplingParams

Messages = Sequence[Mapping[str, Any]]


@dataclass
class Reply:
    """One generated response. `text` is all of it; `reasoning_content` the part inside the think block (None when
    the model did not reason), `content` the answer after it. `finish_reason`: "stop" or "length"."""

    text: str
    reasoning_content: str | None
    content: str
    finish_reason: str
    num_tokens: int


@dataclass
class Delta:
    """A streamed piece of a reply: new reasoning and/or answer text; the last one carries the `finish_reason`."""

    reasoning_content: str = ""
    content: str = ""
    finish_reason: str | None = None


class Model:
    """A loaded model: `generate` continues text prompts, `chat` answers conversations (see the module docstring)."""

    def __init__(self, engine: Engine, path: Path, defaults: Mapping[str, Any] | None = None) -> None:
        self.engine = engine
        self.tokenizer = engine.tokenizer
        self.path = path
        self.defaults = dict(defaults or {})

    def __repr__(self) -> str:
        return f"r1.Model({str(self.path)!r}, context={self.engine.max_len}, defaults={self.defaults})"

    def generate(self, prompts: str | Sequence[str], n: int = 1, **sampling: Any) -> Any:
        """Continue text prompts (BOS is prepended, as a base model saw at every document start).

        One prompt gives a `Reply` (a list of `n` with n > 1); a list of prompts gives one such result per prompt.
        `sampling`: temperature, top_p, top_k, max_tokens, stop, seed.
        """
        single = isinstance(prompts, str)
        texts = [prompts] if single else list(prompts)
        ids = [self.engine.encode(t, add_bos=True) for t in texts]
        params = [self._params(len(x), n=n, **sampling) for x in ids]
        out = []
        for t, completion in zip(texts, self.engine.generate(ids, params)):
            replies = [_reply(s, _opens_think(t)) for s in completion.samples]
            out.append(replies[0] if n == 1 else replies)
        return out[0] if single else out

    def chat(self, messages: str | Messages, stream: bool = False, n: int = 1, **sampling: Any) -> Any:
        """Answer a conversation (a list of {"role", "content"} messages, or one user message as a string), rendered
        by the folder's chat template. Returns a `Reply` (a list of `n` with n > 1), or with `stream=True` an
        iterator of `Delta`s for one reply. Control-token strings inside the messages (`<｜Assistant｜>`,
        `</think>`) are read as plain text, as the server reads them: only the template writes turns."""
        msgs = [{"role": "user", "content": messages}] if isinstance(messages, str) else list(messages)
        ids = self.engine.encode(msgs)
        in_think = _opens_think(self.tokenizer.decode(ids))
        params = self._params(len(ids), n=n, **sampling)
        if stream:
            if n != 1:
                from r1.errors import UserError

                raise UserError(f"n={n}: chat(stream=True) streams one reply; use stream=False for several")
            return self._stream(ids, params, in_think)
        replies = [_reply(s, in_think) for s in self.engine.generate([ids], params)[0].samples]
        return replies[0] if n == 1 else replies

    def _stream(self, ids: list[int], params: SamplingParams, in_think: bool) -> Iterator[Delta]:
        from r1.engine.reasoning import ReasoningStream
        from r1.engine.requests import SampleDone, TokenEvent

        split = ReasoningStream(in_think)
        for ev in self.engine.stream(ids, params):
            if isinstance(ev, TokenEvent):
                reasoning, content = split.feed(ev.text)
                if reasoning or content:
                    yield Delta(reasoning, content)
            elif isinstance(ev, SampleDone):
                reasoning, content = split.feed(ev.text)
                tail_reasoning, tail_content = split.finish()
                yield Delta(reasoning + tail_reasoning, content + tail_content, ev.sample.finish_reason)

    def _params(self, prompt_len: int, n: int = 1, **sampling: Any) -> SamplingParams:
        from r1.engine.sampling import SamplingParams
        from r1.errors import UserError

        known = {"temperature", "top_p", "top_k", "max_tokens", "stop", "seed", "stop_token_ids", "ignore_eos"}
        unknown = sorted(set(sampling) - known)
        if unknown:
            raise UserError(f"unknown sampling argument(s) {unknown}; valid: {sorted(known)}")
        room = self.engine.max_len - prompt_len
        if room < 1:
            raise UserError(f"the prompt has {prompt_len} tokens; the context is {self.engine.max_len}")
        chosen = {**self.defaults, **{k: v for k, v in sampling.items() if v is not None}}
        chosen.setdefault("max_tokens", room)
        return SamplingParams(n=n, **chosen)


def load(
    model: str | os.PathLike[str],
    dtype: Any = None,
    device: str = "cpu",
    max_len: int | None = None,
    max_batch: int = 16,
    speculative: str = "auto",
    num_speculative_tokens: int | None = None,
) -> Model:
    """A model folder (HF layout: config.json, safetensors, tokenizer files) or the name of a model shipped with r1
    (`base-tiny`) → a `Model`. `max_len`: the context in tokens (default: the model's, at most 4096).
    `speculative` ("auto", "on", "off") and `num_speculative_tokens`: MTP self-speculative decoding, as `Engine`'s."""
    from r1.assets import model_path
    from r1.engine import Engine
    from r1.serve.cli import generation_defaults

    path = model_path(model)
    engine = Engine.from_pretrained(
        path, dtype=dtype, device=device, max_batch=max_batch, max_len=max_len, speculative=speculative,
        num_speculative_tokens=num_speculative_tokens,
    )  # fmt: skip
    return Model(engine, path, generation_defaults(path))


def _opens_think(prompt_text: str) -> bool:
    from r1.engine.reasoning import prompt_opens_think

    return prompt_opens_think(prompt_text)


def _reply(sample: Any, in_think: bool) -> Reply:
    from r1.engine.reasoning import split_reasoning

    reasoning, content = split_reasoning(sample.text, in_think)
    return Reply(sample.text, reasoning, content, sample.finish_reason, len(sample.tokens))
