"""Split generated text into reasoning and answer, the way DeepSeek's API returns `reasoning_content` and `content`.

The rule (shared by `r1 chat`, the server and RL statistics):
- Where the reasoning starts. R1's later chat template ends the prompt with `<think>\\n`, so generation starts
  *inside* the think block (`in_think`); other prompts (the original template, plain `User: … Assistant:` prompts)
  leave the model to open it. Either way a response that itself starts with `<think>` (after whitespace) has that
  opener, and the whitespace before it, dropped. With `in_think` everything else up to the first `</think>` is
  reasoning, verbatim; without it, a response that does not open a think block is all answer.
- Where it ends: at the first `</think>`. If it never comes (the sample hit max_tokens or stopped mid-thought),
  all of it is reasoning and the answer is empty: text the model never closed is not an answer, as DeepSeek's API
  has it.
- The answer carries no markup: `<answer>`/`</answer>` around it (R1-Zero's format) and any stray think tag are
  removed, their text kept; then leading whitespace is dropped.
The streaming form (`ReasoningStream`) gives, for any split of the text into deltas, pieces that concatenate to
exactly these two strings.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from r1.tokenizer import ANSWER_CLOSE, ANSWER_OPEN, THINK_CLOSE, THINK_OPEN

_MARKUP = (ANSWER_OPEN, ANSWER_CLOSE, THINK_OPEN, THINK_CLOSE)
_MARKUP_RE = re.compile("|".join(re.escape(t) for t in _MARKUP))


def prompt_opens_think(prompt_text: str) -> bool:
    """Whether the prompt leaves the model inside an unclosed `<think>` block (R1's generation prompt does)."""
    return prompt_text.rfind(THINK_OPEN) > prompt_text.rfind(THINK_CLOSE)


def strip_markup(answer: str) -> str:
    """The answer text without `<answer>`/`</answer>` or think tags, and without leading whitespace."""
    return _MARKUP_RE.sub("", answer).lstrip()


def split_reasoning(text: str, in_think: bool = True) -> tuple[str | None, str]:
    """(reasoning or None, answer) for a complete response; `in_think`: the prompt opened the think block."""
    stripped = text.lstrip()
    if stripped.startswith(THINK_OPEN):
        text = stripped[len(THINK_OPEN) :]
    elif not in_think:
        return None, _MARKUP_RE.sub("", text)
    reasoning, sep, answer = text.partition(THINK_CLOSE)
    return reasoning, strip_markup(answer) if sep else ""


def count_reasoning_tokens(tokens: Sequence[int], think_close_id: int | None, reasoning: str | None) -> int:
    """Tokens spent on reasoning, `</think>` included; all of them if the block never closed.

    Counted on ids when `</think>` is one token (R1 tokenizers), which is exact; `reasoning is None` means none.
    """
    if reasoning is None:
        return 0
    if think_close_id is not None:
        for i, t in enumerate(tokens):
            if t == think_close_id:
                return i + 1
    return len(tokens)


class ReasoningStream:
    """The streaming form of `split_reasoning`: feed text deltas, get (reasoning_delta, answer_delta) pairs.

    A tag may arrive split across deltas, so a tail that could still become one is held back until the next delta
    (or `finish`) decides. `saw_reasoning` says whether the response has a reasoning part at all (None otherwise).
    """

    def __init__(self, in_think: bool = True) -> None:
        self.in_think = in_think
        self.mode = "start"  # start -> reasoning -> answer, or start -> answer
        self.saw_reasoning = in_think
        self._buf = ""
        self._answer_started = False  # the answer's leading whitespace is dropped until its first character

    def feed(self, delta: str) -> tuple[str, str]:
        self._buf += delta
        reasoning = ""
        if self.mode == "start":
            stripped = self._buf.lstrip()
            if not stripped or (len(stripped) < len(THINK_OPEN) and THINK_OPEN.startswith(stripped)):
                return "", ""  # still undecided
            if stripped.startswith(THINK_OPEN):
                self.mode, self.saw_reasoning, self._buf = "reasoning", True, stripped[len(THINK_OPEN) :]
            else:
                self.mode = "reasoning" if self.in_think else "answer"
                self._answer_started = self.mode == "answer"  # no reasoning: the answer is kept as written
        if self.mode == "reasoning":
            i = self._buf.find(THINK_CLOSE)
            if i < 0:
                keep = _partial_suffix(self._buf, (THINK_CLOSE,))
                reasoning, self._buf = self._buf[: len(self._buf) - keep], self._buf[len(self._buf) - keep :]
                return reasoning, ""
            reasoning, self._buf = self._buf[:i], self._buf[i + len(THINK_CLOSE) :]
            self.mode = "answer"
        return reasoning, self._answer(final=False)

    def finish(self) -> tuple[str, str]:
        """Release the held-back tail at the end of the response."""
        if self.mode == "start":
            self.mode = "reasoning" if self.in_think else "answer"
            self._answer_started = self.mode == "answer"
        if self.mode == "reasoning":
            buf, self._buf = self._buf, ""
            return buf, ""
        return "", self._answer(final=True)

    def _answer(self, final: bool) -> str:
        """Drain the buffer as answer text: tags removed, leading whitespace dropped, a possible tag start held."""
        out = []
        while True:
            m = _MARKUP_RE.search(self._buf)
            if m is None:
                break
            out.append(self._buf[: m.start()])
            self._buf = self._buf[m.end() :]
        keep = 0 if final else _partial_suffix(self._buf, _MARKUP)
        out.append(self._buf[: len(self._buf) - keep])
        self._buf = self._buf[len(self._buf) - keep :]
        text = "".join(out)
        if not self._answer_started:
            text = text.lstrip()
            self._answer_started = bool(text)
        return text


def _partial_suffix(text: str, tags: Sequence[str]) -> int:
    """Length of the longest tail of `text` that is a proper prefix of one of `tags`."""
    for n in range(min(len(text), max(len(t) for t in tags) - 1), 0, -1):
        if any(len(t) > n and t.startswith(text[-n:]) for t in tags):
            return n
    return 0
