"""A run's plots (`plots/*.png`) and its one-page `report.md`, from `metrics.jsonl` alone.

Rebuilding both from the metrics file (not from in-memory state) means a resumed run, or a person re-running
`write_plots` on a copied folder, gets the same pictures.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from r1.model.config import ModelConfig
from r1.train.config import TrainConfig


def write_plots(run_dir: Path, records: list[dict[str, Any]]) -> list[Path]:
    """loss.png (loss parts + eval), lr.png, grad_norm.png, expert_balance.png (when the model has MoE layers)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r for r in records if r.get("event") == "step"]
    evals = [r for r in records if r.get("event") == "eval"]
    if not steps:
        return []
    out_dir = Path(run_dir) / "plots"
    out_dir.mkdir(parents=True, exist_ok=True)
    x = [r["step"] for r in steps]
    written = []

    def save(fig, name: str) -> None:
        path = out_dir / name
        fig.tight_layout()
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for key, label in (("loss", "total"), ("lm_loss", "next-token"), ("mtp_loss", "MTP")):
        ys = [r.get(key) for r in steps]
        if any(y is not None for y in ys):
            ax.plot(x, ys, label=label, lw=1)
    if evals:
        ax.plot(
            [r["step"] for r in evals],
            [r.get("eval_loss", r.get("eval_lm_loss")) for r in evals],
            "o-",
            label="eval next-token",
            ms=3,
        )
    ax.set(xlabel="step", ylabel="loss", title="Loss")
    ax.legend()
    ax.grid(alpha=0.3)
    save(fig, "loss.png")

    for key, title, name in (
        ("lr", "Learning rate", "lr.png"),
        ("grad_norm", "Gradient norm (before clipping)", "grad_norm.png"),
    ):
        fig, ax = plt.subplots(figsize=(6, 3))
        ax.plot(x, [r.get(key) for r in steps], lw=1)
        ax.set(xlabel="step", title=title)
        ax.grid(alpha=0.3)
        save(fig, name)

    if any("expert_imbalance" in r for r in steps):
        fig, ax = plt.subplots(figsize=(6, 3.5))
        n_layers = len(next(r["expert_imbalance"] for r in steps if "expert_imbalance" in r))
        for i in range(n_layers):
            ax.plot(x, [r.get("expert_imbalance", [None] * n_layers)[i] for r in steps], lw=1, label=f"MoE {i}")
        ax.axhline(1.0, color="k", lw=0.5)
        ax.set(xlabel="step", ylabel="max / mean expert load", title="Expert load imbalance (1 = balanced)")
        ax.legend(fontsize=7, ncol=2)
        ax.grid(alpha=0.3)
        save(fig, "expert_balance.png")
    return written


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
        lines.append(
            f"| lowest train loss | {min(r['loss'] for r in steps):.4f} (step "
            f"{min(steps, key=lambda r: r['loss'])['step']}) |"
        )
    if evals:
        e = evals[-1]
        lines.append(f"| final eval loss | {e.get('eval_loss', float('nan')):.4f} |")
        b = min(evals, key=lambda r: r.get("eval_loss", float("inf")))
        lines.append(f"| best eval loss | {b.get('eval_loss', float('nan')):.4f} (step {b['step']}) |")
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


def _facts(data: dict[str, Any]) -> str:
    parts = []
    for key, label in (
        ("documents", "documents"),
        ("train_items", "training rows"),
        ("train_tokens", "tokens"),
        ("steps_per_epoch", "steps per epoch"),
    ):
        if key in data:
            parts.append(f"{data[key]:,} {label}")
    return ", ".join(parts) or "given by the stage"
