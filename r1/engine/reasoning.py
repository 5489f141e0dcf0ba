"""Split generated text into reasoning and answer, the way DeepSeek's API returns `reasoning_content` and `content`.

The rule (shared by `r1 chat` and the server):
- R1's chat template ends the prompt with `<think>\\n`, so generation starts *inside* the think block: everything up
  to the first `</think>` is reasoning; the rest, without its leading whitespace, is the answer.
- If `</think>` never comes (the sample hit max_tokens or stopped mid-thought), all of it is reasoning and the answer
  is empty: text the model never closed is not an answer. DeepSeek's API behaves the same way.
- If the prompt did not open a think block (plain completion prompts, other templates), a response that itself
  starts with `<think>` (after whitespace) is split the same way; any other response is all answer, no reasoning.
The reasoning keeps its text verbatim (no stripping), so the streamed pieces concatenate to the same strings.
"""

from __future__ import annotations

from collections.abc import Sequence

from r1.tokenizer import THINK_CLOSE, THINK_OPEN


def prompt_opens_think(prompt_text: str) -> bool:
    """Whether the prompt leaves the model inside an unclosed `<think>` block (R1's generation prompt does)."""
    return prompt_text.rfind(THINK_OPEN) > prompt_text.rfind(THINK_CLOSE)


def split_reasoning(text: str, in_think: bool = True) -> tuple[str | None, str]:
    """(reasoning or None, answer) for a complete response; `in_think`: the prompt opened the think block."""
    if not in_think:
        stripped = text.lstrip()
        if not stripped.startswith(THINK_OPEN):
            return None, text
        text = stripped[len(THINK_OPEN) :]
    reasoning, sep, answer = text.partition(THINK_CLOSE)
    if not sep:
        return reasoning, ""
    return reasoning, answer.lstrip()


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

    `</think>` (or a leading `<think>`) may arrive split across deltas, so a tail that could still become one is
    held back until the next delta decides. Concatenating all outputs equals `split_reasoning` of the whole text.
    """

    def __init__(self, in_think: bool = True) -> None:
        self.mode = "reasoning" if in_think else "start"  # start -> reasoning -> answer, or start -> answer
        self._buf = ""
        self._answer_started = False
        self.saw_reasoning = in_think

    def feed(self, delta: str) -> tuple[str, str]:
        self._buf += delta
        reasoning, answer = "", ""
        if self.mode == "start":
            stripped = self._buf.lstrip()
            if not stripped or (len(stripped) < len(THINK_OPEN) and THINK_OPEN.startswith(stripped)):
                return "", ""  # still undecided
            if stripped.startswith(THINK_OPEN):
                self.mode, self.saw_reasoning, self._buf = "reasoning", True, stripped[len(THINK_OPEN) :]
            else:
                self.mode = "answer"
        if self.mode == "reasoning":
            i = self._buf.find(THINK_CLOSE)
            if i < 0:
                keep = _partial_suffix(self._buf, THINK_CLOSE)
                reasoning, self._buf = self._buf[: len(self._buf) - keep], self._buf[len(self._buf) - keep :]
                return reasoning, ""
            reasoning, self._buf = self._buf[:i], self._buf[i + len(THINK_CLOSE) :]
            self.mode = "answer"
        if self.mode == "answer":
            answer, self._buf = self._buf, ""
            if not self._answer_started and self.saw_reasoning:
                answer = answer.lstrip()
            self._answer_started = self._answer_started or bool(answer)
        return reasoning, answer

    def finish(self) -> tuple[str, str]:
        """Release the held-back tail at the end of the response."""
        buf, self._buf = self._buf, ""
        if self.mode == "reasoning":
            return buf, ""
        if self.mode == "start":
            self.mode = "answer"
            return "", buf
        return "", buf


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest tail of `text` that is a proper prefix of `tag`."""
    for n in range(min(len(text), len(tag) - 1), 0, -1):
        if tag.startswith(text[-n:]):
            return n
    return 0
