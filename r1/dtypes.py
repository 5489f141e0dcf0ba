"""Which floating-point type a model computes in: `--dtype` / `train.dtype`, and what `auto` picks, the same for every
entry point (`inference_dtype`, `autocast_dtype`).

`auto` for inference, given the checkpoint's dtype (FP8 counts as bf16): on CUDA bf16 where supported, else the
checkpoint's fp16, else fp32. On CPU a fp32 checkpoint stays fp32; a 16-bit one computes in bf16 only with native
bf16 matmuls (`native_bf16`), else fp32 (without them a bf16 GEMM runs ~100x slower, AVX2). fp16 is never chosen on a
CPU: on an AVX512-BF16 EPYC an fp16 matmul ran ~60x slower than fp32. `auto` for training: bf16 autocast where
`native_bf16` holds, else fp32. Native bf16 pays only at width (2-3x on R1-Distill-1.5B GEMVs, 3x slower at 256
wide), so the tiny presets decode slower in bf16; `--dtype float32` keeps them fast. Each decision is said once.
"""

from __future__ import annotations

import os
import sys
import time
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from r1.errors import ConfigError, UserError

if TYPE_CHECKING:  # torch is imported where it is used: the CLI imports this module for its choices alone
    import torch

DTYPE_CHOICES = ("auto", "float32", "bfloat16", "float16")  # what --dtype accepts
DTYPE_HELP = "compute dtype (default auto: bfloat16 for 16-bit checkpoints where the CPU has native bf16, else float32)"
_ALIASES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16", "half": "float16"}
# get_cpu_capability() values whose CPUs cannot have native bf16 matmuls (the rest still have to pass the probe)
_NO_BF16_CAPABILITY = {"DEFAULT", "NO AVX", "AVX2", "VSX", "Z VECTOR"}
_PROBE_N = 256  # probe GEMM size: ~0.3 ms in fp32 on one AVX512 core, ~30 ms in bf16 on an AVX2 one
_said: set[str] = set()


def parse_dtype(value: str | torch.dtype | None, what: str = "--dtype") -> torch.dtype | None:
    """A dtype from its name ('float32', 'bf16', …, or a torch.dtype); None for 'auto' (or None)."""
    import torch

    floats = (torch.float32, torch.bfloat16, torch.float16)
    if value is None or value in floats:
        return value
    if isinstance(value, str):
        name = value.strip().lower().removeprefix("torch.")
        if name == "auto":
            return None
        name = _ALIASES.get(name, name)
        if name in DTYPE_CHOICES:
            return getattr(torch, name)
    raise UserError(f"{what} {value!r}: must be one of {', '.join(DTYPE_CHOICES)}")


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def say_once(message: str) -> None:
    """One line on stderr, the first time this message comes up in the process."""
    if message not in _said:
        _said.add(message)
        print(f"r1: {message}", file=sys.stderr, flush=True)


@cache
def native_bf16(device_type: str = "cpu") -> tuple[bool, str]:
    """(whether bf16 matmuls run natively on this device, the reason in words); measured once per process.

    CPU: get_cpu_capability() must name a vector unit that can have bf16 (AVX512, SVE), and a timed probe must
    find a bf16 GEMM faster than an fp32 one of the same size (AVX512 without AVX512-BF16/AMX converts to fp32 and
    is not faster; AVX2 is ~100x slower).
    """
    import torch

    if device_type == "cuda":
        ok = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        return ok, "the GPU supports bf16" if ok else "the GPU has no bf16 support"
    if device_type != "cpu":
        return False, f"no bf16 check for device {device_type!r}"
    cap = torch.backends.cpu.get_cpu_capability()
    if cap in _NO_BF16_CAPABILITY:
        return False, f"CPU capability {cap}: no native bf16 matmuls"
    t32, t16 = _probe_seconds(torch.float32), _probe_seconds(torch.bfloat16)
    speed = t32 / t16
    if speed <= 1.0:
        return False, f"CPU {cap}, but a {_PROBE_N}² bf16 matmul ran at {speed:.2g}x the speed of fp32"
    return True, f"CPU {cap} with native bf16 (a {_PROBE_N}² bf16 matmul ran {speed:.2g}x faster than fp32)"


def _probe_seconds(dtype: torch.dtype, n: int = _PROBE_N, repeats: int = 5) -> float:
    """Best time of one n×n matmul; its own generator, so probing never moves the global RNG."""
    import torch

    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, n, generator=g).to(dtype), torch.randn(n, n, generator=g).to(dtype)
    a @ b  # first call: kernel selection, page faults
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return best


def checkpoint_dtype(path: str | os.PathLike) -> torch.dtype:
    """The floating dtype most of a checkpoint's weights are stored in (by element count), read from the
    safetensors headers alone; FP8 counts as bf16 (what loading dequantises it to). float32 if none is found."""
    import torch
    from safetensors import safe_open

    by_name = {
        "F64": torch.float32,
        "F32": torch.float32,
        "BF16": torch.bfloat16,
        "F16": torch.float16,
        "F8_E4M3": torch.bfloat16,
        "F8_E5M2": torch.bfloat16,
    }

    path = Path(path)
    files = [path] if path.is_file() else sorted(path.glob("*.safetensors"))
    counts: dict[torch.dtype, int] = {}
    for f in files:
        try:
            with safe_open(str(f), framework="pt") as sf:
                for key in sf.keys():  # noqa: SIM118 (safe_open is not a dict)
                    if key.endswith(("_scale_inv", "e_score_correction_bias")):
                        continue
                    s = sf.get_slice(key)
                    dtype = by_name.get(s.get_dtype())
                    if dtype is not None:
                        numel = 1
                        for d in s.get_shape():
                            numel *= d
                        counts[dtype] = counts.get(dtype, 0) + numel
        except Exception:  # unreadable files are reported by the loader itself, with the file named
            continue
    return max(counts, key=counts.__getitem__) if counts else torch.float32


def inference_dtype(
    requested: str | torch.dtype | None, stored: torch.dtype, device: str | torch.device = "cpu"
) -> torch.dtype:
    """The dtype to load and run a checkpoint stored in `stored` with; `requested` None/'auto' decides by device."""
    import torch

    device_type = torch.device(device).type
    want = parse_dtype(requested)
    if want is not None:
        if want == torch.float16 and device_type == "cpu":
            say_once(
                "float16 on CPU: there are no native fp16 matmul kernels on most CPUs, expect it to be much "
                "slower than float32 (--dtype auto picks what this CPU runs fast)"
            )
        return want
    stored_name = dtype_name(stored)
    if device_type == "cuda":
        ok, why = native_bf16("cuda")
        choice = torch.bfloat16 if ok else (torch.float16 if stored == torch.float16 else torch.float32)
    elif stored == torch.float32 or device_type != "cpu":
        choice, why = stored, "as stored"
    else:
        ok, why = native_bf16("cpu")
        choice = torch.bfloat16 if ok else torch.float32
    say_once(f"--dtype auto: computing in {dtype_name(choice)} (checkpoint {stored_name}; {why})")
    return choice


def autocast_dtype(value: str, device: str | torch.device = "cpu") -> torch.dtype | None:
    """The autocast dtype of `train.dtype` (None: plain fp32). Master weights and optimizer state stay fp32."""
    import torch

    names = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
    if value in names:
        return names[value]
    if value != "auto":
        raise ConfigError(f"train.dtype={value!r}: must be one of auto, fp32, bf16, fp16")
    device_type = torch.device(device).type
    ok, why = native_bf16(device_type)
    say_once(f"train.dtype=auto: {'bf16 autocast' if ok else 'fp32'} ({why})")
    return torch.bfloat16 if ok else None
