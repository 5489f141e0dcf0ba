"""A run's plots (`plots/*.png`) and its one-page `report.md`, from `metrics.jsonl` alone.

Rebuilding both from the metrics file (not from in-memory state) means a resumed run, or a person re-running
`write_plots` on a copied folder, gets the same pictures.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from r1.model.config import ModelConfig
from r1.train.config import TrainConfig


def series(records: list[dict[str, Any]], key: str, event: str = "step") -> tuple[list[int], list[Any]]:
    """(steps, values) of one metric over the records of one event kind, where it was logged."""
    pts = [(r["step"], r[key]) for r in records if r.get("event") == event and r.get(key) is not None]
    return [p[0] for p in pts], [p[1] for p in pts]


@dataclass(frozen=True)
class Plot:
    """One PNG of `plots/`: metrics against step. `lines` maps each label to a metric: a key of metrics.jsonl (read
    from the eval records, drawn as dots, when it starts with `eval_`; else from the step records, drawn as a line)
    or the (steps, values) the caller computed; `styles` gives a metric another matplotlib style."""

    file: str
    title: str
    lines: dict[str, str | tuple[list, list]]
    ylabel: str = ""
    hline: float | None = None
    styles: dict[str, str] = field(default_factory=dict)


def draw(out: Path, records: list[dict[str, Any]], plots: list[Plot]) -> list[Path]:
    """The one plot helper: each plot that has points, as `out/<file>` (Agg backend, no display needed). Lines
    without points are left out."""
    written = []
    for plot in plots:
        lines = [(label, _points(records, metric), _style(plot, metric)) for label, metric in plot.lines.items()]
        lines = [line for line in lines if line[1][0]]
        if not lines:
            continue
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.5))
        for label, (xs, ys), style in lines:
            ax.plot(xs, ys, style, label=label, lw=1, ms=3)
        if plot.hline is not None:
            ax.axhline(plot.hline, color="k", lw=0.5)
        ax.set(xlabel="step", ylabel=plot.ylabel, title=plot.title)
        if len(lines) > 1:
            ax.legend(fontsize=7, ncol=1 + (len(lines) > 6))
        ax.grid(alpha=0.3)
        fig.tight_layout()
        out.mkdir(parents=True, exist_ok=True)
        fig.savefig(out / plot.file, dpi=90)
        plt.close(fig)
        written.append(out / plot.file)
    return written


def bars(path: Path, title: str, groups: list[str], values: dict[str, list[float | None]]) -> Path:
    """A bar chart, one panel per metric of `values` (name → a value per group, None drawn as no bar), one bar per
    group (a pipeline's stages), as `path`. Rates in [0, 1] are drawn in %."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(values), figsize=(2.2 * len(values) + 1, 3.2), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (name, ys) in zip(axes[0], values.items()):
        heights = [100 * y if y is not None else 0.0 for y in ys]
        ax.bar(range(len(groups)), heights, color=[colors[i % len(colors)] for i in range(len(groups))])
        ax.set_xticks(range(len(groups)), groups, rotation=45, ha="right", fontsize=7)
        ax.set(title=name, ylim=(0, 100))
        ax.title.set_fontsize(8)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("%")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _points(records: list[dict[str, Any]], metric: str | tuple[list, list]) -> tuple[list, list]:
    if isinstance(metric, str):
        return series(records, metric, "eval" if metric.startswith("eval_") else "step")
    return metric


def _style(plot: Plot, metric: str | tuple[list, list]) -> str:
    if isinstance(metric, str):
        return plot.styles.get(metric, "o-" if metric.startswith("eval_") else "-")
    return "-"


def write_plots(run_dir: Path, records: list[dict[str, Any]]) -> list[Path]:
    """loss.png (loss parts + eval), lr.png, grad_norm.png, expert_balance.png (when the model has MoE layers)."""
    balance = [(r["step"], r["expert_imbalance"]) for r in records if "expert_imbalance" in r]
    layers = max((len(v) for _, v in balance), default=0)
    per_layer = {f"MoE {i}": ([s for s, _ in balance], [v[i] for _, v in balance]) for i in range(layers)}
    losses = {"total": "loss", "next-token": "lm_loss", "MTP": "mtp_loss", "eval next-token": "eval_loss"}
    plots = [
        Plot("loss.png", "Loss", losses, "loss"),
        Plot("lr.png", "Learning rate", {"lr": "lr"}),
        Plot("grad_norm.png", "Gradient norm (before clipping)", {"": "grad_norm"}),
        Plot("expert_balance.png", "Expert load imbalance (1 = balanced)", per_layer, "max / mean expert load", 1.0),
    ]
    return draw(Path(run_dir) / "plots", records, plots)


def write_report(
    run_dir: Path,
    cfg: TrainConfig,
    model_cfg: ModelConfig,
    records: list[dict[str, Any]],
    plots: list[Path],
    checkpoint: Path | None,
    best: dict[str, Any] | None,
    data: dict[str, Any],
) -> Path:
    """`report.md`: what ran, the final and best numbers, the plots, the time."""
    run_dir = Path(run_dir)
    steps = [r for r in records if r.get("event") == "step"]
    evals = [r for r in records if r.get("event") == "eval"]
    start = next((r for r in records if r.get("event") == "start"), {})
    last = steps[-1] if steps else {}
    model = cfg.model.path or cfg.model.preset
    lines = [
        f"# {cfg.stage} run: {run_dir.name}",
        "",
        f"Written {time.strftime('%Y-%m-%d %H:%M')}. Config: `config.yaml`; every step: `metrics.jsonl`.",
        "",
        "## What ran",
        "",
        f"- model: `{model}` ({model_cfg.model_type}, {start.get('model_params', 0):,} parameters incl. MTP), "
        f"{model_cfg.num_hidden_layers} layers, d={model_cfg.hidden_size}, "
        f"{model_cfg.n_routed_experts} routed experts, MTP depth {model_cfg.num_nextn_predict_layers}",
        f"- data: {_facts(data)}; seq_len {cfg.data.seq_len}, batching `{cfg.data.batching}`",
        f"- {cfg.train.steps} steps × {cfg.train.batch_size} sequences, {start.get('world_size', 1)} process(es), "
        f"{cfg.train.dtype}, seed {cfg.train.seed}",
        f"- AdamW lr {cfg.optim.lr:g} β {tuple(cfg.optim.betas)} wd {cfg.optim.weight_decay:g} clip "
        f"{cfg.optim.grad_clip:g}; {cfg.schedule.kind} schedule, {cfg.schedule.warmup_steps} warm-up steps, "
        f"min lr ratio {cfg.schedule.min_lr_ratio:g}",
        "",
        "## Results",
        "",
        "| metric | value |",
        "|---|---|",
    ]
    for key in ("loss", "lm_loss", "mtp_loss", "balance_loss", "grad_norm"):
        if key in last:
            lines.append(f"| final {key} | {last[key]:.4f} |")
    if steps:
        low = min(steps, key=lambda r: r["loss"])
        lines.append(f"| lowest train loss | {low['loss']:.4f} (step {low['step']}) |")
    evals = [r for r in evals if "eval_loss" in r]  # an on-policy stage reports its own evaluation
    if evals:
        lines.append(f"| final eval loss | {evals[-1]['eval_loss']:.4f} |")
        b = min(evals, key=lambda r: r["eval_loss"])
        lines.append(f"| best eval loss | {b['eval_loss']:.4f} (step {b['step']}) |")
    if "expert_imbalance" in last:
        lines.append(f"| final expert imbalance (max/mean, worst layer) | {max(last['expert_imbalance']):.2f} |")
    if steps:
        tps = sorted(r["tokens_per_s"] for r in steps)[len(steps) // 2]
        mfu = sorted(r["mfu"] for r in steps)[len(steps) // 2]
        lines.append(f"| median throughput | {tps:,.0f} tokens/s ({100 * mfu:.1f}% of measured matmul peak) |")
        lines.append(f"| training time | {last.get('elapsed', 0):.1f} s |")
    if best:
        lines.append(f"| best checkpoint | step {best['step']} ({best['metric']} {best['value']:.4f}) |")
    if checkpoint:
        lines.append(f"| final checkpoint | `{Path(checkpoint).relative_to(run_dir)}` (Hugging Face layout) |")
    resumes = [r for r in records if r.get("event") == "resume"]
    if resumes:
        lines.append(f"| resumed | {len(resumes)}× (last from step {resumes[-1]['step']}) |")
    if plots:
        lines += ["", "## Plots", ""]
        lines += [f"![{p.stem}](plots/{p.name})" for p in plots]
    path = run_dir / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


_FACTS = {
    "documents": "documents",
    "train_items": "training rows",
    "train_tokens": "tokens",
    "steps_per_epoch": "steps per epoch",
}


def _facts(data: dict[str, Any]) -> str:
    return ", ".join(f"{data[key]:,} {label}" for key, label in _FACTS.items() if key in data) or "given by the stage"
