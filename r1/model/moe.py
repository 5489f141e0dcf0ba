"""DeepSeekMoE: shared experts plus fine-grained routed experts, with auxiliary-loss-free balancing.

Routing for one token u (spec §4), in fp32:
    s = sigmoid(W_g u)            (softmax for V2-style configs)
    z = s + b                     b = e_score_correction_bias: used only to *choose* experts
    groups: score each of n_group groups by the sum of its top-2 z (V3; the max for bias-free configs), keep the
            best topk_group groups, mask the rest with −∞
    i_1..i_k = top-k of the masked z;  w_j = s_{i_j} (raw score)  → / Σ w (norm_topk_prob) → × routed_scaling_factor
    MoE(u) = Σ_j w_j Expert_{i_j}(u) + Shared(u)

Dispatch runs each expert once on all of its tokens (`_dispatch` picks padded batched GEMMs or a loop; the kernels
are in `kernels/experts.py`; docs/architecture.md, "Expert dispatch"); `decode` adds a grouped GEMM, no gradients.
Balancing: after each optimizer step the trainer calls `update_bias` with the step's global load counts:
b_i += γ·sign(mean(c) − c_i). The complementary sequence-wise loss α·Σ_i f_i P_i (eqs. 17–20) is computed here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from r1.model.config import ModelConfig
from r1.model.kernels import experts as dispatch
from r1.model.layers import MLP
from r1.model.weights import FusedWeights, Fusion, weight

# `MoE.decode` on a few tokens (speculative verification, small batches) gathers each (token, expert) pair's
# weights into one batched GEMM while that copy stays this small: the `tiny` preset's experts (1.5 MB a layer) stay
# in cache, and there the copy is cheaper than launching every expert of a grouped GEMM (measured on CPU up to 16
# pairs); the `small` preset's (12.5 MB a layer) come from memory, where copying them costs more than it saves.
GATHER_MAX_BYTES = 1 << 20


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
            logits = F.linear(x_ND.float(), weight(self).float())
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
            return self._run_padded(x_ND, expert_P, w_P, counts)
        return self._run_looped(x_ND, expert_P, w_P, counts)

    def _run_looped(self, x_ND: torch.Tensor, expert_P: torch.Tensor, w_P: torch.Tensor, counts: list[int]):
        return dispatch.looped(x_ND, expert_P, w_P, counts, self.top_k, self.experts)

    def _run_padded(
        self, x_ND: torch.Tensor, expert_P: torch.Tensor, w_P: torch.Tensor, counts: list[int], stacks=None
    ) -> torch.Tensor:
        """The padded kernel on the stacked weights: built here (inside the graph) unless decoding passes its copy."""
        if stacks is None:
            gate = torch.stack([weight(e.gate_proj) for e in self.experts])  # [E, I, D]
            up = torch.stack([weight(e.up_proj) for e in self.experts])
            down = torch.stack([weight(e.down_proj) for e in self.experts])  # [E, D, I]
            stacks = torch.cat((gate, up), dim=1).transpose(1, 2), down.transpose(1, 2)
        return dispatch.padded(x_ND, expert_P, w_P, counts, self.top_k, *stacks)

    def fusions(self) -> Iterator[Fusion]:
        """The `FusedWeights` entries `decode` reads: every routed expert stacked for batched GEMMs, and the shared
        experts' own."""
        yield (
            self,
            [weight(p) for e in self.experts for p in (e.gate_proj, e.up_proj, e.down_proj)],
            dispatch.stack_experts,
        )
        if self.shared_experts is not None:
            yield from self.shared_experts.fusions()

    def decode(self, x: torch.Tensor, fused: FusedWeights | None = None) -> torch.Tensor:
        """MoE for inference on x [..., D]: the model's routing; no counts or balance loss are recorded.

        One token runs its k experts directly; a few (small batches, speculative verification) of a model with small
        experts gather their pairs' stacked weights into two batched GEMMs (see GATHER_MAX_BYTES). On CPU the
        expert-sorted tokens of a bigger step run as one grouped GEMM per projection over the stacked experts
        (each expert on its own rows: padding every expert to the busiest one's load spent ~3x the FLOPs at
        decode's few tokens per expert, 10% of a step). Elsewhere: padded batched GEMMs while padding costs at most
        4x the real work, else the loop. Without stacked copies in `fused`: the loop.
        """
        x_ND = x if x.dim() == 2 else x.reshape(-1, x.shape[-1])  # a decode step's [B, D] as it is
        _, idx, w = self.gate(x_ND)
        stacks = fused.get(self) if fused is not None else None
        if x_ND.shape[0] == 1:
            y = dispatch.one_token(x_ND, idx[0].tolist(), w[0].tolist(), stacks, self.experts)
        elif gatherable(stacks) and idx.numel() * expert_bytes(self, stacks) <= GATHER_MAX_BYTES:
            y = dispatch.gathered(x_ND, idx, w, *stacks)
        else:
            flat, w_P = idx.flatten(), w.flatten()
            counts_E = torch.bincount(flat, minlength=self.n_experts)
            grouped = dispatch.grouped_applies(x_ND)
            counts = counts_E.tolist()
            if stacks is None or (not grouped and self.n_experts * max(counts) > 4 * len(flat)):
                y = self._run_looped(x_ND, flat, w_P, counts).to(x_ND.dtype)  # fp32 with 16-bit x (fp32 weights)
            elif grouped:
                y = dispatch.grouped(x_ND, flat, w_P, counts_E, self.top_k, *stacks)
            else:
                y = self._run_padded(x_ND, flat, w_P, counts, stacks).to(x_ND.dtype)
        if self.shared_experts is not None:
            y = y + self.shared_experts.decode(x_ND, fused)
        return y if x.dim() == 2 else y.view(x.shape)

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


def gatherable(stacks: tuple[torch.Tensor, torch.Tensor] | None) -> bool:
    """Whether there are stacked expert tensors to gather from (quantised stacks, r1/model/quant.py, run each expert
    through its int kernel instead: gathering would dequantise every expert)."""
    return stacks is not None and isinstance(stacks[0], torch.Tensor)


def expert_bytes(moe: MoE, stacks: tuple[torch.Tensor, torch.Tensor]) -> int:
    """One expert's bytes in `stacks`, remembered per dtype (asked at every few-token decode step)."""
    key = stacks[0].dtype
    hit = moe.__dict__.get("_expert_bytes")
    if hit is None or hit[0] != key:
        hit = moe.__dict__["_expert_bytes"] = (key, dispatch.expert_bytes(stacks))
    return hit[1]
