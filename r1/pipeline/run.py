"""`r1 run`: the built-in default job, a list of stages writing into one run folder.

Today's stages:
1. tokenizer: train a byte-level BPE tokenizer on the built-in corpus;
2. model: build the `tiny` DeepSeek-V3 and save it as a Hugging Face checkpoint;
3. hf-check: load that checkpoint with transformers and compare logits;
4. eval: evaluate R1-style on held-out problems (needs the engine).

The pretraining and R1-Zero stages will slot in between. Each stage records its figures in `summary`, and the run
ends with `report.md`, a page a person would rather read than the logs.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from r1.errors import UserError


@dataclass
class RunState:
    out: Path
    seed: int
    preset: str
    eval_items: int
    eval_k: int
    summary: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def model_dir(self) -> Path:
        return self.out / "model"


def stage_tokenizer(st: RunState) -> None:
    from r1.tokenizer import Tokenizer, default_training_text

    tok = Tokenizer.train(default_training_text(20000, seed=st.seed), vocab_size=2048)
    tok.save(st.model_dir)
    st.summary["tokenizer"] = {"vocab_size": tok.vocab_size, "special_tokens": 9}


def stage_model(st: RunState) -> None:
    from r1.model import Transformer, preset
    from r1.model.checkpoint import save_pretrained
    from r1.model.info import model_info
    from r1.tokenizer import Tokenizer

    tok = Tokenizer.load(st.model_dir)
    cfg = preset(st.preset, vocab_size=tok.vocab_size, bos_token_id=tok.bos_id, eos_token_id=tok.eos_id)
    cfg = cfg.replace(pad_token_id=tok.pad_id)
    torch.manual_seed(st.seed)
    model = Transformer(cfg)
    save_pretrained(model, st.model_dir)
    info = model_info(cfg)
    st.summary["model"] = {
        "preset": st.preset,
        "total_params": info.total,
        "active_params": info.active,
        "mtp_params": info.mtp,
        "kv_elements_per_token_per_layer": info.kv_elements_per_token_per_layer,
    }


def stage_hf_check(st: RunState) -> None:
    try:
        import transformers
    except ImportError:
        st.notes.append("transformers is not installed: skipped the checkpoint check (pip install 'r1[hf]')")
        return
    from r1.model.checkpoint import load_pretrained

    transformers.logging.set_verbosity_error()
    ours = load_pretrained(st.model_dir)
    theirs = transformers.AutoModelForCausalLM.from_pretrained(st.model_dir, dtype=torch.float32).eval()
    ids = torch.randint(0, ours.config.vocab_size, (2, 64), generator=torch.Generator().manual_seed(st.seed))
    with torch.no_grad():
        diff = (ours(ids).logits - theirs(ids).logits).abs().max().item()
    st.summary["hf_check"] = {"transformers": transformers.__version__, "max_abs_logit_diff": diff}
    if diff > 1e-4:
        raise UserError(f"transformers logits differ from r1's by {diff:.2e} (> 1e-4) for {st.model_dir}")


def stage_eval(st: RunState) -> None:
    try:
        from r1.eval.cli import engine_generate_fn

        generate = engine_generate_fn(str(st.model_dir))
    except UserError as exc:
        st.notes.append(f"evaluation skipped: {exc}")
        return
    from r1.eval.evaluate import evaluate
    from r1.eval.report import write_report
    from r1.tasks.base import get_task

    items = get_task("modchain").generate(st.eval_items, seed=st.seed, difficulty="2-5", split="eval")
    result = evaluate(items, generate, k=st.eval_k, max_new_tokens=64, template="r1-zero", seed=st.seed)
    write_report(result, st.out / "eval")
    st.summary["eval"] = {k: result.overall[k] for k in ("pass@1", f"cons@{st.eval_k}", "format_rate")}


STAGES: list[tuple[str, Callable[[RunState], None]]] = [
    ("tokenizer", stage_tokenizer),
    ("model", stage_model),
    ("hf-check", stage_hf_check),
    ("eval", stage_eval),
]


def run(st: RunState) -> dict[str, Any]:
    st.out.mkdir(parents=True, exist_ok=True)
    (st.out / "config.yaml").write_text(
        f"preset: {st.preset}\nseed: {st.seed}\neval_items: {st.eval_items}\neval_k: {st.eval_k}\n"
    )
    timings = {}
    for i, (name, fn) in enumerate(STAGES, start=1):
        t0 = time.perf_counter()
        print(f"[{i}/{len(STAGES)}] {name} …", flush=True)
        fn(st)
        timings[name] = round(time.perf_counter() - t0, 2)
        print(f"      done in {timings[name]:.1f}s", flush=True)
    st.summary["seconds"] = timings
    (st.out / "summary.json").write_text(json.dumps(st.summary, indent=2) + "\n")
    (st.out / "report.md").write_text(_report(st))
    return st.summary


def _report(st: RunState) -> str:
    s = st.summary
    lines = [f"# r1 run: {st.out.name}", ""]
    if "model" in s:
        m = s["model"]
        lines += [
            f"**Model**: `{m['preset']}` DeepSeek-V3 — {m['total_params']:,} parameters, "
            f"{m['active_params']:,} active per token, MTP {m['mtp_params']:,}.",
            f"KV cache per token per layer: {m['kv_elements_per_token_per_layer']}.",
            "",
        ]
    if "tokenizer" in s:
        lines.append(f"**Tokenizer**: byte-level BPE, {s['tokenizer']['vocab_size']} tokens, R1 chat template.")
    if "hf_check" in s:
        h = s["hf_check"]
        lines.append(
            f"**Checkpoint**: `model/` loads in transformers {h['transformers']}; "
            f"max |Δlogits| = {h['max_abs_logit_diff']:.1e}."
        )
    if "eval" in s:
        lines += ["", "**Held-out evaluation** (modchain, levels 2–5):", "", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:.3f} |" for k, v in s["eval"].items()]
        lines.append("\nDetails: `eval/results.md`.")
    lines += ["", "**Time per stage (s)**: " + ", ".join(f"{k} {v}" for k, v in s.get("seconds", {}).items())]
    if st.notes:
        lines += ["", "Notes:"] + [f"- {n}" for n in st.notes]
    lines += ["", "Next stages (pretraining on the built-in corpus, R1-Zero GRPO) will add their plots here."]
    return "\n".join(lines) + "\n"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="the built-in default job, end to end, into a run folder")
    p.add_argument("--out", default=None, help="run folder (default runs/default-<time>)")
    p.add_argument("--preset", default="tiny", help="model preset (default tiny)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-items", type=int, default=32)
    p.add_argument("--eval-k", type=int, default=4)
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    out = Path(args.out or f"runs/default-{time.strftime('%Y%m%d-%H%M%S')}")
    st = RunState(out=out, seed=args.seed, preset=args.preset, eval_items=args.eval_items, eval_k=args.eval_k)
    run(st)
    print(f"\nrun folder: {out}\n")
    print((out / "report.md").read_text())
    return 0
