"""An installed r1 is the same as a checkout: the configs and what they name ship in the wheel, and resolve alike."""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from r1.assets import ASSETS, CONFIGS, PACKAGE, config_names, config_path, model_path
from r1.errors import ConfigError, UserError
from r1.train.config import load_config

REPO = PACKAGE.parent


def package_data() -> dict[str, list[str]]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]


def shipped(path: Path, data: dict[str, list[str]]) -> bool:
    """Whether setuptools puts `path` (a file under r1/) into the wheel: a module, or package data of the nearest
    package above it."""
    if path.suffix == ".py":
        return True
    folder = path.parent
    while not (folder / "__init__.py").is_file():
        folder = folder.parent
    package = ".".join(folder.relative_to(REPO).parts)
    rel = str(path.relative_to(folder))
    return any(fnmatch.fnmatch(rel, pattern) for pattern in data.get(package, []))


def test_package_data_covers_every_config_and_shipped_file():
    data = package_data()
    files = [p for p in PACKAGE.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    missing = [str(p.relative_to(REPO)) for p in files if not shipped(p, data)]
    assert not missing, f"in r1/ but not in the wheel (pyproject.toml package-data): {missing}"
    assert {p.stem for p in CONFIGS.glob("*.yaml")} == set(config_names()) >= {"pretrain-tiny", "sft-tiny"}
    assert (ASSETS / "sft-tiny.jsonl").is_file() and (ASSETS / "base-tiny" / "model.safetensors").is_file()


def test_configs_at_the_top_of_a_checkout_are_the_packaged_ones():
    """One source of truth: `configs/` is a link to r1/configs, not a copy that could drift."""
    top = REPO / "configs"
    assert top.is_symlink() and top.resolve() == CONFIGS.resolve()


def test_a_shipped_config_or_model_is_found_by_name_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert config_path("r1-zero-tiny") == config_path("r1-zero-tiny.yaml") == CONFIGS / "r1-zero-tiny.yaml"
    assert model_path("base-tiny") == ASSETS / "base-tiny"
    cfg = load_config("r1-zero-tiny")
    # the shipped config's r1/… paths name the package's own files, whatever the working directory
    assert Path(cfg.model.path) == ASSETS / "base-tiny" and cfg.optim.betas == [0.9, 0.99]
    sft = load_config("sft-tiny")
    assert [Path(p) for p in sft.data.paths] == [ASSETS / "sft-tiny.jsonl"] and Path(sft.model.path).is_dir()
    with pytest.raises(ConfigError, match=r"config file not found: nope\.yaml \(shipped configs.*r1-zero-tiny"):
        load_config("nope.yaml")
    with pytest.raises(UserError, match=r"no model folder nope \(shipped models.*base-tiny"):
        model_path("nope")


def test_the_shipped_sft_data_is_what_its_documented_command_writes(tmp_path):
    from r1.assets import sft_tiny

    out = sft_tiny.main(tmp_path / "sft.jsonl")
    assert out.read_bytes() == sft_tiny.PATH.read_bytes()
    first = json.loads(out.read_text().splitlines()[0])["messages"]
    assert [m["role"] for m in first] == ["user", "assistant"] and first[1]["content"].startswith(" <think>\n")


# ------------------------------------------------------------------------------------ a wheel, installed elsewhere
PROBE = r"""
import json, sys
from pathlib import Path
import r1
from r1.assets import PACKAGE, config_names
from r1.model.config import PRESETS, preset
from r1.pipeline.recipes.r1_zero import Config, stages
from r1.pipeline.stage import Run
from r1.train.config import load_config

def norm(x):
    return json.loads(json.dumps(x).replace(str(PACKAGE), "<r1>"))

cfg = Config(out="runs/x", eval_per_level=2)
run = Run(Path(cfg.out), cfg)
resolved = {name: load_config(name).to_dict() for name in config_names()}
resolved.update({f"preset {name}": preset(name).to_dict() for name in PRESETS})
for stage in stages(cfg):  # what `r1 run` trains with
    if hasattr(stage, "config_name"):
        resolved[f"r1 run: {stage.name}"] = stage.config(run).to_dict()
print(json.dumps({"package": r1.__file__, "configs": norm(resolved)}))
"""


def probe(env: dict[str, str], cwd: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_wheel_installed_elsewhere_resolves_the_same_configs_as_the_checkout(tmp_path):  # ~9 s
    """Build a wheel from the checkout's files, install it into an empty folder, run it from another directory, and
    compare every shipped config, model preset and what `r1 run` trains with, with the checkout's."""
    if not (REPO / ".git").exists():
        pytest.skip("needs a git checkout: the wheel is built from the files git tracks")
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    src = tmp_path / "src"
    for rel in filter(None, listed.split("\0")):
        source, target = REPO / rel, src / rel
        if not source.exists() and not source.is_symlink():
            continue  # deleted in the working tree
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            os.symlink(os.readlink(source), target)
        elif source.is_file():
            shutil.copyfile(source, target)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", str(src), "-w", str(tmp_path / "dist")],
                   check=True, capture_output=True, timeout=300)  # fmt: skip
    (wheel,) = (tmp_path / "dist").glob("r1-*.whl")
    site = tmp_path / "site"
    subprocess.run([*pip, "install", "--no-deps", "--no-compile", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, timeout=300)  # fmt: skip
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    installed = probe({**env, "PYTHONPATH": str(site)}, elsewhere)
    assert Path(installed["package"]).is_relative_to(site), "the probe imported the checkout, not the wheel"
    checkout = probe(env, REPO)
    assert Path(checkout["package"]).is_relative_to(REPO)
    assert sorted(installed["configs"]) == sorted(checkout["configs"])
    for name in checkout["configs"]:
        assert installed["configs"][name] == checkout["configs"][name], name
    zero = installed["configs"]["r1 run: r1-zero"]
    assert zero["optim"]["betas"] == [0.9, 0.99] and zero["optim"]["weight_decay"] == 0.0
    assert installed["configs"]["r1 run: pretrain"]["model"]["bias_update_speed"] == 0.01
    assert installed["configs"]["sft-tiny"]["data"]["paths"] == ["<r1>/assets/sft-tiny.jsonl"]
