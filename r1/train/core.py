"""The one training loop every stage uses (pretraining, SFT, GRPO, distillation); docs/architecture.md and
docs/training.md describe the stage/core split, the run folder and exact resume.

A stage says what to learn (`Stage` below: data in, `LossOutput` out); the core says how: one optimizer step is
lr from the schedule; forward + `stage.loss` + backward of `loss × weight` per micro-batch (gradient sync only on
the last under FSDP); gradients ÷ the all-reduced global weight, so the step minimizes the weighted mean over the
global batch however it is split (2 micro-steps of B/2 equal 1 step of B); clip; `optimizer.step()` (fp16: through
torch's GradScaler, as HF Trainer's `fp16=True`); then the aux-loss-free routing-bias update from the step's
all-reduced expert counts. Same seed, same config → bit-identical weights on CPU, resumed or not.
"""

from __future__ import annotations

import contextlib
import importlib
import itertools
import math
import os
import random
import shutil
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from r1.dtypes import autocast_dtype
from r1.errors import CheckpointError, ConfigError, UserError
from r1.io import atomic_write_text
from r1.model.checkpoint import load_pretrained, save_pretrained
from r1.model.config import ModelConfig
from r1.model.transformer import Transformer, meta_model
from r1.train import checkpointing as ckpt
from r1.train import distributed
from r1.train.config import STAGES, TrainConfig, config_changes, model_config, shaping
from r1.train.metrics import MetricsLog, imbalance, matmul_peak, read_metrics, train_flops_per_token, truncate_metrics
from r1.train.optim import build_optimizer, lr_factor, set_lr


# ============================================================================================ the stage contract
@dataclass
class LossOutput:
    """What a stage computes from one micro-batch.

    loss: the scalar to minimize, a mean over this micro-batch's `weight` units (e.g. target tokens).
    weight: how much the micro-batch counts in the step's mean (target tokens for LM losses; 1.0 for a plain mean).
    tokens: tokens processed, for throughput.
    metrics: scalars to report, each a mean over the micro-batch (weighted like the loss when aggregated).
    expert_counts: [n_moe_layers, E] routed-token counts, for the balancing bias update (None for dense models).
    """

    loss: torch.Tensor
    weight: float
    tokens: int
    metrics: dict[str, float | torch.Tensor] = field(default_factory=dict)
    expert_counts: torch.Tensor | None = None


@dataclass
class StageContext:
    """Everything a stage may need from the core at setup."""

    config: TrainConfig
    model_config: ModelConfig
    tokenizer: Any | None  # r1.tokenizer.Tokenizer
    rank: int
    world: int
    micro_batch_size: int
    accumulation: int  # micro-batches per optimizer step on each rank
    device: torch.device
    run_dir: Path
    model: nn.Module  # the model being trained (sharded in place under FSDP2), e.g. for on-policy rollouts


class Stage:
    """Base class of a training stage: data in, loss out. Subclasses override what they need."""

    name = "stage"
    has_options = False  # whether it reads a section of its own (`grpo:`); else one given is an error

    def __init__(self, cfg: TrainConfig, data: Sequence[Any] | None = None, eval_data: Sequence[Any] | None = None):
        """`data` / `eval_data`: records given from Python instead of the config's files (documents, prompts)."""
        self.cfg = cfg
        self.data = list(data) if data is not None else None
        self.eval_data = list(eval_data) if eval_data is not None else None

    def tokenizer_texts(self) -> Iterator[str]:
        """Training text for `data.tokenizer: train` (called before `setup`)."""
        raise ConfigError(f"stage {self.name!r} cannot train a tokenizer: set data.tokenizer to a directory")

    def setup(self, ctx: StageContext) -> None:
        self.ctx = ctx

    def prepare(self, model: nn.Module, step: int) -> None:
        """Before optimizer step `step + 1`: an on-policy stage makes that step's data with the current weights."""

    def next_batches(self) -> list[dict[str, torch.Tensor]]:
        """This rank's micro-batches for the next optimizer step (`ctx.accumulation` of them)."""
        raise NotImplementedError

    def step_metrics(self) -> dict[str, float]:
        """Metrics of the whole step, logged as they are (GRPO's rollout statistics), not averaged over batches."""
        return {}

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> LossOutput:
        raise NotImplementedError

    def eval_batches(self) -> list[dict[str, torch.Tensor]]:
        """This rank's evaluation micro-batches (the same count on every rank); empty = no evaluation."""
        return []

    def evaluate(self, model: nn.Module, step: int) -> dict[str, float] | None:
        """A stage that evaluates by other means than a loss (GRPO: held-out pass@1) returns its metrics here, after
        `step` optimizer steps; None = the weighted mean of `loss` over `eval_batches`."""
        return None

    eval_at_start = False  # evaluate the initial weights too (an eval record at step 0)
    # step or eval keys on the progress bar; (key, sign) of the eval metric `checkpoint.keep_best` minimises
    progress_keys: tuple[str, ...] = ("loss",)
    best_metric: tuple[str, int] = ("eval_loss", 1)
    files: tuple[str, ...] = ()  # what it writes into the run folder besides the core's (deleted by --overwrite)

    def state_dict(self) -> dict[str, Any]:
        """JSON-able data position, saved in every checkpoint."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    def describe(self) -> dict[str, Any]:
        """A few facts for the report (documents, rows, tokens)."""
        return {}

    # config keys holding sequence lengths the stage trains on; each must fit the model's context
    context_keys: tuple[str, ...] = ()

    def plots(self, run_dir: Path, records: list[dict[str, Any]]) -> list[Path]:
        """Stage-specific plots from metrics.jsonl's records, embedded in report.md after the core's."""
        return []

    def report_lines(self, records: list[dict[str, Any]]) -> list[str]:
        """A stage-specific section appended to report.md (markdown lines)."""
        return []


def build_stage(cfg: TrainConfig) -> Stage:
    module, _, cls = STAGES[cfg.stage].partition(":")
    return getattr(importlib.import_module(module), cls)(cfg)


def rank_share(items: list, rank: int, world: int) -> list:
    """Items i ≡ rank (mod world), the same count on every rank (cycling when there are fewer than `world`)."""
    if not items:
        return []
    n = max(world, len(items) - len(items) % world)
    items = [items[i % len(items)] for i in range(n)]
    return items[rank::world]


# ============================================================================================ results
@dataclass
class TrainResult:
    run_dir: Path
    steps: int
    final_loss: float | None
    evaluation: dict[str, float]  # the last evaluation's metrics (eval_loss, or eval_pass@1 and the rest for RL)
    checkpoint: Path | None  # the last checkpoint written (HF layout)
    seconds: float
    tokens: int
    model: nn.Module = field(repr=False, default=None)  # the trained model (sharded under FSDP)
    model_dir: Path | None = None  # <run>/model/: the final weights with a model card (checkpoint.publish)


def train(cfg: TrainConfig, stage: Stage | None = None) -> TrainResult:
    """Run (or resume) one training run described by `cfg`; `stage` defaults to the one named by `cfg.stage`."""
    with _torch_settings(cfg):
        return Trainer(cfg, stage).run()


@contextlib.contextmanager
def _torch_settings(cfg: TrainConfig):
    """Per-run global torch settings, restored afterwards so library callers and tests see no leak."""
    threads = torch.get_num_threads()
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    # Adam's second moments underflow into denormals, which are ~100x slower on x86 CPUs: flush them to zero
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)
        torch.set_num_threads(threads)


# ============================================================================================ the loop
class Trainer:
    def __init__(self, cfg: TrainConfig, stage: Stage | None = None) -> None:
        self.cfg = cfg
        self.stage = stage if stage is not None else build_stage(cfg)  # a stage checks its own options
        if cfg.options and not self.stage.has_options:
            raise ConfigError(
                f"{cfg.stage}: stage {cfg.stage} has no options of its own (its settings are the "
                "shared sections: model, data, optim, schedule, train)"
            )
        _check_device(cfg.train.device)
        self.dist = distributed.init(cfg.train.device)
        self.run_dir = Path(cfg.train.out)
        self.device = self.dist.device
        # train.dtype: the autocast dtype (None: plain fp32); master weights and optimizer state are always fp32
        self.autocast_dtype = autocast_dtype(cfg.train.dtype, self.device)
        # fp16 needs loss scaling (its range underflows small gradients); bf16 has fp32's range and does not
        self.scaler = torch.amp.GradScaler(self.device.type) if self.autocast_dtype == torch.float16 else None
        self.best: dict[str, Any] | None = None
        self.tokens_seen = 0
        self.elapsed = 0.0
        self.last_eval: dict[str, float] = {}
        self.last_checkpoint: Path | None = None
        self.log: MetricsLog | None = None
        self.step = 0
        self.changes: dict[str, tuple[Any, Any]] = {}  # settings changed since the checkpoint resumed from
        self._created: list[Path] = []  # what setup created, removed again when setup fails

    # ---------------------------------------------------------------------------------- run
    def run(self) -> TrainResult:
        try:
            try:
                step = self.setup()
            except BaseException:
                self._discard_setup()
                raise
            return self._loop(step)
        except BaseException as exc:
            if self.log is not None:  # the log says the run failed and why, not just where it stops
                why = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"{type(exc).__name__}: {exc}"
                self.log.write({"event": "error", "step": self.step, "error": why})
            raise
        finally:
            self.close()

    def setup(self) -> int:
        """Everything before the first step: run folder, tokenizer, model, data, FSDP2, optimizer, resume.
        Returns the step to start from."""
        cfg, d = self.cfg, self.dist
        self._check_context()
        resume_from = self._prepare_run_dir()
        self.tokenizer = self._tokenizer()
        self.model_config = model_config(cfg.model, self.tokenizer)
        mb, accum = cfg.accumulation(d.world)
        model = self._build_model(resume_from)
        self.stage.setup(
            StageContext(
                cfg, self.model_config, self.tokenizer, d.rank, d.world, mb, accum, self.device, self.run_dir, model
            )
        )
        if d.enabled:
            model = distributed.shard(model)
        self.model = model
        self.optimizer = build_optimizer(model, cfg.optim, distributed=d.enabled)
        step = self._resume(resume_from) if resume_from else 0
        if d.is_main:
            self._open_log(resume_from, step)
        slow = self.device.type == "cpu" and self.autocast_dtype == torch.float16  # no fp16 GEMM kernels: ~60x fp32
        self.peak = matmul_peak(self.device, self.autocast_dtype or torch.float32, **({"n": 256} if slow else {}))
        self.flops_per_token = train_flops_per_token(self.model_config, cfg.data.seq_len)
        return step

    def close(self) -> None:
        if self.log is not None:
            self.log.close()
            self.log = None
        distributed.destroy(self.dist)

    def train_step(self, step: int) -> dict[str, Any]:
        """Optimizer step number `step + 1` (lr, the stage's micro-batches, update, bias update) → its metrics."""
        cfg = self.cfg
        t0 = time.perf_counter()
        lr = cfg.optim.lr * lr_factor(step, cfg.train.steps, cfg.schedule)
        set_lr(self.optimizer, lr)
        self.stage.prepare(self.model, step)
        parts, counts, tokens = self._step(self.stage.next_batches(), step + 1)
        dt = time.perf_counter() - t0
        self.elapsed += dt
        self.tokens_seen += tokens
        flops = self.flops_per_token * tokens / dt
        record = {
            "event": "step",
            "step": step + 1,
            **parts,
            **self.stage.step_metrics(),
            "lr": lr,
            "tokens": tokens,
            "tokens_per_s": tokens / dt,
            "flops_per_s": flops,
            "mfu": flops / self.peak / self.dist.world,
            "step_time": dt,
            "elapsed": self.elapsed,
            **self.stage.state_dict(),
        }
        if counts is not None:
            record["expert_imbalance"] = imbalance(counts)
        return record

    def _loop(self, step: int) -> TrainResult:
        cfg, d = self.cfg, self.dist
        total = cfg.train.steps
        bar = _progress(cfg, d, step, total)
        record: dict[str, Any] = {}
        window: list[float] = []
        if step == 0 and self.stage.eval_at_start:
            self._evaluate(0)
        while step < total:
            self.step = step + 1
            record = self.train_step(step)
            step += 1
            window.append(record["loss"])
            if d.is_main and (step % cfg.train.log_every == 0 or step == total):
                self.log.write(record)
            if bar is not None:
                shown = {**record, **self.last_eval}
                extra = {k: f"{shown[k]:.3f}" for k in self.stage.progress_keys if k in shown}
                bar.set_postfix(**extra, tok_s=f"{record['tokens_per_s']:,.0f}", refresh=False)
                bar.update(1)
            if cfg.train.eval_every and step % cfg.train.eval_every == 0 and step < total:
                self._evaluate(step)
            if cfg.checkpoint.every and step % cfg.checkpoint.every == 0 and step < total:
                self._save(step, sum(window[-20:]) / len(window[-20:]))
        if bar is not None:
            bar.close()
        self._evaluate(total)
        final_ckpt = ckpt.checkpoint_dir(self.run_dir, total)
        if cfg.checkpoint.final and self.last_checkpoint != final_ckpt:
            self._save(total, sum(window[-20:]) / max(1, len(window[-20:])) if window else math.nan)
        model_dir = None
        if d.is_main:
            self._write_outputs()
            if cfg.checkpoint.final and cfg.checkpoint.publish and self.last_checkpoint is not None:
                from r1.train.publish import publish_run

                headline = {"steps": total, "tokens": self.tokens_seen, "final_loss": record.get("loss")}
                model_dir = publish_run(self.run_dir, self.last_checkpoint, cfg, {**headline, **self.last_eval})
        return TrainResult(
            run_dir=self.run_dir,
            steps=total,
            final_loss=record.get("loss"),
            evaluation=dict(self.last_eval),
            checkpoint=self.last_checkpoint or ckpt.latest_checkpoint(self.run_dir),
            seconds=self.elapsed,
            tokens=self.tokens_seen,
            model=self.model,
            model_dir=model_dir,
        )

    def _step(self, batches: list[dict[str, torch.Tensor]], step_number: int):
        """One optimizer step over this rank's micro-batches → (metrics, global expert counts, global tokens)."""
        model, d, cfg = self.model, self.dist, self.cfg
        sums: dict[str, float] = {}
        weight, tokens, counts = 0.0, 0, None
        for i, batch in enumerate(batches):
            batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
            distributed.set_gradient_sync(model, i == len(batches) - 1)
            with torch.autocast(
                self.device.type, dtype=self.autocast_dtype or torch.bfloat16, enabled=self.autocast_dtype is not None
            ):
                out = self.stage.loss(model, batch)
            scaled = out.loss * out.weight
            (self.scaler.scale(scaled) if self.scaler is not None else scaled).backward()
            weight += out.weight
            tokens += out.tokens
            for k, v in {"loss": out.loss.detach(), **out.metrics}.items():
                sums[k] = sums.get(k, 0.0) + float(v) * out.weight
            if out.expert_counts is not None:
                c = out.expert_counts.detach().to(torch.float64)
                counts = c if counts is None else counts + c
            if i == 0 and cfg.debug.kill_at_step == step_number and cfg.debug.kill_where == "step":
                _kill_self()
        # one all-reduce for every scalar: metric sums, weight, tokens
        names = sorted(sums)
        packed = torch.tensor([sums[k] for k in names] + [weight, float(tokens)], dtype=torch.float64)
        packed = distributed.all_reduce_sum(packed.to(self.device), d).cpu()
        g_weight, g_tokens = float(packed[-2]), int(packed[-1])
        parts = {k: float(packed[i]) / max(g_weight, 1e-12) for i, k in enumerate(names)}
        if not math.isfinite(parts["loss"]):
            lr = self.optimizer.param_groups[0]["lr"]
            raise UserError(f"loss is {parts['loss']} at step {step_number} (lr {lr:.2e}): lower optim.lr?")
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)  # inf/nan found here (on any rank) makes `step` skip the update
        # gradients hold Σ weight·∇loss (averaged over ranks by FSDP): make them the global weighted mean
        scale = d.world / max(g_weight, 1e-12)
        for p in model.parameters():
            if p.grad is not None:
                p.grad.mul_(scale)
        max_norm = cfg.optim.grad_clip if cfg.optim.grad_clip > 0 else float("inf")
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        parts["grad_norm"] = float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)
        if self.scaler is not None:
            parts["loss_scale"] = self.scaler.get_scale()  # the scale this step's gradients were computed with
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if counts is not None:
            counts = distributed.all_reduce_sum(counts.to(self.device), d).cpu()
            model.update_router_bias(counts, self.model_config.bias_update_speed)
        return parts, counts, g_tokens

    @torch.no_grad()
    def _evaluate(self, step: int) -> None:
        own = self.stage.evaluate(self.model, step)
        if own is not None:
            self.last_eval = {f"eval_{k}": float(v) for k, v in own.items()}
        elif not self._eval_loss():
            return
        if self.dist.is_main and self.log is not None:
            self.log.write({"event": "eval", "step": step, **self.last_eval})

    def _eval_loss(self) -> bool:
        """The stage's loss over its eval batches, weighted as in training → `last_eval`; False when it has none."""
        batches = self.stage.eval_batches()[: self.cfg.train.eval_batches]
        if not batches and not self.dist.enabled:
            return False
        n = distributed.all_reduce_sum(torch.tensor([float(len(batches))], device=self.device), self.dist)
        if float(n) == 0:
            return False
        self.model.eval()
        sums: dict[str, float] = {}
        weight = 0.0
        for batch in batches:
            batch = {k: v.to(self.device) for k, v in batch.items()}
            with torch.autocast(
                self.device.type, dtype=self.autocast_dtype or torch.bfloat16, enabled=self.autocast_dtype is not None
            ):
                out = self.stage.loss(self.model, batch)
            weight += out.weight
            for k, v in {"loss": out.loss, **out.metrics}.items():
                sums[k] = sums.get(k, 0.0) + float(v) * out.weight
        self.model.train()
        names = sorted(sums)
        packed = torch.tensor([sums.get(k, 0.0) for k in names] + [weight], dtype=torch.float64)
        packed = distributed.all_reduce_sum(packed.to(self.device), self.dist).cpu()
        self.last_eval = {f"eval_{k}": float(packed[i]) / max(float(packed[-1]), 1e-12) for i, k in enumerate(names)}
        if "eval_lm_loss" in self.last_eval:  # the headline number: next-token loss alone
            self.last_eval["eval_loss"] = self.last_eval["eval_lm_loss"]
        return True

    # ---------------------------------------------------------------------------------- setup
    def _check_context(self) -> None:
        """The stage's sequence lengths fit the model's context: checked before anything is read or written."""
        if not self.stage.context_keys:
            return
        context = model_config(self.cfg.model).max_position_embeddings  # no tokenizer needed for the context
        for key in self.stage.context_keys:
            section, name = key.split(".")
            value = getattr(getattr(self.cfg, section), name)
            if value > context:
                source = f"model.path {self.cfg.model.path}" if self.cfg.model.path else "the model config"
                raise ConfigError(
                    f"{key}={value}: longer than the model's context (max_position_embeddings={context} in {source})"
                )

    # files the trainer writes into a run folder: what --overwrite deletes (the tokenizer only when it trained one),
    # with the stage's own `files`
    RUN_FILES = ("checkpoints", "metrics.jsonl", "report.md", "plots", "config.yaml", "tensorboard", "wandb")

    def _prepare_run_dir(self) -> Path | None:
        """Pick the checkpoint to resume (rank 0 decides, before changing anything), then create the folder and clean
        what a killed writer left."""
        d = self.dist
        choice: Any = None
        if d.is_main:
            try:
                choice = self._choose_start()
            except UserError as exc:
                choice = exc
        choice = distributed.broadcast_object(choice, d)
        if isinstance(choice, Exception):
            raise choice
        return Path(choice) if choice else None

    def _choose_start(self) -> str | None:
        """Resume from the newest intact checkpoint, start over (--overwrite), or start in a new folder. A folder
        holding an earlier run needs --resume or --overwrite (HF's example scripts guard a non-empty output dir
        alike); when every checkpoint is broken, --resume stops and leaves the folder as it was."""
        cfg, run = self.cfg, self.run_dir
        if run.exists() and not run.is_dir():
            raise ConfigError(f"train.out={run}: is a file; the run folder must be a directory")
        dirs = ckpt.checkpoint_dirs(run)
        latest = None
        if cfg.train.resume and dirs:
            latest, problems = ckpt.scan(run)
            if latest is None:
                raise CheckpointError(
                    f"resume: none of the {len(dirs)} checkpoints in {run / ckpt.CHECKPOINTS} is "
                    "intact, nothing was changed: " + "; ".join(problems)
                )
            for problem in problems:
                print(f"warning: resume: skipping {problem}", file=sys.stderr)
            self._check_changes(latest)
        elif dirs or (run / "metrics.jsonl").is_file():
            if not (cfg.train.resume or cfg.train.overwrite):
                held = f"checkpoints (latest {dirs[0].name})" if dirs else "a run (metrics.jsonl, no checkpoint)"
                raise ConfigError(
                    f"run folder {run} already holds {held}; pass --resume (train.resume=true) to "
                    "continue it, --overwrite (train.overwrite=true) to delete it and start over, or "
                    "choose another train.out"
                )
            what = "resume: no checkpoint in" if cfg.train.resume else "overwrite: deleting the earlier run in"
            print(f"{what} {run}; starting from step 0 with new metrics", file=sys.stderr)
            self._remove_earlier_run(keep_tokenizer=cfg.train.resume)
        elif cfg.train.resume:
            print(f"resume: no checkpoint in {run}; starting from step 0", file=sys.stderr)
        if not run.exists():
            self._created.append(run)
        run.mkdir(parents=True, exist_ok=True)
        ckpt.clean_partial(run)
        return str(latest) if latest else None

    def _remove_earlier_run(self, keep_tokenizer: bool) -> None:
        run = self.run_dir
        names = [*self.RUN_FILES, *self.stage.files, *(p.name for p in run.glob("config.resume-*.yaml"))]
        if self.cfg.data.tokenizer == "train" and not keep_tokenizer:  # trained on the earlier run's data
            names.append("tokenizer")
        for name in names:
            path = run / name
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)

    def _check_changes(self, checkpoint: Path) -> None:
        """Settings changed since `checkpoint` was written are listed; those that shape the steps already taken
        (`r1.train.config.SHAPING`) need train.allow_config_change."""
        from r1.readers import read_json, read_yaml

        before = read_json(checkpoint / ckpt.STATE_JSON).get("config")
        if before is None:  # written by an older version: the run folder's newest config file
            files = sorted(self.run_dir.glob("config.resume-*.yaml"), key=_resume_number)
            path = files[-1] if files else self.run_dir / "config.yaml"
            if not path.is_file():
                return
            before = read_yaml(path)
        self.changes = config_changes(before, self.cfg)
        if not self.changes:
            return
        listing = ", ".join(f"{k} {_short(a)} -> {_short(b)}" for k, (a, b) in self.changes.items())
        blocked = [k for k in self.changes if shaping(k)]
        if blocked and not self.cfg.train.allow_config_change:
            it = ("it shapes", "it") if len(blocked) == 1 else ("they shape", "them")
            raise ConfigError(
                f"resume: {', '.join(blocked)} changed since {checkpoint.name} ({listing}), and {it[0]} "
                f"the steps already taken: restore {it[1]}, pass --allow-config-change "
                "(train.allow_config_change=true) to continue anyway, or start a new train.out"
            )
        print(f"resume: settings changed since {checkpoint.name}: {listing}", file=sys.stderr)

    def _discard_setup(self) -> None:
        """Setup failed: remove what it created, so a failed start leaves no folder that looks like a run."""
        if not self.dist.is_main:
            return
        if self.log is not None:
            self.log.close()
            self.log = None
        for path in reversed(self._created):
            shutil.rmtree(path, ignore_errors=True)

    def _tokenizer(self):
        """data.tokenizer: a directory, 'train' (BPE on the stage's text, saved in the run folder), or None:
        the model directory's tokenizer when it has one, else no tokenizer (pre-tokenized data)."""
        from r1.tokenizer import Tokenizer

        cfg, d = self.cfg, self.dist
        spec = cfg.data.tokenizer
        if spec == "train":
            where = self.run_dir / "tokenizer"
            if d.is_main and not (where / "tokenizer.json").is_file():
                vocab = cfg.model.overrides.get("vocab_size") or model_config(cfg.model).vocab_size
                texts = iter(self.stage.tokenizer_texts())
                first = next(texts, None)
                if first is None:  # a BPE of no text is bytes only: a useless tokenizer that trains without error
                    raise UserError(
                        f"data.tokenizer=train: the training data has no text to train a tokenizer on "
                        f"(data.paths={cfg.data.paths}, data.builtin={cfg.data.builtin})"
                    )
                if not where.exists():
                    self._created.append(where)
                Tokenizer.train(itertools.chain([first], texts), vocab_size=vocab).save(where)
            distributed.barrier(d)  # every rank, always: the others wait for rank 0's file
            return Tokenizer.load(where)
        if spec:
            return Tokenizer.load(spec)
        if cfg.model.path and (Path(cfg.model.path) / "tokenizer.json").is_file():
            return Tokenizer.load(cfg.model.path)
        return None

    def _build_model(self, resume_from: Path | None) -> Transformer:
        cfg = self.cfg
        torch.manual_seed(cfg.train.seed)
        random.seed(cfg.train.seed)  # checkpoints store its state; unseeded, two equal runs would differ
        source = resume_from or (Path(cfg.model.path) if cfg.model.path else None)
        if source is not None:  # fp32 master weights whatever the checkpoint stores (bf16, fp16, FP8)
            model = load_pretrained(source, config=self.model_config, device=self.device, dtype=torch.float32)
        else:
            with torch.device(self.device):
                model = Transformer(self.model_config)
        return model.train()

    def _resume(self, path: Path) -> int:
        state, tensors = ckpt.read_state(path)
        if "python_random" in state:
            v, internal, gauss = state["python_random"]
            random.setstate((v, tuple(internal), gauss))
        torch.set_rng_state(tensors["rng.torch"])
        if self.device.type == "cuda" and "rng.cuda" in tensors:
            torch.cuda.set_rng_state(tensors["rng.cuda"], self.device)
        distributed.load_optimizer_tensors(self.optimizer, {k: v for k, v in tensors.items() if k.startswith("optim.")})
        self.stage.load_state_dict(state.get("data", {}))
        if self.scaler is not None and "grad_scaler" in state:
            self.scaler.load_state_dict(state["grad_scaler"])
        self.best = state.get("best")
        self.tokens_seen = int(state.get("tokens", 0))
        self.elapsed = float(state.get("elapsed", 0.0))
        self.last_checkpoint = path
        return int(state["step"])

    def _open_log(self, resume_from: Path | None, step: int) -> None:
        """config.yaml records how the run was started and stays; a resume with changed settings adds
        config.resume-N.yaml beside it, so the folder says how every step was trained."""
        cfg = self.cfg
        written = None
        if resume_from is None or not (self.run_dir / "config.yaml").is_file():
            written = "config.yaml"
        elif self.changes:
            n = max((_resume_number(p) for p in self.run_dir.glob("config.resume-*.yaml")), default=0) + 1
            written = f"config.resume-{n}.yaml"
        if written:
            atomic_write_text(self.run_dir / written, cfg.to_yaml())
        metrics = self.run_dir / "metrics.jsonl"
        if resume_from is not None:
            truncate_metrics(metrics, step)
        self.log = MetricsLog(self.run_dir, cfg.logging.tensorboard, cfg.logging.wandb, cfg.to_dict())
        if resume_from is not None:
            event: dict[str, Any] = {"event": "resume", "step": step, "checkpoint": str(resume_from)}
            if self.changes:
                event.update(changed={k: list(v) for k, v in self.changes.items()}, config=written)
            self.log.write(event)
        else:
            info = {
                "event": "start",
                "step": 0,
                "stage": cfg.stage,
                "world_size": self.dist.world,
                "model_params": sum(p.numel() for p in self.model.parameters()),
                **self.stage.describe(),
            }
            self.log.write(info)

    # ---------------------------------------------------------------------------------- checkpoints
    def _save(self, step: int, train_loss: float) -> None:
        cfg, d = self.cfg, self.dist
        full = distributed.full_model_state(self.model, d)  # collectives first, on every rank
        tensors = distributed.optimizer_tensors(self.optimizer, d)
        target = ckpt.checkpoint_dir(self.run_dir, step)
        if d.is_main:
            key, sign = self.stage.best_metric if self.stage.best_metric[0] in self.last_eval else ("train_loss", 1)
            value = self.last_eval.get(key, train_loss)
            better = self.best is None or sign * value < sign * self.best["value"]
            if cfg.checkpoint.keep_best and math.isfinite(value) and better:
                self.best = {"step": step, "value": value, "metric": key}
            tensors["rng.torch"] = torch.get_rng_state()
            if self.device.type == "cuda":
                tensors["rng.cuda"] = torch.cuda.get_rng_state(self.device)
            v, internal, gauss = random.getstate()
            state = {
                "step": step,
                "data": self.stage.state_dict(),
                "python_random": [v, list(internal), gauss],
                "world_size": d.world,
                "tokens": self.tokens_seen,
                "elapsed": self.elapsed,
                "best": self.best,
                "config": cfg.to_dict(),  # what trained the steps up to here: compared on resume
                "param_groups": [
                    {k: v for k, v in g.items() if k not in ("params", "names")} for g in self.optimizer.param_groups
                ],
            }
            if self.scaler is not None:
                state["grad_scaler"] = self.scaler.state_dict()  # plain numbers: the scale and its growth count
            model = self.model if not d.enabled else _cpu_model(self.model_config, full)
            tok = self.tokenizer

            def save_model(where: Path) -> None:
                save_pretrained(model, where)
                if tok is not None:
                    tok.save(where)

            kill = _kill_self if (cfg.debug.kill_at_step == step and cfg.debug.kill_where == "checkpoint") else None
            ckpt.write_checkpoint(target, save_model, tensors, state, kill)
            keep = {self.best["step"]} if (cfg.checkpoint.keep_best and self.best) else set()
            ckpt.rotate(self.run_dir, cfg.checkpoint.keep_last, keep)
            self.log.write({"event": "checkpoint", "step": step, "path": str(target)})
        self.last_checkpoint = target  # on every rank: later decisions (the final save) must agree
        distributed.barrier(d)

    def _write_outputs(self) -> None:
        from r1.train.report import write_plots, write_report

        run, records = self.run_dir, read_metrics(self.run_dir / "metrics.jsonl")
        plots = write_plots(run, records) + self.stage.plots(run, records) if self.cfg.logging.plots else []
        if self.cfg.logging.report:
            facts = self.stage.describe()
            path = write_report(
                run, self.cfg, self.model_config, records, plots, self.last_checkpoint, self.best, facts
            )
            extra = self.stage.report_lines(records)
            if extra:
                with open(path, "a", encoding="utf-8") as f:
                    f.write("\n".join(extra) + "\n")


def _cpu_model(cfg: ModelConfig, state: dict[str, torch.Tensor]) -> Transformer:
    """A CPU model around gathered full tensors, to write them with the usual HF-layout writer."""
    model = meta_model(cfg)
    model.load_state_dict(state, assign=True)
    return model


def _progress(cfg: TrainConfig, d, step: int, total: int):
    if not (cfg.logging.progress and d.is_main):
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=step, desc=cfg.stage, unit="step", dynamic_ncols=True, file=sys.stderr)


def _kill_self() -> None:
    """debug.kill_at_step: die like a power cut (no cleanup, no flush), to test exact resume."""
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def _check_device(device: str) -> None:
    if device == "cuda" and not torch.cuda.is_available():
        built = "a CPU-only build" if torch.version.cuda is None else f"CUDA {torch.version.cuda}, no GPU visible"
        raise ConfigError(
            f"train.device=cuda: CUDA is not available (torch {torch.__version__}: {built}); "
            "use train.device=cpu or auto"
        )


def _resume_number(path: Path) -> int:
    """N of config.resume-N.yaml (0 when the name has no number)."""
    digits = path.name.removeprefix("config.resume-").removesuffix(".yaml")
    return int(digits) if digits.isdigit() else 0


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
