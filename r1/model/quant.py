"""Weight-only int8 / int4 quantisation: the quantised weight the accessor hands out, and its checkpoint format
(docs/architecture.md, "Quantised weights").

W ≈ q·s, symmetric: int8 per output row, int4 per group of 32/64/128 input columns. Full precision stays on the
embeddings, norms, routers, head, MTP modules and MLA's `kv_b_proj` (the absorbed attention contracts W_UK over its
*output* rows, which no weight-only kernel computes; vLLM dequantises it too).

Compute: torch's CPU int kernels on bf16 activations, the only dtype torch 2.13 vectorises them for (AVX512: with
fp32 the int8 kernel took 10-20x an fp32 GEMM). Above `KERNEL_ROWS` rows, or where the kernels are not faster
(`kernel_path`, measured once), the weight is dequantised into one GEMM. `QuantizedWeight` answers the few torch
operations the model applies to weights (`F.linear`, `torch.cat` along rows, `.t()`, `torch.stack`, `@`,
`torch._grouped_mm`); any other gets the dequantised weight.

On disk: compressed-tensors `pack-quantized` (`weight_packed`, `weight_scale`, `weight_shape`), which transformers
and vLLM read; `int-quantized` / `naive-quantized` are read too. `quantization_config`: r1/model/quant_config.py.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from r1.errors import CheckpointError, ConfigError

KERNEL_DTYPE = torch.bfloat16  # the activation dtype torch's CPU int8/int4 kernels are vectorised for
# rows per call up to which the kernels beat dequantise + GEMM, by bits (measured, AVX512, 1 thread: int8 crosses
# over at 32-48 rows; int4, whose dequantisation unpacks nibbles, at ~256)
KERNEL_ROWS = {8: 32, 4: 128}
INT4_GROUPS = (32, 64, 128, 256)  # what `_weight_int4pack_mm_for_cpu` accepts
_INT8_MM = torch.ops.aten._weight_int8pack_mm.default  # x [M, K] (bf16), int8 [N, K], scales [N] -> [M, N]
_INT4_MM = torch.ops.aten._weight_int4pack_mm_for_cpu.default  # x, packed [N, K/2], group, (scale, zero) [K/g, N, 2]
PACKED = "pack-quantized"
DENSE_NAMES = ("kv_b_proj",)  # linears kept dense whatever the checkpoint holds (see above)
INT8_FORMATS = ("int-quantized", "naive-quantized")  # an int8 `weight` and its `weight_scale`
MIXED = "mixed-precision"  # compressed-tensors' top-level format when config groups differ


def format_keys(fmt: str) -> tuple[str, ...]:
    """The checkpoint tensors of one quantised linear in compressed-tensors format `fmt`."""
    return ("weight_packed", "weight_scale", "weight_shape") if fmt == PACKED else ("weight", "weight_scale")


# ============================================================================================ schemes
@dataclass(frozen=True)
class Scheme:
    """How one weight is quantised: `bits` (8 or 4) and `group_size` input columns per scale (None: one scale per
    output row, compressed-tensors' `channel` strategy)."""

    bits: int
    group_size: int | None = None

    def __post_init__(self) -> None:
        if self.bits not in (4, 8):
            raise ConfigError(f"bits={self.bits}: must be 8 or 4")
        if self.group_size is not None and (self.group_size < 1 or self.group_size & (self.group_size - 1)):
            raise ConfigError(f"group_size={self.group_size}: must be a power of two")
        if self.bits == 4 and self.group_size not in INT4_GROUPS:
            raise ConfigError(f"group_size={self.group_size}: 4-bit weights need one of {INT4_GROUPS}")

    @property
    def name(self) -> str:
        return f"int{self.bits}" + (f"-g{self.group_size}" if self.group_size else "-channel")

    def for_width(self, in_features: int) -> Scheme | None:
        """This scheme for a weight `in_features` wide: the group size if it divides the width, else the largest
        smaller one of INT4_GROUPS that does (compressed-tensors and the kernels need whole groups); None if none."""
        if self.group_size is None:
            return self
        for g in sorted((g for g in INT4_GROUPS if g <= self.group_size), reverse=True):
            if in_features % g == 0:
                return Scheme(self.bits, g)
        return None

    def weights_args(self) -> dict[str, Any]:
        """The scheme as a compressed-tensors `weights` block (QuantizationArgs)."""
        return {
            "num_bits": self.bits,
            "type": "int",
            "symmetric": True,
            "strategy": "group" if self.group_size else "channel",
            "group_size": self.group_size,
            "dynamic": False,
            "observer": "minmax",
        }


def parse_scheme(bits: int, group_size: int | None) -> Scheme:
    """The `r1 quantize` choices: 8 bits per output row, or 4 bits in groups (default 128)."""
    if bits == 8 and group_size is not None:
        raise ConfigError(
            f"--group-size {group_size}: 8-bit weights are quantised per output row (the int8 kernel's layout); "
            "groups apply to --bits 4"
        )
    if bits == 4 and group_size is None:
        group_size = 128
    if bits == 4 and group_size not in (32, 64, 128):
        raise ConfigError(f"--group-size {group_size}: must be 32, 64 or 128")
    return Scheme(bits, group_size)


# ============================================================================================ kernels
@functools.cache
def kernel_path() -> tuple[bool, str]:
    """(whether the int kernels run, on bf16 activations; why), measured once per process: the int8 kernel against
    dequantising + an fp32 GEMM for one [1, 1024] x [1024, 1024] product. On AVX512 the kernel won by far; where
    torch has no vectorised path for a CPU, dequantising can win. The choice is said once on stderr."""
    from r1.dtypes import say_once

    gen = torch.Generator().manual_seed(0)
    w = torch.randn(1024, 1024, generator=gen)
    x = torch.randn(1, 1024, generator=gen)
    q = QuantizedWeight.from_float(w, Scheme(8))
    kernel = _best_time(lambda: q._kernel(x))
    dense = _best_time(lambda: F.linear(x, q.dequantize(torch.float32)))
    ok = kernel < dense
    cap = torch.backends.cpu.get_cpu_capability()
    why = (
        f"int8/int4 weights: torch's CPU kernels on bf16 activations ({dense / kernel:.1f}x faster than "
        f"dequantise + GEMM here, {cap})"
        if ok
        else f"int8/int4 weights: dequantise + GEMM (torch's CPU kernels are {kernel / dense:.1f}x slower here, {cap})"
    )
    say_once(why)
    return ok, why


def _best_time(fn: Callable[[], Any], reps: int = 5, inner: int = 10) -> float:
    fn()
    best = math.inf
    for _ in range(reps):
        t = time.perf_counter()
        for _ in range(inner):
            fn()
        best = min(best, time.perf_counter() - t)
    return best


def _int8_kernel_fits(bits: int, group: int, in_features: int) -> bool:
    # the kernel is per row only, and returned garbage (or crashed) for widths that are not a multiple of 16
    return bits == 8 and group == in_features and in_features % 16 == 0


# ============================================================================================ packing
def pack_int4_cpu(q: torch.Tensor) -> torch.Tensor:
    """int8 values in [-8, 7], [N, K] → torch's CPU int4 kernel layout (uint8 [N, K/2]); N % 16 == 0, K even."""
    return torch.ops.aten._convert_weight_to_int4pack_for_cpu((q.to(torch.int32) + 8).contiguous(), 1)


def unpack_int4_cpu(p: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """The inverse of `pack_int4_cpu`: int8 values in [-8, 7], [rows, cols].

    The layout (torch 2.13, checked against its packer in tests/test_quant.py): whole blocks of 64 rows, each
    stored [cols][32] bytes with row j in the low nibble and row j + 32 in the high one; then the last rows % 64
    rows stored [cols][r/2] bytes, row 2i low and row 2i + 1 high.
    """
    flat = p.reshape(-1)
    out = torch.empty(rows, cols, dtype=torch.uint8, device=p.device)
    full = rows // 64 * 64
    if full:
        b = flat[: full * cols // 2].view(rows // 64, cols, 32).transpose(1, 2)  # [blocks, 32, cols]
        v = out[:full].view(rows // 64, 2, 32, cols)
        v[:, 0], v[:, 1] = b & 15, b >> 4
    r = rows - full
    if r:
        t = flat[full * cols // 2 :].view(cols, r // 2).t()  # [r/2, cols]
        v = out[full:].view(r // 2, 2, cols)
        v[:, 0], v[:, 1] = t & 15, t >> 4
    return out.to(torch.int8) - 8


def pack_int32(q: torch.Tensor, bits: int) -> torch.Tensor:
    """compressed-tensors' `pack_to_int32` for 8 and 4 bits: int8 values [N, K] offset to unsigned, 32/bits of
    them per int32 word, value i of a word at bits [bits·i, bits·(i+1)); the last word zero-padded."""
    per = 32 // bits
    N, K = q.shape
    u = (q.to(torch.int64) + (1 << (bits - 1))).view(N, K)
    u = F.pad(u, (0, -K % per)).view(N, -1, per)
    shifts = torch.arange(0, 32, bits, dtype=torch.int64, device=q.device)
    words = (u << shifts).sum(-1)
    return torch.where(words >= 1 << 31, words - (1 << 32), words).to(torch.int32)


def unpack_int32(p: torch.Tensor, bits: int, cols: int) -> torch.Tensor:
    """The inverse of `pack_int32`: int8 values [N, cols]."""
    shifts = torch.arange(0, 32, bits, dtype=torch.int64, device=p.device)
    u = (p.to(torch.int64)[..., None] >> shifts) & ((1 << bits) - 1)
    return (u.view(p.shape[0], -1)[:, :cols] - (1 << (bits - 1))).to(torch.int8)


# ============================================================================================ the weight
class QuantizedWeight:
    """A quantised [N, K] weight, held as its kernel needs it.

    int8: `q` int8 [N, K] and `scale` [N, G] (G = 1 per row, or K / group). int4: `q` uint8 [N, K/2] in the CPU
    kernel's layout and `scale_zeros` [K/group, N, 2] in bf16 (the kernel's (scale, zero) pairs; zero is 0 for a
    symmetric weight). Scales are kept in bf16 when that is exact (r1's quantiser rounds them so: the kernels
    compute with bf16 scales, so the file, the kernels and dequantisation then agree), else also in their own
    dtype. `dtype` is what dequantisation and the fallback GEMM produce (the model's compute dtype).
    """

    def __init__(self, q: torch.Tensor, scale: torch.Tensor, bits: int, group: int, dtype: torch.dtype) -> None:
        N, K = q.shape
        self.shape = (N, K)
        self.bits, self.group, self.dtype = bits, group, dtype
        scale = scale.reshape(N, K // group)
        low = scale.to(KERNEL_DTYPE)
        self.exact_scale = None if torch.equal(low.to(scale.dtype), scale) else scale.clone()
        if bits == 4:
            if N % 16 or group not in INT4_GROUPS or K % group:
                raise CheckpointError(f"int4 weight [{N}, {K}] with group {group}: the CPU kernel needs N % 16 == 0")
            self.q = pack_int4_cpu(q)
            self.scale = torch.stack((low.t(), torch.zeros_like(low.t())), -1).contiguous()  # [G, N, 2]
        else:
            self.q = q.to(torch.int8).contiguous()
            self.scale = (low.view(N) if group == K else low).contiguous()  # the kernel takes [N]
        self.kernel = bits == 4 or _int8_kernel_fits(bits, group, K)
        self._fast: bool | None = None  # whether `linear` runs the kernel (decided at the first call)

    # ---------------------------------------------------------------------------------------- building
    @classmethod
    def from_float(cls, w: torch.Tensor, scheme: Scheme) -> QuantizedWeight:
        q, scale = quantize(w, scheme)
        return cls(q, scale, scheme.bits, scheme.group_size or w.shape[1], w.dtype)

    @classmethod
    def cat(cls, parts: list[QuantizedWeight]) -> QuantizedWeight:
        """The row-wise concatenation (one GEMM for several projections of the same input)."""
        first = parts[0]
        if any((p.bits, p.group, p.shape[1]) != (first.bits, first.group, first.shape[1]) for p in parts):
            raise ValueError("only weights of the same width and scheme concatenate")
        q = torch.cat([p.ints() for p in parts])
        scale = torch.cat([p.scales() for p in parts])
        return cls(q, scale, first.bits, first.group, first.dtype)

    # ---------------------------------------------------------------------------------------- reading
    def ints(self) -> torch.Tensor:
        """The quantised values, int8 [N, K]."""
        return unpack_int4_cpu(self.q, *self.shape) if self.bits == 4 else self.q

    def scales(self) -> torch.Tensor:
        """The scales [N, K / group] in their own dtype."""
        if self.exact_scale is not None:
            return self.exact_scale
        low = self.scale[..., 0].t() if self.bits == 4 else self.scale.view(self.shape[0], -1)
        return low.to(self.dtype)

    def dequantize(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        """q·s as a dense [N, K] tensor in `dtype` (default: the weight's)."""
        N, K = self.shape
        dtype = dtype or self.dtype
        s = self.scales().to(dtype)
        return (self.ints().to(dtype).view(N, -1, self.group) * s[..., None]).view(N, K)

    @property
    def nbytes(self) -> int:
        """Bytes held: values, scales (and exact scales when kept)."""
        extra = self.exact_scale.nbytes if self.exact_scale is not None else 0
        return self.q.nbytes + self.scale.nbytes + extra

    @property
    def device(self) -> torch.device:
        return self.q.device

    @property
    def _version(self) -> int:  # FusedWeights' staleness stamp: a quantised weight is never updated in place
        return 0

    def detach(self) -> QuantizedWeight:
        return self

    def t(self) -> _Transposed:
        return _Transposed(self)

    def apply(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        """Apply a module `_apply` function (device moves, float casts) to the held tensors."""
        self.dtype = fn(torch.empty(0, dtype=self.dtype, device=self.q.device)).dtype
        self.q, self.scale = fn(self.q), fn(self.scale).to(KERNEL_DTYPE)  # the kernels' scales stay bf16
        if self.exact_scale is not None:
            self.exact_scale = fn(self.exact_scale)
        self._fast = None

    def __repr__(self) -> str:
        return f"QuantizedWeight(int{self.bits}, shape={list(self.shape)}, group={self.group})"

    # ---------------------------------------------------------------------------------------- compute
    def linear(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """x Wᵀ (+ bias): the int kernel for a few rows where it is faster, else dequantise + one GEMM."""
        x2 = x if x.dim() == 2 else x.reshape(-1, x.shape[-1])
        fast = self._fast if self._fast is not None else self._decide()
        if fast and x2.shape[0] <= KERNEL_ROWS[self.bits]:
            y = self._kernel(x2)
            if bias is not None:
                y = y + bias
        else:
            y = F.linear(x2, self.dequantize(x.dtype), bias)
        return y if x.dim() == 2 else y.view(*x.shape[:-1], self.shape[0])

    def _decide(self) -> bool:
        self._fast = self.kernel and self.device.type == "cpu" and kernel_path()[0]
        return self._fast

    def _kernel(self, x2: torch.Tensor) -> torch.Tensor:
        """x2 Wᵀ through torch's CPU kernel, on x2 in KERNEL_DTYPE (cast there and back when it is not)."""
        dtype = x2.dtype
        xk = x2 if dtype == KERNEL_DTYPE else x2.to(KERNEL_DTYPE)
        if self.bits == 8:
            y = _INT8_MM(xk, self.q, self.scale)
        else:
            y = _INT4_MM(xk, self.q, self.group, self.scale)
        return y if dtype == KERNEL_DTYPE else y.to(dtype)

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        return _torch_function(func, args, kwargs or {})


class _Transposed:
    """Wᵀ of a quantised weight, as `stack_experts` lays experts out for x @ W."""

    def __init__(self, w: QuantizedWeight) -> None:
        self.w = w

    def t(self) -> QuantizedWeight:
        return self.w

    def contiguous(self) -> _Transposed:
        return self

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        return _torch_function(func, args, kwargs or {})


class QuantizedStack:
    """Per-expert transposed quantised weights [E, K, N] (what torch.stack of `_Transposed` gives): indexing gives
    one expert's, `torch._grouped_mm` runs each expert on its rows."""

    def __init__(self, weights: list[QuantizedWeight]) -> None:
        self.weights = weights

    def __getitem__(self, e: int) -> _Transposed:
        return _Transposed(self.weights[e])

    def __len__(self) -> int:
        return len(self.weights)

    def contiguous(self) -> QuantizedStack:
        return self

    @property
    def nbytes(self) -> int:
        return sum(w.nbytes for w in self.weights)

    def one_token(self, x: torch.Tensor, idx: list[int], w: list[float], down: QuantizedStack) -> torch.Tensor:
        """One token's experts `idx` weighted by `w` (this stack [gate | up], `down` the down projections): x is cast
        to the kernels' dtype once and stays in it from one kernel to the next, instead of a cast in and out around
        each of the 2k products (casts cost as much as a 256-wide int8 product)."""
        first = self.weights[idx[0]]
        fast = first._fast if first._fast is not None else first._decide()
        if not fast or x.shape[0] > KERNEL_ROWS[first.bits]:
            return sum(down.weights[e].linear(_swiglu(self.weights[e].linear(x))) * we for e, we in zip(idx, w))
        xk = x if x.dtype == KERNEL_DTYPE else x.to(KERNEL_DTYPE)
        y = None
        for e, we in zip(idx, w):
            out = down.weights[e]._kernel(_swiglu(self.weights[e]._kernel(xk)))
            y = out.to(x.dtype).mul_(we) if y is None else y.add_(out, alpha=we)
        return y

    def grouped(self, x: torch.Tensor, offs: torch.Tensor) -> torch.Tensor:
        """Rows [offs[e-1], offs[e]) of x through expert e (torch._grouped_mm's contract)."""
        ends = offs.tolist()
        out = x.new_empty(x.shape[0], self.weights[0].shape[0])
        start = 0
        for w, end in zip(self.weights, ends):
            if end > start:
                out[start:end] = w.linear(x[start:end])
            start = end
        return out

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        return _torch_function(func, args, kwargs or {})


_Q = (QuantizedWeight, _Transposed, QuantizedStack)


def _swiglu(gu: torch.Tensor) -> torch.Tensor:
    g, u = gu.chunk(2, dim=-1)
    return F.silu(g) * u


def _torch_function(func, args: tuple, kwargs: dict) -> Any:
    """The torch operations the model applies to weights, on quantised ones (see the module docstring)."""
    if func is F.linear:
        x, w, *rest = args
        bias = rest[0] if rest else kwargs.get("bias")
        if isinstance(w, QuantizedWeight) and not isinstance(x, _Q):
            return w.linear(x, bias)
    elif func in _MATMULS:
        x, w = args
        if isinstance(w, _Transposed) and not isinstance(x, _Q):
            return w.w.linear(x)
    elif func is getattr(torch, "_grouped_mm", None):
        x, w = args[:2]
        if isinstance(w, QuantizedStack) and not isinstance(x, _Q):
            return w.grouped(x, kwargs["offs"])
    elif func is torch.cat:
        parts = list(args[0])
        dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
        if dim == 0 and all(isinstance(p, QuantizedWeight) for p in parts):
            return QuantizedWeight.cat(parts)
    elif func is torch.stack:
        parts = list(args[0])
        dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
        if dim == 0 and all(isinstance(p, _Transposed) for p in parts):
            return QuantizedStack([p.w for p in parts])
    return func(*_dense(args), **_dense(kwargs))


_MATMULS = (torch.matmul, torch.Tensor.matmul, torch.Tensor.__matmul__)


def _dense(obj: Any) -> Any:
    """Quantised weights replaced by their dequantised tensors (any operation without a quantised form)."""
    if isinstance(obj, QuantizedWeight):
        return obj.dequantize()
    if isinstance(obj, _Transposed):
        return obj.w.dequantize().t()
    if isinstance(obj, QuantizedStack):
        return torch.stack([w.dequantize().t() for w in obj.weights])
    if isinstance(obj, (list, tuple)):
        return type(obj)(_dense(o) for o in obj)
    if isinstance(obj, dict):
        return {k: _dense(v) for k, v in obj.items()}
    return obj


def quantize(w: torch.Tensor, scheme: Scheme) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric min-max quantisation of a [N, K] weight: (int8 values, scales [N, K / group] in w's dtype).

    s = max|w| / (2^(bits-1) − ½) over each row or group (compressed-tensors' min-max observer: the range
    [−2^(bits-1), 2^(bits-1) − 1] spans max|w| on both sides to within half a step), rounded to bf16, then
    q = clamp(round(w / s)).
    """
    N, K = w.shape
    g = scheme.group_size or K
    if K % g:
        raise ValueError(f"weight width {K} is not a multiple of the group size {g}")
    top = 1 << (scheme.bits - 1)
    wg = w.detach().float().reshape(N, K // g, g)
    amax = wg.abs().amax(-1)
    scale = (amax / (top - 0.5)).to(KERNEL_DTYPE).float()
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))  # an all-zero group: any scale gives q = 0
    q = torch.round(wg / scale[..., None]).clamp_(-top, top - 1).to(torch.int8).view(N, K)
    return q, scale.to(w.dtype)


# ============================================================================================ the module
class QuantizedLinear(nn.Module):
    """A linear whose weight is a `QuantizedWeight`; its state dict is the compressed-tensors layout.

    Built empty (`weight` None) to load a checkpoint into: `state_dict()` then lists the tensors with their shapes
    on the meta device, and `load_state_dict` builds the weight from them.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        scheme: Scheme,
        bias: bool = False,
        dtype: torch.dtype = torch.float32,
        fmt: str = PACKED,
    ) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.scheme, self.format, self.dtype = scheme, fmt, dtype
        self.weight: QuantizedWeight | None = None
        if bias:
            self.bias = nn.Parameter(torch.empty(out_features, dtype=dtype, device="meta"))
        else:
            self.register_parameter("bias", None)

    @classmethod
    def from_linear(cls, lin: nn.Linear, scheme: Scheme) -> QuantizedLinear:
        w = lin.weight.detach()
        m = cls(lin.in_features, lin.out_features, scheme, lin.bias is not None, w.dtype)
        m.weight = QuantizedWeight.from_float(w, scheme)
        if lin.bias is not None:
            m.bias = nn.Parameter(lin.bias.detach().clone(), requires_grad=False)
        return m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weight.linear(x, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, {self.scheme.name}"

    def _apply(self, fn, recurse=True):
        super()._apply(fn, recurse)
        if self.weight is not None:
            self.weight.apply(fn)
        return self

    # ---------------------------------------------------------------------------------------- state dict
    def compressed(self) -> dict[str, torch.Tensor]:
        """The checkpoint tensors (meta tensors of the right shapes while the weight is not loaded)."""
        N, K = self.out_features, self.in_features
        bits, G = self.scheme.bits, K // (self.scheme.group_size or K)
        if self.weight is None:
            meta = {"device": "meta"}
            if self.format == PACKED:
                return {
                    "weight_packed": torch.empty(N, math.ceil(K * bits / 32), dtype=torch.int32, **meta),
                    "weight_scale": torch.empty(N, G, dtype=self.dtype, **meta),
                    "weight_shape": torch.empty(2, dtype=torch.int64, **meta),
                }
            return {
                "weight": torch.empty(N, K, dtype=torch.int8, **meta),
                "weight_scale": torch.empty(N, G, dtype=self.dtype, **meta),
            }
        q, scale = self.weight.ints(), self.weight.scales()
        if self.format == PACKED:
            return {"weight_packed": pack_int32(q, bits), "weight_scale": scale, "weight_shape": torch.tensor([N, K])}
        return {"weight": q.clone(), "weight_scale": scale}

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        super()._save_to_state_dict(destination, prefix, keep_vars)
        for key, t in self.compressed().items():
            destination[prefix + key] = t

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing, unexpected, errors):
        keys = [prefix + k for k in self.compressed()]
        absent = [k for k in keys if k not in state_dict]
        if absent:
            missing.extend(absent)
        else:
            t = {k.removeprefix(prefix): state_dict[k] for k in keys}
            self.weight = weight_from_checkpoint(t, self.scheme, self.format, prefix.rstrip("."))
            self.dtype = self.weight.dtype
        rest = {k: v for k, v in state_dict.items() if k not in keys}
        super()._load_from_state_dict(rest, prefix, local_metadata, strict, missing, unexpected, errors)


def weight_from_checkpoint(t: dict[str, torch.Tensor], scheme: Scheme, fmt: str, name: str) -> QuantizedWeight:
    """A QuantizedWeight from one module's checkpoint tensors, shapes checked (CheckpointError naming the tensor)."""
    q = dequantizable(t, scheme, fmt, name)
    scale = t["weight_scale"]
    return QuantizedWeight(q, scale, scheme.bits, scheme.group_size or q.shape[1], scale.dtype)


def checked_shape(t: dict[str, torch.Tensor], scheme: Scheme, fmt: str, name: str) -> tuple[int, int]:
    """The [N, K] weight one module's checkpoint tensors hold, after checking their shapes and dtypes agree
    (CheckpointError naming the tensor)."""
    scale = t["weight_scale"]
    if fmt == PACKED:
        packed, shape = t["weight_packed"], t["weight_shape"]
        if packed.dtype != torch.int32:
            raise CheckpointError(f"{name}.weight_packed: dtype {packed.dtype}, expected int32")
        if shape.numel() != 2 or shape.is_floating_point():
            raise CheckpointError(f"{name}.weight_shape: {shape.tolist()}, expected [out_features, in_features]")
        N, K = (int(v) for v in shape.tolist())
        if tuple(packed.shape) != (N, math.ceil(K * scheme.bits / 32)):
            raise CheckpointError(
                f"{name}.weight_packed: shape {tuple(packed.shape)} does not hold a [{N}, {K}] weight of "
                f"{scheme.bits}-bit values"
            )
    else:
        if t["weight"].dtype != torch.int8 or t["weight"].dim() != 2:
            raise CheckpointError(f"{name}.weight: {t['weight'].dtype} {tuple(t['weight'].shape)}, expected int8 2-D")
        N, K = t["weight"].shape
    G = K // (scheme.group_size or K)
    if scale.numel() != N * G or not scale.is_floating_point():
        raise CheckpointError(f"{name}.weight_scale: shape {tuple(scale.shape)}, expected [{N}, {G}] (floating)")
    return N, K


def dequantizable(t: dict[str, torch.Tensor], scheme: Scheme, fmt: str, name: str) -> torch.Tensor:
    """The int8 values [N, K] of one module's checkpoint tensors (shapes checked)."""
    N, K = checked_shape(t, scheme, fmt, name)
    return unpack_int32(t["weight_packed"], scheme.bits, K) if fmt == PACKED else t["weight"]


def dense_weight(t: dict[str, torch.Tensor], scheme: Scheme, fmt: str, name: str) -> torch.Tensor:
    """One module's checkpoint tensors dequantised to a dense [N, K] weight in the scales' dtype."""
    q = dequantizable(t, scheme, fmt, name)
    N, K = q.shape
    s = t["weight_scale"].reshape(N, -1)
    return (q.to(s.dtype).view(N, s.shape[1], -1) * s[..., None]).view(N, K)


# ============================================================================================ whole models
@dataclass
class Quantized:
    """What `quantize_model` did: module name → scheme for the quantised linears, name → reason for the rest."""

    schemes: dict[str, Scheme]
    kept: dict[str, str]


def quantize_model(model: nn.Module, scheme: Scheme) -> Quantized:
    """Replace the main layers' linears with quantised ones, in place (the rest stays; see the module docstring).

    A group size that does not divide a weight's width falls back to the largest smaller one that does; the
    routed and shared experts all get the one group size that divides all their widths, because transformers
    dequantises fused experts with a single scheme.
    """
    cfg = model.config
    widths = [cfg.hidden_size, cfg.moe_intermediate_size, cfg.moe_intermediate_size * max(cfg.n_shared_experts, 1)]
    expert_scheme = scheme
    for w in widths:
        expert_scheme = expert_scheme.for_width(w) if expert_scheme is not None else None
    schemes, kept = {}, {}
    for name, lin in _linears(model):
        why = kept_dense(name, model)
        s = expert_scheme if _is_expert(name) else scheme.for_width(lin.in_features)
        if s is None and not why:
            why = f"width {lin.in_features} is not a multiple of {INT4_GROUPS[0]}"
        if s is not None and s.bits == 4 and lin.out_features % 16:
            why = f"{lin.out_features} rows: the int4 kernel needs a multiple of 16"
        if why:
            kept[name] = why
            continue
        set_module(model, name, QuantizedLinear.from_linear(lin, s))
        schemes[name] = s
    return Quantized(schemes, kept)


def _is_expert(name: str) -> bool:
    return ".mlp.experts." in name or ".mlp.shared_experts." in name


def _linears(model: nn.Module) -> Iterator[tuple[str, nn.Linear]]:
    """The main layers' nn.Linear modules (HF names: `model.layers.N.…`); MTP and the head are not among them."""
    for name, m in model.model.layers.named_modules(prefix="model.layers"):
        if isinstance(m, nn.Linear):
            yield name, m


def kept_dense(name: str, model: nn.Module) -> str | None:
    if name.rsplit(".", 1)[-1] in DENSE_NAMES and model.config.is_deepseek:
        return "MLA reads kv_b_proj as per-head matrices (absorbed attention); kept dense"
    return None


def set_module(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent), child, module)


def quantized_modules(model: nn.Module) -> dict[str, QuantizedLinear]:
    """Every quantised linear of a model, by module name."""
    return {n: m for n, m in model.named_modules() if isinstance(m, QuantizedLinear)}


def weight_bytes(model: nn.Module) -> dict[str, int]:
    """Bytes of the quantised linears as held (values + scales) and what the same weights take in fp32."""
    mods = quantized_modules(model).values()
    return {
        "quantized": sum(m.weight.nbytes for m in mods),
        "fp32": sum(4 * m.in_features * m.out_features for m in mods),
        "modules": len(mods),
    }
