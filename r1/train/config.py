"""One typed config for every training stage: YAML file → dataclass sections, dotted overrides, strict checks.

    cfg = load_config("configs/pretrain-tiny.yaml", ["optim.lr=3e-4", "train.steps=200"])

Why strict: a mistyped key that is silently ignored trains the wrong model for hours, so an unknown key lists the
section's keys with the closest one, and every value is checked against its field's type. A stage's own options
(`grpo:`) are kept as a mapping (`cfg.options`) that the stage checks, so the config core never imports a stage.
`model:` is a preset name, a model directory, or a mapping `{preset | path, <ModelConfig field>: value}`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_origin

import yaml

from r1.errors import ConfigError, UserError
from r1.io import check_keys, need
from r1.model.config import PRESETS, ModelConfig
from r1.readers import DuplicateKeyError, parse_yaml, read_yaml

# stage name -> "module:Class" of its `r1.train.core.Stage`; imported only when a run uses it. The name is also the
# top-level key of the stage's own options.
STAGES: dict[str, str] = {
    "pretrain": "r1.train.pretrain:PretrainStage",
    "sft": "r1.train.sft:SFTStage",
    "grpo": "r1.train.grpo.stage:GRPOStage",
    "distill": "r1.train.distill.stage:DistillStage",
}


def choices(default: Any, *allowed: Any, doc: str = "") -> Any:
    """A field restricted to `allowed` values (checked by `validate`)."""
    return field(default=default, metadata={"choices": allowed, "doc": doc})


@dataclass
class ModelSection:
    preset: str | None = "tiny"  # a name from r1.model.config.PRESETS
    path: str | None = None  # a Hugging Face model directory: start from its weights (wins over preset)
    overrides: dict[str, Any] = field(default_factory=dict)  # ModelConfig fields, written flat in YAML


@dataclass
class DataSection:
    paths: list[str] = field(default_factory=list)  # .jsonl / text files for training
    eval_paths: list[str] = field(default_factory=list)  # held-out files for eval loss
    builtin: int = 0  # add this many documents of the built-in corpus (r1.data.corpus.build_corpus)
    tokenizer: str | None = None  # a tokenizer directory; 'train' = train a BPE on the training text; None = model's
    seq_len: int = 256
    batching: str = choices("pack", "pack", "bucket")
    text_field: str = "text"
    loss_on: str = choices("all", "all", "response")  # pretraining prompt/response records: where the loss looks
    add_bos: bool = True
    shuffle: bool = True


@dataclass
class OptimSection:
    lr: float = 3e-3
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    eps: float = 1e-8
    weight_decay: float = 0.1
    grad_clip: float = 1.0  # max global grad norm; 0 = no clipping (the norm is still reported)
    impl: str = choices("auto", "auto", "fused", "foreach", "plain")


@dataclass
class ScheduleSection:
    kind: str = choices("cosine", "cosine", "wsd", "constant")
    warmup_steps: int = 10
    min_lr_ratio: float = 0.1  # final lr = lr × min_lr_ratio
    decay_fraction: float = 0.2  # wsd: share of the steps spent in the final linear decay


@dataclass
class TrainSection:
    out: str = "runs/train"  # the run folder
    steps: int = 100  # optimizer steps
    batch_size: int = 8  # sequences per optimizer step, over all processes (the global batch)
    micro_batch_size: int = 0  # sequences per forward on one process; 0 = batch_size / processes
    seed: int = 0
    # bf16 / fp16 = autocast, fp32 master weights and optimizer (fp16 with loss scaling); auto = bf16 where the
    # device computes it natively, else fp32 (r1.dtypes.autocast_dtype)
    dtype: str = choices("fp32", "fp32", "bf16", "fp16", "auto")
    device: str = choices("auto", "auto", "cpu", "cuda")
    threads: int = 0  # torch intra-op threads; 0 = leave torch's default
    log_every: int = 1
    eval_every: int = 0  # steps; 0 = only at the end (when eval data exists)
    eval_batches: int = 16  # at most this many micro-batches per evaluation
    resume: bool = False  # continue from the newest intact checkpoint in the run folder
    overwrite: bool = False  # start over in a run folder that holds an earlier run, deleting that run's outputs
    allow_config_change: bool = False  # resume even when settings that shaped the earlier steps changed


@dataclass
class CheckpointSection:
    every: int = 0  # steps between checkpoints; 0 = only the final one
    keep_last: int = 2
    keep_best: bool = False  # also keep the checkpoint with the lowest eval (else train) loss
    final: bool = True
    publish: bool = True  # then copy the final one to <train.out>/model/ with a model card and provenance.json


@dataclass
class LoggingSection:
    progress: bool = True  # tqdm bar on the terminal
    plots: bool = True
    report: bool = True
    tensorboard: bool = False
    wandb: dict[str, Any] | None = None  # {project, name?, entity?, mode? (default 'offline')}


@dataclass
class DebugSection:
    kill_at_step: int | None = None  # SIGKILL this process at that step: tests exact resume
    kill_where: str = choices("step", "step", "checkpoint")  # mid-step, or mid-checkpoint-write


@dataclass
class TrainConfig:
    stage: str = "pretrain"
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    optim: OptimSection = field(default_factory=OptimSection)
    schedule: ScheduleSection = field(default_factory=ScheduleSection)
    train: TrainSection = field(default_factory=TrainSection)
    checkpoint: CheckpointSection = field(default_factory=CheckpointSection)
    logging: LoggingSection = field(default_factory=LoggingSection)
    debug: DebugSection = field(default_factory=DebugSection)
    # the stage's own options, written under its name (`grpo:`); checked by the stage, not here
    options: dict[str, Any] = field(default_factory=dict, metadata={"yaml": False})

    # ------------------------------------------------------------------------------------------ I/O
    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        d, options = dict(d) if isinstance(d, dict) else d, {}
        for key in [k for k in d if k in STAGES] if isinstance(d, dict) else []:
            if key != d.get("stage", "pretrain"):
                raise ConfigError(f"{key}: the options of stage {key}, but this config's stage is {d.get('stage')!r}")
            options = coerce(d.pop(key) or {}, dict[str, Any], key)
        cfg = build_section(cls, d, "")
        cfg.options = options
        _resolve_shipped_paths(cfg)
        cfg.validate()
        return cfg

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        m = d["model"]
        d["model"] = {"preset": m["preset"], "path": m["path"], **m["overrides"]}
        options = d.pop("options")
        if options:
            d[self.stage] = options
        return d

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    def replace(self, *overrides: str) -> TrainConfig:
        """A copy with dotted overrides applied (`"train.steps=5"`), validated."""
        d = self.to_dict()
        for o in overrides:
            apply_override(d, o)
        return TrainConfig.from_dict(d)

    # ------------------------------------------------------------------------------------------ checks
    def validate(self) -> None:
        for section in dataclasses.fields(self):
            value = getattr(self, section.name)
            if dataclasses.is_dataclass(value):
                for f in dataclasses.fields(value):
                    allowed = f.metadata.get("choices")
                    if allowed and getattr(value, f.name) not in allowed:
                        raise ConfigError(
                            f"{section.name}.{f.name}={getattr(value, f.name)!r}: must be one of "
                            + ", ".join(map(str, allowed))
                        )

        def check(ok: bool, key: str, rule: str) -> None:
            section, name = key.split(".")
            need(ok, key, getattr(getattr(self, section), name), rule)

        need(self.stage in STAGES, "stage", self.stage, f"must be one of {', '.join(STAGES)}")
        m = self.model
        if m.path is None and m.preset not in PRESETS:
            raise ConfigError(f"model.preset={m.preset!r}: must be one of {', '.join(PRESETS)} (or set model.path)")
        check(self.data.seq_len >= 2, "data.seq_len", "must be >= 2")
        check(self.data.builtin >= 0, "data.builtin", "must be >= 0")
        check(self.optim.lr > 0, "optim.lr", "must be positive")
        betas_ok = len(self.optim.betas) == 2 and all(0 <= b < 1 for b in self.optim.betas)
        check(betas_ok, "optim.betas", "must be two numbers in [0, 1)")
        check(self.optim.eps > 0, "optim.eps", "must be positive")
        check(self.optim.weight_decay >= 0, "optim.weight_decay", "must be >= 0")
        check(self.optim.grad_clip >= 0, "optim.grad_clip", "must be >= 0 (0 = no clipping)")
        check(self.schedule.warmup_steps >= 0, "schedule.warmup_steps", "must be >= 0")
        check(0 <= self.schedule.min_lr_ratio <= 1, "schedule.min_lr_ratio", "must be in [0, 1]")
        check(0 <= self.schedule.decay_fraction <= 1, "schedule.decay_fraction", "must be in [0, 1]")
        t = self.train
        both = "excludes train.resume (--overwrite deletes what --resume would continue)"
        check(not (t.resume and t.overwrite), "train.overwrite", both)
        check(t.steps >= 1, "train.steps", "must be >= 1")
        check(t.batch_size >= 1, "train.batch_size", "must be >= 1")
        check(t.micro_batch_size >= 0, "train.micro_batch_size", "must be >= 0 (0 = batch_size / processes)")
        check(0 <= t.seed < 2**32, "train.seed", "must be in 0 .. 2**32 - 1")
        check(t.threads >= 0, "train.threads", "must be >= 0 (0 = torch's default)")
        check(t.log_every >= 1, "train.log_every", "must be >= 1")
        check(t.eval_every >= 0, "train.eval_every", "must be >= 0")
        check(t.eval_batches >= 1, "train.eval_batches", "must be >= 1")
        check(self.checkpoint.every >= 0, "checkpoint.every", "must be >= 0")
        check(self.checkpoint.keep_last >= 1, "checkpoint.keep_last", "must be >= 1")
        check(self.debug.kill_at_step is None or self.debug.kill_at_step >= 1, "debug.kill_at_step", "must be >= 1")
        wb = self.logging.wandb
        if wb is not None:
            check_keys(wb, ["entity", "mode", "name", "project", "tags"], "logging.wandb")

    def accumulation(self, world: int) -> tuple[int, int]:
        """(micro_batch_size, micro-steps per optimizer step) for `world` processes; errors say what divides."""
        B = self.train.batch_size
        if B % world:
            raise ConfigError(f"train.batch_size={B}: must be divisible by the number of processes ({world})")
        per_rank = B // world
        mb = self.train.micro_batch_size or per_rank
        if per_rank % mb:
            raise ConfigError(f"train.micro_batch_size={mb}: must divide batch_size / processes = {per_rank}")
        return mb, per_rank // mb


# ============================================================================================== resume checks
# Settings that decide what the steps already taken mean: which data, how it is cut and batched, the model, the
# optimizer and its schedule, the numerics. A resume that changes one of them needs train.allow_config_change.
# Everything else (train.steps, logging, checkpointing, threads, device, the micro-batch split) may change freely.
SHAPING = (
    "stage",
    "model.",
    "data.",
    "optim.",
    "schedule.",
    *(f"{s}." for s in STAGES),
    "train.batch_size",
    "train.seed",
    "train.dtype",
)
# how a run is launched, not how it trains: never compared
_LAUNCH = ("train.out", "train.resume", "train.overwrite", "train.allow_config_change")


def flat_config(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config dict as `{"optim.lr": 3e-3, ...}` (lists stay values)."""
    out: dict[str, Any] = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):  # an empty mapping adds no key: `grpo: {}` and no grpo section read the same
            out.update(flat_config(value, f"{name}."))
        else:
            out[name] = value
    return out


def config_changes(before: dict[str, Any], after: TrainConfig) -> dict[str, tuple[Any, Any]]:
    """`{key: (before, after)}` for every setting that differs between an earlier run's config dict and `after`.

    The earlier dict is normalized through `TrainConfig` when it still parses, so defaults added since it was
    written do not count as changes.
    """
    try:
        before = TrainConfig.from_dict(before).to_dict()
    except ConfigError:
        pass
    old, new = flat_config(before), flat_config(after.to_dict())
    keys = [k for k in dict.fromkeys([*old, *new]) if k not in _LAUNCH]
    return {k: (old.get(k), new.get(k)) for k in keys if old.get(k) != new.get(k)}


def shaping(key: str) -> bool:
    """Whether changing `key` on resume changes what the earlier steps mean (see `SHAPING`)."""
    return any(key == s or (s.endswith(".") and key.startswith(s)) for s in SHAPING)


# ============================================================================================== loading
def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """Read a YAML config (or start from defaults), apply dotted `key=value` overrides, validate."""
    d: dict[str, Any] = {}
    if path is not None:
        from r1.assets import config_path

        try:
            p = config_path(path)  # a file, or a shipped config by name
        except UserError as exc:
            raise ConfigError(str(exc)) from None
        loaded = read_yaml(p)  # not UTF-8, invalid YAML, a key given twice: errors naming the file and line
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{p}: expected a mapping of sections at the top level, got {type(loaded).__name__}")
        d = loaded or {}
    for o in overrides:
        apply_override(d, o)
    return TrainConfig.from_dict(d)


def _resolve_shipped_paths(cfg: TrainConfig) -> None:
    """Shipped configs name shipped files as `r1/...`; point those at the installed package (see r1.assets). A
    shipped model may also be named alone (`model.path=base-tiny`)."""
    from r1.assets import resolve_model_path, resolve_path

    if cfg.model.path:
        cfg.model.path = resolve_model_path(cfg.model.path)
    cfg.data.paths = [resolve_path(p) for p in cfg.data.paths]
    cfg.data.eval_paths = [resolve_path(p) for p in cfg.data.eval_paths]
    if cfg.data.tokenizer not in (None, "train"):
        cfg.data.tokenizer = resolve_path(cfg.data.tokenizer)


def apply_override(d: dict[str, Any], override: str) -> None:
    """`a.b.c=value` sets d[a][b][c]; the value is parsed as YAML (`[0.9, 0.95]`, `true`, `null`, numbers)."""
    key, sep, raw = override.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {override!r}: expected key=value, e.g. optim.lr=3e-4")
    try:
        value = parse_yaml(raw, f"override {override!r}") if raw.strip() else ""
    except DuplicateKeyError:
        raise
    except UserError:  # not YAML: the text itself (a path with odd characters, say)
        value = raw
    parts = key.strip().split(".")
    node = d
    for i, part in enumerate(parts[:-1]):
        nxt = node.get(part)
        if isinstance(nxt, str) and part == "model" and i == 0:  # `model: tiny` shorthand, now being extended
            nxt = _model_shorthand(nxt)
        if nxt is None:
            nxt = {}
        if not isinstance(nxt, dict):
            raise ConfigError(f"override {override!r}: {'.'.join(parts[: i + 1])} is not a section")
        node[part] = nxt
        node = nxt
    node[parts[-1]] = value


def _model_shorthand(value: str) -> dict[str, Any]:
    return {"preset": value, "path": None} if value in PRESETS else {"preset": None, "path": value}


# ============================================================================================== typed build
def build_section(cls: type, d: Any, where: str) -> Any:
    """Dataclass `cls` from a mapping, checking keys and value types recursively (a stage's options use it too)."""
    if cls is ModelSection:
        return _build_model(d, where)
    if d is None:
        d = {}
    if not isinstance(d, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {d!r} ({type(d).__name__})")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.metadata.get("yaml", True)]
    check_keys(d, names, where)
    kwargs = {}
    for name in names:
        if name not in d:
            continue
        key = f"{where}.{name}" if where else name
        tp = hints[name]
        kwargs[name] = build_section(tp, d[name], key) if dataclasses.is_dataclass(tp) else coerce(d[name], tp, key)
    return cls(**kwargs)


def _build_model(d: Any, where: str) -> ModelSection:
    if isinstance(d, str):
        d = _model_shorthand(d)
    if d is None:
        d = {}
    if not isinstance(d, dict):
        raise ConfigError(f"{where}: expected a preset name, a model directory or a mapping, got {d!r}")
    d = dict(d)
    nested = d.pop("overrides", None)  # the dataclass form, `ModelSection.overrides`, is accepted too
    if isinstance(nested, dict):
        d = {**nested, **d}
    elif nested is not None:
        raise ConfigError(f"{where}.overrides: expected a mapping of model config fields, got {nested!r}")
    preset, path = d.pop("preset", "tiny" if "path" not in d else None), d.pop("path", None)
    hints = typing.get_type_hints(ModelConfig)
    fields = [f.name for f in dataclasses.fields(ModelConfig) if f.name != "extra"]
    check_keys(d, ["preset", "path", *fields], where)
    overrides = {k: coerce(v, hints[k], f"{where}.{k}") for k, v in d.items()}
    return ModelSection(
        preset=coerce(preset, str | None, f"{where}.preset"),
        path=coerce(path, str | None, f"{where}.path"),
        overrides=overrides,
    )


def coerce(value: Any, tp: Any, key: str) -> Any:
    """`value` as type `tp`, or a ConfigError naming the key and the expected type."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            with contextlib.suppress(ConfigError):
                return coerce(value, arg, key)
        raise _expected(key, tp, value)
    if origin is list:
        (item,) = get_args(tp) or (Any,)
        if isinstance(value, (str, int, float)) and not isinstance(value, bool) and item is str:
            value = [value]  # a single path where a list is expected
        if not isinstance(value, list):
            raise _expected(key, tp, value)
        return [coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r} ({type(value).__name__})")
        return dict(value)
    ok = False
    if tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is float:
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                value = float(value)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif tp is str:
        ok = isinstance(value, str)
    elif isinstance(tp, type):
        ok = isinstance(value, tp)
    if not ok:
        raise _expected(key, tp, value)
    return value


def _expected(key: str, tp: Any, value: Any) -> ConfigError:
    return ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r} ({type(value).__name__})")


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp))
    if origin is list:
        return f"a list of {_type_name(get_args(tp)[0])}"
    if origin is dict:
        return "a mapping"
    return {type(None): "null", bool: "true/false", int: "an integer", float: "a number", str: "a string"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def model_config(section: ModelSection, tokenizer: Any | None = None) -> ModelConfig:
    """The ModelConfig a run trains: preset or checkpoint config, special ids from the tokenizer, then overrides."""
    if section.path:
        from r1.model.checkpoint import load_config as load_model_config

        cfg = load_model_config(section.path)
    else:
        from r1.model.config import preset

        cfg = preset(str(section.preset))
        if tokenizer is not None:  # a fresh model gets the tokenizer's vocabulary and special ids
            cfg = cfg.replace(
                vocab_size=tokenizer.vocab_size,
                bos_token_id=tokenizer.bos_id,
                eos_token_id=tokenizer.eos_id,
                pad_token_id=tokenizer.pad_id,
            )
    cfg = cfg.replace(**section.overrides) if section.overrides else cfg
    cfg.validate()
    if tokenizer is not None and tokenizer.vocab_size > cfg.vocab_size:
        raise ConfigError(
            f"model.vocab_size={cfg.vocab_size} is smaller than the tokenizer's vocabulary ({tokenizer.vocab_size})"
        )
    return cfg
