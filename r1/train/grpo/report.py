"""What a GRPO run shows: its plots, its section of report.md, and the completions logged at each evaluation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from r1.train.report import Plot, draw, series

COMPLETIONS = "completions.jsonl"


def log_completions(run_dir: Path, step: int, samples: list[dict[str, Any]], reward: Any, items: list) -> None:
    """Append evaluation samples to completions.jsonl, each with its reward and every component (TRL's
    `log_completions`): what the numbers are made of, readable in the report."""
    lines = []
    for s, item in zip(samples, items):
        parts = reward.components(s["text"], item, s["num_tokens"])
        total = sum(w * parts[name] for name, w in reward.weights.items())
        lines.append(
            {
                "step": step,
                "question": s["question"],
                "answer": s["answer"],
                "completion": s["text"],
                "correct": s["correct"],
                "reward": total,
                **{f"reward/{k}": v for k, v in parts.items()},
            }
        )
    with open(Path(run_dir) / COMPLETIONS, "a", encoding="utf-8") as f:
        f.writelines(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)


def write_plots(run_dir: Path, records: list[dict[str, Any]]) -> list[Path]:
    """grpo_accuracy.png (held-out pass@1/cons@k + training accuracy), grpo_length.png, grpo_reflection.png,
    grpo_rewards.png (components, zero-std share), grpo_policy.png (KL, entropy, clip fractions)."""
    cons = next((k[5:] for r in records for k in r if k.startswith("eval_cons@")), "cons@k")
    comps = sorted({k for r in records for k in r if k.startswith("reward/") and not k.endswith("_std")})
    accuracy = {"held-out pass@1": "eval_pass@1", f"held-out {cons}": f"eval_{cons}"}
    accuracy["training accuracy (rollouts)"] = "accuracy"
    length = {"mean": "length_mean", "p90": "length_p90", "held-out mean": "eval_length_mean"}
    reflection = {"all responses": "reflection", "within long-form (non-empty think)": "reflection_long"}
    reflection |= {"long-form share": "long_form", "held-out": "eval_reflection"}
    rewards = {"total": "reward", **{k[7:]: k for k in comps}, "frac_reward_zero_std": "frac_reward_zero_std"}
    policy = {"KL (k3)": "kl", "entropy": "entropy", "clip low": "clip/low", "clip high": "clip/high"}
    dotted = dict.fromkeys(("long_form", "frac_reward_zero_std", "clip/low", "clip/high"), ":")
    plots = [
        Plot("grpo_accuracy.png", "Accuracy", accuracy, "accuracy", styles={f"eval_{cons}": "s--"}),
        Plot("grpo_length.png", "Response length (tokens)", length, "tokens"),
        Plot("grpo_reflection.png", "Reflection words (share of responses)", reflection, styles=dotted),
        Plot("grpo_rewards.png", "Rewards (rollout means)", rewards, styles=dotted),
        Plot("grpo_policy.png", "Policy", policy, styles=dotted),
    ]
    return draw(Path(run_dir) / "plots", records, plots)


def settings(o: Any) -> str:
    """The options a reader needs, in one sentence (from the resolved options, so it cannot drift from them)."""
    ref = f", reference reset every {o.ref_refresh} steps" if o.beta and o.ref_refresh else ""
    return (
        f"Preset `{o.preset}`: {o.prompts_per_rollout} prompts × {o.group_size} samples per rollout, μ {o.epochs}, "
        f"T {o.temperature:g}, ≤ {o.max_new_tokens} new tokens, β {o.beta:g}{ref}, ε {o.eps_low:g}/{o.eps_high:g}, "
        f"`{o.loss_agg}`, advantages scaled by `{o.scale_rewards}`, ratio per {o.ratio_level}. Reward: "
        f"`{json.dumps(o.reward)}`."
    )


def report_lines(records: list[dict[str, Any]], opts: Any, run_dir: Path | None = None) -> list[str]:
    """The GRPO section of report.md: the settings, start → end, the time split, warnings, logged completions."""
    steps = [r for r in records if r.get("event") == "step"]
    if not steps:
        return []
    first, last = steps[0], steps[-1]
    lines = ["", "## GRPO", "", settings(opts), "", "| metric | first step | last step |", "|---|---|---|"]
    keys = ["reward", *sorted(k for k in last if k.startswith("reward/") and not k.endswith("_std"))]
    keys += "accuracy format_rate frac_reward_zero_std length_mean length_p90 truncated reflection".split()
    keys += "reflection_long long_form kl entropy clip/low clip/high".split()
    for k in keys:
        if k in first or k in last:
            lines.append(f"| {k} | {first.get(k, float('nan')):.4g} | {last.get(k, float('nan')):.4g} |")
    xs, ys = series(records, "eval_pass@1", "eval")
    if ys:
        lines.append(f"| held-out pass@1 | {ys[0]:.3f} (step {xs[0]}) | {ys[-1]:.3f} (step {xs[-1]}) |")
    total = lambda key: sum(r.get(key, 0.0) for r in steps)  # noqa: E731
    if any("time/rollout" in r for r in steps):
        t_all, t_roll, t_rew, t_lp = (total(k) for k in ("step_time", "time/rollout", "time/reward", "time/logprobs"))
        t_train = max(t_all - t_roll - t_rew - t_lp, 1e-9)
        lines += [
            "",
            f"Time: rollout {t_roll:.1f} s ({100 * t_roll / t_all:.0f}%), reward {t_rew:.1f} s, "
            f"π_old/π_ref forwards {t_lp:.1f} s, training {t_train:.1f} s. Rollout "
            f"{total('rollout_tokens') / max(t_roll, 1e-9):,.0f} generated tokens/s; training "
            f"{total('tokens') / t_train:,.0f} tokens/s (prompt + completion).",
        ]
    warned = sorted({k[5:] for r in steps for k in r if k.startswith("warn/")})
    if warned:
        lines += ["", f"**Warnings** (printed when they fired; see `grpo.watchdog`): {', '.join(warned)}."]
    lines += [
        "",
        "`loss` is pg_loss + kl_loss and sits near 0 by construction when π_θ = π_old (μ = 1, one minibatch "
        "per rollout): the group-centred advantages average to 0 while the gradient does not. Read reward, "
        "accuracy and held-out pass@1.",
    ]
    return lines + completions_table(Path(run_dir) / COMPLETIONS if run_dir else None)


def completions_table(path: Path | None) -> list[str]:
    """The completions logged at the last evaluation, with their reward components."""
    logged = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()] if path and path.is_file() else []
    if not logged:
        return []
    step = logged[-1]["step"]
    rows = [r for r in logged if r["step"] == step]
    parts = [k for k in rows[0] if k.startswith("reward/")]
    cell = lambda t: " ".join(str(t).split()).replace("|", "\\|")[:160]  # noqa: E731
    lines = [
        "",
        f"Completions at the last evaluation (step {step}; all in `{COMPLETIONS}`):",
        "",
        "| question | answer | completion | correct | reward | " + " | ".join(p[7:] for p in parts) + " |",
        "|---|---|---|---|---|" + "---|" * len(parts),
    ]
    for r in rows:
        lines.append(
            f"| {cell(r['question'])} | {cell(r['answer'])} | {cell(r['completion'])} | {r['correct']} "
            f"| {r['reward']:.3g} | " + " | ".join(f"{r[p]:.3g}" for p in parts) + " |"
        )
    return lines
