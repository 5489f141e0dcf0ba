"""Tasks: procedural generators with verifiers, local dataset loaders and prompt templates.

Importing this package registers the built-in tasks and hands their verifiers to the reward registry, so the
accuracy reward checks a countdown expression (or a word problem's "17 apples") with the task's own rule.
"""

from __future__ import annotations

import importlib

from r1.tasks import reasoning_gym as _reasoning_gym  # noqa: F401  (registers rg:NAME)
from r1.tasks.base import (
    STYLES,
    Item,
    Task,
    all_tasks,
    find_task,
    get_task,
    list_tasks,
    parse_int,
    register_task,
    split_of,
)
from r1.tasks.synthetic import BUILTIN_TASKS
from r1.tasks.templates import TEMPLATES, apply_template

__all__ = [
    "STYLES",
    "TEMPLATES",
    "Item",
    "Task",
    "all_tasks",
    "apply_template",
    "find_task",
    "get_task",
    "list_tasks",
    "parse_int",
    "register_task",
    "split_of",
]


def _register_verifiers() -> None:
    """Give every built-in task's verifier to the reward registry (skipped while r1.rewards does not exist)."""
    try:
        registry = importlib.import_module("r1.rewards.registry")
    except ModuleNotFoundError as exc:
        if exc.name not in ("r1.rewards", "r1.rewards.registry"):
            raise
        return
    for task in BUILTIN_TASKS:
        registry.register_verifier(task.name, task.verify, overwrite=True)


_register_verifiers()
