"""Plain-language warnings for a GRPO run that is going nowhere (advisory: they never stop a run)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class Watchdog:
    """Says, once each, when a run is going nowhere, in the terms a user can act on: the failure modes GRPO users
    report most (recipe §6): a format reward stuck at 0, no learning signal because every group's rewards are
    equal, length collapse, and completions cut at the token limit. Advisory only: it never stops a run."""

    PATIENCE = 5  # consecutive rollouts

    def __init__(self) -> None:
        self.fired: set[str] = set()
        self.streak: dict[str, int] = {}
        self.first_length: float | None = None
        self.first_long: float = 0.0

    def check(self, stats: Mapping[str, float], o: Any) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        length, long = stats.get("length_mean", 0.0), stats.get("long_form", 0.0)
        if self.first_length is None:
            self.first_length, self.first_long = length, long
        shorter = self.first_length >= 8 and length < 0.75 * self.first_length
        less_reasoning = self.first_long >= 0.1 and long < 0.5 * self.first_long
        conditions = {
            "format_stuck": (
                "reward/format" in stats and stats["reward/format"] == 0.0,
                True,
                f"the format reward was 0 on every sample for {self.PATIENCE} rollouts: the model never "
                f"writes the {o.template!r} answer format. Check grpo.template is the prompt the model "
                "was trained with, or teach the format first (SFT on a few examples)",
            ),
            "no_signal": (
                stats.get("frac_reward_zero_std", 0.0) >= 1.0,
                True,
                f"every group had equal rewards for {self.PATIENCE} rollouts, so every advantage is 0 and "
                "nothing is learned: the problems are all too easy or all too hard for this model. Change "
                "grpo.difficulty, raise grpo.group_size, or set grpo.dynamic_sampling=true",
            ),
            "length_collapse": (
                shorter or less_reasoning,
                True,
                f"mean response length fell from {self.first_length:.1f} to {length:.1f} tokens and "
                f"the share of answers that reason from {self.first_long:.2f} to {long:.2f}: the "
                "policy is dropping its reasoning, usually because long answers score worse than "
                "short ones for this base (see `r1 run`'s 'Before RL' check) or the lr is too high",
            ),
            "truncated": (
                stats.get("truncated", 0.0) > 0.5,
                False,
                f"over half of the completions hit max_new_tokens={o.max_new_tokens}: raise "
                "grpo.max_new_tokens, or price length with grpo.soft_overlong=true",
            ),
        }
        for name, (bad, needs_streak, message) in conditions.items():
            self.streak[name] = self.streak.get(name, 0) + 1 if bad else 0
            due = self.streak[name] >= (self.PATIENCE if needs_streak else 1)
            if due and name not in self.fired:
                self.fired.add(name)
                out.append((name, message))
        return out
