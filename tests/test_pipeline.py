"""The README's main job runs end to end and leaves a readable run folder."""

from __future__ import annotations

import json

from r1.cli import main as cli


def test_default_run_writes_a_run_folder(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli(["run", "--out", str(out), "--eval-items", "4", "--eval-k", "2"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["hf_check"]["max_abs_logit_diff"] <= 1e-4
    assert summary["model"]["kv_elements_per_token_per_layer"]["mla_absorbed"] == 80
    for f in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        assert (out / "model" / f).is_file()
    report = (out / "report.md").read_text()
    assert "loads in transformers" in report and "Time per stage" in report
    assert "run folder" in capsys.readouterr().out
