"""torchrun + FSDP2 on CPU (gloo, 2 processes) follows the single-process loss curve on the same global batch."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from trainer_fixtures import tiny_overrides, token_corpus, torchrun, write_jsonl

from r1.assets import ASSETS
from r1.model.checkpoint import load_pretrained
from r1.train import train
from r1.train.config import load_config


def _losses(run: Path) -> list[float]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [r["loss"] for r in map(json.loads, lines) if r["event"] == "step"]


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch built without distributed")
def test_two_process_fsdp2_resumes_and_matches_single_process(tmp_path):
    data = write_jsonl(tmp_path / "train.jsonl", token_corpus())
    common = [f"data.paths=[{data}]", "train.steps=5", "checkpoint.every=2", "checkpoint.keep_last=3"]
    single = train(load_config(None, [*tiny_overrides(tmp_path / "single"), *common]))
    # the 2-process run takes over the single-process run at its step-2 checkpoint: this checks resuming into
    # sharded parameters and optimizer state (with another process count), then the FSDP2 steps themselves
    shutil.copytree(tmp_path / "single", tmp_path / "ddp")
    for late in ("step-000004", "step-000005"):
        shutil.rmtree(tmp_path / "ddp" / "checkpoints" / late)
    # one process: micro-batch 4; two processes: 2 sequences each, as 2 accumulated micro-batches of 1
    proc = torchrun(*tiny_overrides(tmp_path / "ddp"), *common, "train.micro_batch_size=1", "train.resume=true")
    assert proc.returncode == 0, proc.stdout[-3000:]

    one, two = _losses(tmp_path / "single"), _losses(tmp_path / "ddp")
    assert len(one) == len(two) == 5 and one[:2] == two[:2]
    events = [json.loads(line) for line in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    assert [e["step"] for e in events if e["event"] == "resume"] == [2]
    assert one[-1] < one[0]
    torch.testing.assert_close(torch.tensor(two), torch.tensor(one), rtol=2e-4, atol=0)
    # rank 0 wrote the usual HF-layout checkpoint from the gathered full state. Weights are not compared one by one:
    # a float-level difference can flip a near-tied expert choice, and that expert then trains on other tokens.
    # What the two models compute must agree.
    folder = tmp_path / "ddp" / "checkpoints" / "step-000005"
    with safe_open(str(folder / "model.safetensors"), "pt") as f:  # the MTP module is gathered and saved too
        assert f"model.layers.{single.model.config.num_hidden_layers}.eh_proj.weight" in f.keys()
    merged = load_pretrained(folder)
    assert merged.state_dict().keys() == single.model.state_dict().keys()
    ids = torch.tensor([d["input_ids"][:48] for d in token_corpus(4, seed=5, min_len=48)])
    with torch.no_grad():
        a, b = (m.eval()(ids, labels=ids).lm_loss for m in (merged, single.model))
    torch.testing.assert_close(a, b, rtol=1e-3, atol=0)


# GRPO on the shipped base: 4 modchain prompts × 4 samples per rollout, minibatches of 8 in micro-batches of 2 (so
# 2 steps per rollout: the second trains off-policy), β > 0 and π_old recomputed by the trainer (both scored per
# process), held-out evaluation at the start, at step 2 and at the end
GRPO = [
    "stage=grpo", "model.path=base-tiny", "grpo.preset=r1-zero-tiny", "grpo.difficulty=2-4",
    "grpo.template=r1-zero-short", "grpo.prompts_per_rollout=4", "grpo.group_size=4", "grpo.max_new_tokens=24",
    "grpo.train_items=16", "grpo.eval_items=6", "grpo.eval_k=2", "grpo.beta=0.01", "grpo.old_logprobs=trainer",
    "optim.lr=1e-3", "train.batch_size=8", "train.micro_batch_size=2", "train.steps=3", "train.eval_every=2",
    "train.threads=1", "train.dtype=fp32", "checkpoint.every=0", "logging.progress=false", "logging.plots=false",
    "logging.report=false",
]  # fmt: skip
# Measured (AVX512, 1 thread per process, load ~5): rewards, accuracies, lengths and held-out pass@1 identical;
# losses and grad norms within 4e-7 relative; weights within 6.8e-5 after 3 Adam steps at lr 1e-3 that moved them up
# to 6.0e-4. The largest differences sit in the head rows of special tokens that are never sampled: their gradients
# are near-zero sums, which another summation order (one process, or a reduce-scatter over two) changes by a large
# relative amount, and Adam's normalisation turns that into a share of a whole step. Every other tensor: ≤ 1.5e-5.
LOSS_RTOL, WEIGHT_ATOL = 1e-5, 1e-4  # the weights': a tenth of one Adam step at this lr


@pytest.mark.slow  # ~80 s on a shared 2-core machine: a single-process run, then torchrun's two, twice
@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch built without distributed")
def test_two_process_grpo_matches_single_process_and_resumes(tmp_path):
    train(load_config(None, [*GRPO, f"train.out={tmp_path / 'one'}"]))
    # the two processes stop after step 1, in the middle of the first rollout, and resume from that checkpoint: the
    # rollout and the reference come back from the files rank 0 wrote
    for more in (["train.steps=1"], ["train.resume=true"]):
        proc = torchrun(*GRPO, f"train.out={tmp_path / 'two'}", *more)
        assert proc.returncode == 0, proc.stdout[-3000:]

    def records(run: Path, event: str) -> list[dict]:
        lines = (run / "metrics.jsonl").read_text().splitlines()
        return [r for r in map(json.loads, lines) if r["event"] == event]

    one, two = records(tmp_path / "one", "step"), records(tmp_path / "two", "step")
    assert len(one) == len(two) == 3
    same = ["reward", "reward_std", "accuracy", "format_rate", "length_mean", "frac_reward_zero_std", "rollout_tokens"]
    for a, b in zip(one, two):  # every process sampled its share of the prompts; gathered, the rollout is the same
        assert {k: a.get(k) for k in same} == {k: b.get(k) for k in same}
    assert len({r["reward"] for r in one}) > 1  # two rollouts that differ: the second is sampled after an update
    for key in ("loss", "pg_loss", "kl_loss", "kl", "grad_norm"):
        torch.testing.assert_close(torch.tensor([r[key] for r in two]), torch.tensor([r[key] for r in one]),
                                   rtol=LOSS_RTOL, atol=1e-9, msg=key)  # fmt: skip
    assert [r["step"] for r in records(tmp_path / "two", "resume")] == [1]
    evals = [[e for e in records(tmp_path / run, "eval") if e["step"] != 1] for run in ("one", "two")]
    assert [e["step"] for e in evals[0]] == [e["step"] for e in evals[1]] == [0, 2, 3]
    for a, b in zip(*evals):  # held-out samples sharded by process, the same pass@1
        assert (a["eval_pass@1"], a["eval_pass@2"], a["eval_length_mean"]) == (
            b["eval_pass@1"], b["eval_pass@2"], b["eval_length_mean"]
        )  # fmt: skip
    final = [load_pretrained(tmp_path / run / "checkpoints" / "step-000003").state_dict() for run in ("one", "two")]
    start = load_pretrained(ASSETS / "base-tiny").state_dict()
    moved = max((final[0][k] - start[k]).abs().max().item() for k in start)
    worst = max((final[0][k] - final[1][k]).abs().max().item() for k in start)
    assert moved > 5 * WEIGHT_ATOL and worst <= WEIGHT_ATOL, (moved, worst)
