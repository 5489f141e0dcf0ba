"""GRPO as a stage of the shared training core: DeepSeekMath's Algorithm 1 with the core's optimizer step.

`prepare` makes a rollout every `steps_per_rollout` steps (P prompts × G samples from the engine around the trained
model, rewards from the registry, Â per group, π_ref reset every `ref_refresh` steps) and picks this step's
minibatch: the rollout is visited μ (`epochs`) times in P·G / batch_size minibatches. `loss` is
`algorithm.policy_loss`; `evaluate` is held-out pass@1, cons@k, format rate, lengths and reflection rates. Watch
`reward`, `accuracy` and `eval_pass@1`, not `loss` (≈ 0 at μ = 1 by construction, see `algorithm`).

π_old. The engine returns each token's log-prob under the sampling distribution and under the unmodified model; the
ratio needs the model's (`old_logprobs: engine`, no extra forward). `old_logprobs: trainer` recomputes π_old with
the trainer's kernels, and `tis_cap: C` multiplies each token's surrogate by min(π_old / π_sampler, C) (TRL's vLLM
correction, which also covers temperature and top-p).

Exact resume. A rollout is a pure function of the weights, the prompt cursor and the run seed, but a run killed
mid-cycle no longer has the weights that made it: each rollout is kept in `grpo/rollout-NNNNNN.safetensors` and the
reference model (β > 0) in `grpo/reference-step-NNNNNN.safetensors`; files no checkpoint needs are deleted.

Several processes (torchrun). The policy trains FSDP2-sharded; the engine and the reference run on whole copies
(`_sampler`), and every process samples and scores its block of the rollout and of each evaluation batch with one
process's seeds (`distributed.shard_map`), so each holds the single-process rollout and trains its share of the
minibatch. Rank 0 alone writes the rollout and reference files.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import math
import random
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from r1.dtypes import autocast_dtype
from r1.errors import ConfigError, UserError
from r1.io import atomic_path
from r1.train import distributed
from r1.train.config import TrainConfig
from r1.train.core import LossOutput, Stage, StageContext
from r1.train.grpo import report
from r1.train.grpo.algorithm import group_advantages, policy_loss, token_mean
from r1.train.grpo.options import PRESETS, resolve_options
from r1.train.grpo.rollout import (
    Rollout,
    completion_logprobs,
    completion_mask,
    forward_logprobs,
    load_rollout,
    pack_samples,
    response_stats,
    reward_stats,
    round_seed,
    sample_groups,
    save_rollout,
)
from r1.train.grpo.watchdog import Watchdog


class GRPOStage(Stage):
    """Rollouts from the engine, rewards from the registry, `policy_loss` on minibatches (see the module docstring).

    `items` / `eval_items` give task items directly (tests, notebooks); else `data.paths` / `data.eval_paths`
    (task-item JSONL, as `r1 tasks sample` writes), else `grpo.task`'s generator (train / eval split).
    """

    name = "grpo"
    has_options = True
    progress_keys = ("reward", "eval_pass@1")
    best_metric = ("eval_pass@1", -1)  # keep_best keeps the highest held-out pass@1
    files = ("grpo", "completions.jsonl")

    def __init__(self, cfg: TrainConfig, data: list[dict[str, Any]] | None = None, eval_data: list | None = None):
        super().__init__(cfg, data, eval_data)
        self.opt = resolve_options(cfg.options)
        self.engine = None
        self.reference: nn.Module | None = None
        self.rollout: Rollout | None = None
        self.micro: list[dict[str, torch.Tensor]] = []
        self.this_step: dict[str, float] = {}
        # the data position (state_dict): which rollout, how many of its steps are done, prompts drawn, reference
        self.rollout_index = -1
        self.rollout_steps_done = 0
        self.prompts_used = 0
        self.ref_step = -1

    # ------------------------------------------------------------------------------------------ setup
    def setup(self, ctx: StageContext) -> None:
        super().setup(ctx)
        o, cfg = self.opt, self.cfg
        self.dist = distributed.DistInfo(rank=ctx.rank, world=ctx.world)
        # under FSDP2 the engine samples from a full copy, loaded with the gathered weights before each rollout and
        # evaluation (`_sampler`); made here, before the core shards ctx.model in place
        self.full = copy.deepcopy(ctx.model).requires_grad_(False) if ctx.world > 1 else None
        self.synced_at = -1  # the step whose weights `full` holds
        if ctx.tokenizer is None:
            raise UserError("stage grpo needs a tokenizer: set model.path to a checkpoint with one, or data.tokenizer")
        n, B = o.prompts_per_rollout * o.group_size, cfg.train.batch_size
        if n % B:
            raise ConfigError(
                f"train.batch_size={B}: must divide the rollout, grpo.prompts_per_rollout × "
                f"grpo.group_size = {n} (one minibatch of batch_size samples per optimizer step)"
            )
        self.minibatches = n // B
        self.steps_per_rollout = o.epochs * self.minibatches
        self.items = [self._templated(it) for it in self._load_items("train")]
        self.eval_items = self._load_items("eval") if o.eval_items else []
        self.eval_at_start = o.eval_at_start and bool(self.eval_items)
        self.prompt_ids = [self._encode(it) for it in self.items]
        spec = dict(o.reward)
        if o.soft_overlong:
            spec["soft_overlong"] = {"max_len": o.max_new_tokens, "buffer": o.overlong_buffer or None}
        from r1.rewards import build_reward

        self.reward = build_reward(spec)
        self.autocast = autocast_dtype(cfg.train.dtype, ctx.device)  # the trainer's, see r1.dtypes
        self.files_dir = ctx.run_dir / "grpo"
        self.watchdog = Watchdog()
        differ = [
            f"{key}={want:g} (this run: {self._core(key):g})"
            for key, want in PRESETS[o.preset].recommended.items()
            if self._core(key) != want
        ]
        if differ and ctx.rank == 0:
            print(f"grpo.preset {o.preset} was published with {', '.join(differ)}", file=sys.stderr)

    def _core(self, key: str) -> Any:
        section, name = key.split(".")
        return getattr(getattr(self.cfg, section), name)

    def _load_items(self, split: str) -> list[dict[str, Any]]:
        o, d = self.opt, self.cfg.data
        given = self.data if split == "train" else self.eval_data
        paths = d.paths if split == "train" else d.eval_paths
        count = o.train_items if split == "train" else o.eval_items
        if given is not None:
            items = [dict(it) for it in given]
        elif paths:
            from r1.tasks.datasets import iter_jsonl

            missing = [p for p in paths if not Path(p).is_file()]
            if missing:
                raise UserError(f"stage grpo: {split} item file not found: {missing[0]}")
            items = [record for p in paths for _, _, record in iter_jsonl(Path(p))]
        else:
            from r1.tasks import get_task

            tasks = [o.task] if isinstance(o.task, str) else list(o.task)
            per = math.ceil(count / len(tasks))
            items = [
                it
                for t in tasks
                for it in get_task(t).generate(per, seed=self.cfg.train.seed, difficulty=o.difficulty, split=split)
            ]
            if len(tasks) > 1:
                random.Random(f"grpo|{self.cfg.train.seed}|{split}").shuffle(items)
        if not items:
            raise UserError(f"stage grpo: no {split} items (grpo.task, data.paths / data.eval_paths)")
        return items[:count] if split == "eval" else items

    def _templated(self, item: dict[str, Any]) -> dict[str, Any]:
        from r1.tasks import apply_template

        return apply_template(item, self.opt.template) if self.opt.template != "none" else item

    def _encode(self, item: Mapping[str, Any]) -> list[int]:
        """Prompt ids exactly as the evaluator's generator builds them (BOS + text, or the chat template)."""
        tok = self.ctx.tokenizer
        if item.get("messages") is not None:
            return tok.apply_chat_template(item["messages"], add_generation_prompt=True, tokenize=True)
        ids = tok.encode(item["prompt"])
        return [tok.bos_id, *ids] if tok.bos_id is not None and ids[:1] != [tok.bos_id] else ids

    # ------------------------------------------------------------------------------------------ core contract
    def prepare(self, model: nn.Module, step: int) -> None:
        """Make sure a rollout is ready (generate, or reload after a resume mid-cycle) and cut this step's minibatch."""
        self.this_step = {}
        if self.rollout is None and 0 <= self.rollout_index and self.rollout_steps_done < self.steps_per_rollout:
            path = self._path("rollout", self.rollout_index)
            if not path.is_file():
                raise UserError(f"resume: {path} is missing; the checkpoint was taken in the middle of that rollout")
            self.rollout = load_rollout(path)
        elif self.rollout is None or self.rollout_steps_done >= self.steps_per_rollout:
            self.rollout = self._new_rollout(self._sampler(model, step))
        k = self.rollout_steps_done
        epoch, j = divmod(k, self.minibatches)
        g = torch.Generator().manual_seed(round_seed(self.cfg.train.seed, self.rollout_index, 1000 + epoch))
        B, world, rank = self.cfg.train.batch_size, self.ctx.world, self.ctx.rank
        rows = torch.randperm(len(self.rollout), generator=g)[j * B : (j + 1) * B]
        rows = rows[rank * B // world : (rank + 1) * B // world]  # this rank's share of the minibatch
        mb = self.ctx.micro_batch_size
        self.micro = [self.rollout.rows(rows[s : s + mb]) for s in range(0, len(rows), mb)]
        self.first_pass = k == 0 and self.opt.old_logprobs == "engine"
        self.rollout_steps_done = k + 1
        self.this_step.update(self.rollout.stats)

    def next_batches(self) -> list[dict[str, torch.Tensor]]:
        return self.micro

    def step_metrics(self) -> dict[str, float]:
        return dict(self.this_step)  # the rollout's statistics, timings, warnings

    def loss(self, model: nn.Module, mb: dict[str, torch.Tensor]) -> LossOutput:
        o = self.opt
        logp, entropy, out = completion_logprobs(
            model, mb["input_ids"], mb["prompt_lens"], mb["completion_lens"], entropy=True
        )
        mask = completion_mask(mb["completion_lens"]) * mb["trainable"][:, None].float()
        is_weight = None
        if o.tis_cap:
            is_weight = torch.exp(mb["old_logprobs"] - mb["sampler_logprobs"]).clamp(max=o.tis_cap)
        loss, weight, metrics = policy_loss(
            logp, mb["old_logprobs"], mb["advantages"], mask, o, mb.get("ref_logprobs"), is_weight
        )
        full = completion_mask(mb["completion_lens"])
        metrics["entropy"] = token_mean(entropy, full)[0]
        if self.first_pass:  # weights = those that sampled: any difference is numerics (dtype, kernels)
            diff = (logp.detach() - mb["old_logprobs"]).abs() * full
            metrics["logprob_diff_max"] = diff.max()
            metrics["logprob_diff_mean"] = token_mean(diff, full)[0]
        if is_weight is not None:
            metrics["tis_weight_mean"] = token_mean(is_weight, full)[0]
            metrics["tis_weight_max"] = (is_weight * full).max()
        tokens = int((mb["prompt_lens"] + mb["completion_lens"]).sum())
        counts = out.expert_counts if o.update_router_bias else None
        return LossOutput(loss, weight, tokens, metrics, counts)

    def state_dict(self) -> dict[str, Any]:
        return {
            "rollout": self.rollout_index,
            "rollout_steps_done": self.rollout_steps_done,
            "prompts_used": self.prompts_used,
            "ref_step": self.ref_step,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            self.rollout_index = int(state["rollout"])
            self.rollout_steps_done = int(state["rollout_steps_done"])
            self.prompts_used = int(state["prompts_used"])
            self.ref_step = int(state["ref_step"])

    def describe(self) -> dict[str, Any]:
        return {
            "grpo": dataclasses.asdict(self.opt),
            "prompts": len(getattr(self, "items", [])),
            "eval_items": len(getattr(self, "eval_items", [])),
            "steps_per_rollout": getattr(self, "steps_per_rollout", None),
        }

    # ------------------------------------------------------------------------------------------ rollouts
    def _new_rollout(self, model: nn.Module) -> Rollout:
        """`model`: the policy's weights, whole (`_sampler`); each process samples its share of the prompts."""
        o, seed = self.opt, self.cfg.train.seed
        r = self.rollout_index + 1
        self._sync_reference(model, r * self.steps_per_rollout)
        params = self._sampling(o.temperature, o.top_p, o.max_new_tokens)
        kept, spare, seen = [], [], {"verdicts": [], "lengths": [], "total": [], "components": {}}
        t_gen = t_reward = 0.0
        rounds = 0
        for rnd in range(o.max_gen_rounds if o.dynamic_sampling else 1):
            rounds += 1
            idx = self._take_prompts(o.prompts_per_rollout)
            t0 = time.perf_counter()
            with self._generating(model):
                groups = self._sample(model, [self.prompt_ids[i] for i in idx], params, round_seed(seed, r, rnd))
            t1 = time.perf_counter()
            samples = [s for grp in groups for s in grp]
            items = [self.items[i] for i in idx for _ in range(o.group_size)]
            scored = self.reward.score([s.text for s in samples], items, [len(s.tokens) for s in samples])
            self._judge(samples, items, scored, seen)
            t_gen, t_reward = t_gen + t1 - t0, t_reward + time.perf_counter() - t1
            for g, i in enumerate(idx):
                total = scored.total[g * o.group_size : (g + 1) * o.group_size]
                varied = max(total) > min(total)
                (kept if varied or not o.dynamic_sampling else spare).append((i, groups[g], total))
            if len(kept) >= o.prompts_per_rollout:
                break
        chosen = (kept + spare)[: o.prompts_per_rollout]  # with dynamic sampling, zero-variance groups only top up
        t0 = time.perf_counter()
        rollout = self._build(model, chosen)
        t_logprobs = time.perf_counter() - t0
        rollout.stats.update(reward_stats(seen["components"], seen["total"], o.group_size))
        rollout.stats.update(response_stats(seen["verdicts"], seen["lengths"]))
        if o.dynamic_sampling:
            rollout.stats.update(
                {
                    "dynamic/gen_rounds": rounds,
                    "dynamic/groups_varied": len(kept),
                    "dynamic/groups_topped_up": max(0, o.prompts_per_rollout - len(kept)),
                }
            )
        generated = sum(seen["lengths"])
        self.this_step.update(
            {
                "time/rollout": t_gen,
                "time/reward": t_reward,
                "time/logprobs": t_logprobs,
                "rollout_tokens": generated,
                "rollout_tokens_per_s": generated / max(t_gen, 1e-9),
            }
        )
        self.rollout_index, self.rollout_steps_done = r, 0
        for name, message in self.watchdog.check(rollout.stats, o):
            self.this_step[f"warn/{name}"] = 1.0
            if self.ctx.rank == 0:
                print(f"\nwarning (grpo, rollout {r}): {message}", file=sys.stderr, flush=True)
        if self.steps_per_rollout > 1 and self.ctx.rank == 0:  # a checkpoint may land mid-cycle: keep its samples
            save_rollout(self._path("rollout", r), rollout)
            self._prune()
        return rollout

    def _sample(self, model: nn.Module, prompts: list[list[int]], params: Any, seed: int) -> list[list[Any]]:
        """G samples per prompt, each process sampling its block: prompt j is seeded `seed + j` however it is split."""
        engine, G = self._engine(model), self.opt.group_size
        return distributed.shard_map(
            lambda block, at: sample_groups(engine, block, G, params, seed + at), prompts, self.dist
        )

    def _judge(self, samples: list[Any], items: list[dict[str, Any]], scored: Any, seen: dict[str, Any]) -> None:
        from r1.rewards.judge import judge

        for s, it in zip(samples, items):
            seen["lengths"].append(len(s.tokens))
            words = self.opt.reflection_words
            seen["verdicts"].append(
                judge(s.text, it, self.opt.template, finish_reason=s.finish_reason, reflection_words=words)
            )
        seen["total"] += scored.total
        for name, values in scored.components.items():
            seen["components"].setdefault(name, []).extend(values)

    def _build(self, model: nn.Module, chosen: list) -> Rollout:
        """The chosen groups as tensors, with advantages, and π_old / π_ref log-probabilities where needed."""
        o, G = self.opt, self.opt.group_size
        rewards = torch.tensor([total for _, _, total in chosen], dtype=torch.float32)
        samples = [s for _, grp, _ in chosen for s in grp]
        prompts = [self.prompt_ids[i] for i, _, _ in chosen for _ in range(G)]
        pad = self.ctx.tokenizer.pad_id if self.ctx.tokenizer.pad_id is not None else 0
        packed = pack_samples(prompts, samples, pad)
        trainable = torch.tensor([not (o.mask_truncated and s.finish_reason == "length") for s in samples])
        rollout = Rollout(
            input_ids=packed["input_ids"],
            prompt_lens=packed["prompt_lens"],
            completion_lens=packed["completion_lens"],
            advantages=group_advantages(rewards, o.scale_rewards, o.std_eps).flatten(),
            old_logprobs=packed["model_logprobs"],
            sampler_logprobs=packed["sampler_logprobs"],
            trainable=trainable,
        )
        if o.old_logprobs == "trainer":
            rollout.engine_logprobs = rollout.old_logprobs
            rollout.old_logprobs = self._logprobs(model, packed)
            mask = completion_mask(packed["completion_lens"])
            diff = (rollout.old_logprobs - rollout.engine_logprobs).abs() * mask
            rollout.stats.update(
                {"logprob_diff_max": float(diff.max()), "logprob_diff_mean": float(diff.sum() / mask.sum())}
            )
        if self.reference is not None:
            rollout.ref_logprobs = self._logprobs(self.reference, packed)
        return rollout

    def _logprobs(self, model: nn.Module, packed: dict[str, torch.Tensor]) -> torch.Tensor:
        """`forward_logprobs` over the whole rollout, each process scoring its block of rows ([N, C])."""
        C = packed["model_logprobs"].shape[1]

        def block(rows: list[int], at: int) -> list[torch.Tensor]:
            part = {k: v[at : at + len(rows)] for k, v in packed.items()}
            lp = forward_logprobs(model, part, self.ctx.micro_batch_size, self.autocast)
            return list(torch.nn.functional.pad(lp, (0, C - lp.shape[1])))

        return torch.stack(distributed.shard_map(block, list(range(len(packed["input_ids"]))), self.dist))

    def _take_prompts(self, n: int) -> list[int]:
        """The next n prompt indices: a fresh seeded permutation of the pool every epoch."""
        out, size = [], len(self.items)
        for c in range(self.prompts_used, self.prompts_used + n):
            epoch = c // size
            if getattr(self, "_perm_epoch", None) != epoch:
                self._perm = list(range(size))
                random.Random(f"grpo-prompts|{self.cfg.train.seed}|{epoch}").shuffle(self._perm)
                self._perm_epoch = epoch
            out.append(self._perm[c % size])
        self.prompts_used += n
        return out

    # ------------------------------------------------------------------------------------------ engine, reference
    def _sampler(self, model: nn.Module, step: int) -> nn.Module:
        """The policy as one module that the engine can run: itself in one process; under FSDP2 the full copy, loaded
        with the weights gathered after `step` optimizer steps (once per step)."""
        if self.full is None:
            return model
        if self.synced_at != step:
            self.full.load_state_dict(distributed.full_model_state(model, self.dist, everywhere=True))
            self.synced_at = step
        return self.full

    def _sampling(self, temperature: float, top_p: float, max_tokens: int):
        from r1.engine import SamplingParams

        return SamplingParams(temperature=temperature, top_p=top_p, max_tokens=max_tokens)

    def _engine(self, model: nn.Module):
        """One engine around the trained model itself: no weight copy to sync.

        `Engine.generate` re-derives its fused weight copies at every call, so each rollout samples from the weights
        the last optimizer step left (fused AdamW updates in place without moving version counters).
        """
        if self.engine is None or self.engine.model is not model:
            from r1.engine import Engine

            o = self.opt
            longest = max(len(p) for p in self.prompt_ids)
            new = max(o.max_new_tokens, o.eval_max_new_tokens or o.max_new_tokens)
            limit = model.config.max_position_embeddings
            rows = max(o.prompts_per_rollout * o.group_size, 16 * o.eval_k if self.eval_items else 0)
            # under bf16 autocast the trainer's logits are bf16 GEMMs: the engine's vocabulary projection matches
            self.engine = Engine(
                model,
                self.ctx.tokenizer,
                max_batch=min(rows, 512),
                max_len=min(limit, longest + new + 8),
                head_dtype=self.autocast,
                threads=self.cfg.train.threads or None,  # a count the user set is every forward's
                speculative="off",  # batch work: a seeded sample must not depend on the batch (engine docs)
            )
        return self.engine

    @contextlib.contextmanager
    def _generating(self, model: nn.Module) -> Iterator[None]:
        """Generation as the engine runs it standalone: eval mode, no autocast (full precision but for the vocabulary
        projection under bf16 training, see `_engine`), then back."""
        was_training = model.training
        model.eval()
        try:
            with torch.autocast(self.ctx.device.type, enabled=False):
                yield
        finally:
            model.train(was_training)

    def _sync_reference(self, model: nn.Module, step: int) -> None:
        """β > 0: the frozen reference, a copy of the policy at `ref_step`, reset every `ref_refresh` steps."""
        o = self.opt
        if o.beta == 0:
            return
        if self.reference is None:
            self.reference = copy.deepcopy(model).eval().requires_grad_(False)
            if self.ref_step >= 0:  # resumed: the reference is not the checkpoint's weights
                path = self._path("reference", self.ref_step)
                if not path.is_file():
                    raise UserError(f"resume: the reference weights {path} are missing")
                self.reference.load_state_dict(load_file(str(path)))
            else:
                self._save_reference(step)
        if o.ref_refresh and step - self.ref_step >= o.ref_refresh:
            self.reference.load_state_dict(model.state_dict())
            self._save_reference(step)

    def _save_reference(self, step: int) -> None:
        self.ref_step = step
        if self.ctx.rank != 0:  # one writer; every process holds the same reference
            return
        path = self._path("reference", step)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            save_file({k: v.detach().clone().contiguous() for k, v in self.reference.state_dict().items()}, str(tmp))
        self._prune()

    def _path(self, kind: str, n: int) -> Path:
        return self.files_dir / (
            f"rollout-{n:06d}.safetensors" if kind == "rollout" else f"reference-step-{n:06d}.safetensors"
        )

    def _prune(self) -> None:
        """Delete rollout / reference files that neither the current state nor any complete checkpoint needs."""
        from r1.train.checkpointing import CHECKPOINTS, COMPLETE, STATE_JSON

        need = {self._path("rollout", self.rollout_index).name, self._path("reference", self.ref_step).name}
        for ck in (self.ctx.run_dir / CHECKPOINTS).glob("step-*"):
            if (ck / COMPLETE).is_file():
                data = json.loads((ck / STATE_JSON).read_text(encoding="utf-8")).get("data", {})
                need.add(self._path("rollout", int(data.get("rollout", -1))).name)
                need.add(self._path("reference", int(data.get("ref_step", -1))).name)
        for f in self.files_dir.glob("*.safetensors"):
            if f.name not in need:
                f.unlink(missing_ok=True)

    # ------------------------------------------------------------------------------------------ evaluation
    def evaluate(self, model: nn.Module, step: int) -> dict[str, float] | None:
        """Held-out pass@1 (mean over k samples), pass@k, cons@k, format rate, lengths and reflection rates on the
        eval split; `log_completions` samples go to completions.jsonl with their reward components."""
        from r1.engine.adapters import make_generate_fn
        from r1.eval.evaluate import evaluate

        o = self.opt
        if not self.eval_items:
            return None
        model = self._sampler(model, step)
        generate = make_generate_fn(self._engine(model))

        def sharded(items: list, n: int, sampling: dict[str, Any]) -> list:  # each process samples its share
            return distributed.shard_map(
                lambda block, at: generate(block, n, {**sampling, "seed": sampling["seed"] + at}), items, self.dist
            )

        with self._generating(model):
            res = evaluate(
                self.eval_items,
                sharded,
                k=o.eval_k,
                temperature=o.eval_temperature,
                top_p=o.eval_top_p,
                max_new_tokens=o.eval_max_new_tokens or o.max_new_tokens,
                template=None if o.template == "none" else o.template,
                seed=self.cfg.train.seed,
                progress=False,
                reflection_words=o.reflection_words,
            )
        ov, samples = res.overall, res.samples
        out = {
            "pass@1": ov["pass@1"],
            f"pass@{o.eval_k}": ov[f"pass@{o.eval_k}"],
            f"cons@{o.eval_k}": ov[f"cons@{o.eval_k}"],
            "format_rate": ov["format_rate"],
        }
        out.update(response_stats(res.verdicts, [s["num_tokens"] for s in samples], rates=False))
        if o.log_completions and self.ctx.rank == 0:  # the first sample of the first items: several questions
            shown = ([s for s in samples if s["sample"] == 0] + [s for s in samples if s["sample"]])[
                : o.log_completions
            ]
            items = [self._templated(self.eval_items[s["item"]]) for s in shown]
            report.log_completions(self.ctx.run_dir, step, shown, self.reward, items)
        return out

    # ------------------------------------------------------------------------------------------ outputs
    def plots(self, run_dir: Path, records: list[dict[str, Any]]) -> list[Path]:
        return report.write_plots(run_dir, records)

    def report_lines(self, records: list[dict[str, Any]]) -> list[str]:
        return report.report_lines(records, self.opt, self.ctx.run_dir)
