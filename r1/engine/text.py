"""Text of a sample as it is decoded: UTF-8-safe deltas and stop strings.

Stop strings are matched on text, not tokens, because a string can end in the middle of a token or span several.
While the tail of the text could still grow into a stop string it is held back, so a stream never shows text that
the final answer cuts off (OpenAI and vLLM behave the same way).
"""

from __future__ import annotations

from r1.tokenizer import IncrementalDecoder, Tokenizer


class TextTracker:
    """Follows one sample's tokens; `push` returns the text that may be shown now and whether a stop string hit."""

    def __init__(self, tokenizer: Tokenizer, stop: tuple[str, ...] = ()) -> None:
        self._decoder = IncrementalDecoder(tokenizer)
        self._stop = stop
        self._longest = max((len(s) for s in stop), default=0)
        self.text = ""  # all decoded text so far (cut at the stop string once one matched)
        self._emitted = 0  # characters of `text` already returned as deltas
        self.stop_string: str | None = None

    def push(self, token_id: int) -> str:
        """Add a token; return the new visible text ("" while held back). Check `stop_string` afterwards."""
        piece = self._decoder.push(token_id)
        if not piece:
            return ""
        start = max(0, len(self.text) - self._longest + 1)
        self.text += piece
        if self._stop:
            hit = self._find_stop(start)
            if hit is not None:
                return self._take(len(self.text))
        return self._take(len(self.text) - self._held_back())

    def finish(self) -> str:
        """The sample ended without a stop string: release what was held back (and any unfinished character)."""
        if self.stop_string is None:
            self.text += self._decoder.flush()
        return self._take(len(self.text))

    def _find_stop(self, start: int) -> int | None:
        best: tuple[int, str] | None = None
        for s in self._stop:
            i = self.text.find(s, start)
            if i >= 0 and (best is None or i < best[0]):
                best = (i, s)
        if best is None:
            return None
        self.text = self.text[: best[0]]
        self.stop_string = best[1]
        return best[0]

    def _held_back(self) -> int:
        """Length of the longest tail of the text that is a proper prefix of some stop string."""
        tail = self.text[-self._longest :] if self._longest else ""
        for n in range(min(len(tail), self._longest - 1), 0, -1):
            suffix = tail[-n:]
            if any(s.startswith(suffix) for s in self._stop):
                return n
        return 0

    def _take(self, upto: int) -> str:
        upto = max(upto, self._emitted)
        delta = self.text[self._emitted : upto]
        self._emitted = upto
        return delta
