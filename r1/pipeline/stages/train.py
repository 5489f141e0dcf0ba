"""Any `r1 train` stage (pretrain, sft, grpo) as a pipeline stage: a shipped config plus the recipe's overrides →
`<name>.yaml` and a training folder (metrics, plots, the trainer's report, checkpoints), and optionally the final
weights published as a model folder with its own card."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from r1.errors import UserError
from r1.pipeline.stage import Run, Stage
from r1.train.publish import ModelCard

RL_KEYS = "reward accuracy format_rate length_mean long_form reflection reflection_long kl entropy frac_reward_zero_std"


def shared_overrides(cfg: Any) -> list[str]:
    """What every training stage of a pipeline shares: seed, threads, fp32 on the CPU, one final checkpoint (the
    pipeline publishes from it itself), a rerun starts the stage over, progress, plots and a report."""
    same = "train.dtype=fp32 train.device=cpu train.overwrite=true checkpoint.every=0 checkpoint.final=true"
    logs = "checkpoint.publish=false logging.progress=true logging.plots=true logging.report=true"
    return [f"train.seed={cfg.seed}", f"train.threads={cfg.threads}", *same.split(), *logs.split()]


@dataclass
class Train(Stage):
    """Stage `name` trains with shipped config `config` and `overrides(run)` (dotted keys; the recipe states every
    setting its result depends on, so it does not move when the shared file does) into `folder`, recording
    `summary[key]`. `prepare(run)` writes the data files the overrides name; `publish = (dest, card, tokenizer)`
    copies the result to the model folder `dest` with the card `card(run)`."""

    name: str
    config_name: str
    overrides: Callable[[Run], list[str]]
    key: str
    folder: str
    title: str = ""
    prepare: Callable[[Run], None] | None = None
    publish: tuple[str, Callable[[Run], ModelCard], Callable[[Run], Path]] | None = None
    template: str | None = None
    paper: str | None = None  # its paper-scale config (`r1 run --plan --scale paper`; else plan.PAPER_CONFIGS)
    paper_overrides: tuple[str, ...] = ()  # over the paper-scale config (a student's preset and lr, say)

    def __post_init__(self) -> None:
        self.outputs = (self.folder, *((self.publish[0],) if self.publish else ()))

    def config(self, run: Run):
        from r1.assets import config_path
        from r1.train import load_config

        return load_config(config_path(self.config_name), [*self.overrides(run), *shared_overrides(run.config)])

    def plan(self, run: Run):
        from r1.pipeline import plan
        from r1.train import load_config

        if run.scale != "paper":
            return plan.train_plan(run, self.config(run), self.config_name)
        name = self.paper or plan.PAPER_CONFIGS.get(self.config_name)
        if name is not None:
            return plan.train_plan(run, load_config(name, list(self.paper_overrides)), name)
        model = plan.model_from(run, None, plan.PAPER_MODEL)
        if self.config(run).stage == "pretrain":
            note = "DeepSeek-V3's pretraining, 14.8T tokens (V3 report)"
            return plan.Plan(*model, "DeepSeek-V3", None, plan.PAPER_PRETRAIN_TOKENS, 0, note)
        return plan.Plan(*model, note=f"no paper-scale config for {self.config_name}: not counted")

    def run(self, run: Run) -> None:
        from r1.io import atomic_write_text
        from r1.train import train
        from r1.train.metrics import read_metrics

        if self.prepare is not None:
            self.prepare(run)
        cfg = self.config(run)
        atomic_write_text(run.path(f"{self.name}.yaml"), cfg.to_yaml())
        result = train(cfg)
        if result.checkpoint is None:
            raise UserError(f"{self.name}: training wrote no final checkpoint")
        records = read_metrics(Path(result.run_dir) / "metrics.jsonl")
        shown = "grpo_*.png" if cfg.stage == "grpo" else "*.png"  # RL's loss plot shows nothing to read
        plots = sorted(str(p.relative_to(run.out)) for p in (Path(result.run_dir) / "plots").glob(shown))
        run.summary[self.key] = (rl_summary if cfg.stage == "grpo" else lm_summary)(result, records, plots)
        if self.publish is not None:
            from r1.train.publish import publish_model

            dest, card, tokenizer = self.publish
            publish_model(result.checkpoint, run.path(dest), card(run), tokenizer(run), self.template)
            run.summary["hf_check_final"] = hf_check(run, run.path(dest))

    def report(self, run: Run) -> list[str]:
        if self.key not in run.summary:
            return []
        if "curve" not in run.summary[self.key]:
            return lm_lines(run.summary[self.key], run.out, made_here=True, title=self.title)
        return self.rl_lines(run)

    def rl_lines(self, run: Run) -> list[str]:
        from r1.train import load_config
        from r1.train.grpo.options import resolve_options
        from r1.train.grpo.report import settings

        r = run.summary[self.key]
        cfg = load_config(run.path(f"{self.name}.yaml"))
        o = resolve_options(cfg.options)
        lines = [
            "",
            f"## {self.title or self.name} training (GRPO, `{self.folder}/`)",
            "",
            f"From `{cfg.model.path}`, {cfg.train.steps} steps. {settings(o)} Settings: `{self.name}.yaml`; per "
            f"step: `{self.folder}/metrics.jsonl`; the trainer's own report: `{self.folder}/report.md`.",
            "",
            "| rollouts | first step | last step |",
            "|---|---|---|",
        ]
        first, last = r.get("first", {}), r.get("last", {})
        for key in RL_KEYS.split():
            a, b = first.get(key), last.get(key)
            if a is not None or b is not None:
                lines.append(f"| {key} | {_fmt(a)} | {_fmt(b)} |")
        return lines + [""] + [f"![{Path(x).stem}]({x})" for x in r.get("plots", [])]


def lm_summary(result: Any, records: list[dict[str, Any]], plots: list[str]) -> dict[str, Any]:
    losses = [m["lm_loss"] for m in records if "lm_loss" in m]
    return {
        "steps": result.steps,
        "tokens": result.tokens,
        "seconds": round(result.seconds, 1),
        "tokens_per_s": round(result.tokens / max(result.seconds, 1e-9)),
        "final_loss": result.final_loss,
        "final_lm_loss": losses[-1] if losses else None,
        "checkpoint": str(result.checkpoint),
        "plots": plots,
    }


def rl_summary(result: Any, records: list[dict[str, Any]], plots: list[str]) -> dict[str, Any]:
    """Steps, time, the held-out curve (every eval record, the initial policy's at step 0), first and last step."""
    steps = [r for r in records if r.get("event") == "step"]
    curve = [
        {"step": r["step"], **{k[5:]: v for k, v in r.items() if k.startswith("eval_")}}
        for r in records
        if r.get("event") == "eval"
    ]
    return {
        "steps": result.steps,
        "seconds": round(result.seconds, 1),
        "checkpoint": str(result.checkpoint),
        "curve": curve,
        "plots": plots,
        "first": {k: steps[0].get(k) for k in RL_KEYS.split()} if steps else {},
        "last": {k: steps[-1].get(k) for k in RL_KEYS.split()} if steps else {},
    }


def lm_lines(p: dict[str, Any], out: Path, made_here: bool, title: str = "") -> list[str]:
    """The pretraining (or `title`'s) paragraph and its plots (those in this run folder)."""
    loss = p.get("final_lm_loss")
    if loss is None:
        return []
    lines = [
        *([""] if title else []),
        f"**{title or 'Pretraining'}**: {p['steps']} steps, {p['tokens']:,} tokens in {p['seconds']:.0f} s "
        f"({p['tokens_per_s']:,} tokens/s), loss on responses only; final next-token loss {loss:.3f}"
        + ("." if made_here else " (when the base was made)."),
    ]
    return lines + [f"![{Path(x).stem}]({x})" for x in p.get("plots", []) if (out / x).is_file()]


def _fmt(x: Any) -> str:
    return f"{x:.3g}" if isinstance(x, int | float) else "–"


def hf_check(run: Run, model_dir: Path) -> dict[str, Any] | None:
    """transformers' AutoModelForCausalLM on the folder gives r1's logits (to 1e-4), or the run stops."""
    import torch

    try:
        import transformers
    except ImportError:
        run.notes.append("transformers is not installed: skipped the checkpoint check (pip install 'r1[hf]')")
        return None
    from r1.model.checkpoint import load_pretrained

    transformers.logging.set_verbosity_error()
    ours = load_pretrained(model_dir).eval()
    theirs = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    ids = torch.randint(0, ours.config.vocab_size, (2, 64), generator=torch.Generator().manual_seed(run.config.seed))
    with torch.no_grad():
        diff = (ours(ids).logits - theirs(ids).logits).abs().max().item()
    if diff > 1e-4:
        raise UserError(f"transformers logits differ from r1's by {diff:.2e} (> 1e-4) for {model_dir}")
    return {"transformers": transformers.__version__, "max_abs_logit_diff": diff}
