"""`python -m r1.assets.sft_tiny`: writes `r1/assets/sft-tiny.jsonl`, the SFT set of `configs/sft-tiny.yaml`.

A cold start for the built-in base, which answers directly about 3 times in 4: chats whose assistant turn always
works the problem step by step inside `<think>` (a fifth with a slip caught by " wait, ") on train-split modchain
problems of levels 2-6. The assistant text is exactly a pretraining response of the built-in corpus, because the
base's chat template renders the user turn as the plain prompt it was pretrained on. A test checks the shipped file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from r1.assets import ASSETS
from r1.io import atomic_write_text

PATH = ASSETS / "sft-tiny.jsonl"


def conversations(n: int = 1024, seed: int = 0) -> list[dict[str, Any]]:
    """`n` chats {"messages": [user, assistant]}: 4/5 step by step, 1/5 with a caught slip, levels 2-6."""
    from r1.tasks.base import get_task

    task = get_task("modchain")
    out = []
    for i, item in enumerate(task.generate(n, seed=seed, difficulty="2-6", split="train")):
        style = "check" if i % 5 == 4 else "steps"
        response = " " + task.solution(item, style=style, answer_format="tags", seed=seed * 1_000_003 + i)
        question = item["meta"]["question"]
        out.append({"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": response}]})
    return out


def render(records: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def main(path: Path = PATH) -> Path:
    return atomic_write_text(path, render(conversations()))


if __name__ == "__main__":
    print(f"wrote {main()}")
