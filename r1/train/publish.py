"""A training checkpoint → a model folder that says truthfully what it is.

Besides what transformers and `r1 chat / serve / eval` read, the folder holds `README.md` (a model card with Hub front
matter: what made it, from which base, with which command at which commit, its headline metrics) and
`provenance.json` (the same facts as data, plus the sha256 of every other file: `verify_provenance`). Nothing is taken
from the source folders' own cards, which describe other models; `write_card` rewrites both when later facts arrive.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from r1.errors import CheckpointError
from r1.io import atomic_write_text, fsync_dir

CARD = "README.md"
PROVENANCE = "provenance.json"
# what a model folder carries from a checkpoint: not the trainer's resume state, not another model's card
_NOT_MODEL = ("trainer_state.*", "COMPLETE", CARD, PROVENANCE)
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
MODCHAIN_EXAMPLE = "Compute 3+4*2 from left to right, mod 10."  # the built-in models' kind of question
LICENSE = "mit"  # r1's own license; the weights are trained by whoever ran the command, from r1's data


@dataclass
class ModelCard:
    """The facts a model card and provenance.json state. `summary`: one or two sentences on what made the model."""

    stage: str  # pretrain, sft, grpo, r1-zero, ...
    summary: str
    base_model: str | None = None  # the folder or name it was trained from; None when trained from scratch
    metrics: dict[str, Any] = field(default_factory=dict)  # headline numbers, name → value
    notes: list[str] = field(default_factory=list)  # extra lines for the card (how to prompt it, caveats)
    extra: dict[str, Any] = field(default_factory=dict)  # more provenance (the config, data summaries)
    tags: list[str] = field(default_factory=list)
    example: str = "What is 7*8?"  # the question the card's usage snippet asks
    command: str = field(default_factory=lambda: current_command())
    commit: str | None = field(default_factory=lambda: source_commit())


def publish_model(
    checkpoint: str | Path,
    dest: str | Path,
    card: ModelCard,
    tokenizer_dir: str | Path | None = None,
    template: str | None = None,
) -> Path:
    """Copy a checkpoint's model files to `dest` (replacing it), add a card and provenance; returns `dest`.

    `template`: the plain prompt template the model was trained with, which becomes the folder's chat template so
    every reader renders chats the way the model saw its prompts. Assembled beside `dest`, then renamed into place.
    """
    src, dest = Path(checkpoint), Path(dest)
    tmp = dest.with_name(f".{dest.name}.publishing")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    ignore = shutil.ignore_patterns(*_NOT_MODEL)
    skipped = ignore(str(src), [p.name for p in src.iterdir()])
    for f in sorted(src.iterdir()):
        if f.is_file() and f.name not in skipped:
            shutil.copyfile(f, tmp / f.name)  # copyfile, not copy2: new files get normal permissions
    if tokenizer_dir is not None:
        for name in _TOKENIZER_FILES:
            if (Path(tokenizer_dir) / name).is_file() and not (tmp / name).exists():
                shutil.copyfile(Path(tokenizer_dir) / name, tmp / name)
    if template is not None:
        from r1.tasks.templates import plain_chat_template
        from r1.tokenizer import Tokenizer

        tok = Tokenizer.load(tmp)
        tok.chat_template = plain_chat_template(template)
        tok.save(tmp)
    write_card(tmp, card, final=dest)
    if dest.exists():
        trash = dest.with_name(f".{dest.name}.old")
        shutil.rmtree(trash, ignore_errors=True)
        dest.rename(trash)
        tmp.rename(dest)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        tmp.rename(dest)
    fsync_dir(dest.parent)
    return dest


_STAGE_SUMMARY = {
    "pretrain": "Pretrained from scratch by r1's training core (next-token loss, MTP, aux-loss-free balancing).",
    "sft": "Supervised fine-tuning by r1's training core: loss on the final assistant turn of chat examples.",
    "grpo": "Reinforcement learning with GRPO (r1's training core): sampled groups, rule rewards, group-relative "
    "advantages.",
    "distill": "Logit distillation (GKD) by r1's training core: a teacher's next-token distributions on its traces "
    "and on the student's own samples.",
}
_OPTIONS = {"grpo": "GRPO options", "distill": "Distillation options"}


def publish_run(run_dir: Path, checkpoint: Path, cfg: Any, metrics: dict[str, Any]) -> Path:
    """`<run_dir>/model/` from the run's final checkpoint, with the card of an `r1 train` run of `cfg`."""
    from r1.assets import shipped_name

    base = shipped_name(cfg.model.path) if cfg.model.path else None
    data = [shipped_name(p) for p in cfg.data.paths]
    if cfg.data.builtin:
        data.append(f"{cfg.data.builtin} documents of the built-in corpus")
    summary = _STAGE_SUMMARY.get(cfg.stage, f"Stage `{cfg.stage}` of r1's training core.")
    summary += f" {metrics.get('steps', cfg.train.steps)} steps of {cfg.train.batch_size} sequences"
    summary += f" from `{base}`." if base else f" from the `{cfg.model.preset}` preset's random initialisation."
    notes = [f"**Data**: {', '.join(f'`{d}`' for d in data)}."] if data else []
    if cfg.stage in _OPTIONS:
        options = {k: v for k, v in cfg.options.items() if not isinstance(v, dict)}
        notes.append(f"**{_OPTIONS[cfg.stage]}**: {', '.join(f'{k}={v}' for k, v in options.items())}.")
    notes.append(f"**Run folder**: `{run_dir}` (config.yaml, metrics.jsonl, report.md, checkpoints/).")
    modchain = "modchain" in str(cfg.options.get("task", "")) or "base-tiny" in str(base)
    card = ModelCard(
        stage=cfg.stage,
        summary=summary,
        base_model=base,
        metrics={k: v for k, v in metrics.items() if v is not None},
        notes=notes,
        extra={"config": cfg.to_dict(), "checkpoint": str(checkpoint)},
        **({"example": MODCHAIN_EXAMPLE} if modchain else {}),
    )
    return publish_model(checkpoint, Path(run_dir) / "model", card)


def write_card(folder: str | Path, card: ModelCard, final: str | Path | None = None) -> None:
    """(Re)write `README.md` and then `provenance.json`, whose hashes cover every other file, the card included.
    `final`: where the folder will live, when it is being assembled elsewhere."""
    folder = Path(folder)
    final = Path(final or folder)
    name = f"{final.parent.name}/{final.name}" if final.parent.name else final.name
    atomic_write_text(folder / CARD, model_card(folder, card, name, str(final)))
    from r1 import __version__

    facts = {
        "model": name,
        "stage": card.stage,
        "summary": card.summary,
        "base_model": card.base_model,
        "command": card.command,
        "commit": card.commit,
        "r1_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "metrics": card.metrics,
        **card.extra,
        "files": file_hashes(folder),
    }
    atomic_write_text(folder / PROVENANCE, json.dumps(facts, indent=2, default=str) + "\n")


def model_card(folder: Path, card: ModelCard, name: str, where: str) -> str:
    """The README.md text: Hub front matter, then what made the model, its numbers, how to use it."""
    from r1 import __version__

    config = _read_json(folder / "config.json")
    front: dict[str, Any] = {"license": LICENSE}
    if card.base_model:
        front["base_model"] = card.base_model
    model_type = config.get("model_type")
    front["tags"] = list(dict.fromkeys(["r1", *([model_type] if model_type else []), card.stage, *card.tags]))
    front["library_name"] = "transformers"
    front["pipeline_tag"] = "text-generation"
    commit = f"commit `{card.commit}`" if card.commit else f"r1 {__version__} (not a git checkout)"
    lines = [
        "---",
        yaml.safe_dump(front, sort_keys=False, allow_unicode=True).rstrip(),
        "---",
        "",
        f"# {name}",
        "",
        card.summary,
        "",
        f"- **Made by**: `{card.command}` at {commit}, stage `{card.stage}`.",
        f"- **Base model**: `{card.base_model}`."
        if card.base_model
        else "- **Base model**: none (trained from scratch).",
    ]
    arch = _architecture(folder, config)
    if arch:
        lines.append(f"- **Architecture**: {arch}.")
    lines += [f"- {n}" for n in card.notes]
    if card.metrics:
        lines += ["", "## Results", "", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in card.metrics.items()]
    lines += [
        "",
        "## Use",
        "",
        "```bash",
        f"r1 chat --model {where}          # or r1 serve / r1 eval --model {where}",
        "```",
        "",
        "```python",
        "import r1",
        "",  # ruff-formatted, as a card shipped inside the package must be (tests/test_style.py)
        f"model = r1.load({json.dumps(where)})",
        f"print(model.chat({json.dumps(card.example, ensure_ascii=False)}).content)",
        "```",
        "",
        "transformers reads the folder as it is (`AutoModelForCausalLM.from_pretrained`, `AutoTokenizer`).",
        "",
        f"`{PROVENANCE}` holds these facts as data and the sha256 of every file here (this card included).",
    ]
    return "\n".join(lines) + "\n"


def file_hashes(folder: str | Path) -> dict[str, str]:
    """sha256 of every file under `folder` except provenance.json, by relative path."""
    folder = Path(folder)
    return {
        str(p.relative_to(folder)): _sha256(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.relative_to(folder) != Path(PROVENANCE)
    }


def verify_provenance(folder: str | Path) -> None:
    """Raise CheckpointError unless provenance.json's hashes are exactly those of the folder's files."""
    folder = Path(folder)
    recorded = _read_json(folder / PROVENANCE).get("files")
    if not isinstance(recorded, dict):
        raise CheckpointError(f"{folder / PROVENANCE}: no 'files' hashes")
    actual = file_hashes(folder)
    for name in sorted(set(recorded) | set(actual)):
        if recorded.get(name) != actual.get(name):
            what = "missing" if name not in actual else "not listed" if name not in recorded else "changed"
            raise CheckpointError(f"{folder}: {name} is {what} since provenance.json was written")


def current_command() -> str:
    """The `r1 …` command being run (also when called in-process), else this process's command line."""
    from r1.cli import COMMAND

    if COMMAND.get():
        return COMMAND.get()
    argv = sys.argv or [""]
    if Path(argv[0]).name == "r1":
        return shlex.join(["r1", *argv[1:]])
    return shlex.join(["python", *argv]) if argv[0] else "python"


def source_commit() -> str | None:
    """The git commit of the r1 source running now (`-dirty` when tracked files have changes); None when r1 is an
    installed package rather than a checkout."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        git = ["git", "-C", str(root)]
        head = subprocess.run([*git, "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return None
        status = subprocess.run(
            [*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("-dirty" if status.stdout.strip() else "")


def _architecture(folder: Path, config: dict[str, Any]) -> str:
    """ "deepseek_v3, 1,771,392 parameters (741,248 active per token), 2 layers, vocabulary 314"."""
    if not config:
        return ""
    from r1.model.checkpoint import load_config
    from r1.model.info import model_info

    try:
        info = model_info(load_config(folder))
    except CheckpointError:  # a config r1 cannot count still gets a card
        return str(config.get("model_type", ""))
    return (
        f"{config.get('model_type')}, {info.total:,} parameters ({info.active:,} active per token), "
        f"{config.get('num_hidden_layers')} layers, vocabulary {config.get('vocab_size'):,}"
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: invalid JSON ({exc})") from None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return str(v)
