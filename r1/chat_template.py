"""Chat templates rendered exactly as `transformers` renders them, without importing it.

Published templates (DeepSeek, Qwen, Llama, TRL's training templates) lean on details of transformers' set-up
(5.x: `utils/chat_template_utils.py`, `apply_chat_template`), so the same ids come out only if every detail matches:
an immutable sandbox with `trim_blocks`/`lstrip_blocks`, loop controls, `{% generation %}`, `raise_exception`,
`strftime_now`, a `tojson` that is plain `json.dumps`; special tokens as variables, overridden by extra keyword
arguments; messages as plain JSON-like data with None values dropped (`content: null` is *absent*), reasoning visible
as both `reasoning_content` and `thinking`; `continue_final_message` cutting at an appended tag; generation spans
for `return_assistant_tokens_mask`. With `sanitize_control_tokens`, control tokens inside user strings are encoded
as plain text, so only the template's own become ids. Tools are JSON schemas only; one conversation per call.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from functools import lru_cache
from typing import Any

import jinja2
import jinja2.meta
import jinja2.nodes
import numpy as np
from jinja2.ext import Extension, loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

from r1.errors import UserError

# Names a message's reasoning may come under; the first is the one templates read (transformers' list).
REASONING_FIELDS = ("reasoning_content", "thinking", "reasoning")
CONTINUE_TAG = "CONTINUE_FINAL_MESSAGE_TAG "
# Private-use characters around control tokens found in user input (the same code points transformers uses).
MARK_START, MARK_END = "\U000f0000", "\U000f0001"
_GENERATION_TAG = re.compile(r"\{\%-?\s*generation\s*-?\%\}")

Spans = list[tuple[int, int]]


def has_generation_blocks(template: str) -> bool:
    """Whether the template marks assistant text with `{% generation %}` (TRL-style training templates)."""
    return bool(_GENERATION_TAG.search(template))


# ------------------------------------------------------------------------------------------ the environment
class _GenerationBlocks(Extension):
    """`{% generation %}…{% endgeneration %}`: renders its body and, while a render is tracked, records its span.

    The span starts at the length of the text already yielded by `Template.generate`, the same bookkeeping as
    transformers', so templates that buffer output (macros, `{% set %}` blocks) give the same spans in both.
    """

    tags = {"generation"}

    def __init__(self, environment: jinja2.Environment) -> None:
        super().__init__(environment)
        self._tracking: ContextVar[tuple[list[str], Spans] | None] = ContextVar("generation_spans", default=None)
        environment.extend(track_generation=self.track)

    def parse(self, parser: Any) -> jinja2.nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_render", []), [], [], body).set_lineno(lineno)

    def _render(self, caller: Any) -> str:
        text = caller()
        tracking = self._tracking.get()
        if tracking is not None:
            blocks, spans = tracking
            start = len("".join(blocks))
            spans.append((start, start + len(text)))
        return text

    @contextmanager
    def track(self, blocks: list[str], spans: Spans) -> Iterator[None]:
        token = self._tracking.set((blocks, spans))
        try:
            yield
        finally:
            self._tracking.reset(token)


class _TemplateDict:
    """`dict(...)` for templates without exposing the `dict` type itself (no attribute walks to its internals)."""

    def __call__(self, *args: Any, **kwargs: Any) -> dict[Any, Any]:
        return dict(*args, **kwargs)

    def fromkeys(self, *args: Any, **kwargs: Any) -> dict[Any, Any]:
        return dict.fromkeys(*args, **kwargs)


class _TemplateNamespace(jinja2.utils.Namespace):
    """Jinja's `namespace()`, refusing underscore attributes so a template cannot reach CPython internals."""

    def __init__(*args: Any, **kwargs: Any) -> None:  # Jinja's own signature trick: `namespace(self=...)` works
        self, args = args[0], args[1:]
        attrs = dict(*args, **kwargs)
        for name in attrs:
            _TemplateNamespace._check_name(name)
        jinja2.utils.Namespace.__init__(self, attrs)

    def __setitem__(self, name: str, value: Any) -> None:
        _TemplateNamespace._check_name(name)
        jinja2.utils.Namespace.__setitem__(self, name, value)

    @staticmethod
    def _check_name(name: Any) -> None:
        if isinstance(name, str) and name.startswith("_"):
            raise jinja2.exceptions.SecurityError(f"chat templates cannot set underscore attributes, got {name!r}")


def _raise_exception(message: str) -> None:
    raise jinja2.exceptions.TemplateError(message)


def _tojson(
    value: Any, ensure_ascii: bool = False, indent: int | None = None, separators: Any = None, sort_keys: bool = False
) -> str:
    # Jinja's own tojson escapes <, > and & for HTML; templates expect the plain JSON text.
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


@lru_cache(maxsize=32)
def compile_template(source: str) -> jinja2.Template:
    """The compiled template, in an environment built like transformers' (cached: templates repeat)."""
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[_GenerationBlocks, loopcontrols]
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    env.globals["dict"] = _TemplateDict()
    env.globals["namespace"] = _TemplateNamespace
    try:
        return env.from_string(source)
    except jinja2.TemplateError as exc:
        raise UserError(f"chat template does not compile: {exc}") from exc


@lru_cache(maxsize=32)
def template_literal_text(source: str) -> str:
    """The template's own strings (raw text and string constants), NUL-joined so no match spans two of them."""
    ast = compile_template(source).environment.parse(source)
    literals = {node.data for node in ast.find_all(jinja2.nodes.TemplateData)}
    literals |= {node.value for node in ast.find_all(jinja2.nodes.Const) if isinstance(node.value, str)}
    return "\0".join(sorted(literals))


# --------------------------------------------------------------------------------------------- the inputs
def validate_messages(messages: Any) -> list[dict[str, Any]]:
    """Check and normalise a conversation the way transformers prepares it, reporting a bad message by index.

    Accepts dicts, pydantic models and dataclasses. A message needs a string `role`; `content` may be a string, a
    list of content parts, or null/missing (an assistant turn that only calls tools). Keys whose value is None are
    dropped, as transformers drops them.
    """
    if isinstance(messages, str | bytes) or not isinstance(messages, Sequence):
        raise UserError(f"messages must be a list of {{role, content}} objects, got {type(messages).__name__}")
    if not messages:
        raise UserError("messages is empty: a chat template needs at least one message")
    checked = []
    for index, message in enumerate(messages):
        message = _to_plain(message)
        if not isinstance(message, dict):
            raise UserError(
                f"messages[{index}]: expected an object with role and content, got {type(message).__name__}"
            )
        role = message.get("role")
        if not isinstance(role, str) or not role:
            raise UserError(f"messages[{index}].role: expected a non-empty string, got {role!r}")
        content = message.get("content")
        if content is not None and not isinstance(content, str | list):
            raise UserError(
                f"messages[{index}].content: expected a string, a list of content parts or null, "
                f"got {type(content).__name__}"
            )
        calls = message.get("tool_calls")
        if calls is not None and not (isinstance(calls, list) and all(isinstance(c, dict) for c in calls)):
            raise UserError(f"messages[{index}].tool_calls: expected a list of objects, got {type(calls).__name__}")
        checked.append({key: value for key, value in message.items() if value is not None})
    return checked


def check_tools(tools: Any) -> list[dict[str, Any]] | None:
    return _object_list(tools, "tools", "JSON-schema objects", "a JSON-schema object")


def check_documents(documents: Any) -> list[dict[str, Any]] | None:
    return _object_list(documents, "documents", "objects (e.g. title and text)", "an object (e.g. title and text)")


def _object_list(value: Any, name: str, many: str, one: str) -> list[dict[str, Any]] | None:
    """None, or `value` as plain dicts; anything else is a UserError naming the argument or the entry's index."""
    if value is None:
        return None
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Sequence):
        raise UserError(f"{name} must be a list of {many}, got {type(value).__name__}")
    plain = [_to_plain(entry) for entry in value]
    for index, entry in enumerate(plain):
        if not isinstance(entry, dict):
            raise UserError(f"{name}[{index}]: expected {one}, got {type(entry).__name__}")
    return plain


def _to_plain(value: Any) -> Any:
    """Rebuild `value` from plain JSON types, as transformers does before a template sees it.

    Objects with methods the sandbox does not know to be dangerous never reach the template: subclasses of str, int
    and float fall back to the base type, pydantic models and dataclasses become dicts, and anything else becomes an
    inert `<TypeName>` placeholder.
    """
    if value is None or type(value) in (str, int, float, bool):
        return value
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, Mapping):
        return {_to_plain(k): _to_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_to_plain(v) for v in value)
    if isinstance(value, np.generic):  # np.bool_(False) would otherwise become a truthy placeholder string
        return _to_plain(value.item())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if callable(getattr(value, "model_dump", None)):
        return _to_plain(value.model_dump())
    return f"<{type(value).__name__}>"


def _alias_reasoning(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Reasoning under any accepted name is visible as `reasoning_content` (most templates) and `thinking`."""
    out = []
    for message in messages:
        reasoning = next((message[k] for k in REASONING_FIELDS if message.get(k) is not None), None)
        if reasoning is not None:
            message = {"thinking": reasoning, **message, "reasoning_content": reasoning}
        out.append(message)
    return out


# ---------------------------------------------------------------------------------------------- rendering
@dataclasses.dataclass
class Rendered:
    """A rendered chat and, when tracked, the character spans of its `{% generation %}` blocks."""

    text: str
    generation_spans: Spans


def render(
    template: str,
    messages: list[dict[str, Any]],
    variables: Mapping[str, Any],
    *,
    tools: list[dict[str, Any]] | None = None,
    documents: list[dict[str, Any]] | None = None,
    add_generation_prompt: bool = False,
    continue_final_message: bool | str = False,
    track_generation: bool = False,
) -> Rendered:
    """Render checked `messages` (see `validate_messages`); `variables` holds the special tokens and extra kwargs."""
    compiled = compile_template(template)
    chat = _alias_reasoning(_to_plain(list(messages)))  # a fresh copy: the tagging below edits it
    final_text = None
    if continue_final_message:
        if add_generation_prompt:
            raise UserError("continue_final_message and add_generation_prompt cannot both be set")
        if track_generation:
            raise UserError("continue_final_message cannot be combined with return_assistant_tokens_mask")
        final_text = _tag_final_message(template, chat, continue_final_message)
    context = dict(_to_plain(dict(variables)))
    context.update(messages=chat, tools=tools, documents=documents, add_generation_prompt=add_generation_prompt)
    try:
        if track_generation:
            blocks: list[str] = []
            spans: Spans = []
            with compiled.environment.track_generation(blocks, spans):  # type: ignore[attr-defined]
                for block in compiled.generate(**context):
                    blocks.append(block)
            text = "".join(blocks)
        else:
            text, spans = compiled.render(**context), []
    except (jinja2.TemplateError, TypeError, ValueError, KeyError, IndexError, AttributeError) as exc:
        raise UserError(f"chat template failed: {exc}{_hint(exc, messages)}") from exc
    if final_text is not None:
        text = _cut_at_tag(text, final_text)
    return Rendered(text, spans)


def _tag_final_message(template: str, chat: list[dict[str, Any]], field: bool | str) -> str:
    """Append `CONTINUE_TAG` to the field the final message is continued from; return that field's text."""
    name = field if isinstance(field, str) else "content"
    final = chat[-1].get(name)
    if final is None:
        raise UserError(f"continue_final_message: the final message has no {name!r} to continue")
    fields = [name]
    if name in REASONING_FIELDS:  # reasoning is copied under several names; tag each copy the template may read
        fields = [f for f in REASONING_FIELDS if chat[-1].get(f) == final]
    if not any(f in template for f in fields):
        raise UserError(f"continue_final_message: the chat template never reads the field {name!r}")
    if isinstance(final, list | tuple):
        for block in reversed(final):
            if isinstance(block, dict) and "text" in block:
                final, block["text"] = block["text"], block["text"] + CONTINUE_TAG
                break
        else:
            raise UserError("continue_final_message: the final message has no text block to continue")
    else:
        for f in fields:
            chat[-1][f] = chat[-1][f] + CONTINUE_TAG
    return final


def _cut_at_tag(text: str, final_text: str) -> str:
    tag = CONTINUE_TAG.strip()
    if final_text.strip() not in text or tag not in text:
        raise UserError(
            "continue_final_message: the chat template changes the final message, so it cannot be continued"
        )
    at = text.rindex(tag)
    # A template that trims the message also trimmed the tag's space: cut there and drop the trailing spacing.
    return text[:at] if text[at : at + len(CONTINUE_TAG)] == CONTINUE_TAG else text[:at].rstrip()


def _hint(exc: Exception, messages: list[dict[str, Any]]) -> str:
    if isinstance(exc, jinja2.UndefinedError) and any("content" not in m for m in messages):
        return " (a message without content: null fields are dropped before rendering, as transformers does)"
    return ""


# ----------------------------------------------------------------------------------- control-token guarding
def control_token_patterns(control_tokens: tuple[str, ...]) -> tuple[re.Pattern[str], re.Pattern[str]]:
    """A regex matching any control token (longest first), and one matching a marked token or a lone marker."""
    return _control_token_patterns(tuple(sorted(set(control_tokens), key=len, reverse=True)))


@lru_cache(maxsize=32)
def _control_token_patterns(longest_first: tuple[str, ...]) -> tuple[re.Pattern[str], re.Pattern[str]]:
    tokens = re.compile("|".join(map(re.escape, longest_first)) or "(?!)")
    markers = re.compile(f"{MARK_START}({tokens.pattern}){MARK_END}|[{MARK_START}{MARK_END}]")
    return tokens, markers


def mark_control_tokens(value: Any, tokens: re.Pattern[str]) -> Any:
    """Wrap every control token inside user strings in markers (dict keys are left alone); markers already in the
    input are removed first so none can be forged."""
    if isinstance(value, str):
        value = value.replace(MARK_START, "").replace(MARK_END, "")
        return tokens.sub(f"{MARK_START}\\g<0>{MARK_END}", value)
    if isinstance(value, dict):
        return {key: mark_control_tokens(item, tokens) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [mark_control_tokens(item, tokens) for item in value]
    return value
