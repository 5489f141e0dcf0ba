"""Tests for r1.tokenizer: ids, chat template, HF parity, file I/O, streaming decode and the CLI."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from tokenizers import Tokenizer as BackendTokenizer
from tokenizers import decoders, models, pre_tokenizers, trainers

from r1.cli import main
from r1.data.tokenizer_corpus import default_training_text
from r1.errors import UserError
from r1.tokenizer import (
    ANSWER_CLOSE,
    ANSWER_OPEN,
    ASSISTANT,
    BOS,
    CHAT_TEMPLATE,
    EOS,
    PAD,
    REASONING_TAGS,
    SPECIAL_TOKENS,
    THINK_CLOSE,
    THINK_OPEN,
    USER,
    IncrementalDecoder,
    Tokenizer,
)

VOCAB_SIZE = 1024  # large enough that Chinese words and emoji bytes from the corpus get merged

# Earlier assistant turn carries reasoning (and a reasoning_content field); both must be dropped on render.
CONVERSATION = [
    {"role": "system", "content": "You are a careful solver."},
    {"role": "user", "content": "What is 2 + 3?"},
    {
        "role": "assistant",
        "content": f"{THINK_OPEN}\n2 plus 3 is 5.\n{THINK_CLOSE}\n{ANSWER_OPEN}5{ANSWER_CLOSE}",
        "reasoning_content": "hidden reasoning",
    },
    {"role": "user", "content": "And 5 * 4?"},
]
EXPECTED_CONVERSATION = (
    f"{BOS}You are a careful solver.{USER}What is 2 + 3?{ASSISTANT}\n{ANSWER_OPEN}5{ANSWER_CLOSE}{EOS}{USER}And 5 * 4?"
)

PLAIN_TEXTS = [
    "",
    "hello world",
    "What is 1234 + 5678? It is 6912.",
    "  leading spaces, trailing tabs\t\t\nand newlines\n\n",
    "七加五等于十二。数字12是偶数。",
    "emoji: 🎉✅🙂 and a rare one 🦩 and 龘",
    "mixed 中文 text with 3.14159 and -42",
]
SPECIAL_TEXTS = [
    "a<think>b",
    f"{BOS}x{EOS}",
    f"{USER}1 + 1?{ASSISTANT}{THINK_OPEN}\none plus one\n{THINK_CLOSE}\n{ANSWER_OPEN}2{ANSWER_CLOSE}{EOS}",
    f"{PAD}{PAD}text",
]


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return Tokenizer.train(default_training_text(3000), vocab_size=VOCAB_SIZE)


@pytest.fixture(scope="module")
def saved_dir(tok: Tokenizer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tok.save(tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="module")
def hf_tok(saved_dir: Path):
    transformers = pytest.importorskip("transformers")
    return transformers.AutoTokenizer.from_pretrained(str(saved_dir))


# ------------------------------------------------------------------------------------------ special tokens


def test_special_token_strings_are_deepseeks() -> None:
    # fullwidth vertical line U+FF5C and lower one-eighth block U+2581, exactly as in DeepSeek-R1
    assert BOS == "<\uff5cbegin\u2581of\u2581sentence\uff5c>"
    assert EOS == "<\uff5cend\u2581of\u2581sentence\uff5c>"
    assert PAD == "<\uff5c\u2581pad\u2581\uff5c>"
    assert USER == "<\uff5cUser\uff5c>"
    assert ASSISTANT == "<\uff5cAssistant\uff5c>"
    assert SPECIAL_TOKENS == [BOS, EOS, PAD, USER, ASSISTANT, "<think>", "</think>", "<answer>", "</answer>"]


def test_special_tokens_have_ids_0_to_8(tok: Tokenizer) -> None:
    assert [tok.token_to_id(t) for t in SPECIAL_TOKENS] == list(range(9))
    assert [tok.id_to_token(i) for i in range(9)] == SPECIAL_TOKENS
    assert (tok.bos_id, tok.eos_id, tok.pad_id) == (0, 1, 2)


@pytest.mark.parametrize("special", SPECIAL_TOKENS)
def test_special_tokens_are_single_ids_inside_text(tok: Tokenizer, special: str) -> None:
    ids = tok.encode(f"a{special}b")
    assert ids.count(SPECIAL_TOKENS.index(special)) == 1
    assert len(ids) == 3
    assert tok.decode(ids) == f"a{special}b"
    # the reasoning tags are added tokens but not special ones: skipping special tokens keeps them
    kept = f"a{special}b" if special in REASONING_TAGS else "ab"
    assert tok.decode(ids, skip_special_tokens=True) == kept


def test_reasoning_tags_are_added_but_not_special(tok: Tokenizer, saved_dir: Path) -> None:
    added = tok.backend.get_added_tokens_decoder()
    assert [added[i].special for i in range(9)] == [t not in REASONING_TAGS for t in SPECIAL_TOKENS]
    assert all(not added[i].normalized for i in range(9))  # matched whole, as the specials are
    on_disk = json.loads((saved_dir / "tokenizer.json").read_text(encoding="utf-8"))["added_tokens"]
    assert [(t["id"], t["special"]) for t in on_disk] == [(i, added[i].special) for i in range(9)]
    # the shipped base has the same flags (and the same ids)
    shipped = Tokenizer.load(Path(__file__).parents[1] / "r1" / "assets" / "base-tiny")
    flags = shipped.backend.get_added_tokens_decoder()
    assert [(flags[i].content, flags[i].special) for i in range(9)] == [
        (t, added[i].special) for i, t in enumerate(SPECIAL_TOKENS)
    ]


def test_think_tag_inside_text(tok: Tokenizer) -> None:
    assert tok.token_to_id(THINK_OPEN) in tok.encode("a<think>b")


def test_encode_adds_nothing(tok: Tokenizer) -> None:
    assert tok.encode("") == []
    ids = tok.encode("hello")
    assert tok.bos_id not in ids and tok.eos_id not in ids


# ------------------------------------------------------------------------------------------ encode/decode


def _random_unicode(rng: random.Random, length: int) -> str:
    ranges = [(0x20, 0x7E), (0x00, 0x1F), (0xA0, 0x24F), (0x4E00, 0x9FFF), (0x1F300, 0x1FAFF), (0x0590, 0x06FF)]
    chars = []
    for _ in range(length):
        lo, hi = rng.choice(ranges)
        chars.append(chr(rng.randint(lo, hi)))
    return "".join(chars)


def test_round_trip_arbitrary_unicode(tok: Tokenizer) -> None:
    rng = random.Random(0)
    texts = PLAIN_TEXTS + SPECIAL_TEXTS + [_random_unicode(rng, rng.randint(1, 60)) for _ in range(200)]
    texts += ["e\u0301 combining", "\x00nul\x7f", "\u200bzero width\ufeff", "\ufffd literal replacement"]
    for text in texts:
        assert tok.decode(tok.encode(text)) == text


def test_each_digit_is_its_own_token(tok: Tokenizer) -> None:
    ids = tok.encode("9876543210")
    assert [tok.decode([i]) for i in ids] == list("9876543210")
    assert [tok.decode([i]) for i in tok.encode("x=12")][-2:] == ["1", "2"]


def test_encode_batch_matches_encode(tok: Tokenizer) -> None:
    texts = PLAIN_TEXTS + SPECIAL_TEXTS
    assert tok.encode_batch(texts) == [tok.encode(t) for t in texts]


def test_vocab_size_counts_specials(tok: Tokenizer) -> None:
    assert tok.vocab_size == VOCAB_SIZE
    assert tok.vocab_size == len(tok.backend.get_vocab(with_added_tokens=True))


def test_training_is_deterministic() -> None:
    texts = list(default_training_text(1500, seed=3))
    first = json.loads(Tokenizer.train(texts, vocab_size=400).backend.to_str())["model"]
    second = json.loads(Tokenizer.train(texts, vocab_size=400).backend.to_str())["model"]
    assert first["vocab"] == second["vocab"]
    assert first["merges"] == second["merges"]


def test_train_rejects_tiny_vocab() -> None:
    with pytest.raises(UserError, match="vocab_size"):
        Tokenizer.train(["abc"], vocab_size=100)


def test_default_training_text_is_seeded_and_varied() -> None:
    assert list(default_training_text(200, seed=1)) == list(default_training_text(200, seed=1))
    assert list(default_training_text(200, seed=1)) != list(default_training_text(200, seed=2))
    corpus = "\n".join(default_training_text(2000))
    assert THINK_OPEN in corpus and THINK_CLOSE in corpus and ANSWER_OPEN in corpus
    assert "等于" in corpus  # Chinese
    assert any(ord(c) > 0xFFFF for c in corpus)  # emoji outside the BMP
    assert " + " in corpus and " = " in corpus


# --------------------------------------------------------------------------------------------- chat template


def test_chat_renders_drop_reasoning_and_keep_system(tok: Tokenizer) -> None:
    rendered = tok.apply_chat_template(CONVERSATION, add_generation_prompt=False)
    assert rendered == EXPECTED_CONVERSATION
    assert "hidden reasoning" not in rendered and "2 plus 3" not in rendered


def test_generation_prompt_opens_thinking(tok: Tokenizer) -> None:
    rendered = tok.apply_chat_template(CONVERSATION)
    assert rendered == EXPECTED_CONVERSATION + f"{ASSISTANT}{THINK_OPEN}\n"
    assert rendered.endswith("<｜Assistant｜><think>\n")


def test_chat_tokenized_is_encode_of_rendered(tok: Tokenizer) -> None:
    ids = tok.apply_chat_template(CONVERSATION, tokenize=True)
    assert ids == tok.encode(tok.apply_chat_template(CONVERSATION))
    assert ids[0] == tok.bos_id and ids.count(tok.bos_id) == 1
    assert ids[-3:-1] == [tok.token_to_id(ASSISTANT), tok.token_to_id(THINK_OPEN)]


def test_chat_edge_cases(tok: Tokenizer) -> None:
    # no system message; several </think> keep only the text after the last one; system messages join
    messages = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "a</think>b</think>final"},
    ]
    assert tok.apply_chat_template(messages, add_generation_prompt=False) == f"{BOS}{USER}q{ASSISTANT}final{EOS}"
    two_systems = [{"role": "system", "content": "A"}, {"role": "system", "content": "B"}]
    assert tok.apply_chat_template(two_systems, add_generation_prompt=False) == f"{BOS}A\n\nB"
    # tool calls and tool outputs render as in DeepSeek-R1's template; no generation prompt right after outputs
    tool_turn = [
        {"role": "user", "content": "q"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": {"x": 1}}}],
        },
        {"role": "tool", "content": "42"},
    ]
    assert tok.apply_chat_template(tool_turn) == (
        f"{BOS}{USER}q{ASSISTANT}<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>f\n```json\n"
        '{"x": 1}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>'
        f"{EOS}<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>42<｜tool▁output▁end｜><｜tool▁outputs▁end｜>"
    )
    with pytest.raises(UserError, match="messages is empty"):
        tok.apply_chat_template([])


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        ([{"role": "user", "content": "ok"}, "not a dict"], r"messages\[1\]"),
        ([{"content": "x"}], r"messages\[0\]\.role"),
        ([{"role": "user", "content": {"text": "x"}}], r"messages\[0\]\.content"),
        ("just a string", "messages must be a list"),
        # accepted by the checks, refused by the template itself: still a one-line error
        ([{"role": "user", "content": None}], "chat template failed"),
    ],
)
def test_bad_messages_raise_user_error(tok: Tokenizer, messages: object, expected: str) -> None:
    with pytest.raises(UserError, match=expected):
        tok.apply_chat_template(messages)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------- HF parity


def test_hf_plain_text_ids_match(tok: Tokenizer, hf_tok) -> None:
    for text in PLAIN_TEXTS:
        assert hf_tok(text)["input_ids"] == tok.encode(text), text
        assert hf_tok.decode(tok.encode(text)) == tok.decode(tok.encode(text))


def test_hf_special_tokens_match(tok: Tokenizer, hf_tok) -> None:
    assert (hf_tok.bos_token, hf_tok.eos_token, hf_tok.pad_token) == (BOS, EOS, PAD)
    assert (hf_tok.bos_token_id, hf_tok.eos_token_id, hf_tok.pad_token_id) == (0, 1, 2)
    assert hf_tok.convert_tokens_to_ids(SPECIAL_TOKENS) == list(range(9))
    assert len(hf_tok) == tok.vocab_size
    assert hf_tok.model_max_length == tok.model_max_length
    for text in SPECIAL_TEXTS:
        assert hf_tok(text)["input_ids"] == tok.encode(text), text


def test_hf_chat_matches(tok: Tokenizer, hf_tok) -> None:
    assert hf_tok.chat_template == CHAT_TEMPLATE
    for add_prompt in (True, False):
        ours = tok.apply_chat_template(CONVERSATION, add_generation_prompt=add_prompt)
        theirs = hf_tok.apply_chat_template(CONVERSATION, add_generation_prompt=add_prompt, tokenize=False)
        assert theirs == ours
        our_ids = tok.apply_chat_template(CONVERSATION, add_generation_prompt=add_prompt, tokenize=True)
        their_ids = hf_tok.apply_chat_template(
            CONVERSATION, add_generation_prompt=add_prompt, tokenize=True, return_dict=False
        )
        assert list(their_ids) == our_ids


def test_saved_config_lists_specials(saved_dir: Path) -> None:
    config = json.loads((saved_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert config["tokenizer_class"] == "PreTrainedTokenizerFast"
    assert (config["bos_token"], config["eos_token"], config["pad_token"]) == (BOS, EOS, PAD)
    assert config["chat_template"] == CHAT_TEMPLATE
    decoder = config["added_tokens_decoder"]
    assert [decoder[str(i)]["content"] for i in range(9)] == SPECIAL_TOKENS
    assert [decoder[str(i)]["special"] for i in range(9)] == [t not in REASONING_TAGS for t in SPECIAL_TOKENS]
    assert json.loads((saved_dir / "tokenizer.json").read_text(encoding="utf-8"))["post_processor"] is None


# ---------------------------------------------------------------------------------------------- save/load


def test_save_load_round_trip(tok: Tokenizer, saved_dir: Path) -> None:
    assert sorted(p.name for p in saved_dir.iterdir()) == ["tokenizer.json", "tokenizer_config.json"]  # no temp
    for loaded in (Tokenizer.load(saved_dir), Tokenizer.load(saved_dir / "tokenizer.json")):
        assert (loaded.bos_id, loaded.eos_id, loaded.pad_id) == (0, 1, 2)
        assert loaded.vocab_size == tok.vocab_size
        assert loaded.encode_batch(PLAIN_TEXTS + SPECIAL_TEXTS) == tok.encode_batch(PLAIN_TEXTS + SPECIAL_TEXTS)
        assert loaded.apply_chat_template(CONVERSATION) == tok.apply_chat_template(CONVERSATION)


def _wordlevel_backend() -> BackendTokenizer:
    words = ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "hello", "world", "1", "2"]
    backend = BackendTokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.add_special_tokens(["[UNK]", "[CLS]", "[SEP]", "[PAD]"])
    return backend


def test_load_foreign_wordlevel_with_config(tmp_path: Path) -> None:
    _wordlevel_backend().save(str(tmp_path / "tokenizer.json"))
    template = "{% for m in messages %}[{{ m['role'] }}]{{ m['content'] }}{{ eos_token }}{% endfor %}"
    config = {"bos_token": {"content": "[CLS]", "special": True}, "eos_token": "[SEP]", "chat_template": template}
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    loaded = Tokenizer.load(tmp_path)
    assert (loaded.bos_id, loaded.eos_id, loaded.pad_id) == (1, 2, None)  # no pad_token in the config
    assert loaded.encode("hello world nope") == [4, 5, 0]
    assert loaded.chat_template == template
    assert loaded.apply_chat_template([{"role": "user", "content": "hi"}]) == "[user]hi[SEP]"


def test_load_foreign_bpe_with_jinja_file_and_hf_parity(tmp_path: Path) -> None:
    backend = BackendTokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.decoder = decoders.BPEDecoder()
    trainer = trainers.BpeTrainer(vocab_size=120, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False)
    backend.train_from_iterator(["the cat sat on the mat", "the dog sat on the log"] * 20, trainer=trainer)
    backend.save(str(tmp_path / "tokenizer.json"))
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>"}
    config["chat_template"] = "config template: ignored because chat_template.jinja exists"
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    template = "{{ bos_token }}{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    (tmp_path / "chat_template.jinja").write_text(template, encoding="utf-8")

    loaded = Tokenizer.load(tmp_path)
    assert (loaded.bos_id, loaded.eos_id, loaded.pad_id) == (1, 2, None)
    assert loaded.chat_template == template
    messages = [{"role": "user", "content": "the cat"}, {"role": "assistant", "content": "sat"}]
    rendered = loaded.apply_chat_template(messages, add_generation_prompt=False)
    assert rendered == "<s>user: the cat\nassistant: sat\n"

    transformers = pytest.importorskip("transformers")
    hf = transformers.AutoTokenizer.from_pretrained(str(tmp_path))
    assert hf.apply_chat_template(messages, tokenize=False) == rendered
    assert hf("the cat sat")["input_ids"] == loaded.encode("the cat sat")


def test_load_foreign_file_without_config(tmp_path: Path) -> None:
    path = tmp_path / "other.json"
    _wordlevel_backend().save(str(path))
    loaded = Tokenizer.load(path)
    assert (loaded.bos_id, loaded.eos_id, loaded.pad_id) == (None, None, None)
    assert loaded.chat_template == CHAT_TEMPLATE
    assert loaded.apply_chat_template([{"role": "user", "content": "hello"}], add_generation_prompt=False) == (
        f"{USER}hello"
    )


def test_load_missing_and_corrupt_files(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(UserError, match="nowhere"):
        Tokenizer.load(missing)
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "tokenizer.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(UserError, match=str(corrupt / "tokenizer.json")):
        Tokenizer.load(corrupt)


def test_load_corrupt_config(tmp_path: Path, tok: Tokenizer) -> None:
    tok.save(tmp_path)
    (tmp_path / "tokenizer_config.json").write_text("[1, 2", encoding="utf-8")
    with pytest.raises(UserError, match="tokenizer_config.json"):
        Tokenizer.load(tmp_path)


# ---------------------------------------------------------------------------------------- streaming decode


def _stream(tok: Tokenizer, ids: list[int]) -> tuple[list[str], str]:
    decoder = IncrementalDecoder(tok)
    return [decoder.push(i) for i in ids], decoder.flush()


def test_incremental_decoder_never_splits_characters(tok: Tokenizer) -> None:
    text = f"{THINK_OPEN}\n七加五等于十二 🎉 then 龘 and 🦩!{THINK_CLOSE}{ANSWER_OPEN}12{ANSWER_CLOSE}"
    ids = tok.encode(text)
    pieces, rest = _stream(tok, ids)
    assert "".join(pieces) + rest == text
    assert rest == ""
    assert not any("\ufffd" in piece for piece in pieces)
    # byte-level tokens inside 龘 / 🦩 (not in the corpus) must have been held back at least once
    assert "" in pieces
    # corpus text is merged (a whole Chinese word; part of an emoji), a character never seen stays raw bytes
    assert len(tok.encode("等于")) == 1 and 1 < len(tok.encode("🎉")) < 4 and len(tok.encode("龘")) == 3


def test_incremental_decoder_ascii_emits_every_token(tok: Tokenizer) -> None:
    text = "The answer is 42."
    pieces, rest = _stream(tok, tok.encode(text))
    assert all(pieces) and "".join(pieces) == text and rest == ""


def test_incremental_decoder_flush_returns_held_bytes(tok: Tokenizer) -> None:
    ids = tok.encode("ok 龘")
    decoder = IncrementalDecoder(tok)
    out = "".join(decoder.push(i) for i in ids[:-1])
    assert "\ufffd" not in out
    assert "\ufffd" in decoder.flush()  # a truncated stream surfaces as a replacement character, not silence
    assert decoder.push(ids[0]) == tok.decode(ids[:1])  # flush resets the decoder


# ---------------------------------------------------------------------------------------------------- CLI


def test_cli_train_encode_chat(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = list(default_training_text(400, seed=5))
    text_file = tmp_path / "corpus.txt"
    text_file.write_text("\n".join(lines[:200]) + "\n", encoding="utf-8")
    jsonl_file = tmp_path / "corpus.jsonl"
    jsonl_file.write_text("\n".join(json.dumps({"text": t}) for t in lines[200:]) + "\n\n", encoding="utf-8")
    out = tmp_path / "tok"
    argv = ["tokenizer", "train", "--input", str(text_file), str(jsonl_file), "--vocab-size", "300", "--out", str(out)]
    assert main(argv) == 0
    assert (out / "tokenizer.json").is_file() and (out / "tokenizer_config.json").is_file()
    trained = Tokenizer.load(out)
    assert trained.vocab_size == 300
    capsys.readouterr()

    assert main(["tokenizer", "encode", "--tokenizer", str(out), "a<think>12"]) == 0
    printed = capsys.readouterr().out
    assert json.dumps(trained.encode("a<think>12")) in printed
    assert '"<think>"' in printed

    messages = json.dumps([{"role": "user", "content": "1 + 1?"}])
    assert main(["tokenizer", "chat", "--tokenizer", str(out), "--messages", messages]) == 0
    assert capsys.readouterr().out == f"{BOS}{USER}1 + 1?{ASSISTANT}{THINK_OPEN}\n\n"


def test_cli_train_builtin_corpus(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tokenizer", "train", "--vocab-size", "400", "--out", str(tmp_path)]) == 0
    assert "400 tokens" in capsys.readouterr().out
    assert [Tokenizer.load(tmp_path).token_to_id(t) for t in SPECIAL_TOKENS] == list(range(9))


def test_cli_malformed_jsonl_names_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"text": oops}\n', encoding="utf-8")
    argv = ["tokenizer", "train", "--input", str(bad), "--vocab-size", "300", "--out", str(tmp_path / "out")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"{bad}:2" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out" / "tokenizer.json").exists()


def test_cli_missing_text_field_names_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n\n{"body": "no text"}\n', encoding="utf-8")
    assert main(["tokenizer", "train", "--input", str(bad), "--out", str(tmp_path / "out")]) == 2
    assert f"{bad}:3" in capsys.readouterr().err


def test_cli_missing_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing.txt"
    assert main(["tokenizer", "train", "--input", str(missing), "--out", str(tmp_path / "out")]) == 2
    assert str(missing) in capsys.readouterr().err
    assert main(["tokenizer", "encode", "--tokenizer", str(tmp_path / "no_tok"), "hi"]) == 2
    assert "no_tok" in capsys.readouterr().err


def test_cli_bad_messages(saved_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tokenizer", "chat", "--tokenizer", str(saved_dir), "--messages", "[{"]) == 2
    assert "--messages" in capsys.readouterr().err
    bad = json.dumps([{"role": "user", "content": "x"}, {"role": 7, "content": "y"}])
    assert main(["tokenizer", "chat", "--tokenizer", str(saved_dir), "--messages", bad]) == 2
    assert "messages[1].role" in capsys.readouterr().err
