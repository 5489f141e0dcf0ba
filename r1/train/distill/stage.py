"""Logit distillation as a stage of the shared training core: GKD (arXiv 2306.13649) with TRL's options.

The data is SFT's; the teacher (`distill.teacher`) shares the student's tokenizer. `prepare`: with probability
`lmbda` (a seeded coin per step) the step is on-policy (the student's own samples through the engine), else with
`seq_kd` the teacher's samples, else the traces (TRL's order). `loss`: the teacher once (no gradient), the student
once, `loss.token_divergence` at every target token (β = 0 forward KL, 1 reverse KL, between: JSD(β)).
Sequence-level distillation alone is `stage: sft` on teacher traces and needs no shared tokenizer.

Both vocabularies are cut to the shorter model vocabulary (padding rows a tiny student does not carry), so the
teacher's distribution is renormalised over ids the tokenizer can produce. Exact resume needs no files: a step's
coin, prompts and seeds are functions of the run seed and the step.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
import time
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from r1.data.packing import Example, collate_padded
from r1.errors import ConfigError, UserError
from r1.model.transformer import IGNORE_INDEX
from r1.train.config import TrainConfig
from r1.train.core import LossOutput, StageContext
from r1.train.distill.loss import token_divergence
from r1.train.distill.options import resolve_options
from r1.train.sft import SFTStage


class DistillStage(SFTStage):
    """SFT's data, a teacher's distributions as the target (see the module docstring)."""

    name = "distill"
    has_options = True

    def __init__(self, cfg: TrainConfig, data: list[dict[str, Any]] | None = None, eval_data: list | None = None):
        super().__init__(cfg, data, eval_data)
        self.opt = resolve_options(cfg.options)
        self.teacher: nn.Module | None = None
        self.engines: dict[int, Any] = {}
        self.micro: list[dict[str, torch.Tensor]] | None = None
        self.this_step: dict[str, float] = {}

    # ------------------------------------------------------------------------------------------ setup
    def setup(self, ctx: StageContext) -> None:
        from r1.assets import resolve_model_path
        from r1.model.checkpoint import load_pretrained
        from r1.tokenizer import Tokenizer

        if ctx.world > 1:
            raise UserError("stage distill runs in one process for now (the teacher and the engine need full weights)")
        if ctx.tokenizer is None:
            raise UserError("stage distill needs the student's tokenizer: set data.tokenizer or model.path")
        super().setup(ctx)
        path = resolve_model_path(self.opt.teacher)
        try:
            theirs = Tokenizer.load(path)
        except (OSError, UserError) as exc:
            raise ConfigError(f"distill.teacher={self.opt.teacher}: no tokenizer there ({exc})") from None
        if theirs.backend.get_vocab() != ctx.tokenizer.backend.get_vocab():
            raise ConfigError(
                f"distill.teacher={self.opt.teacher}: its tokenizer differs from the student's, and logit distillation "
                "compares distributions over one vocabulary; use the teacher's tokenizer (data.tokenizer) or "
                "stage sft on its traces"
            )
        self.teacher = load_pretrained(path, dtype=torch.float32, device=ctx.device).eval().requires_grad_(False)
        self.vocab = min(self.teacher.config.vocab_size, ctx.model_config.vocab_size)
        if self.vocab < ctx.tokenizer.vocab_size:
            raise ConfigError(
                f"distill.teacher={self.opt.teacher}: its vocab_size {self.teacher.config.vocab_size} is smaller than "
                f"the tokenizer's ({ctx.tokenizer.vocab_size})"
            )
        self.prompts = []
        if self.opt.lmbda > 0 or self.opt.seq_kd:  # each trace's prompt: its tokens before the first target
            for e in self.examples(self.records(), ctx.tokenizer):
                first = next(i for i, t in enumerate(e.labels) if t != IGNORE_INDEX)
                self.prompts.append(e.input_ids[:first])

    # ------------------------------------------------------------------------------------------ core contract
    def prepare(self, model: nn.Module, step: int) -> None:
        """Decide whether step `step + 1` is on-policy, and if it or seq_kd samples, make its micro-batches."""
        from r1.engine import SamplingParams
        from r1.train.grpo.rollout import round_seed, sample_groups

        o, seed, B = self.opt, self.cfg.train.seed, self.cfg.train.batch_size
        on_policy = random.Random(round_seed(seed, step, 0)).random() < o.lmbda
        self.this_step = {"on_policy": float(on_policy)}
        self.micro = None
        if not (on_policy or o.seq_kd):
            return
        sampler = model if on_policy else self.teacher
        g = torch.Generator().manual_seed(round_seed(seed, step, 1))
        order = torch.randperm(len(self.prompts), generator=g).tolist()
        prompts = [self.prompts[order[i % len(order)]] for i in range(B)]
        params = SamplingParams(temperature=o.temperature, top_p=o.top_p, max_tokens=o.max_new_tokens)
        t0 = time.perf_counter()
        with _generating(sampler, self.ctx.device):
            groups = sample_groups(self._engine(sampler), prompts, 1, params, round_seed(seed, step, 2))
        samples = [s for (s,) in groups]
        examples = [Example([*p, *s.tokens], [IGNORE_INDEX] * len(p) + s.tokens) for p, s in zip(prompts, samples)]
        pad = self.ctx.tokenizer.pad_id if self.ctx.tokenizer.pad_id is not None else 0
        mb = self.ctx.micro_batch_size
        self.micro = [collate_padded(examples[i : i + mb], pad) for i in range(0, B, mb)]
        lengths = [len(s.tokens) for s in samples]
        self.this_step.update(
            {
                "time/generate": time.perf_counter() - t0,
                "sample_length_mean": sum(lengths) / len(lengths),
                "sample_truncated": sum(s.finish_reason == "length" for s in samples) / len(samples),
            }
        )

    def next_batches(self) -> list[dict[str, torch.Tensor]]:
        return self.micro if self.micro is not None else super().next_batches()

    def step_metrics(self) -> dict[str, float]:
        return dict(self.this_step)

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> LossOutput:
        o, V = self.opt, self.vocab
        ids, labels = batch["input_ids"], batch["labels"]
        kw = {"positions": batch.get("positions"), "segment_ids": batch.get("segment_ids"), "return_logits": False}
        at = F.pad(labels[:, 1:] != IGNORE_INDEX, (0, 1), value=False)  # position t predicts token t + 1
        targets = labels[:, 1:][at[:, :-1]]
        with torch.no_grad():
            teacher = self.teacher.head(self.teacher(ids, **kw).hidden[at])[:, :V]
        student = model.head(model(ids, **kw).hidden[at])[:, :V]
        div = token_divergence(student, teacher, o.beta, o.temperature)
        n = int(targets.numel())
        loss = div.sum() / max(n, 1)
        metrics = {
            "lm_loss": F.cross_entropy(student.detach().float(), targets),
            "teacher_lm_loss": F.cross_entropy(teacher.float(), targets),
        }
        real = int((batch["segment_ids"] >= 0).sum()) if "segment_ids" in batch else int(batch["n_tokens"])
        return LossOutput(loss=loss, weight=float(n), tokens=real, metrics=metrics)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "distill": dataclasses.asdict(self.opt)}

    def report_lines(self, records: list[dict[str, Any]]) -> list[str]:
        o = self.opt
        steps = [r for r in records if r.get("event") == "step"]
        kind = {0.0: "forward KL", 1.0: "reverse KL"}.get(o.beta, f"JSD(β={o.beta:g})")
        lines = [
            "",
            "## Distillation",
            "",
            f"Teacher `{o.teacher}`; {kind} at temperature {o.temperature:g}; "
            f"{sum(r.get('on_policy', 0) for r in steps):.0f} of {len(steps)} steps on the student's own samples "
            f"(lmbda {o.lmbda:g}), the others on {'the teacher' if o.seq_kd else 'the trace'}s' samples.",
        ]
        last = next((r for r in reversed(steps) if not r.get("on_policy") and "teacher_lm_loss" in r), None)
        if last is not None and not o.seq_kd:
            lines.append(
                f"Cross-entropy on the traces' tokens at step {last['step']}: student {last['lm_loss']:.3f}, "
                f"teacher {last['teacher_lm_loss']:.3f}."
            )
        return lines

    # ------------------------------------------------------------------------------------------ sampling
    def _engine(self, model: nn.Module):
        """One engine per sampling model, around the model itself (the student's sees every optimizer step)."""
        if id(model) not in self.engines:
            from r1.engine import Engine

            longest = max(len(p) for p in self.prompts)
            limit = model.config.max_position_embeddings
            rows = min(self.cfg.train.batch_size, 256)
            self.engines[id(model)] = Engine(
                model,
                self.ctx.tokenizer,
                max_batch=rows,
                max_len=min(limit, longest + self.opt.max_new_tokens + 8),
                speculative="off",
            )
        return self.engines[id(model)]


@contextlib.contextmanager
def _generating(model: nn.Module, device: torch.device) -> Iterator[None]:
    """Sampling as the engine runs standalone (eval mode, full precision), then the mode the model had."""
    was_training = model.training
    model.eval()
    try:
        with torch.autocast(device.type, enabled=False):
            yield
    finally:
        model.train(was_training)
