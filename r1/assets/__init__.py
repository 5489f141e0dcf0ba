"""What ships inside the package, and how a name or an `r1/...` path finds it from any directory.

`r1/assets/base-tiny/` (the built-in base `r1 run` starts from), `r1/assets/world-tiny/` (the tiny world's base,
`r1 run --recipe world-zero`'s), `r1/assets/sft-tiny.jsonl` (written by
`python -m r1.assets.sft_tiny`) and `r1/configs/*.yaml` (linked from `configs/` in a checkout). Shipped configs name
shipped files by their checkout path (`model.path: r1/assets/base-tiny`); `resolve_path` maps it to the installed
package, so a config means the same files whatever the working directory and however r1 was installed.
"""

from __future__ import annotations

import os
from pathlib import Path

from r1.errors import UserError

PACKAGE = Path(__file__).resolve().parents[1]  # the `r1/` folder, in a checkout or in site-packages
ASSETS = PACKAGE / "assets"
CONFIGS = PACKAGE / "configs"


def config_names() -> list[str]:
    """The shipped recipe configs, by name (`pretrain-tiny`, `r1-zero-tiny`, ...)."""
    return sorted(p.stem for p in CONFIGS.glob("*.yaml"))


def config_path(spec: str | os.PathLike[str]) -> Path:
    """A config file: `spec` itself if it is a file, else the shipped config of that name (`r1-zero-tiny` or
    `r1-zero-tiny.yaml`). Anything else is a UserError naming the shipped configs."""
    path = Path(spec)
    if path.is_file():
        return path
    if path.parent == Path("."):
        shipped = CONFIGS / (path.name if path.suffix == ".yaml" else f"{path.name}.yaml")
        if shipped.is_file():
            return shipped
    raise UserError(f"config file not found: {spec} (shipped configs, usable by name: {', '.join(config_names())})")


def model_names() -> list[str]:
    """The shipped model folders, by name (`base-tiny`)."""
    return sorted(p.name for p in ASSETS.iterdir() if (p / "config.json").is_file())


def model_path(spec: str | os.PathLike[str]) -> Path:
    """A model folder: `spec` itself if it is a folder, else the shipped model of that name (`base-tiny`)."""
    path = Path(resolve_model_path(spec))
    if path.is_dir():
        return path
    raise UserError(f"no model folder {spec} (shipped models, usable by name: {', '.join(model_names())})")


def resolve_model_path(spec: str | os.PathLike[str]) -> str:
    """`resolve_path`, and a bare name that is no folder here but a shipped model's (`base-tiny`) → that model."""
    path = Path(resolve_path(spec))
    if not path.exists() and path.parent == Path(".") and (ASSETS / path.name / "config.json").is_file():
        return str(ASSETS / path.name)
    return str(path)


def resolve_path(path: str | os.PathLike[str]) -> str:
    """`r1/...` (a relative path into the package, as written in the shipped configs) → that file of the installed
    package; every other path unchanged."""
    text = os.fspath(path)
    if text.startswith("r1/"):
        return str(PACKAGE / text.removeprefix("r1/"))
    return text


def shipped_name(path: str | os.PathLike[str]) -> str:
    """The inverse of `resolve_path`: a file of the installed package as `r1/...`, anything else unchanged."""
    text = os.fspath(path)
    try:
        return "r1/" + Path(text).resolve().relative_to(PACKAGE).as_posix()
    except ValueError:
        return text
