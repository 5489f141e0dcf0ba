"""`r1 eval --model DIR` asks the model in its own format by default, and says so when the numbers point at the
prompt rather than the model."""

from __future__ import annotations

import json
import re

import pytest

from r1.assets import ASSETS
from r1.cli import main as cli
from r1.engine.testing import save_tiny
from r1.eval.cli import template_for_model
from r1.eval.evaluate import evaluate, health_warning
from r1.tasks import get_task

pytestmark = pytest.mark.usefixtures("one_thread")
BASE = ASSETS / "base-tiny"


def test_the_template_is_the_one_the_folders_chat_template_renders(tmp_path):
    assert template_for_model(BASE)[0] == "r1-zero-short"  # what `r1 run` publishes: a plain prompt
    r1_style = save_tiny(tmp_path / "r1-style")  # r1's default tokenizer: DeepSeek-R1's chat template
    assert template_for_model(r1_style) == ("r1", "the R1 chat usage through its chat template")
    from r1.tasks.templates import plain_chat_template
    from r1.tokenizer import Tokenizer

    tok = Tokenizer.load(r1_style)
    tok.chat_template = plain_chat_template("r1-zero")
    tok.save(r1_style)
    assert template_for_model(r1_style)[0] == "r1-zero"


def test_eval_of_the_shipped_base_without_template_scores_it_in_its_own_format(tmp_path, capsys):
    out = tmp_path / "eval"
    args = ["eval", "--task", "modchain", "--difficulty", "2-3", "--n-items", "6", "-k", "2", "--model", str(BASE)]
    assert cli([*args, "--max-new-tokens", "48", "--no-progress", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "template: r1-zero-short (the plain prompt its chat template renders" in err and "warning" not in err
    result = json.loads((out / "results.json").read_text())
    assert result["config"]["template"] == "r1-zero-short"
    # the base answers short chains in its format: far above the 0% that the preamble template gave
    assert result["overall"]["pass@1"] >= 0.5 and result["overall"]["format_rate"] >= 0.9


def test_a_model_that_runs_to_the_length_limit_gets_a_one_line_warning(tmp_path, capsys):
    rambler = save_tiny(tmp_path / "random")  # random weights: never stops within 6 tokens
    args = ["eval", "--task", "modchain", "--n-items", "3", "-k", "2", "--model", str(rambler), "--template", "r1"]
    assert cli([*args, "--max-new-tokens", "6", "--no-progress", "--out", str(tmp_path / "e")]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1
    share, rest = re.fullmatch(r"warning: (\d+)% of samples hit max_new_tokens \(6\): (.*)", warnings[0]).groups()
    assert int(share) > 50 and rest == (
        "the prompt format (template r1) may not be the one this model was trained on; try --template r1-zero or "
        "--template r1-zero-short or --template r1-plain"
    )


def test_no_extractable_answer_is_named_too():
    items = get_task("modchain").generate(2, seed=0, split="eval")
    result = evaluate(items, lambda batch, n, p: [["no idea"] * n for _ in batch], k=2, progress=False)
    assert health_warning(result, ["r1"]) == (
        "none of the 4 samples has an answer to extract (<answer> or \\boxed{}): the prompt format (template "
        "r1-zero) may not be the one this model was trained on; try --template r1"
    )
    fine = evaluate(items, lambda batch, n, p: [[f"<answer>{it['answer']}</answer>"] * n for it in batch], k=2,
                    progress=False)  # fmt: skip
    assert health_warning(fine, ["r1"]) is None
