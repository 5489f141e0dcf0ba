"""Step metrics: the `metrics.jsonl` log (plus TensorBoard / W&B when asked), FLOP accounting, matmul peak.

`metrics.jsonl` holds one JSON object per line (`"event"`: step, eval, checkpoint, resume); on resume it is cut
back to the checkpoint's step, so it never shows steps twice. Achieved FLOP/s counts model FLOPs (6 × active matmul
parameters per token, plus causal attention and MTP) over wall time, against a matmul peak measured once per process
on this machine in the training dtype: "a fraction of what this box can do", not a datasheet number.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

from r1.io import atomic_write_text
from r1.model.config import ModelConfig

_PEAK_CACHE: dict[tuple[str, str, int], float] = {}


def matmul_peak(device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32, n: int = 768) -> float:
    """FLOP/s of a square GEMM, best of a few short runs; measured once per (device, dtype, threads), then cached.
    Its own generator keeps the global RNG untouched (runs stay bit-reproducible)."""
    device = torch.device(device)
    key = (str(device), str(dtype), torch.get_num_threads())
    if key in _PEAK_CACHE:
        return _PEAK_CACHE[key]
    if device.type == "cuda":
        n = 4096
    g = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(n, n, generator=g).to(device, dtype)
    b = torch.randn(n, n, generator=g).to(device, dtype)
    reps, best = 3, 0.0
    for i in range(5):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(reps):
            a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i:  # the first round warms up
            best = max(best, 2 * n**3 * reps / (time.perf_counter() - t0))
    _PEAK_CACHE[key] = best
    return best


def train_flops_per_token(cfg: ModelConfig, seq_len: int) -> float:
    """Forward + backward FLOPs per token: 6 × active matmul parameters (head included, embedding lookup not)
    plus causal attention (QKᵀ and PV over ~T/2 keys on average), plus each MTP module's block and head."""
    from r1.model.info import model_info

    info = model_info(cfg.replace(num_nextn_predict_layers=0))
    if cfg.is_deepseek:
        attn_per_layer = cfg.num_attention_heads * (cfg.qk_head_dim + cfg.v_head_dim) * seq_len
    else:
        attn_per_layer = cfg.num_attention_heads * 2 * int(cfg.head_dim) * seq_len
    flops = 6 * (info.active - info.embedding) + 3 * attn_per_layer * cfg.num_hidden_layers
    if cfg.num_nextn_predict_layers:
        # one MTP module ≈ an average decoder layer + eh_proj (2d → d) + the shared head
        layer = (info.active - info.embedding - info.head) / max(1, cfg.num_hidden_layers)
        mtp = layer + 2 * cfg.hidden_size**2 + cfg.hidden_size * cfg.vocab_size
        flops += cfg.num_nextn_predict_layers * (6 * mtp + 3 * attn_per_layer)
    return float(flops)


def imbalance(counts: torch.Tensor) -> list[float]:
    """Per MoE layer: max expert load / mean expert load (1.0 = perfectly balanced)."""
    c = counts.float()
    return (c.max(dim=-1).values / c.mean(dim=-1).clamp_min(1e-9)).tolist()


class MetricsLog:
    """Appends JSON lines to `metrics.jsonl` (rank 0 only) and mirrors scalars to TensorBoard and W&B when enabled;
    a missing optional package prints one line and is skipped: logging extras are never required to train."""

    def __init__(
        self,
        run_dir: Path,
        tensorboard: bool = False,
        wandb: dict[str, Any] | None = None,
        config: dict[str, Any] | None = None,
    ) -> None:
        self.path = Path(run_dir) / "metrics.jsonl"
        self._f = self.path.open("a", encoding="utf-8")
        self._tb = None
        self._wandb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(Path(run_dir) / "tensorboard"))
            except ImportError:
                print(
                    "logging.tensorboard: the 'tensorboard' package is not installed; skipping "
                    "(pip install tensorboard)",
                    file=sys.stderr,
                )
        if wandb is not None:
            try:
                import wandb as wb

                opts = dict(wandb)
                # offline unless asked: never block a run on a network or a login prompt
                mode = opts.pop("mode", None) or os.environ.get("WANDB_MODE", "offline")
                self._wandb = wb.init(dir=str(run_dir), mode=mode, config=config, **opts)
            except ImportError:
                print(
                    "logging.wandb: the 'wandb' package is not installed; skipping (pip install wandb)", file=sys.stderr
                )

    def write(self, record: dict[str, Any]) -> None:
        self._f.write(json.dumps(record, default=float) + "\n")
        self._f.flush()
        step = record.get("step", 0)
        scalars = {
            f"{record.get('event', 'step')}/{k}": v
            for k, v in record.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in ("step", "event")
        }
        if self._tb is not None:
            for k, v in scalars.items():
                self._tb.add_scalar(k, v, step)
        if self._wandb is not None:
            self._wandb.log(scalars, step=step)

    def close(self) -> None:
        self._f.close()
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """All intact lines of a metrics file (a line cut by a kill is dropped)."""
    out = []
    if not Path(path).is_file():
        return out
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def truncate_metrics(path: Path, step: int) -> None:
    """Keep only the records up to `step` (resuming from that checkpoint replays what came after)."""
    kept = [r for r in read_metrics(path) if r.get("step", 0) <= step]
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in kept))
