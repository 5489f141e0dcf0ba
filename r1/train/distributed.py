"""Data-parallel training with PyTorch FSDP2, applied from outside the single-device model.

`torchrun --nproc_per_node N -m r1 train ...` runs the same command on N processes (gloo on CPU, NCCL on CUDA).
`shard` applies `fully_shard` to every decoder layer, then the root (ZeRO-3 style). `train.batch_size` is the global
batch; each rank takes its 1/N, so the loss curve matches one process on the same batch. Losses, token counts and
expert counts are all-reduced, so every rank applies the same routing-bias update. Only rank 0 writes; checkpoints
gather full tensors (the single-process HF layout, resumable with any N). bf16 autocast keeps fp32 master weights;
FSDP2's `MixedPrecisionPolicy` would halve communication on GPUs and is the next step at scale. Work that is not a
batch (GRPO's sampling, scoring and held-out evaluation) is split with `shard_map` and gathered on every rank.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from r1.model.transformer import Transformer


@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_group: bool = False  # this process group was opened by `init` (so `destroy` may close it)

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init(device: str = "auto") -> DistInfo:
    """Join the torchrun process group if there is one; pick the device (`auto`: CUDA when available)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    owns = world > 1 and not dist.is_initialized()
    if owns:
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    return DistInfo(rank=rank, world=world, local_rank=local_rank, device=dev, owns_group=owns)


def shard(model: Transformer) -> Transformer:
    """FSDP2: one unit per decoder layer and per MTP module, then the root (embedding, final norm, head).

    The MTP module's final norm is called by the root's forward outside the module's own forward, so it is its
    own (tiny) unit: otherwise it would be read while resharded.
    """
    from torch.distributed.fsdp import fully_shard

    for layer in model.mtp:
        fully_shard(layer.shared_head.norm)
    for layer in [*model.model.layers, *model.mtp]:
        fully_shard(layer)
    fully_shard(model)
    return model


def set_gradient_sync(model: nn.Module, sync: bool) -> None:
    """Skip the gradient reduce-scatter on all but the last micro-batch of an accumulated step."""
    if hasattr(model, "set_requires_gradient_sync"):
        model.set_requires_gradient_sync(sync)


def all_reduce_sum(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.enabled:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def broadcast_object(obj, info: DistInfo):
    """Rank 0's `obj` on every rank (for decisions only rank 0 can make, like which checkpoint to resume)."""
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def full_model_state(model: nn.Module, info: DistInfo, everywhere: bool = False) -> dict[str, torch.Tensor]:
    """Full fp32 tensors on the CPU of rank 0 (empty elsewhere; `everywhere`: on every rank, on the model's
    device); a collective when sharded."""
    if not info.enabled:
        return {k: v.detach().cpu() for k, v in model.state_dict().items()}
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=not everywhere))


def shard_map(fn: Callable[[list, int], Sequence[Any]], items: Sequence[Any], info: DistInfo) -> list[Any]:
    """`fn(block, offset)` on this rank's contiguous block of `items` (`offset`: its first index, so per-item seeds
    stay those of one process), then every rank's results in order, on every rank: the work of one process spread
    over all of them (rollouts, held-out samples, log-probabilities)."""
    n = len(items)
    a, b = n * info.rank // info.world, n * (info.rank + 1) // info.world
    mine = list(fn(list(items[a:b]), a)) if b > a else []
    if not info.enabled:
        return mine
    parts: list[Any] = [None] * info.world
    dist.all_gather_object(parts, mine)
    return [x for part in parts for x in part]


def optimizer_tensors(optimizer: torch.optim.Optimizer, info: DistInfo) -> dict[str, torch.Tensor]:
    """Optimizer state as `optim.<param name>.<key>` → full CPU tensor (rank 0); a collective when sharded."""
    from torch.distributed.tensor import DTensor

    out: dict[str, torch.Tensor] = {}
    for group in optimizer.param_groups:
        for name, p in zip(group["names"], group["params"]):
            for key, v in optimizer.state.get(p, {}).items():
                if not isinstance(v, torch.Tensor):
                    continue
                full = v.full_tensor() if isinstance(v, DTensor) else v
                if info.is_main:
                    out[f"optim.{name}.{key}"] = full.detach().cpu().clone()
    return out


def load_optimizer_tensors(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]) -> None:
    """Inverse of `optimizer_tensors`: every rank reads the full tensors and keeps its own shard."""
    from torch.distributed.tensor import DTensor, distribute_tensor

    for group in optimizer.param_groups:
        step_on_param = group.get("fused") or group.get("capturable")
        for name, p in zip(group["names"], group["params"]):
            prefix = f"optim.{name}."
            state = {}
            for key, v in tensors.items():
                if not key.startswith(prefix):
                    continue
                k = key[len(prefix) :]
                if isinstance(p, DTensor) and v.shape == p.shape:
                    v = distribute_tensor(v.to(p.device_mesh.device_type), p.device_mesh, p.placements)
                elif k == "step":
                    v = v.to(p.device if step_on_param else "cpu")
                else:
                    v = v.to(p.device)
                state[k] = v
            if state:
                optimizer.state[p] = state


def destroy(info: DistInfo) -> None:
    if info.owns_group and dist.is_initialized():
        dist.destroy_process_group()
