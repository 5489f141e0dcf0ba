"""Prompt templates: the R1-Zero plain-text template and the R1 chat usage.

- "r1-zero" (R1 paper, Table 1; paraphrased): a one-paragraph preamble, then `User: {question}. Assistant:`.
  The model answers as `<think> … </think> <answer> … </answer>`. One deviation: the `.` after the question is
  left out when the question already ends in punctuation, so no prompt reads `…?.`.
- "r1-zero-short": the same `User: … Assistant:` frame and answer format without the preamble (~20 tokens instead
  of ~100). The preamble is a constant that a model trained from scratch learns nothing from, yet it is 5/6 of every
  pretraining document's tokens: on a 2-core CPU that decides whether the tiny base learns its procedure in time.
  The built-in corpus, the base model and the R1-Zero demo use it.
- "r1" (DeepSeek-R1 README, usage recommendations): no system prompt; the user turn is the question plus an
  instruction to reason step by step and box the final answer. The tokenizer's chat template opens the assistant
  turn with `<think>\\n`, so the completion continues the reasoning.
- "r1-plain": the `User: … Assistant:` frame of "r1-zero-short" with R1's answer format: the reasoning in the think
  block, then a summary holding the boxed answer. No instruction asks for it: a model learns it from cold-start SFT,
  as R1 did (`r1 run --recipe r1`, its Dev1–Dev3).

How a completion is judged under each template (where the answer is, what the format is) is `TEMPLATE_FORMATS`,
applied by `r1.rewards.judge`.

A templated item keeps its bare question in `meta.question`, so a template can be swapped later.
"""

from __future__ import annotations

from r1.errors import UserError
from r1.tasks.base import Item, question_of

R1_ZERO_PREAMBLE = (
    "This is a conversation between a User and an Assistant. The User asks a question and the Assistant answers it. "
    "The Assistant first works through the reasoning in its mind and then gives the User the answer. The reasoning "
    "is written inside <think> </think> tags and the answer inside <answer> </answer> tags, like this: "
    "<think> reasoning process here </think> <answer> answer here </answer>."
)
R1_INSTRUCTION = "\nPlease reason step by step, and put your final answer within \\boxed{}."
TEMPLATES = ("r1-zero", "r1-zero-short", "r1", "r1-plain")
PLAIN_TEMPLATES = ("r1-zero", "r1-zero-short", "r1-plain")  # plain-text prompts ending in `Assistant:`
# What each template asks of the completion, the one place `r1.rewards.judge` reads it from: the answer format
# ("tags": `<think>…</think> <answer>…</answer>`; "boxed": `\boxed{}` in the summary after `</think>`, as
# `Task.solution`'s answer formats) and whether the prompt leaves the model inside an open `<think>`.
TEMPLATE_FORMATS: dict[str, tuple[str, bool]] = {
    "r1-zero": ("tags", False),
    "r1-zero-short": ("tags", False),
    "r1": ("boxed", True),
    "r1-plain": ("boxed", False),
}


def r1_zero_prompt(question: str, preamble: bool = True) -> str:
    """The R1-Zero prompt text for one question; the completion starts right after `Assistant:`."""
    question = question.strip()
    end = "" if question[-1:] in ".?!。？！" else "."
    turn = f"User: {question}{end} Assistant:"
    return f"{R1_ZERO_PREAMBLE} {turn}" if preamble else turn


def plain_chat_template(name: str) -> str:
    """A Jinja chat template that renders messages the way a model trained on a plain template saw its prompts, so
    `r1 chat`, `r1 serve` and `transformers`' `apply_chat_template` all ask it in its own format.

    The last user turn renders exactly as `apply_template` does (BOS + `User: … Assistant:`, the preamble first for
    "r1-zero"); a system message takes the preamble's place. An assistant turn is ` answer` + EOS, the shape of a
    pretraining response, so SFT on this template trains the model to stop where pretraining taught it to; earlier
    turns keep only their answers (what follows `</think>`).
    """
    if name not in PLAIN_TEMPLATES:
        raise UserError(f"plain_chat_template: {name!r} is not a plain template ({', '.join(PLAIN_TEMPLATES)})")
    preamble = R1_ZERO_PREAMBLE + " " if name == "r1-zero" else ""
    return "".join(
        [
            "{{ bos_token }}",
            f"{{% set ns = namespace(head={preamble!r}) %}}",
            "{% for message in messages %}{% if message['role'] == 'system' %}",
            "{% set ns.head = message['content'] | trim + ' ' %}{% endif %}{% endfor %}",
            "{{ ns.head }}",
            "{% for message in messages %}",
            "{% if message['role'] == 'user' %}",
            "{% set q = message['content'] | trim %}",
            "{{ 'User: ' + q + ('' if q[-1:] in '.?!。？！' else '.') + ' Assistant:' }}",
            "{% elif message['role'] == 'assistant' %}",
            "{{ ' ' + message['content'].split('</think>')[-1] | trim }}{{ eos_token }}",
            "{% endif %}",
            "{% endfor %}",
        ]
    )


def r1_messages(question: str) -> list[dict[str, str]]:
    """The R1 chat usage for one question: a single user turn, no system prompt."""
    return [{"role": "user", "content": question.strip() + R1_INSTRUCTION}]


def apply_template(item: Item, name: str) -> Item:
    """A new item whose `prompt` ("r1-zero", "r1-zero-short") or `messages` ("r1") is set from the bare question.

    The input item is not modified. `meta.template` records the template, `meta.question` the bare question.
    """
    if name not in TEMPLATES:
        raise UserError(f"unknown template {name!r}; valid templates: {', '.join(TEMPLATES)}")
    question = question_of(item)
    if name in PLAIN_TEMPLATES:
        new: Item = {"prompt": r1_zero_prompt(question, preamble=name == "r1-zero")}
    else:
        new = {"messages": r1_messages(question)}
    new.update((k, v) for k, v in item.items() if k not in ("prompt", "messages"))
    new["meta"] = {**(item.get("meta") or {}), "question": question, "template": name}
    return new
