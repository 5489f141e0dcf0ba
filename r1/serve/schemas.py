"""Request bodies of the OpenAI-compatible API, validated by pydantic.

Strict, as vLLM is: a parameter this server does not know is a 400 naming it, never silently dropped. Every parameter
of OpenAI's chat and legacy completions APIs is declared, and is either implemented (plus vLLM's `top_k`,
`ignore_eos`, `return_tokens_as_token_ids`), accepted because it cannot change the output (user, metadata, store, a
message's `name`, …, or any parameter at its no-op value), or a 400 with `param` set (`check_supported`): returning
text that ignored penalties, tools or structured output would be wrong. Numbers and flags are strict (`"0.7"` is not
a temperature); ranges are OpenAI's, except legacy `logprobs` up to 20 (vLLM's limit). A `developer` message is a
system message; an assistant message's reasoning is accepted and dropped: reasoning is never fed back.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    field_validator,
    model_validator,
)

from r1.readers import unicode_problem

MAX_N = 16
MAX_STOP = 16
MAX_TOP_LOGPROBS = 20


def _encodable(text: str) -> str:
    problem = unicode_problem(text)
    if problem is not None:
        raise ValueError(problem)
    return text


# Every string of a request: a lone surrogate (a JSON "\ud800" escape) is a 400 naming the field, never a crash
# in the tokenizer or in rendering a response that quotes it.
Text = Annotated[StrictStr, AfterValidator(_encodable)]
Temperature = Annotated[float, Field(ge=0.0, le=2.0, strict=True, allow_inf_nan=False)]
TopP = Annotated[float, Field(gt=0.0, le=1.0, strict=True, allow_inf_nan=False)]
PositiveInt = Annotated[StrictInt, Field(ge=1)]
TopLogprobs = Annotated[StrictInt, Field(ge=0, le=MAX_TOP_LOGPROBS)]
Number = StrictFloat | StrictInt


class Unsupported(Exception):
    """A declared parameter holds a value this server cannot honour."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param, self.message = param, message


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Open(BaseModel):
    """Objects whose inner fields are OpenAI's business only (metadata, prediction, …): any shape is accepted."""

    model_config = ConfigDict(extra="allow")


class TextPart(_Body):
    type: Literal["text"]
    text: Text


class ChatMessage(_Body):
    role: Literal["system", "developer", "user", "assistant"]
    content: Text | list[TextPart] | None = None
    name: Text | None = None  # a participant's name; chat templates have no place for it
    reasoning_content: Text | None = None
    reasoning: Text | None = None
    refusal: Text | None = None
    tool_calls: list[dict[str, Any]] | None = None
    function_call: dict[str, Any] | None = None
    audio: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _content_given(self) -> ChatMessage:
        if self.content is None and self.role != "assistant":
            raise ValueError(f"content is required for a {self.role} message")
        return self

    def text(self) -> str:
        if self.content is None:
            return ""
        return self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)

    def template_role(self) -> str:
        return "system" if self.role == "developer" else self.role


class StreamOptions(_Body):
    include_usage: StrictBool = False
    include_obfuscation: StrictBool | None = None  # OpenAI pads chunks against side channels; nothing to pad here


class _Sampling(_Body):
    model: Text
    temperature: Temperature | None = None
    top_p: TopP | None = None
    top_k: Annotated[StrictInt, Field(ge=-1)] | None = None
    n: Annotated[StrictInt, Field(ge=1, le=MAX_N)] = 1
    max_tokens: PositiveInt | None = None
    stop: Text | Annotated[list[Text], Field(max_length=MAX_STOP)] | None = None
    seed: Annotated[StrictInt, Field(ge=-(2**63), lt=2**64)] | None = None  # what torch's generators take
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    ignore_eos: StrictBool = False  # vLLM extension: generate exactly max_tokens (benchmarks)
    return_tokens_as_token_ids: StrictBool = False  # vLLM extension: logprobs name tokens "token_id:{id}"
    frequency_penalty: Number | None = None
    presence_penalty: Number | None = None
    logit_bias: dict[str, Number] | None = None
    user: Text | None = None

    @field_validator("stop")
    @classmethod
    def _stop_not_empty(cls, v: str | list[str] | None) -> list[str]:
        stops = [v] if isinstance(v, str) else list(v or [])
        if any(not s for s in stops):
            raise ValueError("stop strings must not be empty")
        return stops

    def stop_list(self) -> list[str]:
        return list(self.stop or [])  # type: ignore[arg-type]

    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    def top_logprobs_count(self) -> int:
        """How many alternatives per token the engine must report (0 when logprobs are off)."""
        raise NotImplementedError

    def wants_logprobs(self) -> bool:
        raise NotImplementedError

    def check_supported(self) -> None:
        """Raise `Unsupported` for the first declared parameter whose value this server cannot honour."""
        for name in ("frequency_penalty", "presence_penalty"):
            if getattr(self, name) not in (None, 0):
                raise Unsupported(name, f"{name} is not supported by this server; send 0 or leave it out")
        if self.logit_bias:
            raise Unsupported("logit_bias", "logit_bias is not supported by this server; leave it out")
        if self.stream_options is not None and not self.stream:
            raise Unsupported("stream_options", "stream_options is only allowed when stream is true")


class ChatCompletionRequest(_Sampling):
    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    max_completion_tokens: PositiveInt | None = None  # the newer name for max_tokens
    logprobs: StrictBool | None = None
    top_logprobs: TopLogprobs | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Text | dict[str, Any] | None = None
    parallel_tool_calls: StrictBool | None = None
    functions: list[dict[str, Any]] | None = None
    function_call: Text | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    audio: dict[str, Any] | None = None
    modalities: list[Text] | None = None
    reasoning_effort: Text | None = None
    verbosity: Text | None = None
    web_search_options: dict[str, Any] | None = None
    moderation: dict[str, Any] | None = None
    prediction: _Open | None = None
    metadata: dict[str, Text] | None = None
    store: StrictBool | None = None
    service_tier: Text | None = None
    safety_identifier: Text | None = None
    prompt_cache_key: Text | None = None
    prompt_cache_retention: Text | None = None
    prompt_cache_options: _Open | None = None

    def token_limit(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens

    def wants_logprobs(self) -> bool:
        return bool(self.logprobs)

    def top_logprobs_count(self) -> int:
        return (self.top_logprobs or 0) if self.logprobs else 0

    def check_supported(self) -> None:
        super().check_supported()
        if self.top_logprobs and not self.logprobs:
            raise Unsupported("top_logprobs", "top_logprobs needs logprobs set to true")
        no_tools = "this server has no tool calling (the model has no tool-call format)"
        if self.tools:
            raise Unsupported("tools", f"tools are not supported: {no_tools}; leave tools out")
        if self.functions:
            raise Unsupported("functions", f"functions are not supported: {no_tools}; leave functions out")
        for name in ("tool_choice", "function_call"):
            if getattr(self, name) not in (None, "none", "auto"):  # with no tools, "auto" can only mean none
                raise Unsupported(name, f"{name}={getattr(self, name)!r} cannot be honoured: {no_tools}")
        fmt = self.response_format
        if fmt is not None and fmt.get("type") != "text":
            raise Unsupported(
                "response_format",
                f"response_format type {fmt.get('type')!r} is not supported (no constrained decoding); "
                "only 'text' is; ask for JSON in the prompt instead",
            )
        if self.audio is not None or (self.modalities is not None and self.modalities != ["text"]):
            raise Unsupported("audio" if self.audio is not None else "modalities", "this server produces text only")
        unsupported = {
            "reasoning_effort": "R1 models choose their own reasoning length; bound it with max_tokens",
            "verbosity": "the model has no verbosity control",
            "web_search_options": "this server has no web search",
            "moderation": "this server runs no moderation model",
        }
        for name, why in unsupported.items():
            if getattr(self, name) is not None:
                raise Unsupported(name, f"{name} is not supported: {why}; leave it out")
        for i, m in enumerate(self.messages):
            if m.tool_calls or m.function_call or m.audio is not None:
                field = "tool_calls" if m.tool_calls else "function_call" if m.function_call else "audio"
                raise Unsupported(f"messages.{i}.{field}", f"messages[{i}].{field}: {no_tools}")


Prompt = Text | Annotated[list[Text], Field(min_length=1)] | list[StrictInt] | list[list[StrictInt]]


class CompletionRequest(_Sampling):
    prompt: Prompt
    max_tokens: PositiveInt | None = 16  # OpenAI's default for legacy completions
    logprobs: TopLogprobs | None = None
    echo: StrictBool = False
    suffix: Text | None = None
    best_of: PositiveInt | None = None

    def prompts(self) -> list[str | list[int]]:
        p = self.prompt
        if isinstance(p, str):
            return [p]
        if p and all(isinstance(x, int) for x in p):
            return [list(p)]  # type: ignore[arg-type]
        return list(p)  # type: ignore[arg-type]

    def token_limit(self) -> int | None:
        return self.max_tokens

    def wants_logprobs(self) -> bool:
        return self.logprobs is not None

    def top_logprobs_count(self) -> int:
        return self.logprobs or 0

    def check_supported(self) -> None:
        super().check_supported()
        if self.suffix:
            raise Unsupported("suffix", "suffix (insertion) is not supported by this server; leave it out")
        if self.best_of is not None and self.best_of != self.n:
            raise Unsupported("best_of", f"best_of={self.best_of} is not supported; use n (best_of must equal n)")
        if self.echo and self.logprobs is not None:
            raise Unsupported("echo", "echo with logprobs needs prompt logprobs, which this server does not compute")
