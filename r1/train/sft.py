"""Supervised fine-tuning on chat conversations: the model's own chat template, the loss on the assistant's tokens.

Records are JSONL `{"messages": [...]}` ending with an assistant message that carries its reasoning the R1 way. The
text trained on is what the chat template renders (`render_conversation`), so training and inference see the same
tokens. The loss is on:

1. every token inside a `{% generation %}` block, when the template has them (TRL's assistant-only loss);
2. otherwise the final assistant turn, found as TRL finds a completion (what follows the rendered prompt), with one
   change: its content goes in verbatim, reasoning included. Templates drop the reasoning of assistant turns, right
   for the history and wrong for the target, since the reasoning is what cold-start SFT teaches; so the final
   content is rendered as a marker and put back (as rendered when the template keeps the reasoning, verbatim when
   it drops it). When the generation prompt already opened `<think>`, the content continues that block, and content
   with no `</think>` closes it first (`</think>\\n` + answer).

Prompt and target are encoded separately; examples are packed whole with segment ids.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from r1.chat_template import REASONING_FIELDS, has_generation_blocks
from r1.data.packing import Example
from r1.engine.reasoning import prompt_opens_think
from r1.errors import UserError
from r1.model.transformer import IGNORE_INDEX
from r1.tokenizer import THINK_CLOSE, THINK_OPEN
from r1.train.pretrain import PretrainStage

# Stands in for the final assistant content while the template renders; private-use characters that survive the
# string operations templates apply (`trim`, `split('</think>')`).
_MARKER = "\U000f0002final assistant turn\U000f0003"


def assistant_target(content: str) -> str:
    """The text the model must produce after a generation prompt that opened the think block (`<think>\\n`)."""
    if content.startswith(THINK_OPEN + "\n"):
        return content[len(THINK_OPEN) + 1 :]
    if content.startswith(THINK_OPEN):
        return content[len(THINK_OPEN) :].lstrip("\n")
    if THINK_CLOSE in content:  # reasoning given without its opening tag
        return content
    return f"{THINK_CLOSE}\n{content}"


def render_conversation(messages: Sequence[Mapping[str, Any]], tokenizer: Any, where: str = "record") -> Example:
    """Token ids and labels of one conversation, the loss on the assistant's tokens (see the module docstring)."""
    if not isinstance(messages, Sequence) or isinstance(messages, str) or not messages:
        raise UserError(f"{where}: 'messages' must be a non-empty list")
    last = messages[-1]
    if not isinstance(last, Mapping) or last.get("role") != "assistant" or not isinstance(last.get("content"), str):
        raise UserError(f"{where}: the last message must be an assistant message with string content")
    try:
        if has_generation_blocks(tokenizer.chat_template):
            out = tokenizer.apply_chat_template(
                list(messages), add_generation_prompt=False, tokenize=True, return_assistant_tokens_mask=True
            )
            ids, mask = out["input_ids"], out["assistant_masks"]
            if not any(mask):
                raise UserError(f"{where}: the chat template's {{% generation %}} blocks mark no token")
            return Example(ids, [t if m else IGNORE_INDEX for t, m in zip(ids, mask, strict=True)])
        prompt, target = _prompt_and_target(list(messages), tokenizer)
    except UserError as exc:
        raise UserError(f"{where}: {exc}") from exc
    prompt_ids, target_ids = tokenizer.encode(prompt), tokenizer.encode(target)
    if not target_ids:
        raise UserError(f"{where}: the final assistant turn renders as nothing")
    return Example(prompt_ids + target_ids, [IGNORE_INDEX] * len(prompt_ids) + target_ids)


def _prompt_and_target(messages: list[Mapping[str, Any]], tokenizer: Any) -> tuple[str, str]:
    final = dict(messages[-1])
    content = final["content"]
    if any(final.get(k) is not None for k in REASONING_FIELDS) and THINK_CLOSE not in content:
        raise UserError(
            "the final message has a separate reasoning field, which the template would drop: "
            f"put the reasoning in content as {THINK_OPEN}…{THINK_CLOSE} followed by the answer"
        )
    if len(messages) < 2:
        raise UserError("a conversation needs a message before the final assistant turn (the prompt)")
    prompt = tokenizer.apply_chat_template(messages[:-1], add_generation_prompt=True)
    full = tokenizer.apply_chat_template([*messages[:-1], {**final, "content": _MARKER}], add_generation_prompt=False)
    if full.count(_MARKER) != 1:
        raise UserError("the chat template does not render the final assistant content once, verbatim")
    head, tail = full.split(_MARKER)
    text = head + _final_body(tokenizer.apply_chat_template(messages, add_generation_prompt=False), head, tail, content)
    text += tail
    if text.startswith(prompt):
        return prompt, text[len(prompt) :]
    if prompt.startswith(head) and prompt_opens_think(prompt[len(head) :]):
        return prompt, assistant_target(content) + tail
    raise UserError(
        "the chat template renders the earlier messages differently once the final assistant turn follows, so "
        "the turn to train on cannot be found (give the template {% generation %} blocks)"
    )


def _final_body(full: str, head: str, tail: str, content: str) -> str:
    """The final turn's content as the template renders it (trimmed, say), unless that drops its reasoning."""
    if not (full.startswith(head) and full.endswith(tail) and len(full) >= len(head) + len(tail)):
        return content
    rendered = full[len(head) : len(full) - len(tail)]
    return content if THINK_CLOSE in content and THINK_CLOSE not in rendered else rendered


class SFTStage(PretrainStage):
    """PretrainStage's data plumbing and loss, with conversations rendered by `render_conversation`."""

    name = "sft"
    split_documents = False  # an example is never cut across rows

    def records(self) -> list[dict[str, Any]]:
        if self.cfg.data.builtin:
            raise UserError("data.builtin is a pretraining corpus; SFT reads conversations from data.paths")
        return super().records()

    def tokenizer_texts(self) -> Iterator[str]:
        for r in self.records():
            for m in r.get("messages", []):
                if isinstance(m, Mapping) and isinstance(m.get("content"), str):
                    yield m["content"]

    def examples(self, records: list[dict[str, Any]], tokenizer: Any) -> list[Example]:
        if tokenizer is None:
            raise UserError("SFT needs a tokenizer for the chat template: set data.tokenizer or model.path")
        out = []
        for i, r in enumerate(records):
            where = r.get("_source", f"record {i}")
            if "messages" not in r:
                keys = sorted(k for k in r if k != "_source")
                raise UserError(f"{where}: expected a 'messages' list (got keys {keys})")
            out.append(render_conversation(r["messages"], tokenizer, where))
        return out
