"""This checkout against another git revision of r1, in one process: the same numbers, and how fast.

The other revision's `r1/` is exported with `git archive` and imported as `r1_base` (its absolute imports
rewritten), so both versions run side by side on the same weights, interleaved round by round (the order flips
every round, so drift in machine load hits both alike); medians of the rounds are printed with the ratio
base / this (> 1: this checkout is faster), and the median of the rounds' own ratios (each round's two runs see
about the same machine load). Workloads, all on the tiny DeepSeek-V3 preset:
- decode: `Engine.generate` of B random 32-token prompts × 128 new tokens (top-p sampling, seeded), B = 1, 16, 64
  (benchmarks/bench_decode.py's setup);
- rollout: a GRPO-style rollout, 8 prompts × 8 samples × 96 new tokens at temperature 1, then the trainer's
  scoring of the samples (`completion_logprobs`, shared prompts, bf16 autocast) with its backward;
- train: forward + backward + AdamW on 16 × 256 tokens, fp32 and bf16 autocast (benchmarks/bench_train.py's).
Before timing, each workload's outputs are compared between the versions (tokens, log-probs, losses, gradients)
and whether they are bitwise identical is printed.

    python benchmarks/bench_versions.py --base main [--rounds 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import io
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
PROMPT, NEW = 32, 128


def export_base(rev: str, where: Path) -> None:
    """`rev`'s r1 package as `r1_base` under `where`."""
    blob = subprocess.run(["git", "archive", rev, "r1"], cwd=ROOT, check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        tar.extractall(where, filter="data")
    (where / "r1").rename(where / "r1_base")
    pattern = re.compile(r"^(\s*)(from|import) r1(\.|\s)", re.M)
    for path in (where / "r1_base").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        path.write_text(pattern.sub(r"\1\2 r1_base\3", text), encoding="utf-8")


class Side:
    """One version of r1: its modules, and models loaded from the shared checkpoint."""

    def __init__(self, pkg: str, ckpt: str) -> None:
        import importlib

        self.name = pkg
        self.engine_mod = importlib.import_module(f"{pkg}.engine")
        self.checkpoint = importlib.import_module(f"{pkg}.model.checkpoint")
        self.rollout = importlib.import_module(f"{pkg}.train.rollout")
        self.testing = importlib.import_module(f"{pkg}.engine.testing")
        self.ckpt = ckpt
        self.tok = self.testing.tiny_tokenizer()
        self.engine = self.engine_mod.Engine(
            self.checkpoint.load_pretrained(ckpt), self.tok, max_batch=64, max_len=PROMPT + NEW
        )

    def params(self, **kw):
        return self.engine_mod.SamplingParams(**kw)


def decode(side: Side, prompts: torch.Tensor, rep: int):
    B = prompts.shape[0]
    base = side.params(temperature=1.0, top_p=0.95, max_tokens=NEW, ignore_eos=True)
    out = side.engine.generate(prompts.tolist(), [base.with_(seed=rep * 1000 + i) for i in range(B)])
    return [(s.tokens, s.model_logprobs) for c in out for s in c.samples]


def rollout(side: Side, prompts: list[list[int]], rep: int, model):
    params = side.params(temperature=1.0, max_tokens=96, n=8, seed=rep, ignore_eos=True)
    out = side.engine.generate(prompts, params)
    samples = [s for c in out for s in c.samples]
    packed = side.rollout.pack_samples([p for p in prompts for _ in range(8)], samples, pad_id=2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logp, _, _ = side.rollout.completion_logprobs(
            model, packed["input_ids"], packed["prompt_lens"], packed["completion_lens"], entropy=True
        )
    logp.sum().backward()
    grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    model.zero_grad(set_to_none=True)
    return [(s.tokens, s.model_logprobs) for s in samples], logp.detach(), grads


def make_train(side: Side, batches: list[torch.Tensor], dtype: torch.dtype):
    model = side.checkpoint.load_pretrained(side.ckpt).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1, fused=True)
    state = {"i": 0}

    def step(update: bool = True):
        ids = batches[state["i"] % len(batches)]
        state["i"] += 1
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
            loss = model(ids, labels=ids).loss
        loss.backward()
        grads = None if update else [p.grad.clone() for p in model.parameters() if p.grad is not None]
        if update:
            opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.detach(), grads

    return step


def same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return a.shape == b.shape and a.dtype == b.dtype and bool(torch.equal(a, b))
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", default="main", help="git revision to compare against")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", nargs="+", choices=["decode", "rollout", "train"], default=["decode", "rollout", "train"])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    tmp = Path(tempfile.mkdtemp())
    export_base(args.base, tmp)
    sys.path.insert(0, str(tmp))

    from r1.model import Transformer, preset
    from r1.model.checkpoint import save_pretrained

    torch.manual_seed(0)
    ckpt = str(tmp / "tiny")
    save_pretrained(Transformer(preset("tiny", vocab_size=512)), ckpt)
    sides = [Side("r1_base", ckpt), Side("r1", ckpt)]
    gen = torch.Generator().manual_seed(1)
    prompts = {b: torch.randint(9, 512, (b, PROMPT), generator=gen) for b in (1, 16, 64)}
    rl_prompts = [torch.randint(9, 512, (int(n),), generator=gen).tolist() for n in torch.randint(12, 40, (8,))]
    train_batches = [torch.randint(0, 512, (16, 256), generator=gen) for _ in range(4)]

    work: dict[str, list] = {}  # name -> [fn(side) for each side]
    if "decode" in args.only:
        for b, p in prompts.items():
            work[f"decode batch {b:>2}"] = [lambda s, rep, p=p: decode(s, p, rep) for _ in sides]
    if "rollout" in args.only:
        scorers = [s.checkpoint.load_pretrained(ckpt).train() for s in sides]
        work["rollout 8x8 + scoring"] = [lambda s, rep, m=m: rollout(s, rl_prompts, rep, m) for m in scorers]
    if "train" in args.only:
        for dtype, label in ((torch.float32, "fp32"), (torch.bfloat16, "bf16")):
            steps = [make_train(s, train_batches, dtype) for s in sides]
            work[f"train step {label}"] = [lambda s, rep, st=st: st() for st in steps]
            a, b = (st(update=False) for st in steps)  # same weights and batch: one step without the update
            print(f"train {label}: loss and gradients bitwise identical: {same(a, b)}", flush=True)

    for name, fns in work.items():
        if not name.startswith("train"):
            outs = [fn(s, -1) for fn, s in zip(fns, sides)]  # warm-up run doubles as the equality check
            print(f"{name}: outputs bitwise identical: {same(*outs)}", flush=True)
        else:
            for fn, s in zip(fns, sides):
                fn(s, -1)
    times: dict[tuple[str, str], list[float]] = {}
    for rep in range(args.rounds):
        for name, fns in work.items():
            order = list(zip(fns, sides))
            if rep % 2:
                order.reverse()
            for fn, s in order:
                t0 = time.perf_counter()
                fn(s, rep)
                times.setdefault((name, s.name), []).append(time.perf_counter() - t0)
        print(f"round {rep + 1}/{args.rounds} done", flush=True)

    print(
        f"\nmedian seconds of {args.rounds} rounds; {args.threads} thread(s), torch {torch.__version__}, "
        f"CPU capability {torch.backends.cpu.get_cpu_capability()}; base = {args.base}"
    )
    print(f"{'workload':<24} {'base':>9} {'this':>9} {'base/this':>10} {'per-round median':>17} {'range':>13}")
    for name in work:
        old, new = (statistics.median(times[(name, s.name)]) for s in sides)
        ratios = [a / b for a, b in zip(times[(name, "r1_base")], times[(name, "r1")])]
        r, lo, hi = statistics.median(ratios), min(ratios), max(ratios)
        print(f"{name:<24} {old:>9.3f} {new:>9.3f} {old / new:>9.3f}x {r:>16.3f}x {lo:>6.2f}-{hi:.2f}")


if __name__ == "__main__":
    main()
