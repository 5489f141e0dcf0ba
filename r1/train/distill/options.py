"""Everything under `distill:` in a config, with TRL's names and meanings (GKDConfig / DistillationConfig)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from r1.errors import ConfigError
from r1.io import need
from r1.train.config import build_section


@dataclass
class DistillOptions:
    teacher: str = ""  # the teacher's model folder (or a shipped one's name: base-tiny), with the student's tokenizer
    beta: float = 0.5  # 0 forward KL, 1 reverse KL, in between the generalized JSD (see `loss`); TRL GKD's default
    lmbda: float = 0.5  # each step is on-policy (the student's own samples) with this probability; TRL GKD's default
    seq_kd: bool = False  # an off-policy step trains on the teacher's samples of the prompts instead of the traces
    temperature: float = 1.0  # for sampling and for both distributions in the divergence (TRL DistillationTrainer)
    top_p: float = 1.0  # sampling only
    max_new_tokens: int = 128  # per sample

    def validate(self) -> None:
        def check(ok: bool, key: str, rule: str) -> None:
            need(ok, f"distill.{key}", getattr(self, key), rule)

        if not self.teacher:
            raise ConfigError("distill.teacher: give the teacher's model folder, e.g. distill.teacher=base-tiny")
        check(0 <= self.beta <= 1, "beta", "must be in [0, 1] (0 forward KL, 1 reverse KL, between: JSD)")
        check(0 <= self.lmbda <= 1, "lmbda", "must be in [0, 1] (the share of on-policy steps)")
        check(0 < self.temperature <= 100, "temperature", "must be in (0, 100]")
        check(0 < self.top_p <= 1, "top_p", "must be in (0, 1]")
        check(self.max_new_tokens >= 1, "max_new_tokens", "must be >= 1")


def resolve_options(section: dict[str, Any] | None) -> DistillOptions:
    """The `distill:` section → typed, checked options (an unknown key is an error listing the valid ones)."""
    opts = build_section(DistillOptions, dict(section or {}), "distill")
    opts.validate()
    return opts
