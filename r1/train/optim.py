"""AdamW with DeepSeek-V3's settings, and the learning-rate schedules.

Weight decay (V3: 0.1) applies to every matrix: attention and MLP/expert projections, the router weights, the
token embedding and the output head. It skips 1-D tensors (RMSNorm gains, the Qwen2 q/k/v biases), as torchtitan
and nanoGPT-style trainers do: decaying a norm gain pulls it toward 0, not toward "no change", and biases carry
too few parameters to overfit. The routing bias `e_score_correction_bias` is a buffer, never in the optimizer:
only the balancing rule moves it (`Transformer.update_router_bias`).

The schedule is a pure function of the step, so resuming needs only the step number, no scheduler state:

    lr(step) = optim.lr × lr_factor(step, ...)
    warm-up   step < W: (step + 1) / W                      (linear; the first step already moves)
    cosine    then min + (1 − min)·½(1 + cos(π·p)),  p = (step − W) / (steps − 1 − W)  ∈ [0, 1]
    wsd       then 1 until the last decay_fraction of the steps, then linear down to min (warm-up-stable-decay)
    constant  then 1
"""

from __future__ import annotations

import math

import torch
from torch import nn

from r1.train.config import OptimSection, ScheduleSection


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups: ≥2-D weights with decay, 1-D gains and biases without. Names are kept for checkpoints."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append((name, p))
    return [
        {"params": [p for _, p in decay], "names": [n for n, _ in decay], "weight_decay": weight_decay},
        {"params": [p for _, p in no_decay], "names": [n for n, _ in no_decay], "weight_decay": 0.0},
    ]


def build_optimizer(model: nn.Module, cfg: OptimSection, distributed: bool = False) -> torch.optim.AdamW:
    """AdamW (β 0.9/0.95, wd 0.1 by default). `impl=auto`: fused kernels on one process, foreach when sharded."""
    impl = cfg.impl
    if impl == "auto":
        impl = "foreach" if distributed else "fused"
    kwargs = {"fused": impl == "fused", "foreach": impl == "foreach"} if impl != "plain" else {"foreach": False}
    if kwargs.get("fused"):
        kwargs.pop("foreach")
    return torch.optim.AdamW(
        param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, **kwargs
    )


def lr_factor(step: int, total: int, sched: ScheduleSection) -> float:
    """Multiplier of the peak lr at optimizer step `step` (0-based) of `total`."""
    W, floor = sched.warmup_steps, sched.min_lr_ratio
    if step < W:
        return (step + 1) / W
    if sched.kind == "constant":
        return 1.0
    if sched.kind == "cosine":
        p = min(1.0, (step - W) / max(1, total - 1 - W))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * p))
    if sched.kind == "wsd":
        decay_steps = round(sched.decay_fraction * total)
        start = max(W, total - decay_steps)
        if step < start or decay_steps == 0:
            return 1.0
        p = min(1.0, (step - start + 1) / max(1, total - start))
        return 1.0 - (1.0 - floor) * p
    raise ValueError(f"unknown schedule kind {sched.kind!r}")


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
