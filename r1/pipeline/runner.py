"""The pipeline runner: a recipe's stages, in order, into one run folder (`run_recipe(recipe, cfg, start=, until=)`).

The folder holds `config.yaml`, what each stage wrote, `summary.json` (each stage's record and time, `status`:
complete, partial or failed) and `report.md`. Running into a folder again keeps the stages that finished and refuses
other settings; a failing stage leaves `status: failed` and a FAILED report naming it, then the error propagates.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import yaml

from r1.errors import UserError
from r1.io import atomic_write_text
from r1.pipeline.stage import Recipe, Run, Stage
from r1.readers import read_json

SUMMARY = "summary.json"
NOT_COMPARED = ("out", "threads")  # settings that do not change what a run computes


def run_recipe(recipe: Recipe, cfg: Any, start: str | None = None, until: str | None = None) -> dict[str, Any]:
    """Run the recipe's stages into `cfg.out` (see the module docstring); returns the summary."""
    stages = recipe.stages(cfg)
    names = [s.name for s in stages]
    for flag, name in (("--from", start), ("--until", until)):
        if name is not None and name not in names:
            raise UserError(f"{flag} {name}: not a stage of recipe {recipe.name} ({', '.join(names)})")
    run = Run(out=Path(cfg.out), config=cfg)
    times = _continue(run, stages, start)
    last = names.index(until) if until else len(stages) - 1
    run.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run.out / "config.yaml", yaml.safe_dump(asdict(cfg), sort_keys=False))
    began, failure, name = time.perf_counter(), None, None
    threads = torch.get_num_threads()
    # every stage, evaluation included: more intra-op threads than free cores makes each op wait for a descheduled
    # thread, which on a busy 2-core machine was measured 4x slower than one thread per core
    torch.set_num_threads(cfg.threads)
    try:
        for i, stage in enumerate(stages[: last + 1], start=1):
            name = stage.name
            if name in times:
                print(f"[{i}/{len(stages)}] {name}: done in an earlier attempt ({times[name]:.1f} s), kept", flush=True)
                continue
            print(f"[{i}/{len(stages)}] {name} …", flush=True)
            t0 = time.perf_counter()
            stage.run(run)
            times[name] = round(time.perf_counter() - t0, 1)
            print(f"      done in {times[name]:.1f}s", flush=True)
    except BaseException as exc:
        why = "interrupted" if isinstance(exc, KeyboardInterrupt) else str(exc) or type(exc).__name__
        if not isinstance(exc, UserError | KeyboardInterrupt):
            why = f"{type(exc).__name__}: {why}"
        failure = {"stage": name, "error": why}
        raise
    finally:
        torch.set_num_threads(threads)
        s = run.summary
        s["status"] = "failed" if failure else "complete" if len(times) == len(stages) else "partial"
        s.pop("failure", None)
        if failure:
            s["failure"] = failure
        s["seconds"] = {n: times[n] for n in names if n in times} | {"total": round(time.perf_counter() - began, 1)}
        s["config"] = asdict(cfg)
        atomic_write_text(run.out / SUMMARY, json.dumps(s, indent=2) + "\n")
        text = failure_report(run, failure, names, times) if failure else report(recipe, run, stages, times)
        atomic_write_text(run.out / "report.md", text)
    return run.summary


def _continue(run: Run, stages: list[Stage], start: str | None) -> dict[str, float]:
    """An earlier attempt at this run folder: its summary, and the times of the stages it finished that are kept
    (all done ones before `start`, or every done one). Other settings than this run's are refused."""
    path = run.out / SUMMARY
    names = [s.name for s in stages]
    before = read_json(path) if path.is_file() else None
    keep = names[: names.index(start)] if start else names
    if before is None:
        if start and names.index(start) > 0:
            raise UserError(f"--from {start}: {run.out} holds no earlier run whose stages before {start} are done")
        return {}
    then, now = before.get("config", {}), asdict(run.config)
    changed = [f"{k} {then.get(k)!r} -> {now[k]!r}" for k in now if k not in NOT_COMPARED and then.get(k) != now[k]]
    if changed:
        raise UserError(
            f"{run.out} holds a run made with other settings ({'; '.join(changed)}): use another --out, "
            "or the same settings to continue it"
        )
    done = {n: t for n, t in before.get("seconds", {}).items() if n in names}
    times = {s.name: done[s.name] for s in stages if s.name in done and s.name in keep and s.done(run)}
    missing = [n for n in keep if n not in times] if start else []
    if missing:
        raise UserError(f"--from {start}: stage {missing[0]} has not finished in {run.out}; run without --from")
    run.summary = {k: v for k, v in before.items() if k not in ("status", "failure", "seconds", "config")}
    return times


def report(recipe: Recipe, run: Run, stages: list[Stage], times: dict[str, float]) -> str:
    """report.md: the recipe's headline, each stage's section (those that ran), the costs, the next step."""
    lines = [f"# r1 run: {run.out.name}", "", *recipe.headline(run)]
    for stage in stages:
        if stage.name in times:
            lines += stage.report(run)
    not_run = [s.name for s in stages if s.name not in times]
    if not_run:
        lines += [
            "",
            f"**Not run yet**: {', '.join(not_run)} (stopped with --until; the same command without it "
            "continues this folder).",
        ]
    sec = run.summary.get("seconds", {})
    lines += ["", "**Time per stage (s)**: " + ", ".join(f"{k} {v}" for k, v in sec.items())]
    if run.notes:
        lines += ["", "Notes:"] + [f"- {n}" for n in run.notes]
    return "\n".join([*lines, *recipe.footer(run)]) + "\n"


def failure_report(run: Run, failure: dict[str, Any], stages: list[str], times: dict[str, float]) -> str:
    """`report.md` of a run that stopped: what failed and why, what finished, and no numbers that read like a
    result (the finished stages' records stay in summary.json, marked failed)."""
    failed = failure["stage"]
    done = [f"{n} ({times[n]:.1f} s)" for n in stages if n in times]
    skipped = stages[stages.index(failed) + 1 :] if failed in stages else []
    lines = [
        f"# r1 run: {run.out.name}: FAILED",
        "",
        f"**This run failed** in stage `{failed}`: {failure['error']}",
        "",
        f"Finished before it: {', '.join(done) or 'none'}. Not run: {', '.join(skipped) or 'none'}. There is no "
        "result to read here; `summary.json` (status `failed`) keeps what the finished stages recorded.",
        "",
        f"Fix the cause and run the same command again: the finished stages are kept and the run continues from "
        f"`{failed}`.",
    ]
    return "\n".join(lines) + "\n"
