"""Shared prompts: score many completions of a few prompts in one forward that runs each prompt once.

The batch is two token streams flattened into one row [1, N]: prompts [P, Tp] (each distinct prompt once) and
completions [B, Tc] (row b continues prompt `row_prompt[b]`). Token-wise work runs once on all N tokens; a completion
token attends to its prompt's keys (gathered per row, so their gradients add up over the G rows) and causally to its
own row. The result equals scoring each row as prompt + completion, up to float rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from r1.model.kernels.attention import attend, blocked_causal_attention


@dataclass
class SharedPrompts:
    prompt_ids: torch.Tensor  # [P, Tp] right-padded (any id in the padding: it is never attended to)
    prompt_lens: torch.Tensor  # [P]
    row_prompt: torch.Tensor  # [B] which prompt each completion row continues
    completion_ids: torch.Tensor  # [B, Tc] right-padded

    @property
    def split(self) -> int:
        """Flat index of the first completion token: the prompts' P·Tp tokens come first."""
        return self.prompt_ids.numel()

    def flat_ids(self) -> torch.Tensor:
        return torch.cat((self.prompt_ids.flatten(), self.completion_ids.flatten()))[None]

    def flat_positions(self) -> torch.Tensor:
        P, Tp = self.prompt_ids.shape
        B, Tc = self.completion_ids.shape
        dev = self.prompt_ids.device
        first = self.prompt_lens[self.row_prompt]
        rows = first[:, None] + torch.arange(Tc, device=dev)[None, :]
        return torch.cat((torch.arange(Tp, device=dev).repeat(P), rows.flatten()))[None]

    def prompt_keys(self) -> torch.Tensor:
        """[B, Tp] True where a completion row's prompt has a real token (the rest is padding)."""
        Tp = self.prompt_ids.shape[1]
        return torch.arange(Tp, device=self.prompt_ids.device)[None, :] < self.prompt_lens[self.row_prompt][:, None]

    def completion_mask(self) -> torch.Tensor:
        """[B, 1, Tc, Tp + Tc] True = attend: the row's prompt up to its length, then its own tokens causally."""
        Tp = self.prompt_ids.shape[1]
        B, Tc = self.completion_ids.shape
        own = torch.ones(Tc, Tc, dtype=torch.bool, device=self.prompt_ids.device).tril()
        return torch.cat((self.prompt_keys()[:, None, :].expand(B, Tc, Tp), own.expand(B, Tc, Tc)), dim=-1)[:, None]

    def scored_positions(self, completion_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """For every completion token (row b, step j < completion_lens[b]), in row-major order: the flat index of
        the hidden state that predicts it (the prompt's last token for j = 0) and the token id."""
        P, Tp = self.prompt_ids.shape
        B, Tc = self.completion_ids.shape
        dev = self.prompt_ids.device
        j = torch.arange(Tc, device=dev)[None, :].expand(B, Tc)
        last_prompt = self.row_prompt * Tp + self.prompt_lens[self.row_prompt] - 1  # [B]
        own = self.split + torch.arange(B, device=dev)[:, None] * Tc + j - 1
        index = torch.where(j == 0, last_prompt[:, None], own)
        keep = j < completion_lens[:, None]
        return index[keep], self.completion_ids[keep]

    def attend(self, q_1NHD: torch.Tensor, k_1NHD: torch.Tensor, v_1NHD: torch.Tensor, scale: float) -> torch.Tensor:
        """Attention over the two streams; tensors token-major [1, N, H, D] (keys already expanded to H heads)."""
        P, Tp = self.prompt_ids.shape
        B, Tc = self.completion_ids.shape
        H, n = q_1NHD.shape[2], self.split

        def streams(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return (x[0, :n].view(P, Tp, H, -1).transpose(1, 2), x[0, n:].view(B, Tc, H, -1).transpose(1, 2))

        (qp, qc), (kp, kc), (vp, vc) = streams(q_1NHD), streams(k_1NHD), streams(v_1NHD)
        k = torch.cat((kp.index_select(0, self.row_prompt), kc), dim=2)  # [B, H, Tp + Tc, D]
        v = torch.cat((vp.index_select(0, self.row_prompt), vc), dim=2)
        if q_1NHD.device.type == "cpu":
            op = blocked_causal_attention(qp, kp, vp, scale)
            oc = blocked_causal_attention(qc, k, v, scale, shared_keys_BK=self.prompt_keys())
        else:
            op = attend(qp, kp, vp, None, scale)
            oc = attend(qc, k, v, self.completion_mask(), scale)
        dv = op.shape[-1]
        return torch.cat((op.transpose(1, 2).reshape(P * Tp, H, dv), oc.transpose(1, 2).reshape(B * Tc, H, dv)))[None]


def share_prompts(
    input_ids: torch.Tensor, prompt_lens: torch.Tensor, completion_lens: torch.Tensor, min_saving: float = 0.1
) -> SharedPrompts | None:
    """The two-stream layout of right-padded [B, S] prompt + completion rows, or None when it would save less
    than `min_saving` of the tokens (e.g. every row has its own prompt)."""
    B, S = input_ids.shape
    dev = input_ids.device
    Tp, Tc = int(prompt_lens.max()), max(1, int(completion_lens.max()))
    cols = torch.arange(S, device=dev)[None, :]
    prompts = input_ids.masked_fill(cols >= prompt_lens[:, None], -1)[:, :Tp]
    unique, row_prompt = torch.unique(prompts, dim=0, return_inverse=True)
    P = unique.shape[0]
    if P == B or P * Tp + B * Tc > (1.0 - min_saving) * B * S:
        return None
    step = torch.arange(Tc, device=dev)[None, :]
    take = (prompt_lens[:, None] + step).clamp(max=S - 1)
    completion = input_ids.gather(1, take).masked_fill(step >= completion_lens[:, None], 0)
    return SharedPrompts(
        prompt_ids=unique.clamp(min=0),
        prompt_lens=(unique >= 0).sum(1),
        row_prompt=row_prompt,
        completion_ids=completion,
    )
