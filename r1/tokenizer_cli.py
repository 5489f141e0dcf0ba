"""`r1 tokenizer {train,encode,chat}`: train a byte-level BPE with the R1 special tokens, or inspect one."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from r1.cli import add_command, check_at_least
from r1.data.tokenizer_corpus import default_training_text
from r1.errors import UserError
from r1.readers import check_text, iter_jsonl, iter_lines
from r1.tokenizer import MIN_VOCAB_SIZE, SPECIAL_TOKENS, Tokenizer


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `r1 tokenizer {train,encode,chat}`."""
    parser = add_command(
        subparsers,
        "tokenizer",
        "Train or inspect a byte-level BPE tokenizer with the DeepSeek-R1 special tokens and template.",
    )
    actions = parser.add_subparsers(dest="tokenizer_command", metavar="ACTION")
    parser.set_defaults(func=lambda args: _print_help(parser))

    train = actions.add_parser("train", help="train a tokenizer on text/JSONL files (or the built-in corpus)")
    train.add_argument(
        "--input",
        nargs="+",
        type=Path,
        metavar="FILE",
        help="text files (one text per line) or .jsonl files with a 'text' field; default: built-in corpus",
    )
    train.add_argument("--vocab-size", type=int, default=2048, help="total ids, specials included (default 2048)")
    train.add_argument("--min-frequency", type=int, default=2, help="minimum pair count to merge (default 2)")
    train.add_argument("--out", type=Path, required=True, metavar="DIR", help="directory to write the tokenizer to")
    train.set_defaults(func=_cmd_train)

    encode = actions.add_parser("encode", help="print the ids and tokens of a text")
    encode.add_argument("--tokenizer", type=Path, required=True, metavar="DIR", help="tokenizer directory or file")
    encode.add_argument("text", help="text to encode (special-token strings become single ids)")
    encode.set_defaults(func=_cmd_encode)

    chat = actions.add_parser("chat", help="print a conversation rendered with the chat template")
    chat.add_argument("--tokenizer", type=Path, required=True, metavar="DIR", help="tokenizer directory or file")
    chat.add_argument(
        "--messages", required=True, metavar="JSON", help='e.g. \'[{"role": "user", "content": "1 + 1?"}]\''
    )
    chat.add_argument("--no-generation-prompt", action="store_true", help="do not append the assistant prompt")
    chat.set_defaults(func=_cmd_chat)


def _print_help(parser: argparse.ArgumentParser) -> int:
    """`r1 tokenizer` without an action: show what the actions are rather than the top-level help."""
    parser.print_help()
    return 2


def _cmd_train(args: argparse.Namespace) -> int:
    if args.vocab_size < MIN_VOCAB_SIZE:
        raise UserError(f"--vocab-size must be >= {MIN_VOCAB_SIZE} (256 bytes + {len(SPECIAL_TOKENS)} special tokens), "
                        f"got {args.vocab_size}")  # fmt: skip
    check_at_least(args, min_frequency=1)
    if args.out.exists() and not args.out.is_dir():
        raise UserError(f"--out {args.out}: is a file; the tokenizer is written into a directory")
    for path in args.input or []:
        if not path.is_file():
            why = "is a directory, expected a file" if path.is_dir() else "file not found"
            raise UserError(f"--input {path}: {why}")
    texts = non_empty(iter_training_files(args.input), args.input) if args.input else default_training_text()
    tokenizer = Tokenizer.train(texts, vocab_size=args.vocab_size, min_frequency=args.min_frequency)
    tokenizer.save(args.out)
    asked = args.vocab_size
    note = "" if tokenizer.vocab_size >= asked else f" (asked for {asked}: the corpus has too few frequent pairs)"
    print(f"saved tokenizer with {tokenizer.vocab_size} tokens ({len(SPECIAL_TOKENS)} special) to {args.out}{note}")
    return 0


def _cmd_encode(args: argparse.Namespace) -> int:
    text = check_text(args.text, "the text to encode", from_bytes=True)
    tokenizer = Tokenizer.load(args.tokenizer)
    ids = tokenizer.encode(text)
    print(f"ids ({len(ids)}): {json.dumps(ids)}")
    print(f"tokens: {json.dumps([tokenizer.id_to_token(i) for i in ids], ensure_ascii=False)}")
    print(f"pieces: {json.dumps([tokenizer.decode([i]) for i in ids], ensure_ascii=False)}")
    return 0


def _cmd_chat(args: argparse.Namespace) -> int:
    tokenizer = Tokenizer.load(args.tokenizer)
    try:
        messages = json.loads(check_text(args.messages, "--messages", from_bytes=True))
    except json.JSONDecodeError as exc:
        raise UserError(f"--messages is not valid JSON: {exc}") from None
    _check_strings(messages, "--messages")
    print(tokenizer.apply_chat_template(messages, add_generation_prompt=not args.no_generation_prompt))
    return 0


def _check_strings(value: Any, where: str) -> None:
    """Every string inside a JSON value encodable (a `"\\ud800"` escape is not), the culprit named by its path."""
    if isinstance(value, str):
        check_text(value, where)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_strings(key, f"{where} (a key)")
            _check_strings(item, f"{where}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_strings(item, f"{where}[{i}]")


def iter_training_files(paths: Iterable[Path]) -> Iterator[str]:
    """Stream texts from files: `.jsonl` lines give their "text" field, other files give one text per line."""
    for path in paths:
        if path.suffix == ".jsonl":
            for where, _, record in iter_jsonl(path):
                if not isinstance(record.get("text"), str):
                    raise UserError(f'{where}: expected an object with a string "text" field')
                yield check_text(record["text"], f"{where}: field 'text'")
        else:
            for _, line in iter_lines(path):
                yield line + "\n"  # the newline kept: the tokenizer should learn newline tokens too


def non_empty(texts: Iterable[str], paths: Sequence[Path]) -> Iterator[str]:
    """`texts`, then a UserError naming the files if none of them had any non-blank text."""
    seen = False
    for text in texts:
        seen = seen or bool(text.strip())
        yield text
    if not seen:
        named = " ".join(str(p) for p in paths)
        raise UserError(f"--input {named}: no text to train on (the files are empty or blank)")
