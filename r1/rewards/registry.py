"""The reward registry: named rewards, pure per-sample functions or batched stateful scorers, composed into a weighted
sum that reports each component (a component stuck at 0 is the commonest GRPO failure, invisible in the total).

Entries, all registered with `@reward`: plain functions `fn(completion, item) -> float`; factories taking options
(`factory=True`; `build_reward` checks the options against the signature, so a typo is a UserError naming the
parameter); batched scorers (`batched=True`: `scorer(completions, items) -> list[float]`, e.g. a reward model, whose
optional `setup()` runs once before the first batch so building one to validate a config loads nothing). Rewards
registered with `uses_length=True` get `length` / `lengths` in tokens, else `r1.rewards.length.estimate_tokens`.

Scores must be finite: a NaN would poison every advantage of its group, so it is a UserError naming the reward.
`register_verifier("countdown", fn)` makes the judge (and so `accuracy`) call `fn(pred, item) -> bool` for that task.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from r1.errors import UserError

__all__ = [
    "BatchRewardFn",
    "CompositeReward",
    "RewardBatch",
    "RewardFn",
    "Verifier",
    "available_rewards",
    "build_reward",
    "get_reward",
    "get_verifier",
    "register_verifier",
    "reward",
    "reward_help",
]

RewardFn = Callable[..., float]  # (completion: str, item: Mapping, [length: int | None]) -> float
BatchRewardFn = Callable[..., Sequence[float]]  # (completions, items, [lengths: list[int] | None]) -> scores
Verifier = Callable[[str, Mapping[str, Any]], bool]


@dataclass(frozen=True)
class _Entry:
    name: str
    target: Callable[..., Any]
    factory: bool
    uses_length: bool
    batched: bool

    @property
    def parameters(self) -> dict[str, inspect.Parameter]:
        if not self.factory:
            return {}
        return dict(inspect.signature(self.target).parameters)

    def summary(self) -> str:
        doc = inspect.getdoc(self.target) or ""
        return doc.splitlines()[0] if doc else ""


_REWARDS: dict[str, _Entry] = {}
_VERIFIERS: dict[str, Verifier] = {}
_TASKS_IMPORTED = False


def reward(
    name: str, *, factory: bool = False, uses_length: bool = False, batched: bool = False
) -> Callable[[Callable], Callable]:
    """Register a reward under `name`: a function, with `factory=True` a factory of one, with `batched=True` a
    batched scorer (a class is always a factory: its instances are the scorers)."""

    def deco(target: Callable) -> Callable:
        if name in _REWARDS and _REWARDS[name].target is not target:
            raise ValueError(f"reward {name!r} is already registered (by {_REWARDS[name].target.__module__})")
        _REWARDS[name] = _Entry(name, target, factory or inspect.isclass(target), uses_length, batched)
        return target

    return deco


def available_rewards() -> list[str]:
    """Sorted names of all registered rewards."""
    return sorted(_REWARDS)


def reward_help() -> str:
    """One line per reward: name, options with defaults, and the first line of its docstring."""
    lines = []
    for name in available_rewards():
        entry = _REWARDS[name]
        opts = ", ".join(
            f"{p.name}={p.default!r}" if p.default is not inspect.Parameter.empty else p.name
            for p in entry.parameters.values()
        )
        kind = " [batched]" if entry.batched else ""
        lines.append(f"{name}({opts}){kind}: {entry.summary()}")
    return "\n".join(lines)


def _entry(name: str) -> _Entry:
    if name not in _REWARDS:
        raise UserError(f"unknown reward {name!r}; valid rewards: {', '.join(available_rewards())}")
    return _REWARDS[name]


def get_reward(name: str, **options: Any) -> RewardFn | BatchRewardFn:
    """The reward `name` built with `options` (validated against the factory's parameters): a per-sample function,
    or for a batched entry its scorer."""
    entry = _entry(name)
    if not entry.factory:
        if options:
            raise UserError(f"reward {name!r} takes no options; got {', '.join(sorted(options))}")
        return entry.target
    params = entry.parameters
    for key in options:
        if key not in params:
            valid = ", ".join(params) or "none"
            raise UserError(f"reward {name!r} has no parameter {key!r}; valid parameters: {valid}")
    try:
        return entry.target(**options)
    except TypeError as exc:  # e.g. a required parameter missing
        raise UserError(f"reward {name!r}: {exc}") from exc


def register_verifier(task: str, fn: Verifier, *, overwrite: bool = False) -> None:
    """Make `accuracy` judge items whose `item["task"] == task` with `fn(pred, item) -> bool`."""
    if task in _VERIFIERS and _VERIFIERS[task] is not fn and not overwrite:
        raise ValueError(f"a verifier for task {task!r} is already registered; pass overwrite=True to replace it")
    _VERIFIERS[task] = fn


def get_verifier(task: str | None) -> Verifier | None:
    """The verifier registered for `task`, importing `r1.tasks` once so its generators can register theirs."""
    global _TASKS_IMPORTED
    if not task:
        return None
    if task not in _VERIFIERS and not _TASKS_IMPORTED:
        _TASKS_IMPORTED = True
        with contextlib.suppress(ImportError):
            importlib.import_module("r1.tasks")
    return _VERIFIERS.get(task)


# ----------------------------------------------------------------------------------------------------- composition
@dataclass
class RewardBatch:
    """Scores of a batch: the weighted total per sample and each component per sample (unweighted)."""

    total: list[float]
    components: dict[str, list[float]]
    weights: dict[str, float] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.total)

    def means(self, prefix: str = "reward") -> dict[str, float]:
        """Batch means for logging: `{"reward": …, "reward/accuracy": …, …}`."""
        n = max(len(self.total), 1)
        return {prefix: sum(self.total) / n, **{f"{prefix}/{k}": sum(v) / n for k, v in self.components.items()}}


@dataclass
class _Part:
    label: str
    weight: float
    fn: Callable[..., Any]
    uses_length: bool
    batched: bool
    ready: bool = False  # a batched scorer's setup() has run

    def scores(self, completions: list[str], items: list[Mapping[str, Any]], lengths: list[int] | None) -> list[float]:
        if self.batched:
            if not self.ready:
                setup = getattr(self.fn, "setup", None)
                if callable(setup):
                    setup()
                self.ready = True
            raw = self.fn(completions, items, lengths=lengths) if self.uses_length else self.fn(completions, items)
            values = list(raw)
            if len(values) != len(completions):
                raise UserError(
                    f"reward {self.label!r} returned {len(values)} scores for {len(completions)} completions"
                )
        elif self.uses_length:
            values = [
                self.fn(c, it, length=None if lengths is None else lengths[i])
                for i, (c, it) in enumerate(zip(completions, items))
            ]
        else:
            values = [self.fn(c, it) for c, it in zip(completions, items)]
        out = [float(v) for v in values]
        bad = [v for v in out if not math.isfinite(v)]
        if bad:
            raise UserError(f"reward {self.label!r} returned a non-finite score: {bad[0]}")
        return out


class CompositeReward:
    """A weighted sum of named rewards. `score` a batch to get every component; call it for one sample."""

    def __init__(self, parts: Sequence[_Part]):
        if not parts:
            raise UserError("a reward needs at least one component")
        self._parts = list(parts)

    @property
    def weights(self) -> dict[str, float]:
        return {p.label: p.weight for p in self._parts}

    @property
    def names(self) -> list[str]:
        return [p.label for p in self._parts]

    def components(self, completion: str, item: Mapping[str, Any], length: int | None = None) -> dict[str, float]:
        """Each component's unweighted value for one sample (a batch of one for batched scorers)."""
        lengths = None if length is None else [int(length)]
        return {p.label: p.scores([completion], [item], lengths)[0] for p in self._parts}

    def __call__(self, completion: str, item: Mapping[str, Any], length: int | None = None) -> float:
        values = self.components(completion, item, length)
        return sum(p.weight * values[p.label] for p in self._parts)

    def score(
        self, completions: Sequence[str], items: Sequence[Mapping[str, Any]], lengths: Sequence[int] | None = None
    ) -> RewardBatch:
        """Score a batch. `lengths` are token counts (for length rewards); without them they are estimated."""
        if len(completions) != len(items):
            raise UserError(f"score: {len(completions)} completions but {len(items)} items")
        if lengths is not None and len(lengths) != len(completions):
            raise UserError(f"score: {len(completions)} completions but {len(lengths)} lengths")
        texts, rows = list(completions), list(items)
        counts = None if lengths is None else [int(n) for n in lengths]
        components = {p.label: p.scores(texts, rows, counts) for p in self._parts}
        total = [sum(p.weight * components[p.label][i] for p in self._parts) for i in range(len(texts))]
        return RewardBatch(total=total, components=components, weights=self.weights)

    def __repr__(self) -> str:
        return "CompositeReward(" + ", ".join(f"{p.label}×{p.weight:g}" for p in self._parts) + ")"


def _weight(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise UserError(f"reward {name!r}: weight must be a finite number, got {value!r}")
    return float(value)


def build_reward(spec: Mapping[str, Any] | Sequence[str]) -> CompositeReward:
    """Build a CompositeReward from a spec.

    `spec` maps a component name to a weight (`{"accuracy": 1.0, "format": 1.0}`) or to options
    (`{"cosine_length": {"weight": 1.0, "max_len": 1000}}`); a list of names means weight 1 each. To use one reward
    twice with different options, give the component any name and say which reward it is:
    `{"acc_boxed": {"reward": "accuracy", "mode": "boxed"}}`.
    """
    if isinstance(spec, str):
        raise UserError(f"reward spec must be a mapping of name -> weight or a list of names, got the string {spec!r}")
    items = spec.items() if isinstance(spec, Mapping) else ((name, 1.0) for name in spec)
    parts = []
    for label, value in items:
        if not isinstance(label, str):
            raise UserError(f"reward names must be strings, got {label!r}")
        if isinstance(value, Mapping):
            options = dict(value)
            weight = _weight(label, options.pop("weight", 1.0))
            name = options.pop("reward", label)
        else:
            options, weight, name = {}, _weight(label, value), label
        entry = _entry(name)
        parts.append(_Part(label, weight, get_reward(name, **options), entry.uses_length, entry.batched))
    return CompositeReward(parts)
