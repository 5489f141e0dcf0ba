"""The parts of a pipeline: a `Run` (one run folder being made), a `Stage` (one step of it), a `Recipe` (the
stages of one job, with the settings they are built from)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Run:
    """One run folder being made: the recipe's settings, what the stages recorded (written as summary.json),
    notes for the report, and values several stages share (computed once: `memo`)."""

    out: Path
    config: Any
    summary: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    cache: dict[str, Any] = field(default_factory=dict)
    scale: str = "tiny"  # what `plan` counts: this recipe's own configs, or their paper-scale counterparts

    def path(self, where: str | Path) -> Path:
        """A path of the run folder (absolute paths stay as they are)."""
        return self.out / where

    def engine(self, model: str | Path) -> Any:
        """The engine a stage samples `model` with: the run's threads, no speculation (a seeded sample must not depend
        on the batch; `r1.engine.speculative`)."""
        from r1.engine import Engine

        threads = getattr(self.config, "threads", None)
        return Engine.from_pretrained(self.path(model), max_batch=64, max_len=512, threads=threads, speculative="off")

    def memo(self, key: str, make: Callable[[], Any]) -> Any:
        if key not in self.cache:
            self.cache[key] = make()
        return self.cache[key]


class Stage:
    """One step of a recipe: reads its declared `inputs`, writes its declared `outputs` (paths in the run folder,
    or absolute), records what it did in `run.summary`, and writes its own section of report.md. A stage whose
    outputs all exist and that finished in an earlier attempt at the same run is not run again."""

    name: str  # (no default: stages declared as dataclasses take it as their first field)
    inputs: tuple[str | Path, ...] = ()
    outputs: tuple[str | Path, ...] = ()

    def run(self, run: Run) -> None:
        raise NotImplementedError

    def report(self, run: Run) -> list[str]:
        """Its section of report.md (markdown lines); shown when the stage has run."""
        return []

    def plan(self, run: Run) -> Any:
        """What it would compute, without running (`r1.pipeline.plan.Plan`); None: no model compute."""
        return None

    def done(self, run: Run) -> bool:
        return all(run.path(p).exists() for p in self.outputs)


@dataclass(frozen=True)
class Recipe:
    """A job: the stages it runs, built from its settings, and the lines of report.md that are about the whole."""

    name: str
    help: str
    stages: Callable[[Any], list[Stage]]
    add_arguments: Callable[[argparse.ArgumentParser], None]  # its command-line options
    config: Callable[[argparse.Namespace], Any]  # a settings dataclass with `out`, `seed` and `threads`
    headline: Callable[[Run], list[str]] = lambda run: []  # first in report.md: the result
    footer: Callable[[Run], list[str]] = lambda run: []  # last: what to do next
