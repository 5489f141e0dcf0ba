"""Adapters from the engine to other modules' contracts.

`make_generate_fn(engine)` is the evaluator's `GenerateFn` (see `r1.eval.evaluate`): items with "prompt" (text) or
"messages" (chat), n samples each, sampling as a dict; returns per item n `{"text", "num_tokens", "finish_reason"}`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from r1.engine.engine import Engine
from r1.engine.sampling import SamplingParams
from r1.errors import UserError

GenerateFn = Callable[[list[dict[str, Any]], int, dict[str, Any]], list[list[dict[str, Any]]]]


def sampling_from_dict(sampling: Mapping[str, Any], n: int = 1) -> SamplingParams:
    """SamplingParams from the evaluator's dict (temperature, top_p, top_k, max_new_tokens, seed, stop)."""
    known = {"temperature", "top_p", "top_k", "max_new_tokens", "max_tokens", "seed", "stop"}
    unknown = sorted(set(sampling) - known)
    if unknown:
        raise UserError(f"unknown sampling parameter(s) {unknown}; valid: {sorted(known)}")
    kwargs: dict[str, Any] = {k: sampling[k] for k in ("temperature", "top_p", "top_k", "seed") if k in sampling}
    max_tokens = sampling.get("max_new_tokens", sampling.get("max_tokens"))
    if max_tokens is not None:
        kwargs["max_tokens"] = max_tokens
    if sampling.get("stop"):
        kwargs["stop"] = sampling["stop"]
    return SamplingParams(n=n, **kwargs)


def make_generate_fn(engine: Engine, add_bos: bool = True) -> GenerateFn:
    """The evaluator's generator on top of `engine`.

    Text prompts get BOS prepended (`add_bos`) because chat prompts get it from the template and a base model saw
    it at the start of every document. Item i of a batch uses seed `seed + i`, so one item's samples do not depend
    on which batch it landed in beyond that offset, and a rerun with the same seed repeats exactly.
    """

    def generate(items: list[dict[str, Any]], n: int, sampling: dict[str, Any]) -> list[list[dict[str, Any]]]:
        base = sampling_from_dict(sampling, n)
        prompts: list[Sequence[int]] = []
        for i, item in enumerate(items):
            if item.get("messages") is not None:
                prompts.append(engine.encode(item["messages"]))
            elif isinstance(item.get("prompt"), str):
                prompts.append(engine.encode(item["prompt"], add_bos=add_bos))
            else:
                raise UserError(f"item {i} has neither 'messages' nor a string 'prompt'")
        params = [base if base.seed is None else base.with_(seed=base.seed + i) for i in range(len(items))]
        completions = engine.generate(prompts, params)
        return [
            [{"text": s.text, "num_tokens": len(s.tokens), "finish_reason": s.finish_reason} for s in c.samples]
            for c in completions
        ]

    return generate
