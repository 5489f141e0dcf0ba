"""Weight-only int8 / int4 against fp32: accuracy on held-out text, pass@1, weight bytes, batch-1 decode speed.

For each model folder (default: the shipped base-tiny and /work/models/small-mtp/model, a `small` preset with MTP),
`r1 quantize` writes int8 (per row), int4 group 32 and int4 group 128 copies, which are then loaded back from disk
as `r1 chat/serve/eval` load them (linears quantised in memory). Measured:

- next-token agreement and perplexity on held-out modchain solutions (eval split, levels 2-6, the corpus's mix of
  direct / step-by-step / self-correcting answers; loss on the response tokens), through the decode path
  (teacher-forced `decode_step`, 32 rows at a time: the int kernels, on bf16 activations) and through the
  full-sequence forward (dequantise + GEMM: the weights' own rounding error). Agreement is top-1 against fp32's
  prediction at the same position and path.
- bytes of the quantised linears: as held in memory (int values + scales, what `r1 quantize` prints) and as stored in
  the checkpoint (weight_packed + weight_scale + weight_shape), against the same weights in fp32; file sizes.
- batch-1 decode: `Engine.generate`, greedy, 128 new tokens after a held-out prompt (ignore_eos), variants
  interleaved and repeated (the machine is shared), MTP speculation off (the weights' effect alone): median
  wall-clock new tokens/s and median CPU seconds per token (`time.process_time`, less sensitive to other jobs than
  the wall clock). Also batch 16.
- pass@1 over k samples: `r1 eval --task modchain --difficulty 2-6 --n-items N -k K --max-new-tokens 128
  --template r1-zero-short` (the plain prompt of the corpus both models were trained on).

`auto` computes a float32 checkpoint in float32 (r1/dtypes.py), so fp32 is the reference; `--bf16` adds the same
folder computed in bfloat16, what `auto` picks for a 16-bit checkpoint where the CPU has native bf16.

    python benchmarks/bench_quant.py --threads 1 --bf16 --out runs/bench-quant
    python benchmarks/bench_quant.py --models base-tiny --parts bytes decode --repeats 3
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch

SCHEMES = {"int8": ["--bits", "8"], "int4-g32": ["--bits", "4", "--group-size", "32"],
           "int4-g128": ["--bits", "4", "--group-size", "128"]}  # fmt: skip
SMALL = "/work/models/small-mtp/model"
PARTS = ["bytes", "accuracy", "decode", "eval"]
Variants = dict[str, tuple[Path, "torch.dtype | None"]]  # name -> (folder, compute dtype; None: auto)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["base-tiny", SMALL])
    ap.add_argument("--schemes", nargs="+", default=list(SCHEMES), choices=list(SCHEMES))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--docs", type=int, default=256, help="held-out documents for agreement and perplexity")
    ap.add_argument("--repeats", type=int, default=5, help="decode timing repeats (interleaved)")
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--eval-items", type=int, default=200)
    ap.add_argument("-k", type=int, default=4)
    ap.add_argument("--template", default="r1-zero-short", help="r1 eval --template")
    ap.add_argument("--bf16", action="store_true", help="also the full-precision folder computed in bfloat16")
    ap.add_argument("--parts", nargs="+", default=PARTS, choices=PARTS, help="what to measure (default: all)")
    ap.add_argument("--out", default=None, help="folder for results.json (and the quantised copies, kept)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")

    from r1.assets import model_path

    work = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="bench-quant-"))
    work.mkdir(parents=True, exist_ok=True)
    machine = {
        "threads": args.threads,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__,
    }
    print(f"torch {torch.__version__}, {args.threads} thread(s), cpu capability {machine['cpu_capability']}")
    saved = work / "results.json"  # a run measuring some parts updates the others' earlier figures
    results = json.loads(saved.read_text()) if saved.is_file() else {"models": {}}
    results["machine"] = machine
    for spec in args.models:
        src = model_path(spec)
        name = src.name if src.name != "model" else src.parent.name
        print(f"\n=== {name} ({src})", flush=True)
        variants = {"fp32": (src, torch.float32)} | ({"bf16": (src, torch.bfloat16)} if args.bf16 else {})
        for scheme in args.schemes:
            variants[scheme] = (quantize(src, work / f"{name}-{scheme}", SCHEMES[scheme]), None)
        res = results["models"].setdefault(name, {})
        for v in variants:
            res.setdefault(v, {})
        if "bytes" in args.parts:
            measure_bytes(variants, res)
        if "accuracy" in args.parts:
            measure_accuracy(variants, res, args.docs)
        if "decode" in args.parts:
            measure_decode(variants, res, args.repeats, args.new_tokens)
        if "eval" in args.parts:
            measure_pass(variants, res, work / f"eval-{name}", args.eval_items, args.k, args.template)
        report(name, res)
        saved.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {work / 'results.json'}")


# ============================================================================================ variants
def quantize(src: Path, out: Path, flags: list[str]) -> Path:
    from r1.cli import main as cli

    if not (out / "config.json").is_file():
        assert cli(["quantize", *flags, "--model", str(src), "--out", str(out)]) == 0
    return out


def load(path: Path, dtype: torch.dtype | None = None):
    from r1.model.checkpoint import load_pretrained

    return load_pretrained(path, dtype=dtype).eval()


# ============================================================================================ bytes
def measure_bytes(variants: Variants, res: dict) -> None:
    from safetensors import safe_open

    from r1.model import quant

    for v, (path, dtype) in variants.items():
        files = sorted(path.glob("*.safetensors"))
        res[v]["file_bytes"] = sum(f.stat().st_size for f in files)
        if dtype is not None:  # full precision
            continue
        size = quant.weight_bytes(load(path))
        stored = 0
        for f in files:
            with safe_open(str(f), "pt") as sf:
                for k in sf.keys():  # noqa: SIM118
                    if k.endswith(("weight_packed", "weight_scale", "weight_shape")):
                        t = sf.get_slice(k)
                        stored += math.prod(t.get_shape()) * _itemsize(t.get_dtype())
        res[v].update(
            quantized_linears=size["modules"],
            linears_fp32_bytes=size["fp32"],
            linears_memory_bytes=size["quantized"],
            linears_stored_bytes=stored,
            memory_ratio=size["fp32"] / size["quantized"],
            stored_ratio=size["fp32"] / stored,
        )


def _itemsize(name: str) -> int:
    return {"F32": 4, "BF16": 2, "F16": 2, "I32": 4, "I64": 8, "I8": 1, "U8": 1}[name]


# ============================================================================================ accuracy
def heldout(path: Path, n: int, seed: int = 7) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, response ids) of `n` held-out modchain solutions in the corpus's style mix."""
    from r1.data.corpus import DEFAULT_MIX, prompt_for
    from r1.tasks.base import get_task
    from r1.tokenizer import Tokenizer

    tok, task = Tokenizer.load(path), get_task("modchain")
    styles = [s for s, share in DEFAULT_MIX.items() for _ in range(round(share * 20))]
    docs = []
    for i, item in enumerate(task.generate(n, seed=seed, difficulty="2-6", split="eval")):
        response = task.solution(item, style=styles[i % len(styles)], answer_format="tags", seed=i)
        docs.append((tok.encode(prompt_for(item)), tok.encode(" " + response)))
    return docs


def measure_accuracy(variants: Variants, res: dict, n: int, rows: int = 32) -> None:
    docs = heldout(variants["fp32"][0], n)
    preds, nll = {}, {}
    for v, (path, dtype) in variants.items():
        model = load(path, dtype)
        preds[v], nll[v] = {}, {}
        for mode in ("decode", "forward"):
            p, s, count = [], 0.0, 0
            for b in range(0, len(docs), rows):
                pb, sb, cb = _score(model, docs[b : b + rows], mode)
                p.append(pb)
                s, count = s + sb, count + cb
            preds[v][mode], nll[v][mode] = torch.cat(p), s / count
            res[v][f"ppl_{mode}"] = math.exp(s / count)
        res[v]["tokens_scored"] = count
    for v in variants:
        for mode in ("decode", "forward"):
            res[v][f"agree_{mode}"] = (preds[v][mode] == preds["fp32"][mode]).float().mean().item()
            res[v][f"ppl_{mode}_change"] = res[v][f"ppl_{mode}"] / res["fp32"][f"ppl_{mode}"] - 1


@torch.inference_mode()
def _score(model, docs, mode: str) -> tuple[torch.Tensor, float, int]:
    """Top-1 predictions and summed NLL at the response tokens of `docs` (one batch of rows)."""
    pad = 0
    T = max(len(p) + len(r) for p, r in docs)
    ids = torch.full((len(docs), T), pad, dtype=torch.long)
    for i, (p, r) in enumerate(docs):
        ids[i, : len(p) + len(r)] = torch.tensor(p + r)
    if mode == "forward":
        logits = model(ids).logits.float()
    else:
        cache = model.new_cache(len(docs), T)
        fused = model.fused_weights()
        logits = torch.cat([model.decode_step(ids[:, t : t + 1], torch.full((len(docs), 1), t), cache, fused).float()
                            for t in range(T)], dim=1)  # fmt: skip
    preds, total, count = [], 0.0, 0
    for i, (p, r) in enumerate(docs):
        at = slice(len(p) - 1, len(p) + len(r) - 1)  # the positions predicting the response tokens
        lg = logits[i, at]
        target = torch.tensor(r)
        total += torch.nn.functional.cross_entropy(lg, target, reduction="sum").item()
        count += len(r)
        preds.append(lg.argmax(-1))
    return torch.cat(preds), total, count


# ============================================================================================ speed
def measure_decode(variants: Variants, res: dict, repeats: int, new_tokens: int) -> None:
    from r1.engine import Engine, SamplingParams

    docs = heldout(variants["fp32"][0], 16, seed=11)
    engines = {
        v: Engine.from_pretrained(p, dtype or "auto", max_batch=16, max_len=512, speculative="off")
        for v, (p, dtype) in variants.items()
    }
    params = SamplingParams(temperature=0.0, max_tokens=new_tokens, ignore_eos=True)
    for batch in (1, 16):
        prompts = [p for p, _ in docs[:batch]]
        for e in engines.values():
            e.generate(prompts, params)  # warm-up: fused copies, first-call allocations, the kernel probe
        wall = {v: [] for v in engines}
        cpu = {v: [] for v in engines}
        for rep in range(repeats):
            order = list(engines) if rep % 2 == 0 else list(reversed(engines))  # drift hits every variant alike
            for v in order:
                t, c = time.perf_counter(), time.process_time()
                out = engines[v].generate(prompts, params)
                wall[v].append(time.perf_counter() - t)
                cpu[v].append(time.process_time() - c)
                assert all(len(o.samples[0].tokens) == new_tokens for o in out)
        for v in engines:
            res[v][f"decode_b{batch}_tokens_per_s"] = batch * new_tokens / statistics.median(wall[v])
            res[v][f"decode_b{batch}_cpu_ms_per_step"] = 1e3 * statistics.median(cpu[v]) / new_tokens
            res[v][f"decode_b{batch}_wall_all"] = [round(batch * new_tokens / w, 1) for w in wall[v]]
        for v in engines:
            for ref, suffix in (("fp32", "speedup"), ("bf16", "vs_bf16")):
                for key in ("tokens_per_s", "cpu_ms_per_step") if ref in engines else ():
                    k = f"decode_b{batch}_{key}"
                    res[v][f"{k}_{suffix}"] = (
                        res[v][k] / res[ref][k] if key == "tokens_per_s" else res[ref][k] / res[v][k]
                    )


def measure_pass(variants: Variants, res: dict, out: Path, items: int, k: int, template: str) -> None:
    from r1.cli import main as cli

    for v, (path, dtype) in variants.items():
        d = out / v
        argv = ["eval", "--task", "modchain", "--difficulty", "2-6", "--n-items", str(items), "-k", str(k),
                "--model", str(path), "--max-new-tokens", "128", "--no-progress", "--out", str(d),
                "--template", template, "--dtype", str(dtype or "auto").removeprefix("torch.")]  # fmt: skip
        t = time.perf_counter()
        assert cli(argv) == 0
        overall = json.loads((d / "results.json").read_text())["overall"]
        res[v].update(pass_at_1=overall["pass@1"], **{f"pass@{k}": overall[f"pass@{k}"]}, eval_items=items, eval_k=k)
        res[v]["eval_seconds"] = time.perf_counter() - t


# ============================================================================================ report
def report(name: str, res: dict) -> None:
    print(f"\n{name}:")
    cols = [
        ("agree dec", "agree_decode", "{:.2%}"),
        ("ppl dec", "ppl_decode", "{:.4f}"),
        ("Δppl dec", "ppl_decode_change", "{:+.2%}"),
        ("agree fwd", "agree_forward", "{:.2%}"),
        ("Δppl fwd", "ppl_forward_change", "{:+.2%}"),
        ("bytes ÷ (mem)", "memory_ratio", "{:.2f}"),
        ("÷ (file)", "stored_ratio", "{:.2f}"),
        ("b1 tok/s", "decode_b1_tokens_per_s", "{:.1f}"),
        ("b1 ×", "decode_b1_tokens_per_s_speedup", "{:.2f}"),
        ("b1 cpu ms", "decode_b1_cpu_ms_per_step", "{:.2f}"),
        ("cpu ×", "decode_b1_cpu_ms_per_step_speedup", "{:.2f}"),
        ("cpu ×bf16", "decode_b1_cpu_ms_per_step_vs_bf16", "{:.2f}"),
        ("b16 ×", "decode_b16_tokens_per_s_speedup", "{:.2f}"),
        ("pass@1", "pass_at_1", "{:.1%}"),
    ]
    print(f"{'':10}" + "".join(f"{c:>14}" for c, _, _ in cols))
    for v, r in res.items():
        cells = [fmt.format(r[k]) if k in r else "-" for _, k, fmt in cols]
        print(f"{v:10}" + "".join(f"{c:>14}" for c in cells))


if __name__ == "__main__":
    main()
