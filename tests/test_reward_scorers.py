"""Batched, stateful rewards next to pure per-sample ones: one registry, weights compose, GRPO and the evaluator call
them a batch at a time, and prompts without a reference answer (scored by a model) go through both.

The batched scorer here is a real one: the likelihood of each completion's summary under the shipped tiny base
model, a stand-in for a reward model (weights loaded in `setup`, one padded forward per batch).
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from trainer_fixtures import train_run, write_config, write_jsonl

from r1.assets import ASSETS
from r1.errors import UserError
from r1.eval import evaluate
from r1.rewards import build_reward, get_reward, reward, reward_help
from r1.rewards.judge import judge
from r1.tasks import apply_template, get_task

BASE = ASSETS / "base-tiny"


@reward("test_lm_likelihood", batched=True)
class LMLikelihood:
    """Mean log-probability per token of the summary (the text after the reasoning) under a small language model."""

    def __init__(self, model_dir: str = str(BASE), max_tokens: int = 48):
        self.model_dir, self.max_tokens = model_dir, max_tokens
        self.model = None
        self.setups = self.batches = 0

    def setup(self) -> None:
        from r1.model.checkpoint import load_pretrained
        from r1.tokenizer import Tokenizer

        self.setups += 1
        self.model = load_pretrained(self.model_dir, dtype=torch.float32).eval()
        self.tok = Tokenizer.load(self.model_dir)

    def __call__(self, completions: list[str], items: list[dict]) -> list[float]:
        self.batches += 1
        rows = []
        for text, item in zip(completions, items):
            summary = judge(text, item).summary or text
            rows.append([self.tok.bos_id, *self.tok.encode(summary)[: self.max_tokens]])
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.tok.pad_id, dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
        with torch.no_grad():  # causal: right padding changes nothing before it
            logp = torch.log_softmax(self.model(ids).logits[:, :-1].float(), -1)
        picked = logp.gather(-1, ids[:, 1:, None])[..., 0]
        return [float(picked[i, : len(r) - 1].mean()) if len(r) > 1 else 0.0 for i, r in enumerate(rows)]


@reward("test_length_share", batched=True, uses_length=True)
def length_share(completions: list[str], items: list[dict], lengths: list[int] | None = None) -> list[float]:
    """Each completion's length over the batch's longest: a score only a whole batch defines."""
    counts = lengths or [len(c.split()) for c in completions]
    return [n / max(max(counts), 1) for n in counts]


@reward("test_bad_scorer", batched=True, factory=True)
def bad_scorer(kind: str = "short"):
    """Returns one score too few, or a NaN."""
    return lambda completions, items: [float("nan")] * len(completions) if kind == "nan" else [0.0] * (len(items) - 1)


def _modchain(n: int, template: str = "r1-zero-short") -> list[dict]:
    return [apply_template(it, template) for it in get_task("modchain").generate(n, seed=0, difficulty=3)]


def test_a_batched_scorer_composes_by_weight_and_scores_a_batch_in_one_call():
    r = build_reward({"accuracy": 1.0, "lm": {"reward": "test_lm_likelihood", "weight": 0.5}, "format": 0.1})
    scorer = r._parts[1].fn
    assert scorer.model is None  # building a reward loads nothing (configs are validated without weights)
    items = _modchain(3) * 2
    texts = [get_task("modchain").solution(it, style, "tags") for it, style in zip(items, ["steps", "direct"] * 3)]
    texts[1] = texts[1].replace("<answer>", "<answer>1")  # a wrong answer and a broken format
    batch = r.score(texts, items)
    assert (scorer.setups, scorer.batches) == (1, 1)
    lm = batch.components["lm"]
    assert len(set(lm)) > 1 and all(x < 0 for x in lm)
    # the same scores one by one (the shortest and the longest among them): the padded batch changes nothing
    lengths = [len(t) for t in texts]
    rows = sorted({lengths.index(min(lengths)), lengths.index(max(lengths)), 1})
    one_by_one = [r.components(texts[i], items[i])["lm"] for i in rows]
    assert one_by_one == pytest.approx([lm[i] for i in rows], abs=1e-5)
    assert scorer.setups == 1 and scorer.batches == 1 + len(rows)
    for i in range(len(texts)):
        want = batch.components["accuracy"][i] + 0.5 * lm[i] + 0.1 * batch.components["format"][i]
        assert batch.total[i] == pytest.approx(want)
    assert batch.components["accuracy"][1] == 0.0 and batch.components["accuracy"][0] == 1.0


def test_batched_options_lengths_and_contract_errors():
    with pytest.raises(
        UserError, match="reward 'test_lm_likelihood' has no parameter 'model'; valid parameters: model_dir, max_tokens"
    ):
        get_reward("test_lm_likelihood", model="x")
    assert "test_lm_likelihood(model_dir=" in reward_help() and "[batched]" in reward_help()
    r = build_reward({"test_length_share": 1.0})
    assert r.score(["a", "b", "c"], [{}] * 3, lengths=[2, 8, 4]).components["test_length_share"] == [0.25, 1.0, 0.5]
    assert r.score(["a b", "a b c d"], [{}] * 2).components["test_length_share"] == [0.5, 1.0]  # estimated
    with pytest.raises(UserError, match="reward 'test_bad_scorer' returned 2 scores for 3 completions"):
        build_reward(["test_bad_scorer"]).score(["a", "b", "c"], [{}] * 3)
    with pytest.raises(UserError, match="reward 'nan' returned a non-finite score: nan"):
        build_reward({"nan": {"reward": "test_bad_scorer", "kind": "nan"}}).score(["a"], [{}])


def test_the_evaluator_scores_each_generation_batch_once_and_reports_open_items_apart():
    judged = _modchain(3)
    open_items = [{"prompt": f"Say something kind about {w}.", "task": "chat", "meta": {}} for w in ("rain", "cats")]
    items = judged + open_items
    r = build_reward({"accuracy": 1.0, "test_lm_likelihood": 1.0})
    scorer = r._parts[1].fn
    calls = []

    def generate(batch, n, params):
        calls.append(len(batch))
        return [[f" <think>\n</think>\n<answer>{it.get('answer', 'Lovely.')}</answer>", "no idea"] for it in batch]

    result = evaluate(items, generate, k=2, progress=False, batch_size=2, reward_spec=r)
    assert calls == [2, 2, 1] and scorer.batches == 3  # one scoring call per generation batch
    m = result.overall
    assert (m["n_items"], m["n_open"], m["pass@1"], m["cons@2"]) == (5, 2, 0.5, 1.0)  # pass@k: the judged 3
    assert m["format_rate"] == 0.5 and math.isfinite(m["reward_mean"])
    chat = result.by_task["chat"]
    assert chat["n_open"] == 2 and "pass@1" not in chat and "reward_mean" in chat
    rec = result.samples[-1]
    assert (rec["answer"], rec["correct"], rec["pred"]) == (None, None, None) and "reward" in rec
    from r1.eval.report import markdown

    assert "| chat | 2 | – | – | – | 2 |" in markdown(result)


def _grpo_config(tmp, name, data=None, **grpo):
    over = {
        "stage": "grpo",
        "model.path": str(BASE),
        "train.batch_size": 16,
        "train.steps": 1,
        "train.threads": 1,
        "optim.lr": 1e-4,
        "schedule.kind": "constant",
        "schedule.warmup_steps": 0,
        "logging.progress": False,
        "logging.plots": False,
        "logging.report": False,
        "checkpoint.final": False,
        "train.dtype": "fp32",
        "grpo.preset": "r1-zero-tiny",
        "grpo.prompts_per_rollout": 4,
        "grpo.group_size": 4,
        "grpo.max_new_tokens": 32,
        "grpo.template": "r1-zero-short",
        "grpo.task": "modchain",
        "grpo.difficulty": "2",
        "grpo.train_items": 16,
        "grpo.eval_items": 0,
    }
    if data is not None:
        over["data.paths"] = [str(data)]
    over.update({f"grpo.{k}": v for k, v in grpo.items()})
    return write_config(
        tmp / f"{name}.yaml", [f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in over.items()]
    )


def _step(run):
    return next(r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if r["event"] == "step")


def test_grpo_logs_the_rewards_verdicts_on_a_real_rollout(tmp_path):
    config = _grpo_config(tmp_path, "acc", reward={"accuracy": 1.0, "format": 1.0})
    train_run(config, tmp_path / "run")
    step = _step(tmp_path / "run")
    assert 0 < step["accuracy"] and step["accuracy"] == step["reward/accuracy"]  # one rule: the judge's
    assert step["format_rate"] == step["reward/format"]


def test_grpo_trains_on_open_prompts_scored_by_a_model(tmp_path):
    prompts = ["Tell me about rain.", "Name a colour.", "Say hello.", "Count to three."]
    data = write_jsonl(tmp_path / "open.jsonl", [{"prompt": p, "task": "chat", "meta": {}} for p in prompts])
    config = _grpo_config(tmp_path, "open", data, reward={"accuracy": 1.0, "test_lm_likelihood": 1.0})
    train_run(config, tmp_path / "run")
    step = _step(tmp_path / "run")
    assert "accuracy" not in step and step["reward/accuracy"] == 0.0  # no verdicts, and no raise
    assert step["reward/test_lm_likelihood"] < 0 and step["reward/test_lm_likelihood_std"] > 0
    assert step["frac_reward_zero_std"] < 1.0 and "grad_norm" in step  # the model's scores drive the advantages
