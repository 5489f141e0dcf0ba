"""Evaluation metrics, R1 protocol: pass@1 as mean correctness over k samples, unbiased pass@k, cons@k, lengths.

R1 avoids greedy decoding: pass@1 is the mean correctness of k samples at T 0.6 / top-p 0.95, plus majority vote
(cons@64 on AIME). pass@k uses the unbiased estimator of Chen et al. (2021), so pass@2 from 8 samples is not the
noisy "any of the first 2". Correctness and format are the judge's verdicts; these functions only count.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c correct: 1 - C(n-c, k)/C(n, k), as a stable running product.

    The product form 1 - prod_{i=n-c+1}^{n} (1 - k/i) never builds the huge binomials.
    """
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass_at_k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def pass_ks(k: int) -> list[int]:
    """The k values reported for k samples: powers of two up to k, and k itself."""
    ks = [1 << p for p in range(k.bit_length()) if 1 << p <= k]
    return ks if ks[-1] == k else ks + [k]


def _default_normalize(answer: str) -> str:
    from r1.rewards.answers import normalize_answer

    return normalize_answer(answer)


def majority_vote(answers: Sequence[str | None], normalize: Callable[[str], str] | None = None) -> int | None:
    """Index of the sample whose answer wins the vote (by normalized form; None answers abstain), or None when no
    sample has an answer. Ties go to the group seen first, represented by its first sample: deterministic."""
    normalize = normalize or _default_normalize
    counts: dict[str, int] = {}
    first: dict[str, int] = {}
    for i, answer in enumerate(answers):
        if answer is None:
            continue
        key = normalize(answer)
        counts[key] = counts.get(key, 0) + 1
        first.setdefault(key, i)
    if not counts:
        return None
    best = max(counts, key=lambda key: (counts[key], -first[key]))
    return first[best]


def cons_at_k(
    answers: Sequence[str | None], correct: Sequence[bool], normalize: Callable[[str], str] | None = None
) -> bool:
    """Majority-vote correctness: the voted answer is correct iff it verifies (its first sample's verdict)."""
    winner = majority_vote(answers, normalize)
    return winner is not None and bool(correct[winner])


def length_stats(lengths: Sequence[int]) -> dict[str, float]:
    """mean, p50, p90 (linear interpolation) and max of response lengths; zeros for an empty list."""
    if not lengths:
        return {"mean": 0.0, "p50": 0.0, "p90": 0.0, "max": 0.0}
    arr = np.asarray(lengths, dtype=float)
    return {
        "mean": float(arr.mean()),
        "p50": float(np.percentile(arr, 50)),
        "p90": float(np.percentile(arr, 90)),
        "max": float(arr.max()),
    }


def truncated_share(finish_reasons: Sequence[str]) -> float:
    """Share of responses that stopped at the length limit (finish_reason "length")."""
    return sum(r == "length" for r in finish_reasons) / len(finish_reasons) if finish_reasons else 0.0


@dataclass
class ItemOutcome:
    """What the metrics need from one item's k samples. `correct` holds None for an item without a reference answer
    or verifier (an open-ended prompt), and then `cons_correct` is None too."""

    correct: list[bool | None]
    cons_correct: bool | None
    format_ok: list[bool]
    lengths: list[int]
    finish_reasons: list[str]

    @property
    def judged(self) -> bool:
        """Whether the item has an accuracy verdict (a reference answer or a verifier)."""
        return all(c is not None for c in self.correct)


def aggregate(outcomes: Sequence[ItemOutcome], k: int) -> dict[str, float]:
    """Metrics over a group of items: items, samples, pass@1 (mean over samples), pass@2,4,…,k, cons@k,
    format rate, length mean/p50/p90/max and truncated share. Averages are per item first, then over items.

    Items without an accuracy verdict are counted in `n_open` (present when there are any) and left out of pass@k
    and cons@k, which are absent when no item has a verdict; they count for format, lengths and truncation."""
    out: dict[str, float] = {"n_items": len(outcomes), "n_samples": sum(len(o.correct) for o in outcomes)}
    if not outcomes:
        return out
    judged = [o for o in outcomes if o.judged]
    if len(judged) < len(outcomes):
        out["n_open"] = len(outcomes) - len(judged)
    if judged:
        for kk in pass_ks(k):
            out[f"pass@{kk}"] = float(np.mean([pass_at_k(len(o.correct), sum(o.correct), kk) for o in judged]))
        out[f"cons@{k}"] = float(np.mean([o.cons_correct for o in judged]))
    out["format_rate"] = float(np.mean([x for o in outcomes for x in o.format_ok]))
    for name, value in length_stats([n for o in outcomes for n in o.lengths]).items():
        out[f"length_{name}"] = value
    out["truncated_share"] = truncated_share([r for o in outcomes for r in o.finish_reasons])
    return out
