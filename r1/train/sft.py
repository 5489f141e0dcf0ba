"""Supervised fine-tuning on chat conversations: loss on the final assistant turn only, examples packed.

Used for R1's cold start, for the rejection-sampled reasoning + non-reasoning data of stage 3, and for
distilling into dense students. Records are JSONL lines `{"messages": [{"role": ..., "content": ...}, ...]}`
ending with an assistant message.

How a conversation becomes tokens (`render_conversation`):
- prompt = the chat template over all but the final message, with the generation prompt, so it ends with
  `<｜Assistant｜><think>\\n` exactly as at inference;
- target = the final assistant content after that `<think>\\n` (a leading `<think>\\n` in the content is not
  repeated), then EOS. The template itself would drop the reasoning of assistant turns (DeepSeek's template
  strips everything up to `</think>` from history), which is right for earlier turns and wrong for the target:
  the reasoning is what cold-start SFT teaches. Content without any `</think>` is an answer without reasoning and
  gets an empty think block, `</think>\\n` + content, the shape of the task library's direct solutions;
- labels are IGNORE_INDEX on the prompt: the loss only looks at the assistant's tokens.

Examples are packed whole (never split across rows) with segment ids, so no example attends to another.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from r1.data.packing import Example
from r1.errors import UserError
from r1.model.transformer import IGNORE_INDEX
from r1.train.pretrain import PretrainStage

THINK_PREFIX = "<think>\n"
THINK_CLOSE = "</think>"


def assistant_target(content: str) -> str:
    """The text the model must produce after the generation prompt `<｜Assistant｜><think>\\n`."""
    if content.startswith(THINK_PREFIX):
        return content[len(THINK_PREFIX):]
    if content.startswith("<think>"):
        return content[len("<think>"):].lstrip("\n")
    if THINK_CLOSE in content:  # reasoning given without its opening tag
        return content
    return f"{THINK_CLOSE}\n{content}"


def render_conversation(messages: Sequence[Mapping[str, Any]], tokenizer: Any, where: str = "record") -> Example:
    """Token ids and labels of one conversation: the prompt masked, the final assistant turn (with reasoning) + EOS
    as the target."""
    if not isinstance(messages, Sequence) or not messages:
        raise UserError(f"{where}: 'messages' must be a non-empty list")
    last = messages[-1]
    if not isinstance(last, Mapping) or last.get("role") != "assistant" or not isinstance(last.get("content"), str):
        raise UserError(f"{where}: the last message must be an assistant message with string content")
    if tokenizer.eos_id is None:
        raise UserError("SFT needs a tokenizer with an EOS token")
    prompt = tokenizer.apply_chat_template(list(messages[:-1]), add_generation_prompt=True, tokenize=True)
    target = tokenizer.encode(assistant_target(last["content"])) + [tokenizer.eos_id]
    return Example(prompt + target, [IGNORE_INDEX] * len(prompt) + target)


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
