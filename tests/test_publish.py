"""Published model folders tell the truth: their own card (Hub front matter, base, command, commit, numbers) and a
provenance.json whose hashes are those of the folder's own files; every file readable by others."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from r1.assets import ASSETS
from r1.engine.testing import save_tiny
from r1.errors import CheckpointError
from r1.train.publish import ModelCard, publish_model, verify_provenance, write_card

REPO = Path(__file__).resolve().parents[1]
BASE = ASSETS / "base-tiny"


def head() -> str:
    return subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO, capture_output=True, text=True,
                          check=True).stdout.strip()  # fmt: skip


def front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def checkpoint(tmp_path):
    """A trainer checkpoint: model files plus resume state, and another model's card and provenance."""
    ckpt = save_tiny(tmp_path / "checkpoints" / "step-000002")
    for name in ("trainer_state.json", "trainer_state.safetensors", "COMPLETE"):
        (ckpt / name).write_text("{}")
    (ckpt / "README.md").write_text("# someone else's model\n")
    (ckpt / "provenance.json").write_text('{"sha256": "0000"}\n')
    return ckpt


def test_a_published_folder_has_its_own_card_and_true_hashes(checkpoint, tmp_path):
    before = os.umask(0o022)
    try:
        card = ModelCard(stage="sft", summary="Fine-tuned for a test.", base_model="r1/assets/base-tiny",
                         metrics={"final loss": 0.25}, extra={"config": {"lr": 1e-3}})  # fmt: skip
        dest = publish_model(checkpoint, tmp_path / "run" / "model", card, tokenizer_dir=BASE, template="r1-zero-short")
    finally:
        os.umask(before)
    names = sorted(p.name for p in dest.iterdir())
    assert names == ["README.md", "config.json", "generation_config.json", "model.safetensors", "provenance.json",
                     "tokenizer.json", "tokenizer_config.json"]  # fmt: skip
    assert {n: stat.S_IMODE((dest / n).stat().st_mode) for n in names} == dict.fromkeys(names, 0o644)
    text = (dest / "README.md").read_text()
    assert "someone else's" not in text and text != (BASE / "README.md").read_text()
    meta = front_matter(text)
    assert meta["license"] == "mit" and meta["base_model"] == "r1/assets/base-tiny"
    assert meta["library_name"] == "transformers" and meta["pipeline_tag"] == "text-generation"
    assert {"r1", "sft"} <= set(meta["tags"])
    assert "`r1/assets/base-tiny`" in text and head() in text and "| final loss | 0.25 |" in text
    made = json.loads((dest / "provenance.json").read_text())
    assert made["files"] == {n: sha256(dest / n) for n in names if n != "provenance.json"}
    assert made["files"]["model.safetensors"] == sha256(checkpoint / "model.safetensors")
    assert made["commit"].startswith(head()) and made["base_model"] == "r1/assets/base-tiny"
    assert made["config"] == {"lr": 1e-3} and made["stage"] == "sft"
    verify_provenance(dest)
    assert not list(dest.parent.glob(".model*")), "the assembly folder is gone"


def test_provenance_catches_a_changed_or_added_file(checkpoint, tmp_path):
    dest = publish_model(checkpoint, tmp_path / "model", ModelCard(stage="pretrain", summary="x"))
    assert "from scratch" in (dest / "README.md").read_text() and "base_model" not in front_matter(
        (dest / "README.md").read_text()
    )
    (dest / "generation_config.json").write_text("{}")
    with pytest.raises(CheckpointError, match="generation_config.json is changed"):
        verify_provenance(dest)
    write_card(dest, ModelCard(stage="pretrain", summary="x", metrics={"pass@1": 0.5}))  # later facts: rewritten
    verify_provenance(dest)
    (dest / "extra.txt").write_text("?")
    with pytest.raises(CheckpointError, match="extra.txt is not listed"):
        verify_provenance(dest)


def test_publishing_again_replaces_the_folder(checkpoint, tmp_path):
    dest = tmp_path / "model"
    publish_model(checkpoint, dest, ModelCard(stage="sft", summary="first"))
    (dest / "stale.bin").write_bytes(b"x")
    publish_model(checkpoint, dest, ModelCard(stage="sft", summary="second"))
    assert not (dest / "stale.bin").exists() and "second" in (dest / "README.md").read_text()
    verify_provenance(dest)
