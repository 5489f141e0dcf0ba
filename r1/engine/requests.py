"""What callers hold: results (`Sample`, `Completion`), stream events, and the `RequestHandle` of a submitted request.

A handle delivers events either to a thread-safe queue (iterate it, or call `result()`) or to a callback given at
submit time; the server's callback hops onto its asyncio loop with `call_soon_threadsafe`.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from r1.engine.sampling import SamplingParams

# One step's most likely tokens, most likely first: (token id, logprob, model_logprob), as in `Sample.logprobs`.
TopLogprobs = list[tuple[int, float, float]]


@dataclass
class Sample:
    """One generated sequence.

    `tokens` include the final EOS/stop token (RL trains on it); `text` excludes it, and a stop string is cut from
    `text` as OpenAI does. `logprobs` are under the distribution sampled from (0 for greedy), `model_logprobs` under
    the unmodified model. `finish_reason`: "stop" (EOS, stop id, stop string), "length", or "cancelled".
    `top_logprobs`: per token, the `SamplingParams.top_logprobs` most likely tokens; None unless asked for.
    """

    index: int
    tokens: list[int]
    text: str
    logprobs: list[float]
    model_logprobs: list[float]
    finish_reason: str
    stop_reason: int | str | None = None  # the stop id or string that ended it
    top_logprobs: list[TopLogprobs] | None = None


@dataclass
class Completion:
    """All samples of one request, in sample order."""

    request_id: int
    prompt_ids: list[int]
    samples: list[Sample] = field(default_factory=list)

    @property
    def num_prompt_tokens(self) -> int:
        return len(self.prompt_ids)


@dataclass
class TokenEvent:
    """A token was sampled. `text` is the newly visible text (may be "" while a character or stop string is open)."""

    sample: int
    token_id: int
    text: str
    logprob: float
    model_logprob: float
    top_logprobs: TopLogprobs | None = None


@dataclass
class SampleDone:
    """A sample finished; `text` is the last visible text it releases (held-back characters)."""

    sample: Sample
    text: str = ""


@dataclass
class RequestDone:
    """The request is over: every sample finished, or it failed (`error`)."""

    completion: Completion | None
    error: BaseException | None = None


Event = TokenEvent | SampleDone | RequestDone


class RequestHandle:
    """A submitted request. Thread-safe: the engine thread emits, any thread reads or cancels."""

    def __init__(
        self,
        request_id: int,
        prompt_ids: list[int],
        params: SamplingParams,
        stream: bool,
        sink: Callable[[Event], None] | None = None,
    ) -> None:
        self.id = request_id
        self.prompt_ids = prompt_ids
        self.params = params
        self.stream = stream
        self._sink = sink
        self._queue: queue.Queue[Event] | None = None if sink else queue.Queue()
        self._done = threading.Event()
        self.completion: Completion | None = None
        self.error: BaseException | None = None
        self.cancelled = False
        self.finished_at_step: int | None = None  # engine decode steps so far when it ended (for scheduling tests)
        self._wake: Callable[[], None] | None = None

    def cancel(self) -> None:
        """Stop generating; the engine frees the request's rows before its next step."""
        self.cancelled = True
        if self._wake is not None:
            self._wake()

    def done(self) -> bool:
        return self._done.is_set()

    def result(self, timeout: float | None = None) -> Completion:
        """Wait for the completion (needs a running engine thread, or someone else stepping the engine)."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"request {self.id} not finished after {timeout}s")
        if self.error is not None:
            raise self.error
        assert self.completion is not None
        return self.completion

    def events(self, timeout: float | None = None) -> Iterator[Event]:
        """Events as they come, ending with `RequestDone`; only for handles submitted without a callback."""
        if self._queue is None:
            raise RuntimeError("this request delivers its events to a callback")
        while True:
            try:
                ev = self._queue.get(timeout=timeout)
            except queue.Empty:
                raise TimeoutError(f"no event from request {self.id} for {timeout}s") from None
            yield ev
            if isinstance(ev, RequestDone):
                return

    def pending_events(self) -> list[Event]:
        """Events already delivered and not read yet (for callers that step the engine themselves)."""
        out: list[Event] = []
        if self._queue is not None:
            while True:
                try:
                    out.append(self._queue.get_nowait())
                except queue.Empty:
                    return out
        return out

    # ---------------------------------------------------------------------------------------- engine side
    def emit(self, ev: Event) -> None:
        if self._sink is not None:
            self._sink(ev)
        else:
            assert self._queue is not None
            self._queue.put(ev)

    def finish(self, completion: Completion | None, error: BaseException | None, step: int) -> None:
        self.completion, self.error, self.finished_at_step = completion, error, step
        self._done.set()
        self.emit(RequestDone(completion, error))
