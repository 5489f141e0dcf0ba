"""Request bodies of the OpenAI-compatible API, validated by pydantic.

Numbers and flags are strict (`"0.7"` is not a temperature), ranges follow OpenAI's: temperature in [0, 2], top_p in
(0, 1], n in [1, 16]. Fields this server does not implement (penalties, logit_bias, tools, …) are accepted and
ignored, as DeepSeek's API does for sampling knobs, so stock clients work unchanged. `top_k` (0 or -1 = off) and
`ignore_eos` are vLLM's extensions. An assistant message's `reasoning_content` is accepted and dropped: reasoning is
never fed back.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, field_validator

MAX_N = 16
MAX_STOP = 16

Temperature = Annotated[float, Field(ge=0.0, le=2.0, strict=True)]
TopP = Annotated[float, Field(gt=0.0, le=1.0, strict=True)]
PositiveInt = Annotated[StrictInt, Field(ge=1)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class TextPart(_Body):
    type: Literal["text"]
    text: StrictStr


class ChatMessage(_Body):
    role: Literal["system", "user", "assistant"]
    content: StrictStr | list[TextPart]
    reasoning_content: StrictStr | None = None

    def text(self) -> str:
        return self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)


class StreamOptions(_Body):
    include_usage: StrictBool = False


class _Sampling(_Body):
    model: StrictStr
    temperature: Temperature | None = None
    top_p: TopP | None = None
    top_k: Annotated[StrictInt, Field(ge=-1)] | None = None
    n: Annotated[StrictInt, Field(ge=1, le=MAX_N)] = 1
    max_tokens: PositiveInt | None = None
    stop: StrictStr | Annotated[list[StrictStr], Field(max_length=MAX_STOP)] | None = None
    seed: StrictInt | None = None
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    ignore_eos: StrictBool = False  # vLLM extension: generate exactly max_tokens (benchmarks)

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


class ChatCompletionRequest(_Sampling):
    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    max_completion_tokens: PositiveInt | None = None  # the newer name for max_tokens

    def token_limit(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens


Prompt = StrictStr | Annotated[list[StrictStr], Field(min_length=1)] | list[StrictInt] | list[list[StrictInt]]


class CompletionRequest(_Sampling):
    prompt: Prompt
    max_tokens: PositiveInt | None = 16  # OpenAI's default for legacy completions

    def prompts(self) -> list[str | list[int]]:
        p = self.prompt
        if isinstance(p, str):
            return [p]
        if p and all(isinstance(x, int) for x in p):
            return [list(p)]  # type: ignore[arg-type]
        return list(p)  # type: ignore[arg-type]

    def token_limit(self) -> int | None:
        return self.max_tokens
