"""SFT trains on exactly what the model's chat template renders: published templates, generation masks, the base."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from r1.data.corpus import build_corpus
from r1.engine.testing import tiny_tokenizer
from r1.errors import UserError
from r1.model import IGNORE_INDEX
from r1.model.checkpoint import load_pretrained
from r1.tokenizer import ASSISTANT, BOS, EOS, USER, Tokenizer
from r1.train.sft import render_conversation

FIXTURES = Path(__file__).parent / "fixtures" / "chat_templates"
BASE = Path(__file__).parents[1] / "r1" / "assets" / "base-tiny"
REASONED = "<think>\n3+3 is 6.\n</think>\n\n6"
CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "2+2?"},
    {"role": "assistant", "content": "<think>\nold reasoning\n</think>\n\n4"},
    {"role": "user", "content": "and 3+3?"},
    {"role": "assistant", "content": REASONED},
]


def with_template(name: str) -> Tokenizer:
    tok = tiny_tokenizer()
    jinja = FIXTURES / f"{name}.jinja"
    if jinja.is_file():
        template = jinja.read_text(encoding="utf-8")
    else:
        template = json.loads((FIXTURES / f"{name}.tokenizer_config.json").read_text(encoding="utf-8"))["chat_template"]
    return Tokenizer(tok.backend, chat_template=template)


def split(example, tok):
    """(prompt text, target text) of an example: the labels say which tokens carry the loss."""
    n = example.labels.index(next(lab for lab in example.labels if lab != IGNORE_INDEX))
    assert all(lab == IGNORE_INDEX for lab in example.labels[:n])
    assert example.labels[n:] == example.input_ids[n:]  # one contiguous target: the final turn
    return tok.decode(example.input_ids[:n]), tok.decode(example.input_ids[n:])


@pytest.mark.parametrize(
    ("name", "target"),
    [
        # the generation prompt opened <think>\n: the target continues it
        ("DeepSeek-R1.2025-02-09", f"3+3 is 6.\n</think>\n\n6{EOS}"),
        ("DeepSeek-R1-Distill-Qwen-32B.2025-02-09", f"3+3 is 6.\n</think>\n\n6{EOS}"),
        # the original prompt ends at <｜Assistant｜>: the target opens the block itself
        ("DeepSeek-R1.2025-01-22", f"{REASONED}{EOS}"),
        ("DeepSeek-R1-Distill-Qwen-32B.2025-01-22", f"{REASONED}{EOS}"),
        ("DeepSeek-V3.2024-12", f"{REASONED}{EOS}"),
        ("Llama-3.2-3B-Instruct.2024-09-25", f"{REASONED}<|eot_id|>"),
        ("Qwen2.5-Instruct", f"{REASONED}<|im_end|>\n"),
    ],
)
def test_published_templates_prompt_as_at_inference_and_keep_the_final_reasoning(name, target):
    tok = with_template(name)
    example = render_conversation(CONVERSATION, tok)
    prompt, got = split(example, tok)
    assert got == target
    kwargs = {"date_string": "26 Jul 2024"} if "Llama" in name else {}
    if "Llama" in name:  # its date comes from strftime_now: compare the prompt without it
        prompt = prompt.split("Today Date:")[1].split("\n", 1)[1]
        want = tok.apply_chat_template(CONVERSATION[:-1], **kwargs).split("Today Date:")[1].split("\n", 1)[1]
    else:
        want = tok.apply_chat_template(CONVERSATION[:-1])
    assert prompt == want  # exactly the inference prompt
    assert ("old reasoning" in prompt) == name.startswith(("DeepSeek-V3", "Llama", "Qwen"))  # R1's drop it


def test_builtin_template_target_shapes():
    tok = tiny_tokenizer()
    prompt, got = split(render_conversation(CONVERSATION, tok), tok)
    assert prompt == f"{BOS}Be brief.{USER}2+2?{ASSISTANT}\n\n4{EOS}{USER}and 3+3?{ASSISTANT}<think>\n"
    assert got == f"3+3 is 6.\n</think>\n\n6{EOS}"
    for content, want in [
        ("just 6", "</think>\njust 6"),  # no reasoning: the open block is closed first
        ("<think>3+3 is 6.</think>6", "3+3 is 6.</think>6"),  # the opener is not repeated
        ("3+3 is 6.</think>6", "3+3 is 6.</think>6"),  # reasoning without its opener
    ]:
        convo = [*CONVERSATION[:-1], {"role": "assistant", "content": content}]
        assert split(render_conversation(convo, tok), tok)[1] == want + EOS


def test_generation_blocks_put_the_loss_on_every_marked_turn():
    transformers = pytest.importorskip("transformers")
    template = (
        "{{ bos_token }}{% for m in messages %}{% if m.role == 'assistant' %}{{ '<｜Assistant｜>' }}{% generation %}"
        "{{ m.content }}{{ eos_token }}{% endgeneration %}{% else %}{{ '<｜User｜>' + m.content }}{% endif %}"
        "{% endfor %}"
    )
    tok = Tokenizer(tiny_tokenizer().backend, chat_template=template)
    example = render_conversation(CONVERSATION, tok)
    hf = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok.backend, chat_template=template, bos_token=BOS, eos_token=EOS
    )
    want = hf.apply_chat_template(CONVERSATION, return_dict=True, return_assistant_tokens_mask=True)
    assert example.input_ids == list(want["input_ids"])
    assert [lab != IGNORE_INDEX for lab in example.labels] == [bool(m) for m in want["assistant_masks"]]
    trained = tok.decode([t for t, lab in zip(example.input_ids, example.labels, strict=True) if lab != IGNORE_INDEX])
    assert trained == f"<think>\nold reasoning\n</think>\n\n4{EOS}{REASONED}{EOS}"  # what the template renders


@pytest.mark.parametrize("name", ["TRL.qwen2_5_training", "TRL.deepseekv3_training"])
def test_trl_training_templates_mask_what_transformers_masks(name):
    transformers = pytest.importorskip("transformers")
    tok = with_template(name)
    example = render_conversation(CONVERSATION, tok)
    hf = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok.backend, chat_template=tok.chat_template, bos_token=BOS, eos_token=EOS
    )
    want = hf.apply_chat_template(CONVERSATION, return_dict=True, return_assistant_tokens_mask=True)
    assert example.input_ids == list(want["input_ids"])
    assert [lab != IGNORE_INDEX for lab in example.labels] == [bool(m) for m in want["assistant_masks"]]
    trained = tok.decode([t for t, lab in zip(example.input_ids, example.labels, strict=True) if lab != IGNORE_INDEX])
    assert "6" in trained and "and 3+3?" not in trained


def test_the_shipped_base_already_predicts_its_sft_targets(one_thread):
    """The base was pretrained on `User: … Assistant:` + ` <think>…` + EOS; SFT on its own template must train on
    that same text, so its loss is pretraining-low from the first step (the old hand-built target, which dropped
    the `<think>` opener and the EOS, started near 2.7)."""
    tok = Tokenizer.load(BASE)
    model = load_pretrained(BASE).eval()
    losses = []
    for r in build_corpus(12, seed=11):
        question = r["prompt"].removeprefix("User: ").removesuffix(" Assistant:")
        convo = [{"role": "user", "content": question}, {"role": "assistant", "content": r["response"].strip()}]
        example = render_conversation(convo, tok)
        prompt, target = split(example, tok)
        assert prompt == BOS + r["prompt"] and target == r["response"] + EOS  # the pretraining document, exactly
        ids = torch.tensor([example.input_ids])
        with torch.no_grad():
            logits = model(ids).logits[0, :-1]
        labels = torch.tensor(example.labels[1:])
        losses.append(torch.nn.functional.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX).item())
    assert sum(losses) / len(losses) < 0.5


def test_conversations_that_cannot_be_trained_are_one_line_errors():
    tok = tiny_tokenizer()
    with pytest.raises(UserError, match="record 3: the last message must be an assistant"):
        render_conversation(CONVERSATION[:-1], tok, "record 3")
    with pytest.raises(UserError, match="needs a message before the final assistant turn"):
        render_conversation(CONVERSATION[-1:], tok)
    separate = [*CONVERSATION[:-1], {"role": "assistant", "content": "6", "reasoning_content": "3+3 is 6."}]
    with pytest.raises(UserError, match="separate reasoning field"):
        render_conversation(separate, tok)
    drops_it = Tokenizer(tok.backend, chat_template="{% for m in messages[:-1] %}{{ m.content }}{% endfor %}")
    with pytest.raises(UserError, match="does not render the final assistant content"):
        render_conversation(CONVERSATION, drops_it)
