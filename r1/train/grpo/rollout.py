"""GRPO's data side: sampling groups from the engine, scoring them, and the rollout the loss trains on.

Each request is seeded by (run seed, rollout, round), so a rollout is a pure function of the weights, the prompt
cursor and the seed. `completion_logprobs` is the trainer's log π for every completion token from one forward;
`response_stats` reads lengths, accuracy, format and reflection rates off `r1.rewards.judge` verdicts (reflection also
within long-form answers, since a shift of the style mix alone moves the overall rate). A rollout is kept on disk as
safetensors (its statistics as JSON metadata, no pickles) while its μ passes train, so a killed run resumes on it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from r1.engine import Engine, Sample, SamplingParams
from r1.io import atomic_path
from r1.model.prefix import share_prompts as share_prompts_layout
from r1.rewards.judge import Verdict


# ============================================================================================== the rollout
@dataclass
class Rollout:
    """N = P·G samples flattened, group by group (rows g·G … g·G+G−1 are one prompt's group).

    input_ids: [N, S] prompt then completion, right-padded. Per completion token ([N, C], zero past each length):
    old_logprobs (π_old, the ratio's denominator), sampler_logprobs (under the distribution actually sampled, for
    importance correction), ref_logprobs (π_ref, only when β > 0). trainable: [N] False for masked samples
    (`mask_truncated`). stats: rollout-level metrics, logged with every step that trains on this rollout.
    """

    input_ids: torch.Tensor
    prompt_lens: torch.Tensor
    completion_lens: torch.Tensor
    advantages: torch.Tensor
    old_logprobs: torch.Tensor
    sampler_logprobs: torch.Tensor
    trainable: torch.Tensor
    ref_logprobs: torch.Tensor | None = None
    engine_logprobs: torch.Tensor | None = None  # kept when old_logprobs come from the trainer (for the deviation)
    stats: dict[str, float] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    def rows(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
        """The samples `index` as one micro-batch, trimmed to its own longest sequence and completion."""
        pl, cl = self.prompt_lens[index], self.completion_lens[index]
        S, C = int((pl + cl).max()), int(cl.max())
        out = {
            "input_ids": self.input_ids[index, :S],
            "prompt_lens": pl,
            "completion_lens": cl,
            "advantages": self.advantages[index],
            "trainable": self.trainable[index],
        }
        for name in ("old_logprobs", "sampler_logprobs", "ref_logprobs", "engine_logprobs"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value[index, :C]
        return out


def pack_samples(prompts: Sequence[Sequence[int]], samples: Sequence[Sample], pad_id: int) -> dict[str, torch.Tensor]:
    """Prompt + completion ids right-padded into [N, S], and the engine's per-token logprobs into [N, C]."""
    n = len(samples)
    pl = torch.tensor([len(p) for p in prompts], dtype=torch.long)
    cl = torch.tensor([len(s.tokens) for s in samples], dtype=torch.long)
    S, C = int((pl + cl).max()), max(1, int(cl.max()))
    ids = torch.full((n, S), pad_id, dtype=torch.long)
    model_lp = torch.zeros(n, C)
    sampler_lp = torch.zeros(n, C)
    for i, (p, s) in enumerate(zip(prompts, samples)):
        ids[i, : len(p)] = torch.tensor(list(p), dtype=torch.long)
        ids[i, len(p) : len(p) + len(s.tokens)] = torch.tensor(s.tokens, dtype=torch.long)
        model_lp[i, : len(s.tokens)] = torch.tensor(s.model_logprobs)
        sampler_lp[i, : len(s.tokens)] = torch.tensor(s.logprobs)
    return {
        "input_ids": ids,
        "prompt_lens": pl,
        "completion_lens": cl,
        "model_logprobs": model_lp,
        "sampler_logprobs": sampler_lp,
    }


def completion_mask(completion_lens: torch.Tensor, width: int | None = None) -> torch.Tensor:
    """[B, C] float: 1 for the first `completion_lens[b]` columns of each row."""
    C = int(completion_lens.max()) if width is None else width
    return (torch.arange(C, device=completion_lens.device)[None, :] < completion_lens[:, None]).float()


def completion_logprobs(
    model: nn.Module,
    input_ids: torch.Tensor,
    prompt_lens: torch.Tensor,
    completion_lens: torch.Tensor,
    entropy: bool = False,
    share_prompts: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None, Any]:
    """log π(o_t | q, o_<t) for every completion token, [B, C] fp32 (0 past each length), from one forward.

    Also the policy's entropy at those positions (no gradient) when asked, and the model output (for expert counts).
    Rows with the same prompt run it once (`r1.model.prefix`; G-fold fewer prompt tokens for a GRPO group) unless
    `share_prompts` is off or it would not save tokens. Only completion tokens reach the head: prompts and padding
    are never projected to the vocabulary.
    """
    B, S = input_ids.shape
    C = max(1, int(completion_lens.max()))
    dev = input_ids.device
    keep = completion_mask(completion_lens, C).bool()
    shared = share_prompts_layout(input_ids, prompt_lens, completion_lens) if share_prompts else None
    if shared is not None:
        index, target = shared.scored_positions(completion_lens)
    else:
        # position t predicts token t + 1: completion step j of row b is predicted at pl_b − 1 + j
        pos = (prompt_lens[:, None] - 1 + torch.arange(C, device=dev)[None, :]).clamp(max=S - 2)
        index = (torch.arange(B, device=dev)[:, None] * S + pos)[keep]
        target = input_ids.gather(1, pos + 1)[keep]
    out = model(None if shared is not None else input_ids, shared=shared, score=(index, target), entropy=entropy)
    flat = keep.flatten().nonzero().flatten()
    logp = torch.zeros(B * C, device=dev).index_put((flat,), out.token_logprobs.float()).view(B, C)
    ent = None
    if entropy:
        ent = torch.zeros(B * C, device=dev).index_put((flat,), out.token_entropy.float()).view(B, C)
    return logp, ent, out


@torch.no_grad()
def forward_logprobs(
    model: nn.Module, packed: Mapping[str, torch.Tensor], chunk: int, autocast_dtype: torch.dtype | None
) -> torch.Tensor:
    """`completion_logprobs` over a whole rollout in chunks of `chunk` rows, without gradient ([N, C])."""
    ids, pl, cl = packed["input_ids"], packed["prompt_lens"], packed["completion_lens"]
    C = int(cl.max())
    out = torch.zeros(ids.shape[0], C)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        for start in range(0, ids.shape[0], chunk):
            rows = slice(start, start + chunk)
            S = int((pl[rows] + cl[rows]).max())
            dtype, on = autocast_dtype or torch.bfloat16, autocast_dtype is not None
            with torch.autocast(device.type, dtype=dtype, enabled=on):
                lp, _, _ = completion_logprobs(
                    model, ids[rows, :S].to(device), pl[rows].to(device), cl[rows].to(device)
                )
            out[rows, : lp.shape[1]] = lp.float().cpu()
    finally:
        model.train(was_training)
    return out


# ============================================================================================== sampling
def sample_groups(
    engine: Engine, prompts: Sequence[Sequence[int]], group_size: int, params: SamplingParams, seed: int
) -> list[list[Sample]]:
    """G samples for each prompt; prompt j's request is seeded `seed + j`, so its samples depend on nothing else."""
    plist = [params.with_(n=group_size, seed=seed + j) for j in range(len(prompts))]
    completions = engine.generate(list(prompts), plist)
    return [c.samples for c in completions]


def round_seed(run_seed: int, rollout: int, round_: int) -> int:
    """A distinct 62-bit seed per (run, rollout, generation round); prompts then add their index."""
    z = (run_seed * 0x9E3779B97F4A7C15 + rollout * 0xBF58476D1CE4E5B9 + round_ * 0x94D049BB133111EB) % (1 << 64)
    z ^= z >> 31
    return z % (1 << 62)


# ============================================================================================== statistics
def response_stats(verdicts: Sequence[Verdict], lengths: Sequence[int], rates: bool = True) -> dict[str, float]:
    """What a user reads an RL run by: length mean/p90/max, truncated share, the share of responses that reason
    (`long_form`), the rate of responses that reflect, overall and within those that reason, and with `rates` the
    accuracy (over the responses with a verdict; absent when none has one) and the format rate.

    Every rate is the judge's (`r1.rewards.judge`): the rules of the rewards, the evaluator and `r1 run`'s tables.
    """
    n = max(len(verdicts), 1)
    arr = np.asarray(lengths, dtype=float) if len(lengths) else np.zeros(1)
    n_long = sum(v.reasons for v in verdicts)
    out = {
        "length_mean": float(arr.mean()),
        "length_p90": float(np.percentile(arr, 90)),
        "length_max": float(arr.max()),
        "truncated": sum(v.truncated is True for v in verdicts) / n,
        "long_form": n_long / n,
        "reflection": sum(v.reflects for v in verdicts) / n,
        "reflection_long": sum(v.reflects for v in verdicts if v.reasons) / max(n_long, 1),
    }
    if rates:
        judged = [v.correct for v in verdicts if v.correct is not None]
        if judged:
            out["accuracy"] = sum(judged) / len(judged)
        out["format_rate"] = sum(v.format_ok for v in verdicts) / n
    return out


def reward_stats(
    components: Mapping[str, Sequence[float]], total: Sequence[float], group_size: int
) -> dict[str, float]:
    """Mean and std of the total and of every component, and the share of groups whose rewards are all equal
    (zero advantage for every token: `frac_reward_zero_std`, TRL's name)."""
    out: dict[str, float] = {}
    for name, values in [("reward", total), *((f"reward/{k}", v) for k, v in components.items())]:
        a = np.asarray(values, dtype=float)
        out[name], out[f"{name}_std"] = float(a.mean()), float(a.std())
    groups = np.asarray(total, dtype=float).reshape(-1, group_size)
    out["frac_reward_zero_std"] = float(np.mean(groups.std(axis=1) == 0.0))
    return out


# ============================================================================================== persistence
_TENSORS = [f.name for f in fields(Rollout) if f.name != "stats"]


def save_rollout(path: Path, rollout: Rollout) -> None:
    """Atomically write a rollout (tensors + stats) to a safetensors file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: getattr(rollout, k).contiguous() for k in _TENSORS if getattr(rollout, k) is not None}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"stats": json.dumps(rollout.stats)})


def load_rollout(path: Path) -> Rollout:
    with safe_open(str(path), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no __iter__
        stats = json.loads((f.metadata() or {}).get("stats", "{}"))
    return Rollout(**tensors, stats=stats)
