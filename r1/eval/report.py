"""Evaluation reports: results.json (machine-readable), samples.jsonl (every sample), results.md (tables).

All three are written atomically (a temp file in the same folder, then `os.replace`), so a reader never sees a
half-written report and an interrupted run leaves the previous one intact.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from r1.eval.evaluate import EvalResult
from r1.io import atomic_write_text


def write_report(
    result: EvalResult, out_dir: str | Path, extra_config: Mapping[str, Any] | None = None
) -> dict[str, Path]:
    """Write results.json, samples.jsonl and results.md into `out_dir`; returns their paths by name."""
    from r1 import __version__

    out = Path(out_dir)
    config = {**result.config, **(extra_config or {})}
    doc = {
        **result.to_dict(),
        "config": config,
        "r1_version": __version__,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "samples_file": "samples.jsonl",
    }
    paths = {"json": out / "results.json", "samples": out / "samples.jsonl", "markdown": out / "results.md"}
    atomic_write_text(
        paths["samples"], "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in result.samples)
    )
    atomic_write_text(paths["json"], json.dumps(doc, indent=2, ensure_ascii=False, default=str) + "\n")
    atomic_write_text(paths["markdown"], markdown(result, config))
    return paths


def _metric_columns(rows: list[Mapping[str, Any]]) -> list[str]:
    """The columns any row has (an open-ended task's row has no pass@k; `open` only when some item is open)."""
    keys = {key for row in rows for key in row}
    passes = sorted((key for key in keys if key.startswith("pass@")), key=lambda key: int(key[5:]))
    cons = sorted(key for key in keys if key.startswith("cons@"))
    tail = ["n_open", "format_rate", "length_mean", "length_p50", "length_p90", "length_max", "truncated_share"]
    return passes + cons + [key for key in tail if key in keys] + (["reward_mean"] if "reward_mean" in keys else [])


_HEADERS = {
    "format_rate": "format",
    "length_mean": "len mean",
    "length_p50": "len p50",
    "length_p90": "len p90",
    "length_max": "len max",
    "truncated_share": "truncated",
    "reward_mean": "reward",
    "n_open": "open",
}


def _cell(key: str, value: Any) -> str:
    if key.startswith(("pass@", "cons@")) or key in ("format_rate", "truncated_share"):
        return f"{100 * value:.1f}"
    if key == "length_mean" or key == "reward_mean":
        return f"{value:.1f}" if key == "length_mean" else f"{value:.3f}"
    if key.startswith("length_"):
        return f"{value:.0f}"
    return str(value)


def _table(rows: list[tuple[list[str], Mapping[str, Any]]], label_headers: list[str]) -> list[str]:
    if not rows:
        return ["(no items)"]
    columns = _metric_columns([row for _, row in rows])
    headers = label_headers + ["items"] + [_HEADERS.get(c, c) for c in columns]
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join(["---"] * len(label_headers) + ["---:"] * (len(headers) - len(label_headers))) + "|",
    ]
    for labels, row in rows:
        cells = labels + [str(row.get("n_items", 0))] + [_cell(c, row[c]) if c in row else "–" for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def markdown(result: EvalResult, config: Mapping[str, Any] | None = None) -> str:
    """The Markdown report: config line, a per-task table (with the overall row) and a per-difficulty table.

    Rates are percentages with one decimal; lengths are in the unit named in the config (tokens or words).
    """
    cfg = dict(config or result.config)
    unit = cfg.get("length_unit", "tokens")
    lines = ["# Evaluation", ""]
    shown = ", ".join(
        f"{key}={cfg[key]}" for key in ("k", "temperature", "top_p", "max_new_tokens", "template", "seed") if key in cfg
    )
    lines += [
        f"{shown}. pass@1 is the mean correctness over k samples; pass@n (n > 1) uses the unbiased estimator; "
        f"cons@k is majority vote. Rates in %, lengths in {unit}."
        + (
            " *open*: items without a reference answer, left out of pass@k and cons@k."
            if "n_open" in result.overall
            else ""
        ),
        "",
    ]
    lines += ["## By task", ""]
    rows = [([task], m) for task, m in result.by_task.items()] + [(["**all**"], result.overall)]
    lines += _table(rows, ["task"]) + ["", "## By task and difficulty", ""]
    rows = [([r["task"], str(r["difficulty"])], r) for r in result.by_difficulty]
    lines += _table(rows, ["task", "difficulty"]) + [""]
    return "\n".join(lines)
