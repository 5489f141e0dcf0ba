"""Training throughput: r1 vs transformers on the same tiny DeepSeek-V3 weights.

Both sides run forward + backward + AdamW on the same batches (16 × 256 tokens by default), in fp32 and under
bf16 autocast, interleaved round by round so machine noise hits both alike. The ratio compares the same work:
next-token loss only, no MTP (transformers has none). r1's full objective (+ MTP + balance loss) is timed too.
Also prints achieved FLOP/s as a fraction of this machine's measured matmul peak.

    python benchmarks/bench_train.py [--steps 5] [--rounds 3] [--batch 16] [--seq 256]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from r1.model import Transformer, preset
from r1.model.checkpoint import load_pretrained, save_pretrained
from r1.model.info import model_info


def matmul_peak(dtype: torch.dtype, n: int = 1024, reps: int = 20) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(3):
        a @ b
    best = 0.0
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(reps):
            a @ b
        best = max(best, 2 * n**3 * reps / (time.perf_counter() - t0))
    return best


def train_flops_per_token(cfg, seq: int) -> float:
    """6 × active matmul parameters (incl. the head, not the embedding lookup) + causal attention."""
    info = model_info(cfg.replace(num_nextn_predict_layers=0))
    matmul_params = info.active - info.embedding
    if cfg.is_deepseek:
        attn = cfg.num_attention_heads * (cfg.qk_head_dim + cfg.v_head_dim) * seq  # QKᵀ and PV over T/2 keys
    else:
        attn = cfg.num_attention_heads * 2 * cfg.head_dim * seq
    return 6 * matmul_params + 3 * attn * cfg.num_hidden_layers


def hf_model(transformers, path: str):
    return transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).train()


def make_step(model, kind: str, batches, dtype):
    # the same optimizer for both sides: the comparison is about the model implementation
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1, fused=True)
    it = iter(range(10**9))

    def step() -> float:
        ids = batches[next(it) % len(batches)]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
            loss = model(ids, labels=ids).loss if kind != "hf" else model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=5, help="timed steps per round and runner")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # Adam's second moments underflow into denormals, which are ~100x slower on CPU
    import transformers

    transformers.logging.set_verbosity_error()

    torch.manual_seed(0)
    cfg = preset("tiny")
    tmp = tempfile.mkdtemp()
    save_pretrained(Transformer(cfg), tmp)
    g = torch.Generator().manual_seed(0)
    batches = [torch.randint(0, cfg.vocab_size, (args.batch, args.seq), generator=g) for _ in range(4)]
    tokens = args.batch * args.seq
    flops_tok = train_flops_per_token(cfg, args.seq)
    same_work = cfg.replace(num_nextn_predict_layers=0, seq_aux_loss_alpha=0.0)
    print(
        f"tiny DeepSeek-V3: {model_info(cfg).total / 1e6:.2f}M params, batch {args.batch}×{args.seq}, "
        f"{args.threads} threads, torch {torch.__version__}, transformers {transformers.__version__}"
    )
    for dtype in (torch.float32, torch.bfloat16):
        runners = {
            "r1": make_step(load_pretrained(tmp, config=same_work).train(), "r1", batches, dtype),
            "transformers": make_step(
                transformers.AutoModelForCausalLM.from_pretrained(tmp, dtype=torch.float32).train(),
                "hf",
                batches,
                dtype,
            ),
            "r1 +MTP +balance": make_step(load_pretrained(tmp).train(), "r1", batches, dtype),
        }
        times: dict[str, list[float]] = {k: [] for k in runners}
        for step in runners.values():  # warm-up: allocator, autocast caches, first-touch
            step()
            step()
        for _ in range(args.rounds * args.steps):  # alternate single steps: background noise hits all runners alike
            for name, step in runners.items():
                t0 = time.perf_counter()
                step()
                times[name].append(time.perf_counter() - t0)
        peak = matmul_peak(dtype)
        label = "fp32" if dtype == torch.float32 else "bf16 autocast"
        print(f"\n{label}  (matmul peak measured: {peak / 1e9:.0f} GFLOP/s)")
        med = {k: statistics.median(v) for k, v in times.items()}
        for name, t in med.items():
            mfu = flops_tok * tokens / t / peak
            print(f"  {name:<18} {tokens / t:>9,.0f} tokens/s   {t * 1e3:7.1f} ms/step   {100 * mfu:5.1f}% of peak")
        print(f"  ratio r1 / transformers (same work): {med['transformers'] / med['r1']:.2f}x")


if __name__ == "__main__":
    main()
