"""Expert dispatch kernels: Σ_j w_j·Expert_{i_j}(x) for routed (token, expert) pairs, each expert once on its tokens.

The pairs p = n·k + j come in token order (`expert_P` [N·k], `w_P` [N·k]); every kernel returns [N, D]; the caller
(`MoE`) picks one from the pairs' count and imbalance (docs/architecture.md, "Expert dispatch"): `looped` (one call
per expert on its sorted slice), `padded` (two batched GEMMs over slices padded to the busiest expert), `grouped`
(`torch._grouped_mm`, no padding), `one_token` (batch-1 decoding) and `gathered` (a few tokens: every pair's weights
gathered into two batched GEMMs). Stacked weights are laid out for x @ W: gate|up [E, D, 2I], down [E, I, D].
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

GROUPED_MM = hasattr(torch, "_grouped_mm")


def grouped_applies(x: torch.Tensor) -> bool:
    """Whether `grouped` runs for these tokens (the CPU grouped GEMM supports fp32 and bf16)."""
    return GROUPED_MM and x.device.type == "cpu" and x.dtype in (torch.float32, torch.bfloat16)


def stack_experts(w: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-expert [gate, up, down, gate, up, down, …] weights as [E, D, 2I] gate|up and [E, I, D] down."""
    gate, up, down = w[0::3], w[1::3], w[2::3]
    gu = torch.stack([torch.cat((g, u)).t() for g, u in zip(gate, up)]).contiguous()
    return gu, torch.stack([d.t() for d in down]).contiguous()


def looped(
    x_ND: torch.Tensor,
    expert_P: torch.Tensor,
    w_P: torch.Tensor,
    counts: list[int],
    top_k: int,
    experts: Sequence[Callable[[torch.Tensor], torch.Tensor]],
) -> torch.Tensor:
    """Sort the pairs by expert; each expert runs on its contiguous slice; scatter-add back, weighted."""
    order = expert_P.argsort(stable=True)
    token = order // top_k  # which token each sorted pair came from
    # split, not slices: each slice's backward would allocate and add a zero-filled gradient of all of x_sorted
    parts = torch.split(x_ND.index_select(0, token), counts)
    outs = [experts[e](part) for e, part in enumerate(parts) if counts[e]]
    y_sorted = torch.cat(outs) * w_P[order, None]
    out = torch.zeros(x_ND.shape, dtype=y_sorted.dtype, device=x_ND.device)
    return out.index_add_(0, token, y_sorted)


def padded(
    x_ND: torch.Tensor,
    expert_P: torch.Tensor,
    w_P: torch.Tensor,
    counts: list[int],
    top_k: int,
    w_gu: torch.Tensor,
    w_down: torch.Tensor,
) -> torch.Tensor:
    """All experts as two batched GEMMs over [E, capacity] rows: expert e's tokens fill block e's first rows.

    The tokens are gathered straight into the padded layout and the outputs gathered straight back in token
    order. Padding rows hold a copy of token 0: their outputs are never gathered, so they get zero gradient
    and add exactly nothing to any weight's gradient — no zero-filled buffer or scatter is needed.
    Returns fp32 or wider (the routing weights are fp32).
    """
    E, k, capacity = w_gu.shape[0], top_k, max(counts)
    N, D = x_ND.shape
    P, dev = len(expert_P), x_ND.device
    order = expert_P.argsort(stable=True)
    rank = torch.empty_like(order).index_copy_(0, order, torch.arange(P, device=dev))  # place in sorted order
    starts = torch.tensor([0, *counts[:-1]], device=dev).cumsum(0)
    row_P = expert_P * capacity + (rank - starts[expert_P])  # each pair's row in the padded [E·capacity, D]
    token_of_row = torch.zeros(E * capacity, dtype=torch.long, device=dev)
    token_of_row.index_copy_(0, row_P, torch.arange(P, device=dev) // k)
    x_pad = x_ND.index_select(0, token_of_row).view(E, capacity, D)
    g, u = torch.bmm(x_pad, w_gu.to(x_pad.dtype)).chunk(2, dim=-1)  # [E, C, I] each
    y_pad = torch.bmm(F.silu(g) * u, w_down.to(x_pad.dtype))  # [E, C, D]
    y_Pk = y_pad.view(E * capacity, D).index_select(0, row_P).view(N, k, D)
    return (y_Pk * w_P.view(N, k, 1)).sum(1)


def grouped(
    x_ND: torch.Tensor, expert_P: torch.Tensor, w_P: torch.Tensor, counts_E: torch.Tensor, top_k: int,
    w_gu: torch.Tensor, w_down: torch.Tensor,
) -> torch.Tensor:  # fmt: skip
    """One grouped GEMM per projection over the expert-sorted tokens, each expert on its own rows (`counts_E` [E]:
    pairs per expert). Returns x's dtype."""
    order = expert_P.argsort(stable=True)
    token = order // top_k
    x_sorted = x_ND.index_select(0, token)
    offs = counts_E.cumsum(0).to(torch.int32)
    g, u = torch._grouped_mm(x_sorted, w_gu, offs=offs).chunk(2, dim=-1)
    y_sorted = torch._grouped_mm(F.silu(g) * u, w_down, offs=offs)
    y_sorted = y_sorted * w_P[order, None].to(y_sorted.dtype)
    return torch.zeros_like(x_ND).index_add_(0, token, y_sorted)


def one_token(
    x_1D: torch.Tensor,
    idx: list[int],
    w: list[float],
    stacks: tuple[torch.Tensor, torch.Tensor] | None,
    experts: Sequence[Callable[[torch.Tensor], torch.Tensor]],
) -> torch.Tensor:
    """One token's experts `idx` weighted by `w`, from the stacked weights when there are any, else the modules."""
    if stacks is not None and hasattr(stacks[0], "one_token"):  # quantised experts (r1/model/quant.py)
        return stacks[0].one_token(x_1D, idx, w, stacks[1])
    y = None
    for e, we in zip(idx, w):
        if stacks is not None:
            g, u = (x_1D @ stacks[0][e]).chunk(2, dim=-1)
            out = (F.silu(g) * u) @ stacks[1][e]
        else:
            out = experts[e](x_1D)
        y = out * we if y is None else y + out * we
    return y


def expert_bytes(stacks: tuple[torch.Tensor, torch.Tensor]) -> int:
    """Bytes of one expert's weights in the stacks (what `gathered` copies per pair)."""
    return sum(t[0].numel() * t.element_size() for t in stacks)


def gathered(
    x_ND: torch.Tensor, idx_Nk: torch.Tensor, w_Nk: torch.Tensor, w_gu: torch.Tensor, w_down: torch.Tensor
) -> torch.Tensor:
    """Each pair's expert on its token, the pairs' weights gathered from the stacks: [P, D, 2I] and [P, I, D]. Copies
    P experts' weights, so it pays only for a few pairs, where launching per expert costs more. Returns x's dtype."""
    N, k = idx_Nk.shape
    e = idx_Nk.reshape(-1)
    x_P1D = x_ND.repeat_interleave(k, 0)[:, None]
    g, u = torch.bmm(x_P1D, w_gu.index_select(0, e)).chunk(2, dim=-1)
    y = torch.bmm(F.silu(g) * u, w_down.index_select(0, e))  # [P, 1, D]
    return (y.view(N, k, -1) * w_Nk[..., None].to(y.dtype)).sum(1)
