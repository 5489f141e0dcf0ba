"""Pretraining throughput: r1's trainer vs transformers vs a plain PyTorch loop, on the same work.

All three train the tiny DeepSeek-V3 from the same initial checkpoint on the same fixed token batches (B × T,
plain causal attention, no packing masks), next-token loss only (transformers has no MTP and no sequence-wise
balance loss, so r1 runs without them here), with the same AdamW (β 0.9/0.95, weight decay 0.1 on matrices,
fused), clipping at 1.0 and warm-up + cosine schedule. They run interleaved, one step each in turn, so machine
noise hits all alike; each number is a median over steps.

- r1 trainer: `r1.train.core.Trainer.train_step`, i.e. everything a real run does per step (weighted loss
  aggregation, metrics, grad-norm report, routing-bias update), minus checkpoints and logging;
- plain loop: r1's model under the ten-line loop anyone would write: the trainer's overhead is the difference;
- transformers: `AutoModelForCausalLM` under the same ten-line loop.

Prints tokens/s, the ratio r1 trainer / transformers, and r1's achieved FLOP/s as a fraction of the measured
matmul peak. The lr matters for MoE speed: at the pretraining lr (3e-3) routing drifts away from uniform within a
few steps on random tokens, and the cost of each side's expert dispatch moves with it (most visibly under bf16);
`--lr 1e-4` keeps routing near its uniform start, as `bench_train.py` does.

    python benchmarks/bench_pretrain.py [--steps 8] [--rounds 5] [--batch 16] [--seq 256] [--dtype fp32 bf16]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch

from r1.model import Transformer, preset
from r1.model.checkpoint import load_pretrained, save_pretrained
from r1.model.info import model_info
from r1.train.config import OptimSection, ScheduleSection, load_config
from r1.train.core import Trainer
from r1.train.metrics import matmul_peak, train_flops_per_token
from r1.train.optim import build_optimizer, lr_factor, set_lr
from r1.train.pretrain import PretrainStage

LR = 3e-3  # configs/pretrain-tiny.yaml; --lr changes it


class FixedBatches(PretrainStage):
    """The pretraining loss on a fixed list of token batches, cycled."""

    def __init__(self, cfg, batches: list[torch.Tensor]) -> None:
        super().__init__(cfg)
        self.batches, self.i = batches, 0

    def setup(self, ctx) -> None:
        self.ctx = ctx

    def next_batches(self):
        ids = self.batches[self.i % len(self.batches)]
        self.i += 1
        B, T = ids.shape
        return [
            {
                "input_ids": ids,
                "labels": ids,
                "positions": torch.arange(T).expand(B, T),
                "n_tokens": torch.tensor(ids.numel()),
            }
        ]

    def state_dict(self):
        return {}


def plain_loop(model, kind: str, batches, total: int, dtype):
    opt = build_optimizer(model, OptimSection(lr=LR))
    sched = ScheduleSection(kind="cosine", warmup_steps=2)
    step = 0

    def run() -> None:
        nonlocal step
        ids = batches[step % len(batches)]
        set_lr(opt, LR * lr_factor(step, total, sched))
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bf16"):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        step += 1

    return run


def r1_trainer(init_dir: str, out: str, batches, total: int, dtype: str, threads: int):
    cfg = load_config(
        None,
        [
            f"model.path={init_dir}",
            "model.num_nextn_predict_layers=0",
            "model.seq_aux_loss_alpha=0.0",
            f"data.seq_len={batches[0].shape[1]}",
            f"train.batch_size={batches[0].shape[0]}",
            f"train.steps={total}",
            f"train.out={out}",
            f"train.dtype={dtype}",
            f"train.threads={threads}",
            f"optim.lr={LR}",
            "schedule.kind=cosine",
            "schedule.warmup_steps=2",
            "logging.progress=false",
            "checkpoint.final=false",
        ],
    )
    trainer = Trainer(cfg, FixedBatches(cfg, batches))
    step = trainer.setup()

    def run() -> None:
        nonlocal step
        trainer.train_step(step)
        step += 1

    return run, trainer


def compare(args, dtype: str, tmp: Path, cfg, batches) -> None:
    import transformers

    warmup = 2
    total = warmup + args.rounds * args.steps
    trainer_step, trainer = r1_trainer(
        str(tmp / "init"), str(tmp / f"run-{dtype}"), batches, total, dtype, args.threads
    )
    runners = {
        "r1 trainer": trainer_step,
        "plain loop (r1 model)": plain_loop(load_pretrained(tmp / "init").train(), "r1", batches, total, dtype),
        "transformers": plain_loop(
            transformers.AutoModelForCausalLM.from_pretrained(tmp / "init", dtype=torch.float32).train(),
            "hf",
            batches,
            total,
            dtype,
        ),
    }
    t_start = time.perf_counter()
    times: dict[str, list[float]] = {k: [] for k in runners}
    for _ in range(warmup):
        for run in runners.values():
            run()
    for _ in range(args.rounds * args.steps):
        for name, run in runners.items():
            t0 = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - t0)
    trainer.close()
    tokens = args.batch * args.seq
    peak = matmul_peak("cpu", torch.bfloat16 if dtype == "bf16" else torch.float32)
    flops_tok = train_flops_per_token(cfg, args.seq)
    med = {k: statistics.median(v) for k, v in times.items()}
    label = "fp32" if dtype == "fp32" else "bf16 autocast"
    print(f"\n{label}  (matmul peak measured: {peak / 1e9:.0f} GFLOP/s; {time.perf_counter() - t_start:.0f}s timed)")
    for name, t in med.items():
        mfu = flops_tok * tokens / t / peak
        print(f"  {name:<22} {tokens / t:>9,.0f} tokens/s   {t * 1e3:7.1f} ms/step   {100 * mfu:5.1f}% of peak")
    print(f"  ratio r1 trainer / transformers (tokens/s): {med['transformers'] / med['r1 trainer']:.2f}x")
    print(f"  ratio r1 trainer / plain loop on r1's model: {med['plain loop (r1 model)'] / med['r1 trainer']:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=8, help="timed steps per round and runner")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--dtype", nargs="+", choices=("fp32", "bf16"), default=["fp32", "bf16"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lr", type=float, default=LR, help="peak lr (routing drifts faster at higher lr)")
    args = ap.parse_args()
    globals()["LR"] = args.lr
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # Adam's second moments underflow into denormals, ~100x slower on CPU
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    torch.manual_seed(0)
    cfg = preset("tiny", num_nextn_predict_layers=0, seq_aux_loss_alpha=0.0)
    tmp = Path(tempfile.mkdtemp())
    save_pretrained(Transformer(cfg), tmp / "init")
    g = torch.Generator().manual_seed(0)
    batches = [torch.randint(0, cfg.vocab_size, (args.batch, args.seq), generator=g) for _ in range(4)]
    print(
        f"tiny DeepSeek-V3: {model_info(cfg).total / 1e6:.2f}M params, batch {args.batch}×{args.seq}, "
        f"{args.threads} threads, torch {torch.__version__}, transformers {transformers.__version__}"
    )
    for dtype in args.dtype:
        compare(args, dtype, tmp, cfg, batches)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
