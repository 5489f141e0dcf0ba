"""Stages that make a base model's data: the built-in corpus of worked solutions, and a BPE tokenizer on it."""

from __future__ import annotations

from collections import Counter
from typing import Any

from r1.pipeline.stage import Run, Stage


class Corpus(Stage):
    """`docs` worked modchain solutions in R1 format (`r1.data.corpus`), train split only → data/corpus.jsonl."""

    name = "corpus"
    outputs = ("data/corpus.jsonl",)

    def __init__(self, docs: int, seed: int, mix: dict[str, float], levels: Any, template: str) -> None:
        self.docs, self.seed, self.mix, self.levels, self.template = docs, seed, mix, levels, template

    def run(self, run: Run) -> None:
        from r1.data.corpus import build_corpus, write_corpus

        records = build_corpus(
            self.docs, seed=self.seed, mix=self.mix, levels={"modchain": self.levels}, template=self.template
        )
        write_corpus(run.path(self.outputs[0]), records)
        run.summary["corpus"] = {
            "path": self.outputs[0],
            "documents": len(records),
            "levels": self.levels if isinstance(self.levels, str) else level_label(self.levels),
            "level_weights": self.levels if isinstance(self.levels, dict) else None,
            "styles": dict(sorted(Counter(r["style"] for r in records).items())),
            "tasks": dict(Counter(r["task"] for r in records)),
        }

    def report(self, run: Run) -> list[str]:
        return corpus_lines(run.summary, "`data/corpus.jsonl`.")


class Tokenizer(Stage):
    """A byte-level BPE trained on the corpus (digits stay single tokens) → tokenizer/."""

    name = "tokenizer"
    inputs = ("data/corpus.jsonl",)
    outputs = ("tokenizer/tokenizer.json",)

    def __init__(self, vocab_size: int = 2048) -> None:
        self.vocab_size = vocab_size

    def run(self, run: Run) -> None:
        from r1.data.corpus import corpus_texts, read_corpus
        from r1.tokenizer import Tokenizer as BPE

        records = read_corpus(run.path(self.inputs[0]))
        tok = BPE.train(corpus_texts(records), vocab_size=self.vocab_size)
        tok.save(run.path("tokenizer"))
        n = min(len(records), 2000)
        prompt = sum(len(tok.encode(r["prompt"])) for r in records[:n]) / max(n, 1)
        response = sum(len(tok.encode(r["response"])) for r in records[:n]) / max(n, 1)
        run.summary["tokenizer"] = {
            "vocab_size": tok.vocab_size,
            "prompt_tokens_mean": round(prompt, 1),
            "response_tokens_mean": round(response, 1),
        }

    def report(self, run: Run) -> list[str]:
        return tokenizer_lines(run.summary)


def corpus_lines(s: dict[str, Any], where: str) -> list[str]:
    if "corpus" not in s:
        return []
    cp = s["corpus"]
    styles = ", ".join(f"{v} {n}" for n, v in cp["styles"].items())
    tasks = cp.get("tasks", {"modchain": cp["documents"]})
    what = "worked modchain solutions" if set(tasks) == {"modchain"} else f"documents ({', '.join(tasks)})"
    return [f"**Corpus**: {cp['documents']:,} {what}, levels {cp['levels']} (train split only): {styles}. {where}"]


def tokenizer_lines(s: dict[str, Any]) -> list[str]:
    if "tokenizer" not in s:
        return []
    t = s["tokenizer"]
    return [
        f"**Tokenizer**: byte-level BPE trained on the corpus, {t['vocab_size']} tokens; a document is "
        f"{t['prompt_tokens_mean']} prompt + {t['response_tokens_mean']} response tokens on average."
    ]


def levels(spec: str | dict[str, float]) -> list[str]:
    """The modchain levels a spec names: "2-6", or weights {level: w} (those with w > 0)."""
    from r1.tasks.base import get_task

    if isinstance(spec, dict):
        return sorted((level for level, w in spec.items() if w > 0), key=int)
    return get_task("modchain").levels_for(spec)


def level_label(spec: str | dict[str, float]) -> str:
    names = levels(spec)
    return names[0] if len(names) == 1 else f"{names[0]}-{names[-1]}"
