"""Byte-level BPE tokenizer with the DeepSeek-R1 special tokens and chat template (docs/architecture.md, "Tokenizer").

Saved in the Hugging Face layout, so `transformers.AutoTokenizer` gives the same ids, special tokens and rendered
chats. Choices that matter downstream: byte-level (no unknown token); each digit its own pre-token (tiny models learn
arithmetic far more easily); no post-processor, so BOS comes only from the chat template and is never added twice;
the R1 tokens at fixed ids 0..8 (`SPECIAL_TOKENS`), with `<think>`/`<answer>` and their closers added but not
special, so no decoder that skips special tokens loses the reasoning (as DeepSeek's R1-Distill tokenizers do).
`Tokenizer.load` reads any other HF `tokenizer.json`; pickled (slow) tokenizers are never read.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from tokenizers import AddedToken, decoders, models, pre_tokenizers, trainers
from tokenizers import Tokenizer as BackendTokenizer

from r1 import chat_template as templating
from r1.errors import UserError
from r1.io import atomic_write_text
from r1.readers import unicode_problem

logger = logging.getLogger(__name__)
# transformers' apply_chat_template options about tokenizer output, which this one does not have.
_TRANSFORMERS_ONLY = frozenset(
    {"padding", "truncation", "max_length", "return_tensors", "return_dict", "tokenizer_kwargs"}
)

# The first five strings are DeepSeek-R1's own: fullwidth vertical bars (U+FF5C) and the ▁ block (U+2581).
BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"
PAD = "<｜▁pad▁｜>"
USER = "<｜User｜>"
ASSISTANT = "<｜Assistant｜>"
THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
ANSWER_OPEN = "<answer>"
ANSWER_CLOSE = "</answer>"
# Order is the id order: BOS is 0, EOS 1, PAD 2, ... ANSWER_CLOSE 8.
SPECIAL_TOKENS = [BOS, EOS, PAD, USER, ASSISTANT, THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE]
# added tokens but not special ones (see the module docstring): a decoder that skips special tokens keeps them
REASONING_TAGS = (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE)

# What the model is prompted with: R1's usage notes ask that every response starts with "<think>\n".

TOKENIZER_FILE = "tokenizer.json"
CONFIG_FILE = "tokenizer_config.json"
CHAT_TEMPLATE_FILE = "chat_template.jinja"
# DeepSeek-R1's tokenizer_config.json value; long enough for R1-style reasoning traces on the small models here.
DEFAULT_MODEL_MAX_LENGTH = 16384
# Below this the trainer cannot keep the 256 byte symbols and the specials, and silently returns more than asked.
MIN_VOCAB_SIZE = 256 + len(SPECIAL_TOKENS)

# DeepSeek-R1's tool-call markup (its tokenizer's added tokens; the tiny tokenizers here spell them as text).
TOOL_CALLS_BEGIN, TOOL_CALLS_END = "<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>"
TOOL_CALL_BEGIN, TOOL_CALL_END, TOOL_SEP = "<｜tool▁call▁begin｜>", "<｜tool▁call▁end｜>", "<｜tool▁sep｜>"
TOOL_OUTPUTS_BEGIN, TOOL_OUTPUTS_END = "<｜tool▁outputs▁begin｜>", "<｜tool▁outputs▁end｜>"
TOOL_OUTPUT_BEGIN, TOOL_OUTPUT_END = "<｜tool▁output▁begin｜>", "<｜tool▁output▁end｜>"

# DeepSeek-R1's chat template (the 2025-02-09 revision, whose generation prompt opens `<think>\n`), restated one
# statement per line with no text between tags, so the output does not depend on Jinja's whitespace options. It
# renders what R1's renders, quirks included (tests/test_chat_templates.py compares the two): system prompts joined
# by a blank line; assistant turns lose their reasoning (everything up to the last </think>), so reasoning is never
# fed back to the model; tool calls as ```json blocks, tool outputs grouped, and no generation prompt right after
# tool outputs (the model continues the assistant turn). Where R1's fails, this one renders: a tool-calling turn
# without content (content null is dropped before rendering), and arguments given as an object (written as JSON).
_CHAT_TEMPLATE_LINES = [
    "{% if add_generation_prompt is not defined %}{% set add_generation_prompt = false %}{% endif %}",
    "{% set ns = namespace(system='', has_system=false, first_call=true, in_outputs=false, first_output=true) %}",
    "{% for message in messages %}{% if message['role'] == 'system' %}",
    "{% if ns.has_system %}{% set ns.system = ns.system + '\\n\\n' + message['content'] %}",
    "{% else %}{% set ns.system = message['content'] %}{% set ns.has_system = true %}{% endif %}",
    "{% endif %}{% endfor %}",
    "{{ bos_token }}{{ ns.system }}",
    "{% for message in messages %}",
    "{% if message['role'] == 'user' %}",
    "{% set ns.in_outputs = false %}{{ '@USER' + message['content'] }}",
    "{% elif message['role'] == 'assistant' and 'tool_calls' in message %}",
    "{% set ns.in_outputs = false %}",
    "{% for call in message['tool_calls'] %}",
    "{% set args = call['function']['arguments'] %}",
    "{% if args is not string %}{% set args = args | tojson %}{% endif %}",
    "{% set body = call['type'] + '@SEP' + call['function']['name'] + '\\n```json\\n' + args + '\\n```@CALL_END' %}",
    "{% if ns.first_call %}{{ '@ASSISTANT' + message.get('content', '') + '@CALLS_BEGIN@CALL_BEGIN' + body }}",
    "{% set ns.first_call = false %}{% else %}{{ '\\n@CALL_BEGIN' + body }}{% endif %}",
    "{% endfor %}",
    "{{ '@CALLS_END@EOS' }}",
    "{% elif message['role'] == 'assistant' %}",
    "{% set content = message['content'] %}",
    "{% if ns.in_outputs %}{{ '@OUTPUTS_END' + content + '@EOS' }}{% set ns.in_outputs = false %}",
    "{% else %}{% if '@THINK_CLOSE' in content %}{% set content = content.split('@THINK_CLOSE')[-1] %}{% endif %}",
    "{{ '@ASSISTANT' + content + '@EOS' }}{% endif %}",
    "{% elif message['role'] == 'tool' %}",
    "{% set ns.in_outputs = true %}",
    "{% if ns.first_output %}{{ '@OUTPUTS_BEGIN' }}{% set ns.first_output = false %}{% endif %}",
    "{{ '@OUTPUT_BEGIN' + message['content'] + '@OUTPUT_END' }}",
    "{% endif %}",
    "{% endfor %}",
    "{% if ns.in_outputs %}{{ '@OUTPUTS_END' }}{% endif %}",
    "{% if add_generation_prompt and not ns.in_outputs %}{{ '@ASSISTANT@THINK_OPEN\\n' }}{% endif %}",
]
_TEMPLATE_TOKENS = {
    "@USER": USER, "@ASSISTANT": ASSISTANT, "@EOS": EOS, "@THINK_OPEN": THINK_OPEN, "@THINK_CLOSE": THINK_CLOSE,
    "@CALLS_BEGIN": TOOL_CALLS_BEGIN, "@CALLS_END": TOOL_CALLS_END, "@CALL_BEGIN": TOOL_CALL_BEGIN,
    "@CALL_END": TOOL_CALL_END, "@SEP": TOOL_SEP, "@OUTPUTS_BEGIN": TOOL_OUTPUTS_BEGIN,
    "@OUTPUTS_END": TOOL_OUTPUTS_END, "@OUTPUT_BEGIN": TOOL_OUTPUT_BEGIN, "@OUTPUT_END": TOOL_OUTPUT_END,
}  # fmt: skip


def _spell_tokens(line: str) -> str:
    for name in sorted(_TEMPLATE_TOKENS, key=len, reverse=True):  # @CALLS_BEGIN before @CALL_BEGIN
        line = line.replace(name, _TEMPLATE_TOKENS[name])
    return line


CHAT_TEMPLATE = "".join(_spell_tokens(line) for line in _CHAT_TEMPLATE_LINES)


class Tokenizer:
    """A `tokenizers.Tokenizer` plus what the R1 code needs around it: special ids, the chat template, HF I/O.

    Wrapping rather than subclassing keeps the Rust object swappable (any HF `tokenizer.json` loads) and keeps
    padding/truncation settings from leaking into `encode`, which must return exactly the text's ids.
    """

    def __init__(
        self,
        backend: BackendTokenizer,
        *,
        bos_token: str | None = BOS,
        eos_token: str | None = EOS,
        pad_token: str | None = PAD,
        chat_template: str = CHAT_TEMPLATE,
        model_max_length: int = DEFAULT_MODEL_MAX_LENGTH,
    ) -> None:
        backend.no_padding()
        backend.no_truncation()
        self._backend = backend
        # A special token the vocabulary lacks would encode as several pieces; treat it as absent instead.
        self.bos_token = bos_token if _in_vocab(backend, bos_token) else None
        self.eos_token = eos_token if _in_vocab(backend, eos_token) else None
        self.pad_token = pad_token if _in_vocab(backend, pad_token) else None
        self.chat_template = chat_template
        self.model_max_length = model_max_length

    # ----------------------------------------------------------------------------------------------- training
    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int = 2048, min_frequency: int = 2) -> Tokenizer:
        """Train a byte-level BPE whose ids 0..8 are `SPECIAL_TOKENS`, whatever the corpus.

        All nine are given to the trainer as special tokens, so they get the first ids and are extracted before
        pairs are counted (no merge learns a piece of `<think>`); the reasoning tags then lose the special flag.
        """
        if vocab_size < MIN_VOCAB_SIZE:
            raise UserError(f"vocab_size must be at least {MIN_VOCAB_SIZE} (256 bytes + specials), got {vocab_size}")
        if min_frequency < 1:
            raise UserError(f"min_frequency must be at least 1, got {min_frequency}")
        backend = new_backend()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=[_special_added_token(t) for t in SPECIAL_TOKENS],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        backend.train_from_iterator(_checked_texts(texts), trainer=trainer)
        return cls(_without_special_flag(backend, REASONING_TAGS))

    # ----------------------------------------------------------------------------------------- encode/decode
    def encode(self, text: str) -> list[int]:
        """The ids of `text` and nothing else: no BOS/EOS, special-token strings become their single ids.

        Text with a lone surrogate (not encodable as UTF-8) is a UserError, not the Rust side's TypeError.
        """
        try:
            return self._backend.encode(text, add_special_tokens=False).ids
        except TypeError:
            raise _not_text(text) from None

    def encode_batch(self, texts: Iterable[str]) -> list[list[int]]:
        """Like `encode` for many texts, run in parallel by the Rust batch encoder."""
        texts = list(texts)
        try:
            encodings = self._backend.encode_batch(texts, add_special_tokens=False)
        except TypeError:
            bad = next((i for i, t in enumerate(texts) if not isinstance(t, str) or unicode_problem(t)), None)
            if bad is None:
                raise
            raise _not_text(texts[bad], f"text #{bad}") from None
        return [e.ids for e in encodings]

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = False) -> str:
        """Text for `ids`. Skipping special tokens drops BOS/EOS/PAD and the role markers, never the reasoning tags
        (they are not special); they are kept by default so decoded prompts read as the model saw them."""
        return self._backend.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def token_to_id(self, token: str) -> int | None:
        return self._backend.token_to_id(token)

    def id_to_token(self, token_id: int) -> str | None:
        return self._backend.id_to_token(token_id)

    @property
    def vocab_size(self) -> int:
        """Number of ids, special tokens included: the embedding table needs a row for each."""
        return self._backend.get_vocab_size(with_added_tokens=True)

    @property
    def bos_id(self) -> int | None:
        return _token_id(self._backend, self.bos_token)

    @property
    def eos_id(self) -> int | None:
        return _token_id(self._backend, self.eos_token)

    @property
    def pad_id(self) -> int | None:
        return _token_id(self._backend, self.pad_token)

    @property
    def backend(self) -> BackendTokenizer:
        """The wrapped `tokenizers.Tokenizer`, for callers that need offsets or other Rust-side features."""
        return self._backend

    # ------------------------------------------------------------------------------------------------- chat
    def apply_chat_template(
        self,
        messages: Sequence[Any],
        tools: Sequence[Mapping[str, Any]] | None = None,
        documents: Sequence[Mapping[str, Any]] | None = None,
        chat_template: str | None = None,
        add_generation_prompt: bool = True,
        continue_final_message: bool | str = False,
        tokenize: bool = False,
        return_assistant_tokens_mask: bool = False,
        sanitize_control_tokens: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Render `messages` exactly as `transformers` does: the same text, and with `tokenize` the same ids.

        Arguments mean what they mean in transformers (`r1.chat_template`); extra keyword arguments become template
        variables. Two defaults differ on purpose: the generation prompt is on (nearly every caller here samples a
        response next) and `tokenize` is off. transformers' tokenization options are refused, not passed on
        unnoticed. `sanitize_control_tokens=True` encodes control tokens in user-supplied strings as plain text.
        Returns the text, the ids, or `{"input_ids", "assistant_masks"}` with `return_assistant_tokens_mask=True`.
        """
        unsupported = sorted(_TRANSFORMERS_ONLY.intersection(kwargs))
        if unsupported:
            raise UserError(f"apply_chat_template: {', '.join(unsupported)} not supported (ids come back as a list)")
        if return_assistant_tokens_mask and not tokenize:
            raise UserError("return_assistant_tokens_mask needs tokenize=True")
        if sanitize_control_tokens and (not tokenize or return_assistant_tokens_mask):
            raise UserError("sanitize_control_tokens needs tokenize=True and no return_assistant_tokens_mask")
        template = self.chat_template if chat_template is None else chat_template
        chat = templating.validate_messages(messages)
        tool_list, document_list = templating.check_tools(tools), templating.check_documents(documents)
        if sanitize_control_tokens:
            tokens, _ = templating.control_token_patterns(self.control_tokens(template))
            chat, tool_list, document_list, kwargs = (
                templating.mark_control_tokens(part, tokens) for part in (chat, tool_list, document_list, kwargs)
            )
        specials = {"bos_token": self.bos_token, "eos_token": self.eos_token, "pad_token": self.pad_token}
        variables = {**{k: v for k, v in specials.items() if v is not None}, **kwargs}
        rendered = templating.render(
            template,
            chat,
            variables,
            tools=tool_list,
            documents=document_list,
            add_generation_prompt=add_generation_prompt,
            continue_final_message=continue_final_message,
            track_generation=return_assistant_tokens_mask,
        )
        if not tokenize:
            return rendered.text
        if sanitize_control_tokens:
            return self._encode_marked(rendered.text)
        if not return_assistant_tokens_mask:
            return self.encode(rendered.text)
        if not templating.has_generation_blocks(template):
            logger.warning("return_assistant_tokens_mask: the chat template has no {% generation %} block")
        encoding = self._backend.encode(rendered.text, add_special_tokens=False)
        return {"input_ids": encoding.ids, "assistant_masks": _span_mask(encoding.offsets, rendered.generation_spans)}

    def control_tokens(self, template: str | None = None) -> tuple[str, ...]:
        """The tokens `sanitize_control_tokens` guards: every special token, plus the added tokens the chat template
        writes itself (found among its literal strings; whitespace tokens excepted), as transformers infers them."""
        literal = templating.template_literal_text(self.chat_template if template is None else template)
        added = self._backend.get_added_tokens_decoder().values()
        return tuple(t.content for t in added if t.special or (t.content in literal and not t.content.isspace()))

    def _encode_marked(self, text: str) -> list[int]:
        """Ids of a chat rendered from marked inputs: marked control tokens as plain text, the rest as usual.

        Mirrors transformers' `encode_marked_chat`: pieces after the first are encoded behind a newline that is then
        removed (so a SentencePiece prefix space is not added mid-chat), and a lone marker left by a template's
        string operations still separates the text on its two sides.
        """
        _, markers = templating.control_token_patterns(self._added_contents())
        pieces = markers.split(text)
        newline = self.encode("\n")
        ids = self.encode(pieces[0])
        for i, piece in enumerate(pieces[1:], start=1):
            if not piece:
                continue
            as_text = i % 2 == 1  # odd pieces are the marked tokens
            encode = self._encode_plain if as_text else self.encode
            piece_ids = encode("\n" + piece)
            piece_ids = piece_ids[len(newline) :] if piece_ids[: len(newline)] == newline else encode(piece)
            if as_text and self.token_to_id(piece) in piece_ids:
                raise UserError(f"cannot guard {piece!r}: the tokenizer produces it from plain text")
            ids += piece_ids
        return ids

    def _added_contents(self) -> tuple[str, ...]:
        return tuple(t.content for t in self._backend.get_added_tokens_decoder().values())

    def _encode_plain(self, text: str) -> list[int]:
        """Ids of `text` with no added token matched, special or not: the backend's pipeline without its added
        vocabulary."""
        backend = self._backend
        if backend.normalizer is not None:
            text = backend.normalizer.normalize_str(text)
        splits = (
            [piece for piece, _ in backend.pre_tokenizer.pre_tokenize_str(text)] if backend.pre_tokenizer else [text]
        )
        return [token.id for split in splits for token in backend.model.tokenize(split)]

    # ------------------------------------------------------------------------------------------------- files
    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write `tokenizer.json` and `tokenizer_config.json`; each write is atomic so a crash leaves no half file."""
        out = Path(directory)
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot create tokenizer directory {out}: {exc}") from exc
        atomic_write_text(out / TOKENIZER_FILE, self._backend.to_str(pretty=True))
        atomic_write_text(out / CONFIG_FILE, json.dumps(self.hf_config(), indent=2, ensure_ascii=False) + "\n")
        return out

    def hf_config(self) -> dict[str, Any]:
        """The `tokenizer_config.json` that makes `AutoTokenizer` behave exactly like this object."""
        added = self._backend.get_added_tokens_decoder()
        return {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "bos_token": self.bos_token,
            "eos_token": self.eos_token,
            "pad_token": self.pad_token,
            # Older transformers versions read these; without them some classes insert BOS themselves.
            "add_bos_token": False,
            "add_eos_token": False,
            "clean_up_tokenization_spaces": False,
            "model_max_length": self.model_max_length,
            "chat_template": self.chat_template,
            "added_tokens_decoder": {str(i): _added_token_dict(added[i]) for i in sorted(added)},
        }

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Tokenizer:
        """Load a directory holding `tokenizer.json` (plus optional config/template files), or the file itself.

        Files next to `tokenizer.json` are read as transformers reads them: `chat_template.jinja` wins over the
        config's `chat_template`, and special tokens may be strings or `{"content": ...}` dicts.
        """
        given = Path(path)
        file = given / TOKENIZER_FILE if given.is_dir() else given
        if not file.is_file():
            raise UserError(f"tokenizer not found: {file} (expected a directory with {TOKENIZER_FILE}, or the file)")
        backend = _read_backend(file)
        config = _read_config(file.parent / CONFIG_FILE)
        return cls(
            backend,
            bos_token=_config_token(config, "bos_token", BOS),
            eos_token=_config_token(config, "eos_token", EOS),
            pad_token=_config_token(config, "pad_token", PAD),
            chat_template=_read_chat_template(file.parent, config),
            model_max_length=_config_max_length(config),
        )

    def __repr__(self) -> str:
        return f"Tokenizer(vocab_size={self.vocab_size}, bos={self.bos_token!r}, eos={self.eos_token!r})"


class IncrementalDecoder:
    """Turn a stream of token ids into text pieces without ever emitting half a UTF-8 character.

    Byte-level tokens can end inside a multi-byte character; decoding such a prefix yields U+FFFD, so text is held
    back until the character completes. The last emitted stretch of ids is kept as left context because some
    decoders (SentencePiece-style `Metaspace`) decode a token differently at the start of a string.
    """

    def __init__(self, tokenizer: Tokenizer, skip_special_tokens: bool = False) -> None:
        self._tokenizer = tokenizer
        self._skip_special_tokens = skip_special_tokens
        self._ids: list[int] = []
        self._read = 0  # ids[:read] were emitted; they are context for decoding the rest

    def push(self, token_id: int) -> str:
        """Add one id; return the text it completes ("" while a character is still incomplete)."""
        self._ids.append(token_id)
        emitted, full = self._decode_window()
        if len(full) <= len(emitted) or full.endswith("\ufffd"):
            return ""
        # The last emitted stretch becomes the next call's left context; older ids are no longer needed.
        self._ids = self._ids[self._read :]
        self._read = len(self._ids)
        return full[len(emitted) :]

    def flush(self) -> str:
        """Return whatever is held back (possibly with U+FFFD for a truncated character) and start over."""
        emitted, full = self._decode_window()
        self._ids, self._read = [], 0
        return full[len(emitted) :]

    def _decode_window(self) -> tuple[str, str]:
        decode = self._tokenizer.decode
        skip = self._skip_special_tokens
        return decode(self._ids[: self._read], skip), decode(self._ids, skip)


# ------------------------------------------------------------------------------------------ building blocks
def new_backend() -> BackendTokenizer:
    """An untrained tokenizer with the R1 pipeline; exposed so tests and tools can build variants of it."""
    backend = BackendTokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    backend.decoder = decoders.ByteLevel()
    return backend


def _without_special_flag(backend: BackendTokenizer, contents: Sequence[str]) -> BackendTokenizer:
    """The same tokenizer with `contents` as plain added tokens: same ids, still matched whole, never skipped."""
    data = json.loads(backend.to_str())
    for token in data["added_tokens"]:
        if token["content"] in contents:
            token["special"] = False
    return BackendTokenizer.from_str(json.dumps(data))


def _special_added_token(content: str) -> AddedToken:
    return AddedToken(content, special=True, normalized=False, lstrip=False, rstrip=False, single_word=False)


def _added_token_dict(token: AddedToken) -> dict[str, Any]:
    return {
        "content": token.content,
        "lstrip": token.lstrip,
        "normalized": token.normalized,
        "rstrip": token.rstrip,
        "single_word": token.single_word,
        "special": token.special,
    }


def _in_vocab(backend: BackendTokenizer, token: str | None) -> bool:
    return token is not None and backend.token_to_id(token) is not None


def _token_id(backend: BackendTokenizer, token: str | None) -> int | None:
    return None if token is None else backend.token_to_id(token)


def _span_mask(offsets: Sequence[tuple[int, int]], spans: Sequence[tuple[int, int]]) -> list[int]:
    """1 for every token whose characters overlap a span (spans and offsets both ascend), as transformers marks the
    assistant tokens; a token straddling a span edge counts as inside."""
    mask, k = [0] * len(offsets), 0
    for i, (start, end) in enumerate(offsets):
        while k < len(spans) and start >= spans[k][1]:
            k += 1
        if k == len(spans):
            break
        if end > spans[k][0]:
            mask[i] = 1
    return mask


def _not_text(text: Any, what: str = "text") -> Exception:
    if not isinstance(text, str):
        return UserError(f"{what} is {type(text).__name__}, expected str")
    return UserError(f"{what}: {unicode_problem(text) or 'cannot be encoded'}")


def _checked_texts(texts: Iterable[str]) -> Iterator[str]:
    """The Rust trainer reports a non-string as an opaque error, and from no text at all trains a bytes-only
    tokenizer without a word; name the culprit instead."""
    count = 0
    for count, text in enumerate(texts, start=1):
        if not isinstance(text, str) or unicode_problem(text):
            raise _not_text(text, f"training text #{count - 1}")
        yield text
    if count == 0:
        raise UserError("no training text: the corpus is empty (a tokenizer trained on it would know only bytes)")


def _read_backend(file: Path) -> BackendTokenizer:
    try:
        return BackendTokenizer.from_file(str(file))
    except Exception as exc:  # the Rust side raises a bare Exception for bad JSON or unknown components
        raise UserError(f"cannot read tokenizer {file}: {exc}") from exc


def _read_config(file: Path) -> dict[str, Any]:
    if not file.exists():
        return {}
    try:
        config = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"cannot read tokenizer config {file}: {exc}") from exc
    if not isinstance(config, dict):
        raise UserError(f"tokenizer config {file} must hold a JSON object, got {type(config).__name__}")
    return config


def _config_token(config: Mapping[str, Any], key: str, default: str) -> str | None:
    """A special token from an HF config, where it may be a string, a serialized AddedToken dict, or null."""
    if key not in config:
        return default
    value = config[key]
    if isinstance(value, Mapping):
        value = value.get("content")
    return value if isinstance(value, str) else None


def _config_max_length(config: Mapping[str, Any]) -> int:
    value = config.get("model_max_length")
    return value if isinstance(value, int) and value > 0 else DEFAULT_MODEL_MAX_LENGTH


def _read_chat_template(directory: Path, config: Mapping[str, Any]) -> str:
    """The template transformers would use: chat_template.jinja, else the config entry, else ours."""
    jinja_file = directory / CHAT_TEMPLATE_FILE
    if jinja_file.is_file():
        try:
            return jinja_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"cannot read chat template {jinja_file}: {exc}") from exc
    template = config.get("chat_template")
    if isinstance(template, list):  # older HF format: [{"name": ..., "template": ...}, ...]
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, Mapping)}
        template = named.get("default", next(iter(named.values()), None))
    elif isinstance(template, Mapping):
        template = template.get("default")
    return template if isinstance(template, str) else CHAT_TEMPLATE
