"""A dataset made by a model: sample with the engine, judge each sample, keep those that pass the filters, write
chat records as JSONL. Cold-start data, rejection sampling and distillation traces are all this stage with other
items, models and filters.

Filters (`r1.data.filters`, by name or a name -> filter mapping) apply in order, `duplicate` against the samples
already kept for the item; a rejected sample counts under the first filter that refused it. The summary has per
filter the samples that reached it and those it dropped, and the pass-rate histogram (items with 0..n of n correct,
the rejection-sampling yield). An item may carry a prefill (`meta.prefill`, already at the end of its prompt, with
template None): it is put back in front of each sample, as the evaluation stage does. A kept sample becomes a
`{"messages", "task", "answer", "meta"}` record for stage sft, at most `per_item` distinct completions per item.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from r1.data.filters import FILTERS, Filter, resolve_filters
from r1.pipeline.stage import Run, Stage

__all__ = ["FILTERS", "Filter", "Generate"]


@dataclass
class Generate(Stage):
    """`n` samples per item of `items(run)` from the model folder `model` → `out` (JSONL), counts in summary[name]."""

    name: str
    model: str
    items: Callable[[Run], list[dict[str, Any]]]
    out: str
    n: int = 4
    per_item: int = 1
    filters: Mapping[str, Filter] | Sequence[str] = field(
        default_factory=lambda: ["correct", "format", "complete", "reasons"]
    )
    template: str | None = "r1-zero"
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 256
    # samples at the paper's scale (`r1 run --plan --scale paper`): R1's rejection sampling kept ~600k reasoning
    # traces [recipe.md §3.3]; the samples drawn are not published: 1.2M assumes a 50% yield
    paper_samples: int = 1_200_000

    def __post_init__(self) -> None:
        self.inputs, self.outputs = (self.model,), (self.out,)
        self.filters = resolve_filters(self.filters)

    def plan(self, run: Run):
        from r1.pipeline import plan

        if run.scale == "paper":
            note = f"{self.paper_samples:,} samples ≤ {plan.PAPER_EVAL_TOKENS:,} tokens (see `Generate.paper_samples`)"
            forward = self.paper_samples * plan.PAPER_EVAL_TOKENS
            return plan.Plan(*plan.model_from(run, None), forward=forward, note=note)
        forward = len(self.items(run)) * self.n * self.max_new_tokens
        note = f"{self.n} samples per item ≤ {self.max_new_tokens} tokens"
        return plan.Plan(*plan.model_from(run, run.path(self.model)), forward=forward, note=note)

    def run(self, run: Run) -> None:
        from r1.data.corpus import write_corpus
        from r1.engine.adapters import make_generate_fn
        from r1.eval.evaluate import evaluate
        from r1.pipeline.stages.evaluate import with_prefill
        from r1.tasks import apply_template
        from r1.tasks.base import question_of

        items = self.items(run)
        engine = run.engine(self.model)
        began = time.perf_counter()
        sampling = dict(temperature=self.temperature, top_p=self.top_p, max_new_tokens=self.max_new_tokens)
        result = evaluate(
            items,
            with_prefill(make_generate_fn(engine)),
            k=self.n,
            template=self.template,
            seed=run.config.seed,
            progress=True,
            **sampling,
        )
        seconds = time.perf_counter() - began
        filters = self.filters
        reached, rejected = dict.fromkeys(filters, 0), dict.fromkeys(filters, 0)
        kept: dict[int, list[str]] = {}
        correct: dict[int, int] = {}
        for s in result.samples:
            texts = kept.setdefault(s["item"], [])
            if s["correct"] is not None:
                correct[s["item"]] = correct.get(s["item"], 0) + bool(s["correct"])
            refused = None
            for name, ok in filters.items():
                reached[name] += 1
                if not ok(s, texts):
                    refused = name
                    break
            if refused is not None:
                rejected[refused] += 1
            elif s["text"] not in texts and len(texts) < self.per_item:
                texts.append(s["text"])
        histogram = [0] * (self.n + 1)
        for c in correct.values():
            histogram[c] += 1
        records = [
            {
                "messages": [{"role": "user", "content": question_of(items[i])}, {"role": "assistant", "content": t}],
                "task": items[i].get("task"),
                "answer": items[i].get("answer"),
                "meta": items[i].get("meta", {}),
            }
            for i, texts in sorted(kept.items())
            for t in texts
        ]
        write_corpus(run.path(self.outputs[0]), records)
        shown = [apply_template(it, self.template) if self.template else it for it in items]
        encode = lambda it: engine.encode(it["messages"]) if it.get("messages") else engine.encode(it["prompt"], True)  # noqa: E731
        prompt_tokens = sum(len(encode(it)) for it in shown)
        run.summary[self.name] = {
            "path": self.outputs[0],
            "model": self.model,
            "items": len(items),
            "samples": len(result.samples),
            "passed": len(result.samples) - sum(rejected.values()),
            "rejected": rejected,
            "filters": {name: {"reached": reached[name], "dropped": rejected[name]} for name in filters},
            "pass_histogram": histogram,
            "records": len(records),
            "items_kept": sum(bool(t) for t in kept.values()),
            "pass@1": result.overall["pass@1"],
            "prompt_tokens": prompt_tokens,  # each prompt once: its prefill is shared by its n samples
            "generated_tokens": sum(s["num_tokens"] for s in result.samples),
            "seconds": round(seconds, 1),  # sampling and judging
        }

    def report(self, run: Run) -> list[str]:
        g = run.summary.get(self.name)
        if not g:
            return []
        why = ", ".join(f"{n} {k}" for k, n in g["rejected"].items() if n) or "none"
        k = len(g["pass_histogram"]) - 1
        return [
            "",
            f"**Generated data** (`{g['path']}`): {g['samples']} samples of {g['items']} items from "
            f"`{g['model']}`; {g['passed']} passed the filters (rejected: {why}), {g['records']} records kept "
            f"for {g['items_kept']} items (at most {self.per_item} each).",
            "",
            "| filter, in order | samples reaching it | kept | dropped |",
            "|---|---:|---:|---:|",
            *(
                f"| {name} | {f['reached']} | {f['reached'] - f['dropped']} | {f['dropped']} |"
                for name, f in g["filters"].items()
            ),
            "",
            "Items by correct samples (pass rate): "
            + ", ".join(f"{c}/{k}: {n}" for c, n in enumerate(g["pass_histogram"])),
        ]
