"""`r1 run`: the README's main job. Trains a tiny DeepSeek-V3 base model from scratch on the built-in corpus, on a
laptop CPU, evaluates it R1-style and leaves one run folder a person can read.

Stages, each timed and recorded in `summary.json`:
1. corpus:    worked modchain solutions in R1 format (`r1.data.corpus`), train split only → `data/corpus.jsonl`;
2. tokenizer: a byte-level BPE trained on that corpus (digits stay single tokens) → `tokenizer/`;
3. pretrain:  the shared trainer (`r1.train`), tiny preset, loss on the responses, length-bucketed batches →
              `pretrain/` (metrics.jsonl, plots, the trainer's own report, checkpoints);
4. model:     the final checkpoint copied to `model/` (HF safetensors + config.json + tokenizer files), checked
              against transformers' logits; `r1 chat`, `r1 serve` and `AutoModelForCausalLM` load it;
5. eval:      held-out problems (eval split, never in the corpus) per difficulty through the engine and the
              evaluator: free sampling at T=1.0 (what RL samples) and T=0.6/top-p 0.95 (R1's eval setting), k
              samples each → pass@1 (mean over k), pass@k, cons@k; plus the two forced styles below → `eval/`;
and `report.md` with the tables.

Forcing a style. In the corpus the first token after `<think>\\n` decides the style: `</think>` for a direct
answer, the chain's first digit for step-by-step work. So "forced direct" prefills the response with
`<think>\\n</think>\\n<answer>` and "forced step by step" with `<think>\\n` plus the question's first digit (a copy
of given text, no work done). Both are greedy (one sample, T=0), i.e. the model's best answer in that style.

Budget: the defaults aim at about 10 minutes in all on a 2-core CPU, most of it pretraining; `--steps` trades time
for quality, `--quick` is a seconds-long smoke run (used by the tests) whose numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from r1.errors import UserError

# The full run's recipe. Chosen by measurement (see the report this job writes, and docs/ for the numbers).
FULL: dict[str, Any] = {
    "corpus_docs": 80000,
    "levels": "2-5",
    "mix": {"direct": 0.65, "steps": 0.25, "check": 0.10},
    "eval_levels": "2-5",
    "steps": 5700,
    "batch_size": 12,
    "lr": 1e-3,
    "init_std": 0.02,
    "warmup_steps": 50,
    "eval_per_level": 32,
    "eval_k": 8,
    "max_new_tokens": 64,
}
QUICK: dict[str, Any] = {
    "corpus_docs": 200,
    "levels": "2-3",
    "mix": {"direct": 0.65, "steps": 0.25, "check": 0.10},
    "eval_levels": "2-4",
    "steps": 3,
    "batch_size": 8,
    "lr": 1e-3,
    "init_std": 0.02,
    "warmup_steps": 1,
    "eval_per_level": 2,
    "eval_k": 2,
    "max_new_tokens": 16,
}
FORCED_PREFILL = {"direct": " <think>\n</think>\n<answer>", "steps": " <think>\n"}


@dataclass
class RunConfig:
    """Everything the job depends on; written to config.yaml so a run folder says how it was made."""

    out: str
    seed: int = 0
    preset: str = "tiny"
    quick: bool = False
    corpus_docs: int = FULL["corpus_docs"]
    levels: str = FULL["levels"]
    mix: dict[str, float] = field(default_factory=lambda: dict(FULL["mix"]))
    eval_levels: str = FULL["eval_levels"]
    steps: int = FULL["steps"]
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

    @property
    def out(self) -> Path:
        return Path(self.cfg.out)

    @property
    def model_dir(self) -> Path:
        return self.out / "model"

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
        "levels": st.cfg.levels,
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
        f"train.seed={c.seed}",
        f"train.threads={c.threads}",
        "train.dtype=fp32",
        "train.device=cpu",
        "train.log_every=1",
        "train.resume=false",
        "checkpoint.every=0",
        "checkpoint.final=true",
        "logging.progress=true",
        "logging.plots=true",
        "logging.report=true",
    ]


def _shared_pretrain_config() -> Path | None:
    """`configs/pretrain-tiny.yaml` of a source checkout (not part of an installed package)."""
    path = Path(__file__).resolve().parents[2] / "configs" / "pretrain-tiny.yaml"
    return path if path.is_file() else None


def stage_pretrain(st: RunState) -> None:
    from r1.train import load_config, train

    cfg = load_config(_shared_pretrain_config(), pretrain_overrides(st))
    (st.out / "pretrain.yaml").write_text(cfg.to_yaml())
    result = train(cfg)
    if result.checkpoint is None:
        raise UserError("pretraining wrote no final checkpoint")
    metrics = _read_jsonl(Path(result.run_dir) / "metrics.jsonl")
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


def stage_model(st: RunState) -> None:
    from r1.model.checkpoint import load_pretrained
    from r1.model.info import model_info

    src = Path(st.summary["pretrain"]["checkpoint"])
    if st.model_dir.exists():
        shutil.rmtree(st.model_dir)
    shutil.copytree(src, st.model_dir, ignore=shutil.ignore_patterns("trainer_state.*", "COMPLETE"))
    for f in st.tokenizer_dir.iterdir():  # the checkpoint has them already; make sure `model/` is complete
        if not (st.model_dir / f.name).exists():
            shutil.copy2(f, st.model_dir / f.name)
    cfg = load_pretrained(st.model_dir).config
    info = model_info(cfg)
    st.summary["model"] = {
        "preset": st.cfg.preset,
        "total_params": info.total,
        "active_params": info.active,
        "mtp_params": info.mtp,
        "kv_elements_per_token_per_layer": info.kv_elements_per_token_per_layer,
    }
    _hf_check(st)


def _hf_check(st: RunState) -> None:
    try:
        import transformers
    except ImportError:
        st.notes.append("transformers is not installed: skipped the checkpoint check (pip install 'r1[hf]')")
        return
    from r1.model.checkpoint import load_pretrained

    transformers.logging.set_verbosity_error()
    ours = load_pretrained(st.model_dir).eval()
    theirs = transformers.AutoModelForCausalLM.from_pretrained(st.model_dir, dtype=torch.float32).eval()
    ids = torch.randint(0, ours.config.vocab_size, (2, 64), generator=torch.Generator().manual_seed(st.cfg.seed))
    with torch.no_grad():
        diff = (ours(ids).logits - theirs(ids).logits).abs().max().item()
    st.summary["hf_check"] = {"transformers": transformers.__version__, "max_abs_logit_diff": diff}
    if diff > 1e-4:
        raise UserError(f"transformers logits differ from r1's by {diff:.2e} (> 1e-4) for {st.model_dir}")


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


def stage_eval(st: RunState) -> None:
    from r1.engine import Engine
    from r1.engine.adapters import make_generate_fn
    from r1.eval.evaluate import evaluate
    from r1.eval.report import write_report

    c = st.cfg
    engine = Engine.from_pretrained(st.model_dir, max_batch=64, max_len=512)
    generate = with_prefill(make_generate_fn(engine))
    items = eval_items(c.eval_levels, c.eval_per_level, seed=c.seed + 1)
    free = prompted(items, c.template)
    runs = {
        "free_t1.0": dict(items=free, k=c.eval_k, temperature=1.0, top_p=1.0),
        "free_t0.6": dict(items=free, k=c.eval_k, temperature=0.6, top_p=0.95),
        "forced_direct": dict(items=prompted(items, c.template, "direct"), k=1, temperature=0.0, top_p=1.0),
        "forced_steps": dict(items=prompted(items, c.template, "steps"), k=1, temperature=0.0, top_p=1.0),
    }
    trained = set(_levels(c.levels))
    table: dict[str, dict[str, dict[str, float]]] = {}
    for name, kw in runs.items():
        print(f"      {name}", flush=True)
        result = evaluate(kw.pop("items"), generate, max_new_tokens=c.max_new_tokens, seed=c.seed, template=None, **kw)
        write_report(result, st.out / "eval" / name)
        for row in result.by_difficulty:
            cell = table.setdefault(row["difficulty"], {}).setdefault(name, {})
            cell.update({k: row[k] for k in row if k.startswith(("pass@", "cons@"))})
            cell["items"] = row["n_items"]
        by_level = _style_stats(result.samples, trained)
        for level, stats in by_level.items():
            table.setdefault(level, {}).setdefault(name, {}).update(stats)
        for group, keep in (("trained", trained), ("all", None)):
            rows = [r for r in result.by_difficulty if keep is None or r["difficulty"] in keep]
            n = sum(r["n_items"] for r in rows) or 1
            cell = table.setdefault(group, {}).setdefault(name, {})
            metrics = [k for k in rows[0] if k.startswith(("pass@", "cons@"))] if rows else []
            cell.update({k: sum(r[k] * r["n_items"] for r in rows) / n for k in metrics})
            cell["items"] = n
    st.summary["eval"] = {
        "items": len(items),
        "k": c.eval_k,
        "levels": c.eval_levels,
        "trained_levels": c.levels,
        "table": table,
    }


def _levels(spec: str) -> list[str]:
    from r1.tasks.base import get_task

    return get_task("modchain").levels_for(spec)


def _style_stats(samples: list[dict[str, Any]], trained: set[str]) -> dict[str, dict[str, float]]:
    """Per level, for trained levels together ("trained") and overall ("all"): the share of samples that reason (a
    non-empty think block), accuracy of reasoning and of direct samples, and the share of reasoning samples that say
    "wait". Reported apart because a change in the style mix alone moves overall accuracy and reflection rates."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for s in samples:
        text = s["text"].lstrip()
        long = not (text.startswith("<think>\n</think>") or text.startswith("<think></think>"))
        rec = {"long": long, "correct": bool(s["correct"]), "wait": long and " wait" in text.split("</think>")[0]}
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
        }
    return out


STAGES: list[tuple[str, Callable[[RunState], None]]] = [
    ("corpus", stage_corpus),
    ("tokenizer", stage_tokenizer),
    ("pretrain", stage_pretrain),
    ("model", stage_model),
    ("eval", stage_eval),
]


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
    try:
        for i, (name, fn) in enumerate(STAGES, start=1):
            t0 = time.perf_counter()
            print(f"[{i}/{len(STAGES)}] {name} …", flush=True)
            fn(st)
            timings[name] = round(time.perf_counter() - t0, 1)
            print(f"      done in {timings[name]:.1f}s", flush=True)
    finally:
        torch.set_num_threads(threads)
        timings["total"] = round(time.perf_counter() - start, 1)
        st.summary["seconds"] = timings
        st.summary["config"] = asdict(cfg)
        (st.out / "summary.json").write_text(json.dumps(st.summary, indent=2) + "\n")
        (st.out / "report.md").write_text(report(st))
    return st.summary


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _pct(x: Any) -> str:
    return f"{100 * x:.0f}" if isinstance(x, int | float) else "–"


def report(st: RunState) -> str:
    """`report.md`: what was trained, how well it does per difficulty and in each style, and what it cost."""
    s, c = st.summary, st.cfg
    lines = [f"# r1 run: {st.out.name}", ""]
    if c.quick:
        lines += ["*Quick smoke run: the numbers below mean nothing.*", ""]
    if "model" in s:
        m = s["model"]
        lines += [
            f"**Model**: `{m['preset']}` DeepSeek-V3 (MLA, MoE, MTP) trained from scratch — {m['total_params']:,} "
            f"parameters, {m['active_params']:,} active per token, MTP {m['mtp_params']:,}.",
        ]
    if "corpus" in s:
        k = s["corpus"]
        styles = ", ".join(f"{v} {n}" for n, v in k["styles"].items())
        lines.append(
            f"**Corpus**: {k['documents']:,} worked modchain solutions, levels {k['levels']} "
            f"(train split only): {styles}. `data/corpus.jsonl`."
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
        lines.append(
            f"**Pretraining**: {p['steps']} steps, {p['tokens']:,} tokens in {p['seconds']:.0f} s "
            f"({p['tokens_per_s']:,} tokens/s), loss on responses only; final next-token loss "
            f"{loss:.3f}."
            if loss is not None
            else ""
        )
        lines += [f"![{Path(x).stem}]({x})" for x in p["plots"]]
    if "hf_check" in s:
        h = s["hf_check"]
        lines.append(
            f"**Checkpoint**: `model/` loads in r1, `r1 chat`, `r1 serve` and transformers {h['transformers']} "
            f"(max |Δlogits| vs r1 = {h['max_abs_logit_diff']:.1e})."
        )
    if "eval" in s:
        lines += _eval_section(s["eval"])
    sec = s.get("seconds", {})
    lines += ["", "**Time per stage (s)**: " + ", ".join(f"{k} {v}" for k, v in sec.items())]
    if st.notes:
        lines += ["", "Notes:"] + [f"- {n}" for n in st.notes]
    lines += [
        "",
        "Next: `r1 chat --model " + str(st.model_dir) + "` to talk to it; R1-Zero GRPO on this base is the next stage.",
    ]
    return "\n".join(x for x in lines if x is not None) + "\n"


def _eval_section(e: dict[str, Any]) -> list[str]:
    k, tab = e["k"], e["table"]
    trained = set(_levels(e["trained_levels"]))
    order = sorted((x for x in tab if x.isdigit()), key=int) + [x for x in ("trained", "all") if x in tab]

    def label(level: str) -> str:
        if level == "trained":
            return f"**{e['trained_levels']}**"
        if level == "all":
            return "**all**"
        return level if level in trained else f"{level} (beyond corpus)"

    lines = [
        "",
        f"## Held-out evaluation ({e['items']} eval-split problems, levels {e['levels']}; corpus levels "
        f"{e['trained_levels']})",
        "",
        f"Free sampling from the corpus prompt, {k} samples per problem: pass@1 is the mean over the samples, "
        f"pass@{k} whether any is right, cons@{k} the majority vote; *reasons* is the share of samples with a "
        "non-empty think block. Forced styles are greedy, with the response prefilled (`<think>\\n</think>\\n"
        "<answer>` for direct; `<think>\\n` + the question's first digit for step by step). All numbers in %.",
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
            f"| {label(level)} | {_pct(f1.get('pass@1'))} | {_pct(f1.get(f'pass@{k}'))} "
            f"| {_pct(f1.get(f'cons@{k}'))} | {_pct(f6.get('pass@1'))} | {_pct(f6.get(f'pass@{k}'))} "
            f"| {_pct(fd.get('pass@1'))} | {_pct(fs.get('pass@1'))} |"
        )
    lines += [
        "",
        "Free sampling at T=1.0 (what RL samples from) by style: how often the model reasons, how accurate it is "
        'when it reasons and when it answers directly, and how often its reasoning says "wait".',
        "",
        '| level | reasons | accuracy when reasoning | accuracy when direct | "wait" in reasoning |',
        "|---|---|---|---|---|",
    ]
    for level in order:
        f1 = tab[level].get("free_t1.0", {})
        lines.append(
            f"| {label(level)} | {_pct(f1.get('think_share'))} | {_pct(f1.get('acc_long'))} "
            f"| {_pct(f1.get('acc_direct'))} | {_pct(f1.get('wait_in_long'))} |"
        )
    lines.append("\nPer-sample records and the evaluator's own tables: `eval/*/results.md`, `eval/*/samples.jsonl`.")
    return lines


# ================================================================================================ CLI
def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="the built-in default job, end to end, into a run folder",
        description="Train the tiny DeepSeek-V3 from scratch on the built-in corpus (about 10 minutes on a 2-core "
        "CPU), evaluate it on held-out problems and write a run folder with report.md and model/.",
    )
    p.add_argument("--out", default=None, help="run folder (default runs/default-<time>)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--preset", default="tiny", help="model preset (default tiny)")
    p.add_argument("--steps", type=int, default=None, help=f"pretraining steps (default {FULL['steps']})")
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
    return RunConfig(out=out, seed=args.seed, preset=args.preset, quick=args.quick, threads=args.threads, **chosen)


def _main(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    run(cfg)
    print(f"\nrun folder: {cfg.out}\n")
    print((Path(cfg.out) / "report.md").read_text())
    return 0
