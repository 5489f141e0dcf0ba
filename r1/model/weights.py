"""The one way model code reads a weight, and the inference copies built from weights.

Every kernel that multiplies by a parameter gets it from `weight(module)` (or `linear(x, module)`), the fused paths
included: a tensor, or a `QuantizedWeight` (r1/model/quant.py) running the int kernels, so no path can bypass it.
`FusedWeights` keeps the copies decoding reuses ([q_a | kv_a], [gate | up], stacked experts, the head in another
dtype) fresh and within a memory budget; which copies a model wants is the model's business (`fusion()`).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from r1.model.quant import QuantizedWeight

# key, the tensors the copy is built from, and how to build it from them (detached)
Fusion = tuple[Hashable, list[torch.Tensor], Callable[[list[torch.Tensor]], Any]]


def weight(module: nn.Module) -> torch.Tensor:
    """The weight of a linear, embedding, norm or router module, as the kernels multiply by it."""
    return module.weight


def linear(x: torch.Tensor, module: nn.Linear) -> torch.Tensor:
    """x Wᵀ + b for a linear module (what calling it computes)."""
    w = weight(module)
    if type(w) is QuantizedWeight:  # straight to its kernel (F.linear would reach it too, a few µs later)
        return w.linear(x, module.bias)
    return F.linear(x, w, module.bias)


def fused_linear(x: torch.Tensor, *layers: nn.Linear) -> list[torch.Tensor]:
    """Apply several projections of the same input as one GEMM, then split: fewer launches and (under autocast)
    casts of `x`, which dominate at CPU scale. The weights stay separate parameters (checkpoint names unchanged) and
    the concatenation is part of the graph, so each gets its gradient."""
    weights = [weight(m) for m in layers]
    if not all(isinstance(w, torch.Tensor) for w in weights):  # quantised: concatenating packed weights per call
        return [linear(x, m) for m in layers]  # would cost more than the launches it saves
    biases = [m.bias for m in layers]
    bias = torch.cat(biases) if all(b is not None for b in biases) else None
    return list(F.linear(x, torch.cat(weights), bias).split([m.out_features for m in layers], -1))


class FusedWeights:
    """Inference copies of parameters, rebuilt by `refresh()` when a source changed.

    `plan()` lists every copy wanted, in priority order; copies are kept while their sources' sizes sum to at most
    `limit_bytes` (beyond it, big models, the callers use the modules as they are). Tensor version counters see most
    in-place updates and swapped tensors are seen by identity, but fused AdamW updates without moving the counters,
    so a caller that changed weights says so with `refresh(force=True)`.
    """

    def __init__(self, plan: Callable[[], Iterable[Fusion]], limit_bytes: int) -> None:
        self.plan = plan
        self.limit_bytes = limit_bytes
        self._copies: dict[Hashable, tuple[tuple, Any]] = {}
        self.refresh()

    def get(self, key: Hashable) -> Any | None:
        hit = self._copies.get(key)
        return None if hit is None else hit[1]

    def refresh(self, force: bool = False) -> None:
        """Rebuild copies whose sources changed (cheap when nothing did)."""
        if force:
            self._copies.clear()
        used = 0
        for key, sources, build in self.plan():
            stamp = tuple((id(t), t._version) for t in sources)
            size = sum(t.nbytes for t in sources)  # a quantised weight counts what it holds
            if used + size > self.limit_bytes:
                self._copies.pop(key, None)
                continue
            used += size
            old = self._copies.get(key)
            if old is None or old[0] != stamp:
                with torch.no_grad():
                    self._copies[key] = (stamp, build([t.detach() for t in sources]))
