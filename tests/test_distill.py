"""Distillation into dense students: the student presets in transformers, chat and serve; the divergences of logit
distillation against a hand computation and against TRL's GKD loss, off- and on-policy."""

from __future__ import annotations

import itertools
import json
import math
import warnings
from pathlib import Path

import openai
import pytest
import torch
import transformers
from hf_twins import TOL, ids_for, randomize

from r1.cli import main as cli
from r1.engine import Engine
from r1.errors import ConfigError
from r1.model import IGNORE_INDEX, Transformer, preset
from r1.model.checkpoint import load_pretrained, save_pretrained
from r1.model.info import model_info
from r1.serve.app import create_app
from r1.serve.cli import generation_defaults, serve_in_thread
from r1.train import load_config, train
from r1.train.core import Trainer
from r1.train.distill.loss import token_divergence

pytestmark = pytest.mark.usefixtures("one_thread")

BASE = Path(__file__).parents[1] / "r1" / "assets" / "base-tiny"
TRACES = Path(__file__).parents[1] / "r1" / "assets" / "sft-tiny.jsonl"
STUDENTS = {"tiny-qwen2-xs": "Qwen2", "tiny-qwen2-s": "Qwen2", "tiny-qwen2": "Qwen2", "tiny-llama": "Llama"}


@pytest.fixture(scope="module")
def trl_gkd_loss():
    """TRL's GKD loss (a test dependency, in the dev extra: a missing TRL fails these tests, it never skips them),
    imported here so the tests that do not compare with it do not wait for TRL's imports."""
    with warnings.catch_warnings():  # "trl.experimental is unstable": the tests pin what they compare with
        warnings.simplefilter("ignore")
        from trl.experimental.gkd import GKDTrainer
    return GKDTrainer.generalized_jsd_loss


@pytest.fixture(scope="module")
def traces(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("traces") / "traces.jsonl"
    path.write_text("".join(itertools.islice(TRACES.open(encoding="utf-8"), 24)), encoding="utf-8")
    return path


def config(traces: Path, out: Path, *overrides: str, name: str = "distill-tiny"):
    return load_config(
        name,
        [
            f"data.paths=[{traces}]",
            f"train.out={out}",
            "train.steps=2",
            "train.batch_size=4",
            "logging.progress=false",
            "logging.plots=false",
            *(("distill.beta=0.5", "distill.lmbda=0.5") if name == "distill-tiny" else ()),  # both kinds of step
            *overrides,
        ],
    )


# ============================================================================================ students
def test_student_presets_span_up_to_the_teachers_active_size():
    teacher = model_info(preset("tiny")).active  # the shipped base's architecture, experts counted top-k only
    sizes = {name: model_info(preset(name)).active for name in STUDENTS}
    qwen = sorted(sizes[n] for n, family in STUDENTS.items() if family == "Qwen2")
    assert len(qwen) >= 3 and qwen[0] < teacher / 4 and 0.8 < qwen[-1] / teacher < 1.2, (teacher, sizes)
    assert 0.8 < sizes["tiny-llama"] / teacher < 1.2


@pytest.mark.parametrize("name", list(STUDENTS))
def test_student_written_by_r1_is_a_transformers_model_with_equal_logits(name, tmp_path):
    cfg = preset(name)
    torch.manual_seed(0)
    ours = randomize(Transformer(cfg), 0)
    save_pretrained(ours, tmp_path)
    theirs = transformers.AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.float32).eval()
    assert type(theirs).__name__ == f"{STUDENTS[name]}ForCausalLM"
    ids = ids_for(cfg.vocab_size, 1)
    with torch.no_grad():
        assert (ours(ids).logits - theirs(ids).logits).abs().max().item() <= TOL


@pytest.mark.parametrize("name", list(STUDENTS))
def test_each_student_trains_by_sft_on_the_teachers_traces(name, traces, tmp_path):
    """Stage sft from the preset with the teacher's tokenizer: the published folder is a transformers model whose
    logits are r1's, and it carries the teacher's tokenizer and chat template."""
    cfg = config(traces, tmp_path / "run", f"model={name}", "data.tokenizer=r1/assets/base-tiny", name="sft-tiny")
    result = train(cfg)
    assert math.isfinite(result.final_loss)
    folder = result.model_dir
    theirs = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    assert type(theirs).__name__ == f"{STUDENTS[name]}ForCausalLM"
    ours = load_pretrained(folder)
    ids = ids_for(ours.config.vocab_size, 2)
    with torch.no_grad():
        assert (ours(ids).logits - theirs(ids).logits).abs().max().item() <= TOL
    tok = transformers.AutoTokenizer.from_pretrained(folder)
    teacher = transformers.AutoTokenizer.from_pretrained(BASE)
    chat = [{"role": "user", "content": "Compute 1+2 mod 10."}]
    assert tok.apply_chat_template(chat, add_generation_prompt=True) == teacher.apply_chat_template(
        chat, add_generation_prompt=True
    )


def test_distilled_student_runs_in_chat_and_serve(traces, tmp_path, capsys):
    result = train(config(traces, tmp_path / "run", "train.steps=3"))
    report = (tmp_path / "run" / "report.md").read_text()
    assert "Teacher `base-tiny`; JSD(β=0.5) at temperature 1;" in report and " of 3 steps on the student's" in report
    folder = result.model_dir
    assert json.loads((folder / "config.json").read_text())["architectures"] == ["Qwen2ForCausalLM"]
    assert cli(["chat", "--model", str(folder), "-p", "Compute 1+2 mod 10.", "--max-tokens", "8", "--seed", "0"]) == 0
    assert "[answer]" in capsys.readouterr().out
    engine = Engine.from_pretrained(folder, max_batch=2, max_len=256)
    app = create_app(engine, "student", generation_defaults(folder))
    with serve_in_thread(app) as base:
        client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0, timeout=30)
        reply = client.chat.completions.create(
            model="student", messages=[{"role": "user", "content": "Compute 1+2 mod 10."}], max_tokens=6, seed=0
        )
    assert reply.usage.completion_tokens >= 1 and reply.choices[0].finish_reason in ("stop", "length")


# ============================================================================================ the divergences
def _hand(student: list[float], teacher: list[float], beta: float, tau: float) -> float:
    """One position's divergence written out over the vocabulary in plain floats."""

    def softmax(z):
        e = [math.exp(v / tau) for v in z]
        return [v / sum(e) for v in e]

    q, p = softmax(student), softmax(teacher)

    def kl(a, b):
        return sum(x * math.log(x / y) for x, y in zip(a, b))

    if beta == 0:
        return kl(p, q)
    if beta == 1:
        return kl(q, p)
    m = [beta * x + (1 - beta) * y for x, y in zip(p, q)]
    return beta * kl(p, m) + (1 - beta) * kl(q, m)


@pytest.mark.parametrize("beta", [0.0, 1.0, 0.5, 0.2])
@pytest.mark.parametrize("tau", [1.0, 2.0])
def test_divergences_match_a_hand_computation(beta, tau):
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(3, 5, generator=g) * 2, torch.randn(3, 5, generator=g) * 2
    ours = token_divergence(s, t, beta, tau)
    hand = [_hand(s[i].tolist(), t[i].tolist(), beta, tau) for i in range(3)]
    assert ours.tolist() == pytest.approx(hand, rel=1e-5, abs=1e-7)
    assert all(v > 0 for v in hand)
    if beta not in (0.0, 1.0):
        assert max(hand) < -beta * math.log(beta) - (1 - beta) * math.log(1 - beta)  # at most H(β) (log 2 at ½)
    assert token_divergence(t, t, beta, tau).abs().max() < 1e-6


def test_forward_and_reverse_kl_are_the_two_orders():
    g = torch.Generator().manual_seed(1)
    s, t = torch.randn(4, 7, generator=g), torch.randn(4, 7, generator=g)
    assert torch.allclose(token_divergence(s, t, 0.0), token_divergence(t, s, 1.0), atol=1e-6)
    assert torch.allclose(token_divergence(s, t, 0.5), token_divergence(t, s, 0.5), atol=1e-6)  # JSD is symmetric


@pytest.mark.parametrize("beta", [0.0, 1.0, 0.5, 0.1])
def test_masked_mean_and_gradient_equal_trls_generalized_jsd_loss(beta, trl_gkd_loss):
    g = torch.Generator().manual_seed(2)
    s, t = torch.randn(2, 6, 11, generator=g) * 3, torch.randn(2, 6, 11, generator=g) * 3
    labels = torch.tensor([[-100, -100, 4, 5, 6, -100], [-100, 1, 2, 3, 4, 5]])
    s.requires_grad_(True)
    trl = trl_gkd_loss(s, t, labels, beta=beta, temperature=0.7)
    (trl_grad,) = torch.autograd.grad(trl, s)
    keep = labels != -100
    ours = token_divergence(s[keep], t[keep], beta, 0.7).mean()
    (grad,) = torch.autograd.grad(ours, s)
    assert ours.item() == pytest.approx(trl.item(), rel=1e-5)
    assert torch.allclose(grad, trl_grad, atol=1e-7) and grad[~keep].abs().max() == 0


@pytest.mark.parametrize("mode", ["off-policy", "on-policy", "seq_kd"])
def test_stage_loss_equals_trls_gkd_loss_on_the_same_batch(mode, traces, tmp_path, trl_gkd_loss):
    """The stage's micro-batch (traces, the student's own samples, or the teacher's) scored as TRL's GKDTrainer does:
    full logits of both models, shifted, the labels' -100 mask, `generalized_jsd_loss`; the teacher runs once."""
    lmbda, seq_kd = {"off-policy": (0, False), "on-policy": (1, False), "seq_kd": (0, True)}[mode]
    cfg = config(traces, tmp_path / "run", f"distill.lmbda={lmbda}", f"distill.seq_kd={seq_kd}", "distill.beta=0.3")
    trainer = Trainer(cfg)
    try:
        trainer.setup()
        stage, model = trainer.stage, trainer.model
        stage.prepare(model, 0)
        batch = stage.next_batches()[0]
        if mode != "off-policy":  # the sampled completion is the target, the prompt is not
            labels = batch["labels"]
            first = (labels != IGNORE_INDEX).long().argmax(1)
            for row, f in zip(range(len(labels)), first.tolist()):
                assert stage.prompts.count(batch["input_ids"][row, :f].tolist()) >= 1
        calls = []
        hook = stage.teacher.register_forward_hook(lambda *a: calls.append(1))
        ours = stage.loss(model, batch)
        hook.remove()
        assert len(calls) == 1
        V = stage.vocab
        kw = {"positions": batch.get("positions"), "segment_ids": batch.get("segment_ids")}
        with torch.no_grad():
            student = model(batch["input_ids"], **kw).logits[..., :V]
            teacher = stage.teacher(batch["input_ids"], **kw).logits[..., :V]
        trl = trl_gkd_loss(student[:, :-1], teacher[:, :-1], batch["labels"][:, 1:], beta=0.3, temperature=1.0)
        assert ours.loss.item() == pytest.approx(trl.item(), rel=1e-5)
        assert ours.weight == int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
        assert stage.step_metrics()["on_policy"] == float(mode == "on-policy")
    finally:
        trainer.close()


def test_a_resumed_run_equals_an_uninterrupted_one(traces, tmp_path):
    """Each step's coin, prompts and sampling seeds come from the run seed and the step: a run resumed from its step-2
    checkpoint takes the same on-policy and off-policy steps, to the same weights."""
    fast = ("checkpoint.every=2",)
    a = train(config(traces, tmp_path / "a", "train.steps=4", *fast))
    train(config(traces, tmp_path / "b", "train.steps=2", *fast))
    b = train(config(traces, tmp_path / "b", "train.steps=4", "train.resume=true", *fast))
    wa, wb = load_pretrained(a.model_dir).state_dict(), load_pretrained(b.model_dir).state_dict()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)

    def steps(run):
        records = map(json.loads, (run / "metrics.jsonl").open())
        return [(r["on_policy"], r["loss"]) for r in records if r["event"] == "step"]

    assert steps(tmp_path / "a") == steps(tmp_path / "b")
    assert {on for on, _ in steps(tmp_path / "a")[2:]} == {0.0, 1.0}  # both kinds of step after the resume


# ============================================================================================ options
@pytest.mark.parametrize(
    "override,message",
    [
        ("distill.betta=0.1", "betta"),
        ("distill.beta=1.5", "distill.beta=1.5: must be in [0, 1]"),
        ("distill.lmbda=-1", "distill.lmbda=-1"),
        ("distill.teacher=", "distill.teacher: give the teacher's model folder"),
    ],
)
def test_options_are_checked_by_the_stage(override, message, traces, tmp_path):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Trainer(config(traces, tmp_path / "run", override))


def test_unknown_option_lists_the_valid_ones(traces, tmp_path):
    with pytest.raises(ConfigError) as err:
        Trainer(config(traces, tmp_path / "run", "distill.lambda=0.5"))
    assert "lmbda" in str(err.value) and "beta" in str(err.value)


def test_a_teacher_with_another_tokenizer_is_refused(traces, tmp_path):
    from r1.engine.testing import save_tiny

    other = save_tiny(tmp_path / "other", max_len=128)
    with pytest.raises(ConfigError, match="tokenizer differs from the student's"):
        train(config(traces, tmp_path / "run", f"distill.teacher={other}"))


# ============================================================================================ traces from the teacher
def test_teacher_traces_from_the_generate_stage_train_a_student(tmp_path):
    """Item 1's traces come from the pipeline's one dataset-from-a-model stage pointed at the teacher's folder; the
    distill stage trains on its records as they are written."""
    from dataclasses import dataclass

    from r1.pipeline.recipes.r1_zero import eval_items
    from r1.pipeline.runner import run_recipe
    from r1.pipeline.stage import Recipe
    from r1.pipeline.stages.generate import FILTERS, Generate

    @dataclass
    class Settings:
        out: str
        seed: int = 0
        threads: int = 1

    items = eval_items("2-3", 4, seed=3)
    stage = Generate("traces", str(BASE), lambda run: items, "traces.jsonl", n=2, template=None, max_new_tokens=48)
    stage.filters = {k: FILTERS[k] for k in ("format", "complete")}
    recipe = Recipe("traces", "", lambda cfg: [stage], lambda p: None, lambda a: None)
    summary = run_recipe(recipe, Settings(str(tmp_path / "gen")))
    assert summary["traces"]["records"] >= 1
    result = train(config(tmp_path / "gen" / "traces.jsonl", tmp_path / "run"))
    assert math.isfinite(result.final_loss) and result.steps == 2
