"""`r1 run`: the README's main job. Trains a tiny DeepSeek-V3 base model from scratch on the built-in corpus,
checks that it has something for reinforcement learning to amplify, runs R1-Zero (GRPO with rule rewards, no SFT)
on held-in problems, evaluates before and after on held-out ones, and leaves one run folder a person can read.
All of it on a laptop CPU.

Stages, each timed and recorded in `summary.json`:
1. corpus:    worked modchain solutions in R1 format (`r1.data.corpus`), train split only → `data/corpus.jsonl`;
2. tokenizer: a byte-level BPE trained on that corpus (digits stay single tokens) → `tokenizer/`;
3. pretrain:  the shared trainer (`r1.train`), tiny preset, loss on the responses, length-bucketed batches →
              `pretrain/` (metrics.jsonl, plots, the trainer's own report, checkpoints);
4. base:      the final checkpoint published to `base/` (HF safetensors + config.json + tokenizer files, its own
              model card README.md and provenance.json; `r1.train.publish`), checked against transformers' logits;
5. eval-base: held-out problems (eval split, never in the corpus or in RL) per difficulty through the engine and
              the evaluator: free sampling at T=1.0 (what RL samples) and T=0.6/top-p 0.95 (R1's eval setting), k
              samples each → pass@1 (mean over k), pass@k, cons@k, format rate, length; plus the two forced styles
              below → `eval/base/`. Then the check: does the base reason sometimes, and does reasoning pay?
6. r1-zero:   GRPO from `base/` with the `r1-zero-tiny` preset (`configs/r1-zero-tiny.yaml`) on train-split
              problems of the corpus levels, held-out pass@1 every few steps → `r1-zero/` (metrics, plots of
              accuracy / length / reflection vs step, report, checkpoints); the result → `model/` (HF layout,
              with its own card and provenance);
7. eval:      the same evaluation of `model/` → `eval/r1-zero/`; the held-out numbers go into the cards;
and `report.md`: the before/after table, the pictures, the costs.

Forcing a style. In the corpus the first token after `<think>\\n` decides the style: `</think>` for a direct
answer, the chain's first digit for step-by-step work. So "forced direct" prefills the response with
`<think>\\n</think>\\n<answer>` and "forced step by step" with `<think>\\n` plus the question's first digit (a copy
of given text, no work done). Both are greedy (one sample, T=0), i.e. the model's best answer in that style.

By default the job starts from the shipped base (`r1/assets/base-tiny`, see `BUILTIN_BASE`) and skips stages
1-3 (corpus, tokenizer, pretraining): about 3 minutes on a 2-core CPU, 2 of them GRPO. `--from-scratch` runs every
stage (about 11 minutes); `--steps` and `--rl-steps` trade time for quality, `--base DIR` starts from another base
model, `--quick` is a seconds-long smoke run (used by the tests) whose numbers mean nothing.
"""

from __future__ import annotations

import argparse
import functools
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from r1.assets import ASSETS, config_path
from r1.errors import UserError
from r1.readers import read_json
from r1.train.publish import MODCHAIN_EXAMPLE, ModelCard, publish_model, write_card

# The full run's recipe. Chosen by measurement (see the report this job writes, and docs/ for the numbers).
FULL: dict[str, Any] = {
    "corpus_docs": 80000,
    # more of the long chains: the last step positions are learned only from them, and with uniform levels whether
    # they were learned in time depended on the seed (docs/LOG.md)
    "levels": {"2": 1.0, "3": 1.0, "4": 1.5, "5": 2.0, "6": 2.5},
    "mix": {"direct": 0.5, "steps": 0.35, "check": 0.15},
    "eval_levels": "2-8",
    "steps": 6000,
    "rl_steps": 100,
    "rl_eval_every": 20,
    "batch_size": 12,
    "lr": 1e-3,
    "init_std": 0.02,
    "warmup_steps": 50,
    "eval_per_level": 64,
    "eval_k": 8,
    "max_new_tokens": 96,
}
QUICK: dict[str, Any] = {
    "corpus_docs": 200,
    "levels": "2-3",
    "mix": {"direct": 0.65, "steps": 0.25, "check": 0.10},
    "eval_levels": "2-4",
    "steps": 3,
    "rl_steps": 2,
    "rl_eval_every": 1,
    "batch_size": 8,
    "lr": 1e-3,
    "init_std": 0.02,
    "warmup_steps": 1,
    "eval_per_level": 2,
    "eval_k": 2,
    "max_new_tokens": 16,
}
# The built-in base: what `r1 run --from-scratch --rl-steps 0` (seed 0) writes to base/, shipped so that the main
# job does not depend on pretraining luck (docs/LOG.md: with other seeds the same recipe learned the long chains
# less well and R1-Zero then gained 6 points instead of 30). provenance.json says how it was made.
BUILTIN_BASE = ASSETS / "base-tiny"
FORCED_PREFILL = {"direct": " <think>\n</think>\n<answer>", "steps": " <think>\n"}


@dataclass
class RunConfig:
    """Everything the job depends on; written to config.yaml so a run folder says how it was made."""

    out: str
    seed: int = 0
    preset: str = "tiny"
    quick: bool = False
    corpus_docs: int = FULL["corpus_docs"]
    levels: str | dict[str, float] = field(default_factory=lambda: dict(FULL["levels"]))
    mix: dict[str, float] = field(default_factory=lambda: dict(FULL["mix"]))
    eval_levels: str = FULL["eval_levels"]
    steps: int = FULL["steps"]
    rl_steps: int = FULL["rl_steps"]  # GRPO steps; 0 = stop after evaluating the base
    rl_eval_every: int = FULL["rl_eval_every"]
    base: str | None = None  # an existing base model folder: skip corpus, tokenizer and pretraining
    batch_size: int = FULL["batch_size"]
    lr: float = FULL["lr"]
    warmup_steps: int = FULL["warmup_steps"]
    eval_per_level: int = FULL["eval_per_level"]
    eval_k: int = FULL["eval_k"]
    max_new_tokens: int = FULL["max_new_tokens"]
    template: str = "r1-zero-short"
    init_std: float = FULL["init_std"]
    threads: int = 1  # the measured run used 1 thread: on a shared 2-core machine 2 OpenMP threads can collapse


@dataclass
class RunState:
    cfg: RunConfig
    summary: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)

    @functools.cached_property
    def heldout(self) -> list[dict[str, Any]]:
        """The held-out problems every evaluation of the job uses (eval split, `eval_per_level` per level)."""
        c = self.cfg
        return eval_items(c.eval_levels, c.eval_per_level, seed=c.seed + 1)

    @functools.cached_property
    def heldout_trained(self) -> list[dict[str, Any]]:
        """The held-out problems of the corpus levels: RL's held-out curve, the same items as the tables' rows."""
        levels = set(_levels(self.cfg.levels))
        return [it for it in self.heldout if it["meta"]["difficulty"] in levels]

    @property
    def out(self) -> Path:
        return Path(self.cfg.out)

    @property
    def model_dir(self) -> Path:
        return self.out / "model"

    @property
    def base_dir(self) -> Path:
        return Path(self.cfg.base) if self.cfg.base else self.out / "base"

    @property
    def tokenizer_dir(self) -> Path:
        return self.out / "tokenizer"


# ================================================================================================ stages
def stage_corpus(st: RunState) -> None:
    from r1.data.corpus import build_corpus, write_corpus

    st.records = build_corpus(
        st.cfg.corpus_docs,
        seed=st.cfg.seed,
        mix=st.cfg.mix,
        levels={"modchain": st.cfg.levels},
        template=st.cfg.template,
    )
    path = write_corpus(st.out / "data" / "corpus.jsonl", st.records)
    st.summary["corpus"] = {
        "path": str(path.relative_to(st.out)),
        "documents": len(st.records),
        "levels": st.cfg.levels if isinstance(st.cfg.levels, str) else _levels_label(st.cfg.levels),
        "level_weights": st.cfg.levels if isinstance(st.cfg.levels, dict) else None,
        "styles": dict(sorted(Counter(r["style"] for r in st.records).items())),
        "tasks": dict(Counter(r["task"] for r in st.records)),
    }


def stage_tokenizer(st: RunState) -> None:
    from r1.data.corpus import corpus_texts
    from r1.tokenizer import Tokenizer

    tok = Tokenizer.train(corpus_texts(st.records), vocab_size=2048)
    tok.save(st.tokenizer_dir)
    n = min(len(st.records), 2000)
    prompt = sum(len(tok.encode(r["prompt"])) for r in st.records[:n]) / max(n, 1)
    response = sum(len(tok.encode(r["response"])) for r in st.records[:n]) / max(n, 1)
    st.summary["tokenizer"] = {
        "vocab_size": tok.vocab_size,
        "prompt_tokens_mean": round(prompt, 1),
        "response_tokens_mean": round(response, 1),
    }


def pretrain_overrides(st: RunState) -> list[str]:
    """The trainer settings this job depends on, as dotted overrides of `configs/pretrain-tiny.yaml`.

    Every knob the recipe was tuned on is set here, so the result does not move when the shared config file does.
    """
    c = st.cfg
    return [
        f"model.preset={c.preset}",
        f"model.initializer_range={c.init_std}",
        f"data.paths=[{st.out / 'data' / 'corpus.jsonl'}]",
        "data.builtin=0",
        f"data.tokenizer={st.tokenizer_dir}",
        "data.loss_on=response",
        "data.batching=bucket",
        "data.seq_len=256",
        f"optim.lr={c.lr}",
        "schedule.kind=cosine",
        f"schedule.warmup_steps={c.warmup_steps}",
        "schedule.min_lr_ratio=0.1",
        f"train.out={st.out / 'pretrain'}",
        f"train.steps={c.steps}",
        f"train.batch_size={c.batch_size}",
        "train.micro_batch_size=0",
        "train.log_every=1",
        *_run_overrides(c),
    ]


def _run_overrides(c: RunConfig) -> list[str]:
    """What every training stage of the job shares: seed, threads, fp32 on the CPU, one final checkpoint (the job
    publishes base/ and model/ from it itself), no resume (the job reruns a stage from its start), progress, plots
    and a report."""
    return [
        f"train.seed={c.seed}",
        f"train.threads={c.threads}",
        "train.dtype=fp32",
        "train.device=cpu",
        "train.resume=false",
        "checkpoint.every=0",
        "checkpoint.final=true",
        "checkpoint.publish=false",
        "logging.progress=true",
        "logging.plots=true",
        "logging.report=true",
    ]


def stage_pretrain(st: RunState) -> None:
    from r1.train import load_config, train
    from r1.train.metrics import read_metrics

    cfg = load_config(config_path("pretrain-tiny"), pretrain_overrides(st))
    (st.out / "pretrain.yaml").write_text(cfg.to_yaml())
    result = train(cfg)
    if result.checkpoint is None:
        raise UserError("pretraining wrote no final checkpoint")
    metrics = read_metrics(Path(result.run_dir) / "metrics.jsonl")
    losses = [m["lm_loss"] for m in metrics if "lm_loss" in m]
    st.summary["pretrain"] = {
        "steps": result.steps,
        "tokens": result.tokens,
        "seconds": round(result.seconds, 1),
        "tokens_per_s": round(result.tokens / max(result.seconds, 1e-9)),
        "final_loss": result.final_loss,
        "final_lm_loss": losses[-1] if losses else None,
        "checkpoint": str(result.checkpoint),
        "plots": sorted(str(p.relative_to(st.out)) for p in (Path(result.run_dir) / "plots").glob("*.png")),
    }


def stage_base(st: RunState) -> None:
    from r1.model.checkpoint import load_pretrained
    from r1.model.info import model_info

    if st.cfg.base is None:
        checkpoint = Path(st.summary["pretrain"]["checkpoint"])
        publish_model(checkpoint, st.base_dir, base_card(st), st.tokenizer_dir, st.cfg.template)
    elif not (st.base_dir / "config.json").is_file():
        raise UserError(f"--base {st.base_dir}: not a model folder (no config.json)")
    provenance = st.base_dir / "provenance.json"
    if st.cfg.base is not None and provenance.is_file():  # how the given base was made, for the report
        made = read_json(provenance)
        st.summary["base_provenance"] = {k: made[k] for k in ("command", "commit") if k in made}
        weights = made.get("sha256") or made.get("files", {}).get("model.safetensors")  # older folders: "sha256"
        if weights:
            st.summary["base_provenance"]["sha256"] = weights
        st.summary.update({k: made[k] for k in ("corpus", "tokenizer", "pretrain") if k in made})
    cfg = load_pretrained(st.base_dir).config
    info = model_info(cfg)
    st.summary["model"] = {
        "preset": st.cfg.preset if st.cfg.base is None else cfg.model_type,
        "total_params": info.total,
        "active_params": info.active,
        "mtp_params": info.mtp,
        "kv_elements_per_token_per_layer": info.kv_elements_per_token_per_layer,
    }
    st.summary["hf_check"] = _hf_check(st, st.base_dir)


def base_card(st: RunState) -> ModelCard:
    """The card of a base/ made here: how it was pretrained and, once evaluated, what it can do."""
    s, c = st.summary, st.cfg
    p, corpus = s.get("pretrain", {}), s.get("corpus", {})
    metrics = {"pretraining steps": p.get("steps"), "tokens": p.get("tokens"), "final loss": p.get("final_lm_loss")}
    metrics.update(_heldout_metrics(s, "base"))
    return ModelCard(
        stage="pretrain",
        summary=f"A `{c.preset}` DeepSeek-V3 pretrained from scratch by `r1 run` on {corpus.get('documents', 0):,} "
        f"worked modchain solutions in R1 format (levels {corpus.get('levels')}, train split only), loss on the "
        "responses: the base that R1-Zero starts from.",
        metrics={k: v for k, v in metrics.items() if v is not None},
        notes=_notes(c),
        extra={"config": asdict(c), **{k: s[k] for k in ("corpus", "tokenizer", "pretrain") if k in s}},
        tags=["modchain", "tiny"],
        example=MODCHAIN_EXAMPLE,
    )


def model_card(st: RunState) -> ModelCard:
    """The card of model/: R1-Zero from the base, its training and, once evaluated, held-out results."""
    s, c = st.summary, st.cfg
    rl = s.get("r1_zero", {})
    last = rl.get("last", {})
    metrics = {"GRPO steps": rl.get("steps"), "reward (last step)": last.get("reward")}
    metrics.update(_heldout_metrics(s, "r1-zero"))
    before = _heldout_metrics(s, "base")
    metrics.update({f"base model's {k}": v for k, v in before.items() if k.startswith("held-out pass@1")})
    return ModelCard(
        stage="r1-zero",
        summary="R1-Zero at tiny scale, made by `r1 run`: GRPO (preset `r1-zero-tiny`) with rule rewards only (the "
        "right answer inside `<answer>` + 0.1 for the format), no SFT, on train-split modchain problems of levels "
        f"{_levels_label(c.levels)}.",
        base_model=_base_name(st),
        metrics={k: v for k, v in metrics.items() if v is not None},
        notes=_notes(c),
        extra={"config": asdict(c), "r1_zero": {k: v for k, v in rl.items() if k != "curve"}},
        tags=["grpo", "modchain", "tiny"],
        example=MODCHAIN_EXAMPLE,
    )


def _notes(c: RunConfig) -> list[str]:
    notes = [
        f"**Prompt format**: the plain `{c.template}` prompt `User: <question> Assistant:`; the chat template in "
        "tokenizer_config.json renders chats that way, so `r1 chat`, `r1 serve`, `r1 eval` and transformers ask it "
        "in its own format."
    ]
    return notes + (["**A quick smoke run (`--quick`)**: its numbers mean nothing."] if c.quick else [])


def _heldout_metrics(s: dict[str, Any], name: str) -> dict[str, Any]:
    table = s.get("eval", {}).get("tables", {}).get(name)
    if not table:
        return {}
    e, cell = s["eval"], table["trained"]["free_t1.0"]
    k, where = e["k"], f"levels {e['trained_levels']}, T=1.0"
    rates = {f"held-out pass@1 ({where}, mean of {k}), %": cell.get("pass@1")}
    if k > 1:
        rates[f"held-out pass@{k} ({where}), %"] = cell.get(f"pass@{k}")
    rates.update({"answers that reason, %": cell.get("think_share"), "format, %": cell.get("format_rate")})
    return {key: round(100 * v, 1) for key, v in rates.items() if isinstance(v, int | float)}


def _base_name(st: RunState) -> str:
    """How a config or `r1.load` names the base: `r1/assets/base-tiny` for the shipped one, else its folder."""
    return "r1/assets/base-tiny" if st.base_dir.resolve() == BUILTIN_BASE.resolve() else str(st.base_dir)


def _hf_check(st: RunState, model_dir: Path) -> dict[str, Any] | None:
    try:
        import transformers
    except ImportError:
        st.notes.append("transformers is not installed: skipped the checkpoint check (pip install 'r1[hf]')")
        return None
    from r1.model.checkpoint import load_pretrained

    transformers.logging.set_verbosity_error()
    ours = load_pretrained(model_dir).eval()
    theirs = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    ids = torch.randint(0, ours.config.vocab_size, (2, 64), generator=torch.Generator().manual_seed(st.cfg.seed))
    with torch.no_grad():
        diff = (ours(ids).logits - theirs(ids).logits).abs().max().item()
    if diff > 1e-4:
        raise UserError(f"transformers logits differ from r1's by {diff:.2e} (> 1e-4) for {model_dir}")
    return {"transformers": transformers.__version__, "max_abs_logit_diff": diff}


def eval_items(levels: str, per_level: int, seed: int) -> list[dict[str, Any]]:
    """Distinct held-out modchain problems, `per_level` per level (fewer where a level has fewer eval problems:
    level 2 has only about 18), so a small level is not counted several times over."""
    from r1.tasks.base import get_task

    task = get_task("modchain")
    items: list[dict[str, Any]] = []
    for level in task.levels_for(levels):
        seen: set[str] = set()
        for item in task.generate(4 * per_level, seed=seed, difficulty=level, split="eval"):
            q = item["meta"]["question"]
            if q not in seen and len(seen) < per_level:
                seen.add(q)
                items.append(item)
    return items


def prompted(items: list[dict[str, Any]], template: str, style: str | None = None) -> list[dict[str, Any]]:
    """Items with their prompt rendered as in the corpus; with `style`, plus a prefill that commits the model to
    that style (see the module docstring), remembered in meta.prefill."""
    from r1.data.corpus import prompt_for

    out = []
    for item in items:
        prefill = ""
        if style is not None:
            prefill = FORCED_PREFILL[style]
            if style == "steps":
                prefill += item["meta"]["steps"][0][0][0]  # the chain's first digit: copied, not computed
        meta = {**item["meta"], "question": item["meta"]["question"], "template": template, "prefill": prefill}
        out.append({**item, "prompt": prompt_for(item, template) + prefill, "meta": meta})
    return out


def with_prefill(generate: Callable[..., Any]) -> Callable[..., Any]:
    """A GenerateFn that puts each item's prefill back in front of its samples, so answers are extracted from the
    whole response (a forced direct answer's `<answer>` tag is in the prefill)."""

    def fn(items: list[dict[str, Any]], n: int, params: dict[str, Any]) -> list[list[dict[str, Any]]]:
        outs = generate(items, n, params)
        out = []
        for it, samples in zip(items, outs):
            prefill = (it.get("meta") or {}).get("prefill", "")
            out.append(
                [{"text": prefill + s} if isinstance(s, str) else {**s, "text": prefill + s["text"]} for s in samples]
            )
        return out

    return fn


def evaluate_model(st: RunState, model_dir: Path, name: str) -> dict[str, dict[str, dict[str, float]]]:
    """The held-out evaluation of one model folder → `eval/<name>/<run>/`; returns the table level → run → metrics
    (plus the groups "trained" = the corpus levels, and "all")."""
    from r1.engine import Engine
    from r1.engine.adapters import make_generate_fn
    from r1.eval.evaluate import evaluate
    from r1.eval.report import write_report

    c = st.cfg
    engine = Engine.from_pretrained(model_dir, max_batch=64, max_len=512, threads=c.threads)  # --threads wins
    generate = with_prefill(make_generate_fn(engine))
    items = st.heldout
    # free sampling renders the template itself (so format is judged against it); forced styles carry a prefill
    runs = {
        "free_t1.0": dict(items=items, k=c.eval_k, temperature=1.0, top_p=1.0, template=c.template),
        "free_t0.6": dict(items=items, k=c.eval_k, temperature=0.6, top_p=0.95, template=c.template),
        "forced_direct": dict(items=prompted(items, c.template, "direct"), k=1, temperature=0.0, top_p=1.0),
        "forced_steps": dict(items=prompted(items, c.template, "steps"), k=1, temperature=0.0, top_p=1.0),
    }
    trained = set(_levels(c.levels))
    table: dict[str, dict[str, dict[str, float]]] = {}
    for run_name, kw in runs.items():
        print(f"      {name}: {run_name}", flush=True)
        kw.setdefault("template", None)
        result = evaluate(kw.pop("items"), generate, max_new_tokens=c.max_new_tokens, seed=c.seed, **kw)
        write_report(result, st.out / "eval" / name / run_name)
        keys = ("pass@", "cons@", "format_rate", "length_mean", "truncated_share")
        for row in result.by_difficulty:
            cell = table.setdefault(row["difficulty"], {}).setdefault(run_name, {})
            cell.update({k: row[k] for k in row if k.startswith(keys)})
            cell["items"] = row["n_items"]
        by_level = _style_stats(result.samples, trained)
        for level, stats in by_level.items():
            table.setdefault(level, {}).setdefault(run_name, {}).update(stats)
        for group, keep in (("trained", trained), ("all", None)):
            rows = [r for r in result.by_difficulty if keep is None or r["difficulty"] in keep]
            n = sum(r["n_items"] for r in rows) or 1
            cell = table.setdefault(group, {}).setdefault(run_name, {})
            metrics = [k for k in rows[0] if k.startswith(keys)] if rows else []
            cell.update({k: sum(r[k] * r["n_items"] for r in rows) / n for k in metrics})
            cell["items"] = n
    return table


def stage_eval_base(st: RunState) -> None:
    c = st.cfg
    table = evaluate_model(st, st.base_dir, "base")
    st.summary["eval"] = {
        "items": len(st.heldout),
        "k": c.eval_k,
        "levels": c.eval_levels,
        "trained_levels": _levels_label(c.levels),
        "tables": {"base": table},
    }
    if c.base is None:  # a base made here: its card gets the numbers
        write_card(st.base_dir, base_card(st))
    st.summary["amplify"] = verdict = amplify_check(table["trained"]["free_t1.0"], c.eval_k)
    print(f"      {verdict['text']}", flush=True)


def amplify_check(cell: dict[str, Any], k: int) -> dict[str, Any]:
    """Does the base have something for RL to amplify? RL only reweights what the model already samples: it needs
    right answers among the samples it does not yet prefer (pass@k well above pass@1), and, for the R1-Zero effect,
    a long form that is more accurate than answering directly (see shared/notes/r1-zero-at-tiny-scale.md)."""
    p1, pk = cell.get("pass@1", 0.0), cell.get(f"pass@{k}", 0.0)
    share, long_acc, direct_acc = cell.get("think_share") or 0.0, cell.get("acc_long"), cell.get("acc_direct")
    headroom = pk - p1 >= 0.15
    samples_long = share >= 0.02
    pays = long_acc is not None and (direct_acc is None or long_acc >= direct_acc + 0.10)
    ok = headroom and samples_long and pays
    facts = (
        f"pass@1 {100 * p1:.0f}% vs pass@{k} {100 * pk:.0f}%; reasons in {100 * share:.0f}% of samples, accurate "
        f"{_pct(long_acc)}% when it reasons vs {_pct(direct_acc)}% when it answers directly"
    )
    if long_acc is not None:
        # RL's first and cheapest move is to sample the long form always; that alone would give about acc_long
        facts += (
            f". Switching every answer to reasoning alone would give pass@1 ≈ {_pct(long_acc)}% "
            f"({_signed(long_acc, p1)} points)"
        )
    if ok:
        text = f"The base has something to amplify: {facts}."
    else:
        why = [
            w
            for w, bad in (
                (f"pass@{k} is barely above pass@1, so there is little for RL to reweight", not headroom),
                ("it almost never writes a think block", not samples_long),
                ("reasoning is not more accurate than answering directly, so RL will favour short answers", not pays),
            )
            if bad
        ]
        text = f"WARNING: the base has little to amplify ({facts}): {'; '.join(why)}. Expect RL to gain little."
    return {
        "ok": ok,
        "headroom": pk - p1,
        "think_share": share,
        "acc_long": long_acc,
        "acc_direct": direct_acc,
        "text": text,
    }


def rl_overrides(st: RunState) -> list[str]:
    """R1-Zero settings as dotted overrides of `configs/r1-zero-tiny.yaml` (the `r1-zero-tiny` preset's values
    restated, so the job does not move when the shared file does)."""
    c = st.cfg
    heldout = st.out / "data" / "heldout.jsonl"
    return [
        "stage=grpo",
        f"model.path={st.base_dir}",
        f"data.eval_paths=[{heldout}]",
        "grpo.preset=r1-zero-tiny",
        "grpo.task=modchain",
        f"grpo.difficulty={_levels_label(c.levels)}",
        f"grpo.template={c.template}",
        f"grpo.max_new_tokens={c.max_new_tokens}",
        f"grpo.eval_items={len(st.heldout_trained)}",
        f"grpo.eval_k={c.eval_k}",
        "grpo.eval_temperature=1.0",
        "grpo.eval_top_p=1.0",
        "optim.lr=2e-4",
        "optim.grad_clip=1.0",
        "schedule.kind=constant",
        "schedule.warmup_steps=0",
        f"train.out={st.out / 'r1-zero'}",
        f"train.steps={c.rl_steps}",
        "train.batch_size=128",
        f"train.eval_every={c.rl_eval_every}",
        *_run_overrides(c),
    ]


def stage_r1_zero(st: RunState) -> None:
    from r1.data.corpus import write_corpus
    from r1.train import load_config, train
    from r1.train.metrics import read_metrics

    c = st.cfg
    write_corpus(st.out / "data" / "heldout.jsonl", st.heldout_trained)
    cfg = load_config(config_path("r1-zero-tiny"), rl_overrides(st))
    (st.out / "r1-zero.yaml").write_text(cfg.to_yaml())
    result = train(cfg)
    if result.checkpoint is None:
        raise UserError("R1-Zero training wrote no final checkpoint")
    records = read_metrics(Path(result.run_dir) / "metrics.jsonl")
    steps = [r for r in records if r.get("event") == "step"]
    evals = [r for r in records if r.get("event") == "eval"]
    st.summary["r1_zero"] = {
        "steps": result.steps,
        "seconds": round(result.seconds, 1),
        "checkpoint": str(result.checkpoint),
        "curve": [{"step": 0, **{k[9:]: v for k, v in steps[0].items() if k.startswith("baseline/")}}] if steps else [],
        "plots": sorted(str(p.relative_to(st.out)) for p in (Path(result.run_dir) / "plots").glob("grpo_*.png")),
        "first": {k: steps[0].get(k) for k in _RL_KEYS} if steps else {},
        "last": {k: steps[-1].get(k) for k in _RL_KEYS} if steps else {},
    }
    st.summary["r1_zero"]["curve"] += [
        {"step": r["step"], **{k[5:]: v for k, v in r.items() if k.startswith("eval_")}} for r in evals
    ]
    publish_model(result.checkpoint, st.model_dir, model_card(st), st.base_dir, c.template)
    st.summary["hf_check_final"] = _hf_check(st, st.model_dir)


_RL_KEYS = (
    "reward",
    "accuracy",
    "format_rate",
    "length_mean",
    "long_form",
    "reflection",
    "reflection_long",
    "kl",
    "entropy",
    "frac_reward_zero_std",
)


def stage_eval(st: RunState) -> None:
    st.summary["eval"]["tables"]["r1-zero"] = evaluate_model(st, st.model_dir, "r1-zero")
    write_card(st.model_dir, model_card(st))


def _levels(spec: str | dict[str, float]) -> list[str]:
    from r1.tasks.base import get_task

    if isinstance(spec, dict):
        return sorted((level for level, w in spec.items() if w > 0), key=int)
    return get_task("modchain").levels_for(spec)


def _levels_label(spec: str | dict[str, float]) -> str:
    levels = _levels(spec)
    return levels[0] if len(levels) == 1 else f"{levels[0]}-{levels[-1]}"


def _style_stats(samples: list[dict[str, Any]], trained: set[str]) -> dict[str, dict[str, float]]:
    """Per level, for trained levels together ("trained") and overall ("all"): the share of samples that reason,
    accuracy of reasoning and of direct samples, and the share of reasoning samples that reflect ("wait"), by the
    judge's rules (`reasons`, `reflects` in the evaluator's records). Reported apart because a change in the style mix
    alone moves overall accuracy and reflection rates."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for s in samples:
        rec = {"long": s["reasons"], "correct": bool(s["correct"]), "wait": s["reflects"]}
        for key in (s["difficulty"], "all") + (("trained",) if s["difficulty"] in trained else ()):
            groups.setdefault(key, []).append(rec)
    out = {}
    for key, recs in groups.items():
        longs = [r for r in recs if r["long"]]
        shorts = [r for r in recs if not r["long"]]
        out[key] = {
            "think_share": len(longs) / len(recs),
            "acc_long": sum(r["correct"] for r in longs) / len(longs) if longs else None,
            "acc_direct": sum(r["correct"] for r in shorts) / len(shorts) if shorts else None,
            "wait_in_long": sum(r["wait"] for r in longs) / len(longs) if longs else None,
            "wait": sum(r["wait"] for r in recs) / len(recs),
        }
    return out


STAGES: list[tuple[str, Callable[[RunState], None]]] = [
    ("corpus", stage_corpus),
    ("tokenizer", stage_tokenizer),
    ("pretrain", stage_pretrain),
    ("base", stage_base),
    ("eval-base", stage_eval_base),
    ("r1-zero", stage_r1_zero),
    ("eval", stage_eval),
]
PRETRAINING = ("corpus", "tokenizer", "pretrain")  # skipped with --base
RL = ("r1-zero", "eval")  # skipped with --rl-steps 0


# ================================================================================================ driver
def run(cfg: RunConfig) -> dict[str, Any]:
    """Run every stage into `cfg.out`; returns the summary (also in summary.json)."""
    st = RunState(cfg)
    st.out.mkdir(parents=True, exist_ok=True)
    (st.out / "config.yaml").write_text(yaml.safe_dump(asdict(cfg), sort_keys=False))
    timings: dict[str, float] = {}
    start = time.perf_counter()
    threads = torch.get_num_threads()
    # every stage, evaluation included: more intra-op threads than free cores makes each op wait for a descheduled
    # thread, which on a busy 2-core machine was measured 4x slower than one thread per core
    torch.set_num_threads(cfg.threads)
    stages = [(n, fn) for n, fn in STAGES if not (cfg.base and n in PRETRAINING) and not (not cfg.rl_steps and n in RL)]
    name, failure = None, None
    try:
        for i, (name, fn) in enumerate(stages, start=1):
            t0 = time.perf_counter()
            print(f"[{i}/{len(stages)}] {name} …", flush=True)
            fn(st)
            timings[name] = round(time.perf_counter() - t0, 1)
            print(f"      done in {timings[name]:.1f}s", flush=True)
    except BaseException as exc:
        why = "interrupted" if isinstance(exc, KeyboardInterrupt) else str(exc) or type(exc).__name__
        if not isinstance(exc, UserError | KeyboardInterrupt):
            why = f"{type(exc).__name__}: {why}"
        failure = {"stage": name, "error": why}
        raise
    finally:
        torch.set_num_threads(threads)
        timings["total"] = round(time.perf_counter() - start, 1)
        st.summary["status"] = "failed" if failure else "complete"
        if failure:
            st.summary["failure"] = failure
        st.summary["seconds"] = timings
        st.summary["config"] = asdict(cfg)
        (st.out / "summary.json").write_text(json.dumps(st.summary, indent=2) + "\n")
        text = failure_report(st, failure, [n for n, _ in stages], timings) if failure else report(st)
        (st.out / "report.md").write_text(text)
    return st.summary


def failure_report(st: RunState, failure: dict[str, Any], stages: list[str], timings: dict[str, float]) -> str:
    """`report.md` of a run that stopped: what failed and why, what finished, and no numbers that read like a
    result (the finished stages' records stay in summary.json, marked failed)."""
    failed = failure["stage"]
    done = [f"{n} ({timings[n]:.1f} s)" for n in stages if n in timings]
    skipped = stages[stages.index(failed) + 1 :] if failed in stages else []
    lines = [
        f"# r1 run: {st.out.name}: FAILED",
        "",
        f"**This run failed** in stage `{failed}`: {failure['error']}",
        "",
        f"Finished before it: {', '.join(done) or 'none'}. Not run: {', '.join(skipped) or 'none'}. There is no "
        "result to read here; `summary.json` (status `failed`) keeps what the finished stages recorded.",
        "",
        "Fix the cause and run again into a new `--out` folder.",
    ]
    return "\n".join(lines) + "\n"


def _pct(x: Any) -> str:
    return f"{100 * x:.0f}" if isinstance(x, int | float) else "–"


def report(st: RunState) -> str:
    """`report.md`: the R1-Zero result first (before/after, pictures), then how the base was made and what it
    could do, then costs."""
    s, c = st.summary, st.cfg
    lines = [f"# r1 run: {st.out.name}", ""]
    if c.quick:
        lines += ["*Quick smoke run: the numbers below mean nothing.*", ""]
    tables = s.get("eval", {}).get("tables", {})
    k = s.get("eval", {}).get("k", c.eval_k)
    if "base" in tables and "r1-zero" in tables:
        before, after = tables["base"]["trained"]["free_t1.0"], tables["r1-zero"]["trained"]["free_t1.0"]
        rl = s.get("r1_zero", {})
        lines += [
            f"**R1-Zero on the built-in default**: {rl.get('steps', '?')} GRPO steps ({rl.get('seconds', 0):.0f} s) "
            f"with rule rewards only took held-out pass@1 (levels {s['eval']['trained_levels']}, mean over {k} "
            f"samples at T=1.0) from **{_pct(before.get('pass@1'))}% to {_pct(after.get('pass@1'))}%** "
            f"({_signed(after.get('pass@1'), before.get('pass@1'))} points; the base's pass@{k} was "
            f"{_pct(before.get(f'pass@{k}'))}%). Mean response length {_num(before.get('length_mean'))} → "
            f"{_num(after.get('length_mean'))} tokens; the model reasons in {_pct(before.get('think_share'))}% → "
            f"{_pct(after.get('think_share'))}% of its answers; format rate {_pct(after.get('format_rate'))}%.",
            "",
        ]
    if "amplify" in s:
        lines += [f"**Before RL**: {s['amplify']['text']}", ""]
    if "base" in tables and "r1-zero" in tables:
        lines += _before_after(s["eval"], tables["base"], tables["r1-zero"])
    if "r1_zero" in s:
        lines += _rl_section(st)
    lines += ["", "## The base model", ""]
    if "model" in s:
        m = s["model"]
        if c.base is None:
            made = "trained from scratch"
        elif "base_provenance" in s:
            prov = s["base_provenance"]
            made = f"from `{st.base_dir}`, made by `{prov.get('command')}` at commit {prov.get('commit', '?')}"
        else:
            made = f"from `{st.base_dir}` (given with --base)"
        lines.append(
            f"**Model**: a `{m['preset']}` model {made}: {m['total_params']:,} "
            f"parameters, {m['active_params']:,} active per token, MTP {m['mtp_params']:,}."
        )
    where_made = "`data/corpus.jsonl`." if c.base is None else "(In the run that made the base.)"
    if "corpus" in s:
        cp = s["corpus"]
        styles = ", ".join(f"{v} {n}" for n, v in cp["styles"].items())
        lines.append(
            f"**Corpus**: {cp['documents']:,} worked modchain solutions, levels {cp['levels']} "
            f"(train split only): {styles}. {where_made}"
        )
    if "tokenizer" in s:
        t = s["tokenizer"]
        lines.append(
            f"**Tokenizer**: byte-level BPE trained on the corpus, {t['vocab_size']} tokens; a document is "
            f"{t['prompt_tokens_mean']} prompt + {t['response_tokens_mean']} response tokens on average."
        )
    if "pretrain" in s:
        p = s["pretrain"]
        loss = p.get("final_lm_loss")
        if loss is not None:
            lines.append(
                f"**Pretraining**: {p['steps']} steps, {p['tokens']:,} tokens in {p['seconds']:.0f} s "
                f"({p['tokens_per_s']:,} tokens/s), loss on responses only; final next-token loss {loss:.3f}"
                + ("." if c.base is None else " (when the base was made).")
            )
        lines += [f"![{Path(x).stem}]({x})" for x in p["plots"] if (st.out / x).is_file()]
    if s.get("hf_check"):
        h = s["hf_check"]
        lines.append(
            f"**Checkpoints**: the base{' and `model/`' if s.get('hf_check_final') else ''} load in r1, `r1 chat`, "
            f"`r1 serve` and transformers {h['transformers']} (max |Δlogits| vs r1 = {h['max_abs_logit_diff']:.1e})."
        )
    for name, title in (("base", "base model"), ("r1-zero", "after R1-Zero")):
        if name in tables:
            lines += _eval_section(s["eval"], tables[name], title, name)
    sec = s.get("seconds", {})
    lines += ["", "**Time per stage (s)**: " + ", ".join(f"{k} {v}" for k, v in sec.items())]
    if st.notes:
        lines += ["", "Notes:"] + [f"- {n}" for n in st.notes]
    final = st.model_dir if "r1-zero" in tables else st.base_dir
    lines += ["", f"Next: `r1 chat --model {final}` to talk to it; `r1 serve --model {final}` for the API."]
    return "\n".join(x for x in lines if x is not None) + "\n"


def _signed(a: Any, b: Any) -> str:
    return f"{100 * (a - b):+.0f}" if isinstance(a, int | float) and isinstance(b, int | float) else "–"


def _num(x: Any) -> str:
    return f"{x:.1f}" if isinstance(x, int | float) else "–"


def _order(e: dict[str, Any], tab: dict[str, Any]) -> list[str]:
    return sorted((x for x in tab if x.isdigit()), key=int) + [x for x in ("trained", "all") if x in tab]


def _label(e: dict[str, Any], level: str) -> str:
    trained = set(_levels(e["trained_levels"]))
    if level == "trained":
        return f"**{e['trained_levels']}**"
    if level == "all":
        return "**all**"
    return level if level in trained else f"{level} (beyond corpus)"


def _before_after(e: dict[str, Any], base: dict[str, Any], final: dict[str, Any]) -> list[str]:
    k = e["k"]
    lines = [
        f"## Before → after R1-Zero (held-out: {e['items']} eval-split problems, levels {e['levels']})",
        "",
        f"Free sampling, {k} samples per problem; pass@1 is the mean over the samples, pass@{k} whether any is "
        f"right, cons@{k} the majority vote. *reasons*: share of samples with a non-empty think block; *wait*: share "
        'of all samples, and of those reasoning, that say "wait". Levels beyond the corpus were never trained on, '
        "in pretraining or RL. In %, length in tokens.",
        "",
        f"| level | pass@1 T=1.0 | pass@{k} T=1.0 | cons@{k} T=1.0 | pass@1 T=0.6 | format | length | reasons "
        "| wait (all) | wait in reasoning |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]

    def pair(key: str, run: str, level: str, fmt: Callable[[Any], str] = _pct) -> str:
        a, b = base.get(level, {}).get(run, {}).get(key), final.get(level, {}).get(run, {}).get(key)
        return f"{fmt(a)} → {fmt(b)}"

    for level in _order(e, final):
        lines.append(
            f"| {_label(e, level)} | {pair('pass@1', 'free_t1.0', level)} | {pair(f'pass@{k}', 'free_t1.0', level)} "
            f"| {pair(f'cons@{k}', 'free_t1.0', level)} | {pair('pass@1', 'free_t0.6', level)} "
            f"| {pair('format_rate', 'free_t1.0', level)} | {pair('length_mean', 'free_t1.0', level, _num)} "
            f"| {pair('think_share', 'free_t1.0', level)} | {pair('wait', 'free_t1.0', level)} "
            f"| {pair('wait_in_long', 'free_t1.0', level)} |"
        )
    return lines


def _rl_section(st: RunState) -> list[str]:
    r = st.summary["r1_zero"]
    first, last = r.get("first", {}), r.get("last", {})
    lines = [
        "",
        "## R1-Zero training (GRPO, `r1-zero/`)",
        "",
        f"Preset `r1-zero-tiny` from the base (`{st.base_dir}`; no SFT): 16 prompts × 8 samples per step at T=1.0, "
        "reward = 1 for the "
        "right answer in `<answer>` + 0.1 for the exact format, one on-policy update per rollout, β = 1e-3 with the "
        "reference reset every 100 steps; train-split problems only. Settings: `r1-zero.yaml`; per step: "
        "`r1-zero/metrics.jsonl`; the trainer's own report: `r1-zero/report.md`.",
        "",
        "| rollouts | first step | last step |",
        "|---|---|---|",
    ]
    for key in _RL_KEYS:
        a, b = first.get(key), last.get(key)
        if a is not None or b is not None:
            lines.append(f"| {key} | {_fmt(a)} | {_fmt(b)} |")
    lines += [""] + [f"![{Path(x).stem}]({x})" for x in r.get("plots", [])]
    return lines


def _fmt(x: Any) -> str:
    return f"{x:.3g}" if isinstance(x, int | float) else "–"


def _eval_section(e: dict[str, Any], tab: dict[str, Any], title: str, name: str) -> list[str]:
    k = e["k"]
    order = _order(e, tab)
    lines = [
        "",
        f"### Held-out evaluation, {title} (`eval/{name}/`)",
        "",
        "Forced styles are greedy, with the response prefilled (`<think>\\n</think>\\n<answer>` for direct; "
        "`<think>\\n` + the question's first digit for step by step): the model's best answer in that style. In %.",
        "",
        f"| level | pass@1 T=1.0 | pass@{k} T=1.0 | cons@{k} T=1.0 | pass@1 T=0.6 | pass@{k} T=0.6 | forced direct "
        "| forced steps |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for level in order:
        row = tab[level]
        f1, f6 = row.get("free_t1.0", {}), row.get("free_t0.6", {})
        fd, fs = row.get("forced_direct", {}), row.get("forced_steps", {})
        lines.append(
            f"| {_label(e, level)} | {_pct(f1.get('pass@1'))} | {_pct(f1.get(f'pass@{k}'))} "
            f"| {_pct(f1.get(f'cons@{k}'))} | {_pct(f6.get('pass@1'))} | {_pct(f6.get(f'pass@{k}'))} "
            f"| {_pct(fd.get('pass@1'))} | {_pct(fs.get('pass@1'))} |"
        )
    lines += [
        "",
        "By style, free sampling at T=1.0 (what RL samples from):",
        "",
        '| level | reasons | accuracy when reasoning | accuracy when direct | "wait" in reasoning |',
        "|---|---|---|---|---|",
    ]
    for level in order:
        f1 = tab[level].get("free_t1.0", {})
        lines.append(
            f"| {_label(e, level)} | {_pct(f1.get('think_share'))} | {_pct(f1.get('acc_long'))} "
            f"| {_pct(f1.get('acc_direct'))} | {_pct(f1.get('wait_in_long'))} |"
        )
    return lines


# ================================================================================================ CLI
def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="the built-in default job, end to end, into a run folder",
        description="R1-Zero on a laptop: take the built-in tiny DeepSeek-V3 base (or train one from scratch), "
        "check it has something to amplify, run GRPO with rule rewards on it, evaluate before and after on held-out "
        "problems, and write a run folder with report.md and model/ (and base/ with --from-scratch; about 3 minutes on "
        "a 2-core CPU, 11 with --from-scratch).",
    )
    p.add_argument("--out", default=None, help="run folder (default runs/default-<time>)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--preset", default="tiny", help="model preset (default tiny)")
    p.add_argument("--steps", type=int, default=None, help=f"pretraining steps (default {FULL['steps']})")
    p.add_argument(
        "--rl-steps", type=int, default=None, help=f"R1-Zero GRPO steps (default {FULL['rl_steps']}; 0: base only)"
    )
    p.add_argument(
        "--base",
        default=None,
        help="start from this base model folder instead of the built-in one (r1/assets/base-tiny)",
    )
    p.add_argument(
        "--from-scratch",
        action="store_true",
        help="make the base here: corpus, tokenizer and pretraining (~8 min more); --quick implies it",
    )
    p.add_argument("--docs", type=int, default=None, help=f"corpus documents (default {FULL['corpus_docs']})")
    p.add_argument(
        "--eval-items", type=int, default=None, help=f"held-out problems per level (default {FULL['eval_per_level']})"
    )
    p.add_argument("--eval-k", type=int, default=None, help=f"samples per problem (default {FULL['eval_k']})")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--quick", action="store_true", help="a seconds-long smoke run (tests); its numbers mean nothing")
    p.set_defaults(func=_main)


def config_from_args(args: argparse.Namespace) -> RunConfig:
    base = QUICK if args.quick else FULL
    out = args.out or f"runs/{'quick' if args.quick else 'default'}-{time.strftime('%Y%m%d-%H%M%S')}"
    if Path(out).exists() and not Path(out).is_dir():
        raise UserError(f"--out {out}: is a file; the run folder must be a directory")
    if args.threads < 1:
        raise UserError(f"--threads must be >= 1, got {args.threads}")
    if not 0 <= args.seed < 2**32:
        raise UserError(f"--seed must be in 0 .. 2**32 - 1, got {args.seed}")
    chosen = {k: v for k, v in base.items()}
    for key, arg in (
        ("steps", args.steps),
        ("corpus_docs", args.docs),
        ("eval_per_level", args.eval_items),
        ("eval_k", args.eval_k),
    ):
        if arg is not None:
            if arg < 1:
                raise UserError(f"--{key.replace('_', '-')} must be >= 1, got {arg}")
            chosen[key] = arg
    if args.rl_steps is not None:
        if args.rl_steps < 0:
            raise UserError(f"--rl-steps must be >= 0, got {args.rl_steps}")
        chosen["rl_steps"] = args.rl_steps
    base = args.base
    if args.base and args.from_scratch:
        raise UserError("--base and --from-scratch exclude each other: one gives the base, the other trains it")
    if base is None and not (args.from_scratch or args.quick):
        if args.preset != "tiny" or args.steps is not None or args.docs is not None:
            raise UserError("--preset, --steps and --docs shape the base: add --from-scratch to train one")
        if not (BUILTIN_BASE / "model.safetensors").is_file():
            raise UserError(f"the built-in base is missing ({BUILTIN_BASE}): run with --from-scratch")
        base = str(BUILTIN_BASE)
    return RunConfig(
        out=out, seed=args.seed, preset=args.preset, quick=args.quick, threads=args.threads, base=base, **chosen
    )


def _main(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    run(cfg)
    print(f"\nrun folder: {cfg.out}\n")
    print((Path(cfg.out) / "report.md").read_text())
    return 0
