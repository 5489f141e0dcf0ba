"""DeepSeekMoE: shared experts plus fine-grained routed experts, with auxiliary-loss-free balancing.

Routing for one token u (spec §4), in fp32:
    s = sigmoid(W_g u)            (softmax for V2-style configs)
    z = s + b                     b = e_score_correction_bias: used only to *choose* experts
    groups: score each of n_group groups by the sum of its top-2 z (V3; the max for bias-free configs), keep the
            best topk_group groups, mask the rest with −∞
    i_1..i_k = top-k of the masked z;  w_j = s_{i_j} (raw score)  → / Σ w (norm_topk_prob) → × routed_scaling_factor
    MoE(u) = Σ_j w_j Expert_{i_j}(u) + Shared(u)

Dispatch groups the (token, expert) pairs by expert and runs each expert once on all of its tokens: as two
batched GEMMs over per-expert blocks padded to the busiest expert's load, or as a loop over experts when padding
would cost too much or each expert has enough tokens of its own (see `_dispatch`).
Balancing: after each optimizer step the trainer calls `update_bias` with the step's global load counts:
b_i += γ·sign(mean(c) − c_i). The complementary sequence-wise loss α·Σ_i f_i P_i (eqs. 17–20) is computed here.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from r1.model.config import ModelConfig
from r1.model.layers import MLP


class Router(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_experts, self.top_k = cfg.n_routed_experts, cfg.num_experts_per_tok
        self.n_group, self.topk_group = cfg.n_group, cfg.topk_group
        self.scoring = cfg.scoring_func
        self.use_bias = cfg.topk_method == "noaux_tc"
        self.grouped = cfg.n_group > 1 and cfg.topk_method in ("noaux_tc", "group_limited_greedy")
        self.norm_topk = cfg.norm_topk_prob
        self.scale = cfg.routed_scaling_factor
        self.weight = nn.Parameter(torch.empty(self.n_experts, cfg.hidden_size))
        if self.use_bias:
            # fp32, not a parameter: changed by the balancing rule, never by the optimizer
            self.register_buffer("e_score_correction_bias", torch.zeros(self.n_experts, dtype=torch.float32))

    def forward(self, x_ND: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns (scores [N, E] fp32, top-k indices [N, k], top-k weights [N, k] fp32)."""
        dev = x_ND.device.type
        # fp32 even in a bf16-autocast forward (no context to enter on the decode path, where autocast is off)
        with torch.autocast(dev, enabled=False) if torch.is_autocast_enabled(dev) else contextlib.nullcontext():
            logits = F.linear(x_ND.float(), self.weight.float())
        scores = logits.sigmoid() if self.scoring == "sigmoid" else logits.softmax(dim=-1)
        choice = scores + self.e_score_correction_bias if self.use_bias else scores
        with torch.no_grad():
            masked = self._mask_groups(choice.detach()) if self.grouped else choice.detach()
            idx = masked.topk(self.top_k, dim=-1, sorted=False).indices
        weights = scores.gather(1, idx)
        if self.norm_topk:  # as transformers' DeepseekV3 does, even for top-1 (the weight becomes 1)
            weights = weights / (weights.sum(dim=-1, keepdim=True) + 1e-20)
        return scores, idx, weights * self.scale

    def _mask_groups(self, choice: torch.Tensor) -> torch.Tensor:
        N = choice.shape[0]
        g = choice.view(N, self.n_group, -1)
        group_score = g.topk(2, dim=-1).values.sum(-1) if self.use_bias else g.amax(dim=-1)
        keep = group_score.topk(self.topk_group, dim=-1, sorted=False).indices
        group_mask = torch.zeros_like(group_score, dtype=torch.bool).scatter_(1, keep, True)
        return g.masked_fill(~group_mask[..., None], float("-inf")).view(N, -1)


class MoE(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_experts, self.top_k = cfg.n_routed_experts, cfg.num_experts_per_tok
        self.gate = Router(cfg)
        self.experts = nn.ModuleList(MLP(cfg.hidden_size, cfg.moe_intermediate_size) for _ in range(self.n_experts))
        self.shared_experts = (
            MLP(cfg.hidden_size, cfg.moe_intermediate_size * cfg.n_shared_experts) if cfg.n_shared_experts else None
        )
        self.balance_alpha = cfg.seq_aux_loss_alpha
        # filled by forward for the trainer: routed-token counts per expert, and the sequence-wise balance loss
        self.last_counts: torch.Tensor | None = None
        self.last_balance_loss: torch.Tensor | None = None

    def forward(self, x_BTD: torch.Tensor) -> torch.Tensor:
        B, T, D = x_BTD.shape
        x_ND = x_BTD.reshape(-1, D)
        scores, idx_Nk, w_Nk = self.gate(x_ND)  # routing reads x at full precision
        counts = torch.bincount(idx_Nk.flatten(), minlength=self.n_experts)
        dev = x_ND.device.type
        # under autocast, cast the tokens once for the routed and the shared experts alike
        x_in = x_ND.to(torch.get_autocast_dtype(dev)) if torch.is_autocast_enabled(dev) else x_ND
        y_ND = self._dispatch(x_in, idx_Nk, w_Nk, counts.tolist()).to(x_ND.dtype)
        if self.shared_experts is not None:
            y_ND = y_ND + self.shared_experts(x_in)
        self.last_counts = counts
        if self.training and self.balance_alpha > 0:
            self.last_balance_loss = self._sequence_balance_loss(scores.view(B, T, -1), idx_Nk.view(B, T, -1))
        else:
            self.last_balance_loss = None
        return y_ND.view(B, T, D)

    def _dispatch(
        self, x_ND: torch.Tensor, idx_Nk: torch.Tensor, w_Nk: torch.Tensor, counts: list[int]
    ) -> torch.Tensor:
        """Σ_j w_j·Expert_{i_j}(x) per token, each expert running once on all of its tokens. Returns fp32 or wider."""
        expert_P, w_P = idx_Nk.flatten(), w_Nk.flatten()  # pairs p = n·k + j, in token order
        capacity = max(counts)
        pairs = len(expert_P)
        # Few tokens per expert: launch overhead dominates, so run all experts as one batched GEMM over slices padded
        # to the busiest expert's load, unless padding would add more than half the pairs' work (fp32) or double it
        # (16-bit autocast, whose GEMMs run ~4x faster on CPU than fp32 while the loop's per-expert casts and
        # launches do not shrink: at the GRPO benchmark's usual 1.5-1.6x imbalance the padded step is 5% faster).
        # In fp32, from a few thousand pairs on each expert's own GEMM is big enough that the loop wins even when
        # routing is balanced (measured on CPU, whole model). Too few pairs to stack every expert's weights: loop.
        fp32 = x_ND.dtype == torch.float32
        padding_ok = self.n_experts * capacity <= (1.5 if fp32 else 2.0) * pairs
        big = pairs > 2048 and fp32
        if pairs >= self.n_experts and ((padding_ok and not big) or pairs <= 256):
            return self._run_padded(x_ND, expert_P, w_P, counts, capacity)
        return self._run_looped(x_ND, expert_P, w_P, counts)

    def _run_looped(self, x_ND: torch.Tensor, expert_P: torch.Tensor, w_P: torch.Tensor, counts: list[int]):
        """Sort the pairs by expert; each expert runs on its contiguous slice; scatter-add back, weighted."""
        order = expert_P.argsort(stable=True)
        token = order // self.top_k  # which token each sorted pair came from
        # split, not slices: each slice's backward would allocate and add a zero-filled gradient of all of x_sorted
        parts = torch.split(x_ND.index_select(0, token), counts)
        outs = [self.experts[e](part) for e, part in enumerate(parts) if counts[e]]
        y_sorted = torch.cat(outs) * w_P[order, None]
        out = torch.zeros(x_ND.shape, dtype=y_sorted.dtype, device=x_ND.device)
        return out.index_add_(0, token, y_sorted)

    def _run_padded(
        self, x_ND: torch.Tensor, expert_P: torch.Tensor, w_P: torch.Tensor, counts: list[int], capacity: int
    ) -> torch.Tensor:
        """All experts as two batched GEMMs over [E, capacity] rows: expert e's tokens fill block e's first rows.

        The tokens are gathered straight into the padded layout and the outputs gathered straight back in token
        order. Padding rows hold a copy of token 0: their outputs are never gathered, so they get zero gradient
        and add exactly nothing to any weight's gradient — no zero-filled buffer or scatter is needed.
        """
        E, k = self.n_experts, self.top_k
        N, D = x_ND.shape
        P, dev = len(expert_P), x_ND.device
        order = expert_P.argsort(stable=True)
        rank = torch.empty_like(order).index_copy_(0, order, torch.arange(P, device=dev))  # place in sorted order
        starts = torch.tensor([0, *counts[:-1]], device=dev).cumsum(0)
        row_P = expert_P * capacity + (rank - starts[expert_P])  # each pair's row in the padded [E·capacity, D]
        token_of_row = torch.zeros(E * capacity, dtype=torch.long, device=dev)
        token_of_row.index_copy_(0, row_P, torch.arange(P, device=dev) // k)
        x_pad = x_ND.index_select(0, token_of_row).view(E, capacity, D)
        gate = torch.stack([e.gate_proj.weight for e in self.experts])  # [E, I, D]
        up = torch.stack([e.up_proj.weight for e in self.experts])
        down = torch.stack([e.down_proj.weight for e in self.experts])  # [E, D, I]
        gu = torch.bmm(x_pad, torch.cat((gate, up), dim=1).transpose(1, 2).to(x_pad.dtype))  # [E, C, 2I]
        g, u = gu.chunk(2, dim=-1)
        y_pad = torch.bmm(F.silu(g) * u, down.transpose(1, 2).to(x_pad.dtype))  # [E, C, D]
        y_Pk = y_pad.view(E * capacity, D).index_select(0, row_P).view(N, k, D)
        return (y_Pk * w_P.view(N, k, 1)).sum(1)  # fp32 weights: the combination is at least fp32

    def _sequence_balance_loss(self, scores_BTE: torch.Tensor, idx_BTk: torch.Tensor) -> torch.Tensor:
        """α·Σ_i f_i·P_i per sequence, averaged over the batch (V3 report eqs. 17–20)."""
        B, T, E = scores_BTE.shape
        hits = torch.zeros(B, E, device=scores_BTE.device).scatter_add_(
            1, idx_BTk.reshape(B, -1), torch.ones(B, T * self.top_k, device=scores_BTE.device)
        )
        f = hits * (E / (self.top_k * T))  # no gradient: it counts the routing actually taken
        p = (scores_BTE / scores_BTE.sum(-1, keepdim=True)).mean(dim=1)
        return self.balance_alpha * (f * p).sum(-1).mean()

    @torch.no_grad()
    def update_bias(self, counts_E: torch.Tensor, gamma: float) -> None:
        """Auxiliary-loss-free balancing: raise the bias of under-loaded experts, lower it for over-loaded ones."""
        if not self.gate.use_bias or gamma == 0:
            return
        c = counts_E.float().to(self.gate.e_score_correction_bias.device)
        self.gate.e_score_correction_bias.add_(gamma * torch.sign(c.mean() - c))
