"""An OpenAI-compatible HTTP API over the engine, with the reasoning apart from the answer.

Routes: /v1/chat/completions (reasoning in `reasoning_content`, DeepSeek's name, and `reasoning`, vLLM's),
/v1/completions, /v1/models, /health, /metrics (`metrics.py`). Parameters are checked strictly (`schemas.py`).

One engine thread batches every request; the asyncio side gets each request's events through
`loop.call_soon_threadsafe` into an `asyncio.Queue`, and a client that goes away has its request cancelled. Errors
are OpenAI-shaped (400, not 422, for validation); `RequestGuard` makes an oversized body a 413, a slow one a 408,
and any unexpected failure a 500 on a connection that stays usable.

Chat messages are the client's text: control-token strings in them are encoded as plain text, so no client can forge
a turn. A /v1/completions prompt is encoded as it is (special-token strings become ids, as in vLLM): the client
writes the whole prompt there, so there is no one else's turn to forge.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse as _JSONResponse
from fastapi.responses import PlainTextResponse, StreamingResponse
from starlette.exceptions import HTTPException

from r1.engine.engine import Engine
from r1.engine.reasoning import ReasoningStream, count_reasoning_tokens, prompt_opens_think, split_reasoning
from r1.engine.requests import Completion, Event, RequestDone, RequestHandle, Sample, SampleDone, TokenEvent
from r1.engine.sampling import SamplingParams
from r1.errors import UserError
from r1.readers import unicode_problem
from r1.serve import DEFAULT_BODY_TIMEOUT, DEFAULT_MAX_BODY
from r1.serve.logprobs import LOGPROBS_MODES, LogprobsBuilder, TokenBytes, reported_count
from r1.serve.metrics import CONTENT_TYPE, Metrics
from r1.serve.schemas import ChatCompletionRequest, CompletionRequest, Unsupported
from r1.tokenizer import THINK_CLOSE

WAIT_POLL_S = 0.5  # how often a waiting request checks that its client is still there and the engine still runs
# What pydantic puts in an error's location for the member of a union that failed ("str", "list[TextPart]", …).
_UNION_MEMBER = re.compile(r"str|int|float|bool|(list|dict|function-\w+|constrained-\w+)\[.*\]|[A-Z_]\w*")
# pydantic's error types for a body that is not a JSON object, and how to name what it is instead
_NOT_AN_OBJECT = frozenset({"missing", "model_type", "model_attributes_type", "dict_type"})
_JSON_NAMES = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean",
               type(None): "null"}  # fmt: skip
# uvicorn's own logger: these lines appear in the server's log, formatted and filtered like uvicorn's.
logger = logging.getLogger("uvicorn.error")


class APIError(Exception):
    """An error rendered as OpenAI's error object: the client's (4xx, "invalid_request_error") or ours (5xx,
    "server_error")."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code

    def body(self) -> dict[str, Any]:
        kind = "server_error" if self.status >= 500 else "invalid_request_error"
        return error_body(self.message, self.param, self.code, kind)


class ClientDisconnected(Exception):
    """The client closed its connection while its response was being prepared."""


def error_body(message: str, param: str | None = None, code: str | None = None, kind: str = "invalid_request_error"):
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


class JSONResponse(_JSONResponse):
    """Starlette's JSON response, except that a lone surrogate in a string (an unknown parameter's name quoted back,
    say) is written as its `\\udXXX` escape instead of failing to encode as UTF-8."""

    def render(self, content: Any) -> bytes:
        text = json.dumps(content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":"))
        return text.encode("utf-8", "backslashreplace")


def generation_failed(error: BaseException) -> APIError:
    """The 500 for a request the engine failed; the engine's traceback is logged once, however many requests the
    failing step held."""
    if not getattr(error, "_r1_logged", False):
        logger.error("generation failed", exc_info=error)
        error._r1_logged = True  # type: ignore[attr-defined]
    return APIError(500, f"generation failed: {type(error).__name__}: {error}")


def _engine_down() -> APIError:
    return APIError(503, "the inference engine is not running; the server must be restarted", None,
                    "engine_not_running")  # fmt: skip


class RequestGuard:
    """ASGI middleware around every HTTP request: what no client may do to the server, and the last line of defence.

    - A body over `max_bytes` is a 413, by Content-Length up front or while the body streams in.
    - A body not received in full within `body_timeout` seconds of the first read is a 408; both close the
      connection, whose unread remainder would otherwise hold it.
    - A failure nothing else handled is an OpenAI-style 500 (the traceback is logged) and the connection stays
      usable; a client that disconnects while its answer is prepared is one log line.
    """

    def __init__(self, app: Callable, max_bytes: int, body_timeout: float = DEFAULT_BODY_TIMEOUT) -> None:
        self.app, self.max_bytes, self.body_timeout = app, max_bytes, body_timeout

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        too_big = f"request body exceeds {self.max_bytes} bytes"
        closing = {"connection": "close"}
        if declared.isdigit() and int(declared) > self.max_bytes:
            body = error_body(too_big, code="request_too_large")
            await JSONResponse(body, status_code=413, headers=closing)(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        seen, body_done, deadline, started = 0, False, None, False

        async def guarded_receive() -> dict:
            nonlocal seen, body_done, deadline
            if body_done:  # later reads only wait for a disconnect: no limit on those
                return await receive()
            if deadline is None:
                deadline = loop.time() + self.body_timeout
            try:
                message = await asyncio.wait_for(receive(), max(deadline - loop.time(), 0.0))
            except TimeoutError:
                expected = f" of {int(declared)}" if declared.isdigit() else ""
                raise HTTPException(408, f"request body not received within {self.body_timeout:g} s (got {seen}"
                                    f"{expected} bytes)", headers=closing) from None  # fmt: skip
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise HTTPException(413, too_big, headers=closing)
                body_done = not message.get("more_body", False)
            else:
                body_done = True
            return message

        async def tracked_send(message: dict) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        what = f"{scope.get('method', '')} {scope.get('path', '')}"
        try:
            await self.app(scope, guarded_receive, tracked_send)
        except ClientDisconnected:
            logger.info("%s: the client disconnected before its response; its request was cancelled", what)
        except Exception as exc:
            logger.error("%s: unexpected server error", what, exc_info=exc)
            if started:  # half a response went out: all that can be done is to end the connection (uvicorn does)
                return
            message = f"The server had an error while processing your request ({type(exc).__name__}: {exc})"
            await JSONResponse(error_body(message, kind="server_error"), status_code=500)(scope, receive, send)


class Server:
    """The routes' shared state: the engine, the served names, default sampling values, the logprobs mode."""

    def __init__(
        self,
        engine: Engine,
        model_names: Sequence[str],
        defaults: Mapping[str, Any] | None = None,
        logprobs_mode: str = "raw_logprobs",
    ) -> None:
        if not model_names:
            raise UserError("the server needs at least one model name")
        if logprobs_mode not in LOGPROBS_MODES:
            raise UserError(f"logprobs_mode={logprobs_mode!r}: must be one of {', '.join(LOGPROBS_MODES)}")
        self.engine = engine
        self.model_names = list(dict.fromkeys(model_names))
        self.model_name = self.model_names[0]
        self.defaults = dict(defaults or {})
        self.processed_logprobs = logprobs_mode == "processed_logprobs"
        self.created = int(time.time())
        self.think_close_id = engine.tokenizer.token_to_id(THINK_CLOSE)
        self.vocab = TokenBytes(engine.tokenizer)

    # ------------------------------------------------------------------------------------------- requests
    def check(self, body: ChatCompletionRequest | CompletionRequest) -> None:
        if body.model not in self.model_names:
            served = ", ".join(f"'{n}'" for n in self.model_names)
            raise APIError(404, f"The model '{body.model}' does not exist; this server has {served}.", "model",
                           "model_not_found")  # fmt: skip
        try:
            body.check_supported()
        except Unsupported as exc:
            raise APIError(400, exc.message, exc.param, "unsupported_parameter") from None

    def card(self, name: str) -> dict[str, Any]:
        return {"id": name, "object": "model", "created": self.created, "owned_by": "r1",
                "max_model_len": self.engine.max_len}  # fmt: skip

    def logprobs_builder(self, chat: bool, as_ids: bool) -> LogprobsBuilder:
        return LogprobsBuilder(self.vocab, self.processed_logprobs, chat, as_ids)

    def sample_logprobs(self, sample: Sample, chat: bool, as_ids: bool) -> dict[str, Any]:
        builder = self.logprobs_builder(chat, as_ids)
        builder.add_sample(sample)
        return builder.take()

    def params(self, body: ChatCompletionRequest | CompletionRequest, prompt_len: int) -> SamplingParams:
        room = self.engine.max_len - prompt_len
        limit = body.token_limit()
        if limit is not None and limit > room:
            asked = (
                f"you requested {prompt_len + limit} tokens ({prompt_len} in the prompt, {limit} for the completion)."
            )
            raise self.too_long(asked, "max_tokens")
        if body.n > self.engine.max_batch:
            raise APIError(400, f"n={body.n}: this server decodes at most {self.engine.max_batch} sequences together "
                           "(--max-batch)", "n", "invalid_value")  # fmt: skip
        d = self.defaults
        top_k = body.top_k if body.top_k is not None else d.get("top_k", 0)
        try:
            return SamplingParams(
                temperature=body.temperature if body.temperature is not None else d.get("temperature", 1.0),
                top_p=body.top_p if body.top_p is not None else d.get("top_p", 1.0),
                top_k=max(top_k, 0),
                max_tokens=limit if limit is not None else room,
                stop=tuple(body.stop_list()),
                seed=body.seed,
                n=body.n,
                ignore_eos=body.ignore_eos,
                top_logprobs=body.top_logprobs_count(),
            )
        except UserError as exc:
            raise APIError(400, str(exc)) from None

    def too_long(self, what: str, param: str) -> APIError:
        message = f"This model's maximum context length is {self.engine.max_len} tokens. However, {what}"
        return APIError(400, message, param, "context_length_exceeded")

    def encode(self, prompt: Any, param: str) -> list[int]:
        """Token ids of a prompt; text prompts get BOS, as a base model saw at every document start."""
        try:
            ids = self.engine.encode(prompt, add_bos=True)
            if len(ids) >= self.engine.max_len:
                raise self.too_long(f"your prompt has {len(ids)} tokens, which leaves no room for a completion.", param)
            self.engine.check_prompt(ids, SamplingParams())
        except UserError as exc:
            raise APIError(400, str(exc), param, "invalid_value") from None
        return ids

    def submit(self, ids: list[int], params: SamplingParams, stream: bool) -> tuple[RequestHandle, asyncio.Queue]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Event] = asyncio.Queue()

        def deliver(ev: Event) -> None:  # runs on the engine thread
            try:
                loop.call_soon_threadsafe(queue.put_nowait, ev)
            except RuntimeError:  # the event loop is gone (shutdown): nobody is listening
                for h in submitted:
                    h.cancel()

        submitted: list[RequestHandle] = []

        if not self.engine.running:  # nobody would ever step the request
            raise _engine_down()
        try:
            handle = self.engine.submit(ids, params, stream=stream, on_event=deliver)
        except UserError as exc:
            raise APIError(400, str(exc)) from None
        submitted.append(handle)
        return handle, queue

    def usage(self, completions: list[Completion], in_think: bool | None) -> dict[str, Any]:
        samples = [s for c in completions for s in c.samples]
        usage: dict[str, Any] = {
            "prompt_tokens": sum(c.num_prompt_tokens for c in completions),
            "completion_tokens": sum(len(s.tokens) for s in samples),
        }
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        if in_think is not None:
            reasoning = sum(
                count_reasoning_tokens(s.tokens, self.think_close_id, split_reasoning(s.text, in_think)[0])
                for s in samples
            )
            usage["completion_tokens_details"] = {"reasoning_tokens": reasoning}
        return usage


async def next_event(engine: Engine, queue: asyncio.Queue, request: Request | None = None) -> Event:
    """The request's next event; raises if the engine thread is gone (the event would never come) or, when `request`
    is given, the client has disconnected."""
    while True:
        try:
            return await asyncio.wait_for(queue.get(), WAIT_POLL_S)
        except TimeoutError:
            if request is not None and await request.is_disconnected():
                raise ClientDisconnected from None
            if not engine.running and queue.empty():
                raise _engine_down() from None


async def wait_all(
    engine: Engine, request: Request, handles: list[RequestHandle], queues: list[asyncio.Queue]
) -> list[Completion]:
    """Completions of non-streaming requests; cancels them all if the client disconnects meanwhile."""
    out: list[Completion] = []
    try:
        for queue in queues:
            while True:
                ev = await next_event(engine, queue, request)
                if isinstance(ev, RequestDone):
                    if ev.error is not None:
                        raise generation_failed(ev.error)
                    assert ev.completion is not None
                    out.append(ev.completion)
                    break
        if await request.is_disconnected():  # it finished between two polls: the answer would go nowhere
            raise ClientDisconnected
        return out
    finally:
        for h in handles:
            if not h.done():
                h.cancel()


def sse(obj: Any) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"


def create_app(
    engine: Engine,
    model_name: str | Sequence[str] = "r1",
    defaults: Mapping[str, Any] | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY,
    logprobs_mode: str = "raw_logprobs",
    body_timeout: float = DEFAULT_BODY_TIMEOUT,
) -> FastAPI:
    """The ASGI app. Starts the engine's thread on startup (and stops it on shutdown) unless it already runs.

    `model_name`: the name clients send as `model`, or several (all accepted; responses carry the first).
    `max_body_bytes`, `body_timeout`: the largest request body, and the seconds a client has to send it.
    """
    if max_body_bytes < 1 or not body_timeout > 0:
        raise UserError(f"max_body_bytes={max_body_bytes}, body_timeout={body_timeout}: both must be > 0")
    names = [model_name] if isinstance(model_name, str) else list(model_name)
    server = Server(engine, names, defaults, logprobs_mode)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = not engine.running
        engine.start()
        try:
            yield
        finally:
            if owned:
                engine.stop()

    # Bodies without a Content-Type are read as JSON too (curl users forget the header; OpenAI accepts them).
    app = FastAPI(title="r1", lifespan=lifespan, docs_url=None, redoc_url=None, strict_content_type=False,
                  default_response_class=JSONResponse)  # fmt: skip
    app.state.server = server
    app.add_middleware(RequestGuard, max_bytes=max_body_bytes, body_timeout=body_timeout)
    _install_error_handlers(app)

    @app.get("/health")
    async def health() -> Any:
        load = {"active": engine.num_active(), "pending": engine.num_pending()}
        if not engine.running:
            return JSONResponse({"status": "error", **_engine_down().body(), **load}, status_code=503)
        return {"status": "ok", **load}

    metrics = Metrics(engine, names[0])

    @app.get("/metrics")
    async def prometheus() -> PlainTextResponse:
        return PlainTextResponse(metrics.render(), media_type=CONTENT_TYPE)

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [server.card(n) for n in server.model_names]}

    @app.get("/v1/models/{name:path}")
    async def model(name: str) -> dict[str, Any]:
        if name not in server.model_names:
            raise APIError(404, f"The model '{name}' does not exist.", "model", "model_not_found")
        return server.card(name)

    @app.post("/v1/chat/completions")
    async def chat_completions(body: ChatCompletionRequest, request: Request) -> Any:
        server.check(body)
        messages = [{"role": m.template_role(), "content": m.text()} for m in body.messages]
        ids = server.encode(messages, "messages")
        in_think = prompt_opens_think(engine.tokenizer.decode(ids))
        params = server.params(body, len(ids))
        rid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        if body.stream:
            handle, queue = server.submit(ids, params, stream=True)
            gen = _chat_stream(server, handle, queue, rid, created, in_think, body)
            return StreamingResponse(gen, media_type="text/event-stream")
        handle, queue = server.submit(ids, params, stream=False)
        (done,) = await wait_all(engine, request, [handle], [queue])
        choices = []
        for s in done.samples:
            reasoning, answer = split_reasoning(s.text, in_think)
            message = {"role": "assistant", "content": answer, "reasoning_content": reasoning, "reasoning": reasoning}
            logprobs = (
                server.sample_logprobs(s, True, body.return_tokens_as_token_ids) if body.wants_logprobs() else None
            )
            choices.append({"index": s.index, "message": message, "logprobs": logprobs,
                            "finish_reason": s.finish_reason})  # fmt: skip
        return {"id": rid, "object": "chat.completion", "created": created, "model": server.model_name,
                "choices": choices, "usage": server.usage([done], in_think)}  # fmt: skip

    @app.post("/v1/completions")
    async def completions(body: CompletionRequest, request: Request) -> Any:
        server.check(body)
        prompts = body.prompts()
        if not prompts:
            raise APIError(400, "prompt is empty", "prompt")
        encoded = [server.encode(p, "prompt") for p in prompts]
        plist = [server.params(body, len(ids)) for ids in encoded]
        echoes = [(p if isinstance(p, str) else engine.tokenizer.decode(p)) if body.echo else "" for p in prompts]
        rid, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())
        submitted = [server.submit(ids, p, stream=body.stream) for ids, p in zip(encoded, plist)]
        handles, queues = [h for h, _ in submitted], [q for _, q in submitted]
        if body.stream:
            gen = _completion_stream(server, handles, queues, rid, created, body, echoes)
            return StreamingResponse(gen, media_type="text/event-stream")
        done = await wait_all(engine, request, handles, queues)
        choices = [
            {
                "index": i * body.n + s.index,
                "text": echoes[i] + s.text,
                "logprobs": server.sample_logprobs(s, False, body.return_tokens_as_token_ids)
                if body.wants_logprobs()
                else None,
                "finish_reason": s.finish_reason,
            }
            for i, c in enumerate(done)
            for s in c.samples
        ]
        return {"id": rid, "object": "text_completion", "created": created, "model": server.model_name,
                "choices": choices, "usage": server.usage(done, None)}  # fmt: skip

    return app


class _StreamedLogprobs:
    """The logprobs of one streamed sample: tokens wait until a chunk carries their text (or the sample ends)."""

    def __init__(self, server: Server, chat: bool, body: ChatCompletionRequest | CompletionRequest) -> None:
        wanted = body.wants_logprobs()
        self.builder = server.logprobs_builder(chat, body.return_tokens_as_token_ids) if wanted else None

    def add(self, ev: TokenEvent) -> None:
        if self.builder is not None:
            self.builder.add(ev.token_id, ev.logprob, ev.model_logprob, ev.top_logprobs)

    def finish(self, sample: Sample) -> None:
        if self.builder is not None:
            self.builder.keep_first(reported_count(sample))

    def take(self) -> dict[str, Any] | None:
        return self.builder.take() if self.builder is not None else None


async def _chat_stream(
    server: Server,
    handle: RequestHandle,
    queue: asyncio.Queue,
    rid: str,
    created: int,
    in_think: bool,
    body: ChatCompletionRequest,
) -> AsyncIterator[str]:
    n = handle.params.n

    def chunk(index: int, delta: dict[str, Any], finish: str | None = None, logprobs: Any = None) -> str:
        choice = {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
        return sse({"id": rid, "object": "chat.completion.chunk", "created": created, "model": server.model_name,
                    "choices": [choice]})  # fmt: skip

    def deltas(index: int, reasoning: str, answer: str) -> list[str]:
        out = []
        if reasoning:
            out.append(chunk(index, {"reasoning_content": reasoning, "reasoning": reasoning}, None, lps[index].take()))
        if answer:
            out.append(chunk(index, {"content": answer}, None, lps[index].take()))
        return out

    splits = [ReasoningStream(in_think) for _ in range(n)]
    lps = [_StreamedLogprobs(server, True, body) for _ in range(n)]
    finished = False
    try:
        for i in range(n):
            yield chunk(i, {"role": "assistant", "content": ""})
        while True:
            ev = await next_event(server.engine, queue)
            if isinstance(ev, TokenEvent):
                lps[ev.sample].add(ev)
                for c in deltas(ev.sample, *splits[ev.sample].feed(ev.text)):
                    yield c
            elif isinstance(ev, SampleDone):
                i = ev.sample.index
                lps[i].finish(ev.sample)
                r, a = splits[i].feed(ev.text)
                fr, fa = splits[i].finish()
                for c in deltas(i, r + fr, a + fa):
                    yield c
                yield chunk(i, {}, ev.sample.finish_reason, lps[i].take())
            elif isinstance(ev, RequestDone):
                if ev.error is not None:
                    yield sse(generation_failed(ev.error).body())
                elif body.include_usage() and ev.completion is not None:
                    yield sse({"id": rid, "object": "chat.completion.chunk", "created": created,
                               "model": server.model_name, "choices": [],
                               "usage": server.usage([ev.completion], in_think)})  # fmt: skip
                break
        finished = True
    except Exception as exc:  # the response has started: the error can only be an event of the stream
        yield _stream_error(exc)
        finished = True
    finally:
        _end_stream(finished, [handle])
    yield "data: [DONE]\n\n"


async def _completion_stream(
    server: Server,
    handles: list[RequestHandle],
    queues: list[asyncio.Queue],
    rid: str,
    created: int,
    body: CompletionRequest,
    echoes: list[str],
) -> AsyncIterator[str]:
    n = body.n

    def chunk(index: int, text: str, finish: str | None = None, logprobs: Any = None) -> str:
        choice = {"index": index, "text": text, "logprobs": logprobs, "finish_reason": finish}
        return sse({"id": rid, "object": "text_completion", "created": created, "model": server.model_name,
                    "choices": [choice]})  # fmt: skip

    # Requests run concurrently in the engine; merge their queues into one event stream.
    merged: asyncio.Queue[tuple[int, Event]] = asyncio.Queue()

    async def pump(p: int, queue: asyncio.Queue) -> None:
        while True:
            ev = await queue.get()
            await merged.put((p, ev))
            if isinstance(ev, RequestDone):
                return

    pumps = [asyncio.create_task(pump(p, q)) for p, q in enumerate(queues)]
    lps = [_StreamedLogprobs(server, False, body) for _ in range(len(handles) * n)]
    completions: list[Completion] = []
    finished = False
    try:
        for p, echo in enumerate(echoes):
            if echo:
                for j in range(n):
                    yield chunk(p * n + j, echo)
        open_requests = len(handles)
        while open_requests:
            p, ev = await next_event(server.engine, merged)
            if isinstance(ev, TokenEvent):
                i = p * n + ev.sample
                lps[i].add(ev)
                if ev.text:
                    yield chunk(i, ev.text, None, lps[i].take())
            elif isinstance(ev, SampleDone):
                i = p * n + ev.sample.index
                lps[i].finish(ev.sample)
                yield chunk(i, ev.text, ev.sample.finish_reason, lps[i].take())
            elif isinstance(ev, RequestDone):
                open_requests -= 1
                if ev.error is not None:
                    yield sse(generation_failed(ev.error).body())
                elif ev.completion is not None:
                    completions.append(ev.completion)
        if body.include_usage():
            yield sse({"id": rid, "object": "text_completion", "created": created, "model": server.model_name,
                       "choices": [], "usage": server.usage(completions, None)})  # fmt: skip
        finished = True
    except Exception as exc:
        yield _stream_error(exc)
        finished = True
    finally:
        for t in pumps:
            t.cancel()
        _end_stream(finished, handles)
    yield "data: [DONE]\n\n"


def _stream_error(exc: Exception) -> str:
    """An error in a stream whose response has started, as an event carrying OpenAI's error object (vLLM's way)."""
    if isinstance(exc, APIError):
        return sse(exc.body())
    logger.error("unexpected server error in a stream", exc_info=exc)
    message = f"The server had an error while processing your request ({type(exc).__name__}: {exc})"
    return sse(error_body(message, kind="server_error"))


def _end_stream(finished: bool, handles: list[RequestHandle]) -> None:
    """Free the rows of requests still running; a stream left before its end means that the client went away."""
    cancelled = [h for h in handles if not h.done()]
    for h in cancelled:
        h.cancel()
    if not finished and cancelled:
        logger.info("the client disconnected during a stream; %d request(s) cancelled", len(cancelled))


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def api_error(_: Request, exc: APIError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        if first.get("type") == "json_invalid":
            detail = (first.get("ctx") or {}).get("error", "")
            return JSONResponse(error_body(f"request body is not valid JSON: {detail}".strip(), code="invalid_json"),
                                status_code=400)  # fmt: skip
        # A wrong value is the most telling problem; then an unknown name (a misspelt one also makes its field
        # "missing"); then the rest. Of a union's members, the one whose shape matched went deepest and did not fail
        # on the type: its error names the field ("content.0.text", not "content: Input should be a valid string").
        rank = {"missing": 2, "extra_forbidden": 1}

        def telling(e: Mapping[str, Any]) -> tuple[int, bool, int]:
            kind = str(e.get("type", ""))
            return rank.get(kind, 0), kind.endswith("_type"), -len(e.get("loc", ()))

        first = min(errors, key=telling) if errors else first
        param = _param(first)
        kind = first.get("type")
        if param is None and kind in _NOT_AN_OBJECT:
            given = first.get("input")
            what = "is empty" if kind == "missing" else f"is {_JSON_NAMES.get(type(given), 'not an object')}"
            return JSONResponse(error_body(f"request body {what}: expected a JSON object", code="invalid_value"),
                                status_code=400)  # fmt: skip
        if kind == "extra_forbidden":
            message, code = f"Unrecognized request argument supplied: {param}", "unknown_parameter"
        elif kind == "string_unicode" and isinstance(first.get("input"), str):  # a name: values get `Text`'s message
            problem = f"a parameter name: {unicode_problem(first['input'])}"
            message, code = (f"{param}: {problem}" if param else problem), "invalid_value"
        else:
            detail = str(first["msg"]).removeprefix("Value error, ")
            message, code = (f"{param}: {detail}" if param else detail), "invalid_value"
        # Other members of the same union failing are not more problems; errors about other fields are.
        others = {_param(e) for e in errors if not _alternatives(e, first)} - {param}
        if others:
            message += f" (and {len(others)} more problem{'s' if len(others) > 1 else ''})"
        return JSONResponse(error_body(message, param, code), status_code=400)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed", 408: "request_timeout", 413: "request_too_large"}
        kind = "server_error" if exc.status_code >= 500 else "invalid_request_error"
        message, code = str(exc.detail), codes.get(exc.status_code)
        cause = exc.__cause__  # FastAPI's "error parsing the body" says no more; the cause does
        if isinstance(cause, UnicodeDecodeError):
            bad = cause.object[cause.start : cause.start + 1].hex()
            message = f"request body is not valid JSON: not UTF-8 text (byte 0x{bad} at offset {cause.start})"
            code = "invalid_json"
        elif isinstance(cause, RecursionError):
            message, code = "request body is not valid JSON here: arrays or objects nested too deeply", "invalid_json"
        body = error_body(message, code=code, kind=kind)
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


def _param(error: Mapping[str, Any]) -> str | None:
    """The dotted parameter path of a pydantic error, without "body" and without union members' type names
    ("stop.str", "content.list[TextPart]")."""
    loc = [str(p) for p in error.get("loc", ()) if p != "body"]
    return ".".join(p for p in loc if not _UNION_MEMBER.fullmatch(p)) or None


def _alternatives(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two pydantic errors are about different members of one union (the value matched neither)."""
    loc_a, loc_b = [str(p) for p in a.get("loc", ())], [str(p) for p in b.get("loc", ())]
    i = 0
    while i < min(len(loc_a), len(loc_b)) and loc_a[i] == loc_b[i]:
        i += 1
    return any(i < len(loc) and _UNION_MEMBER.fullmatch(loc[i]) is not None for loc in (loc_a, loc_b))
