"""GRPO step time: r1's GRPO stage vs TRL's `GRPOTrainer` on the same weights, task, reward and settings.

One step on each side = a rollout of 8 prompts × 8 samples × 64 new tokens (T 1.0, top-p 1.0), the reward, the
π_ref forward (β 0.04), then one optimizer step on all 64 samples (one minibatch, μ 1, AdamW lr 1e-6, clip 1.0,
fp32). Both load one directory written with r1's `save_pretrained` plus r1's BPE tokenizer: a random `tiny`
DeepSeek-V3 (MLA + MoE; `--model-kind dense` uses `tiny-qwen2`). Completions run the full 64 tokens on both sides
(r1: `ignore_eos`; TRL: `generation_kwargs={"min_new_tokens": 64}`), so both sides do the same work; the mean
completion length is printed to show it. Prompts are modchain items in the `r1-zero-short` template, rewarded by r1's
registry `accuracy` (answer inside `<answer>…</answer>`), wrapped as a TRL reward function.

Each side runs in a fresh subprocess (so its peak RSS is its own), `--warmup` steps untimed then `--steps` timed, and
the sides alternate over `--repeats` rounds (who goes first alternates too). Seconds per step: r1's `step_time`
from metrics.jsonl (rollout included); TRL's wall time from `on_step_begin` to `on_step_end` (generation included).

    pip install -e ".[bench]"
    python benchmarks/bench_grpo.py [--steps 5] [--repeats 3] [--threads 1] [--model-kind moe|dense] [--json out.json]
    python benchmarks/bench_grpo.py --quick      # 1 round of 2 timed steps, to check it runs

Settings matched on purpose: both sides run the same precision, bf16 autocast by default (TRL's default
`bf16=True`; r1 `train.dtype=bf16`) or fp32 with `--dtype fp32`; TRL's default gradient checkpointing is off unless
`--trl-gc` (r1 does not checkpoint); TRL's `loss_type="grpo"` = r1's `seq-mean-token-mean`; with one step per
generation neither side recomputes π_old (r1 takes the engine's log-probabilities, TRL uses the detached current
ones). The weights are random, so every reward is 0, every advantage 0 and the gradient 0: the update changes
nothing, but both sides still run the full forward, backward and AdamW, so the work timed is that of a real step.

Measured on the 2-core development VM with no other job running, `--threads 1`, 3 rounds × 5 timed steps a side,
medians (s/step; the split is generate / reward + π_ref / train), at 483304b (end of session 4):

    setting                               r1      TRL     ratio   r1 split            TRL split
    bf16 (default)                        0.49    1.67    3.41x   0.21/0.08/0.21      0.74/0.21/0.74
    --trl-gc (TRL's own defaults)         0.59    2.09    3.56x   0.27/0.09/0.23      0.88/0.26/0.95
    --dtype fp32                          0.86    2.24    2.60x   0.27/0.15/0.44      1.06/0.25/0.93

Earlier in the session, at 850f0f5 (same kernels): bf16 3.28x and 3.20x, TRL defaults 3.69x, fp32 2.59x.
Peak RSS (whole process): bf16 r1 735 / TRL 1,269 MiB (TRL with checkpointing 1,055); fp32 r1 745 / TRL 1,214.
Session 3 ended at 2.68-2.83x (bf16), 3.28x (TRL defaults) and 2.41x (fp32); session 2 at 2.30x, 2.50x, 1.97x.

Where r1's step goes: each group's prompt runs once in the π_ref and training forwards (r1.model.prefix); a fused,
chunked log-prob head instead of [tokens, vocab] log-softmax passes; the MoE as padded batched GEMMs (bf16) or a
per-expert loop (large fp32 batches); softmax rows aligned to 32 keys in the blocked attention; and in the engine,
grouped expert GEMMs, a bf16 vocabulary projection under bf16 training, and a two-level inverse-CDF sampler.
In fp32 the step is mostly GEMMs at this CPU's fp32 peak (~100 GFLOP/s; bf16 GEMMs reach ~430), so fp32 stays
near 2.6x: docs/LOG.md (session 4) has the breakdown and what did not help.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MARK = "@@bench-grpo "
PROMPTS, GROUP, NEW_TOKENS, BETA, LR = 8, 8, 64, 0.04, 1e-6
TEMPLATE, TASK = "r1-zero-short", "modchain"
REWARD = {"accuracy": {"mode": "answer_tag"}}
PRESET = {"moe": "tiny", "dense": "tiny-qwen2"}


# ============================================================================================== shared setup
def prepare(where: Path, kind: str, items: int) -> dict:
    """Model + tokenizer (HF layout) and the task items, written once and read by both sides."""
    import torch

    from r1.data.tokenizer_corpus import default_training_text
    from r1.model import Transformer, preset
    from r1.model.checkpoint import save_pretrained
    from r1.model.info import model_info
    from r1.tasks import apply_template, get_task
    from r1.tokenizer import Tokenizer

    pool = get_task(TASK).generate(items, seed=0, split="train")
    prompts = [apply_template(it, TEMPLATE)["prompt"] for it in pool]
    # min_frequency 1: enough merges for the tiny presets' full 2048-token vocabulary
    tok = Tokenizer.train([*default_training_text(20000), *prompts], vocab_size=2048, min_frequency=1)
    cfg = preset(
        PRESET[kind],
        vocab_size=tok.vocab_size,
        bos_token_id=tok.bos_id,
        eos_token_id=tok.eos_id,
        pad_token_id=tok.pad_id,
    )
    torch.manual_seed(0)
    model_dir = where / "model"
    save_pretrained(Transformer(cfg), model_dir)
    tok.save(model_dir)
    (where / "items.jsonl").write_text("".join(json.dumps(it) + "\n" for it in pool), encoding="utf-8")
    # the prompt ids must be the same on both sides: r1 encodes BOS + text, TRL tokenizes the text it is given
    from transformers import AutoTokenizer

    hf_tok = AutoTokenizer.from_pretrained(model_dir)
    for p in prompts[:32]:
        assert hf_tok(text=[tok.bos_token + p])["input_ids"][0] == [tok.bos_id, *tok.encode(p)], p
    info = model_info(cfg)
    mean_prompt = statistics.mean(len(tok.encode(p)) + 1 for p in prompts)
    return {
        "model": f"{PRESET[kind]} ({'DeepSeek-V3: MLA + MoE' if kind == 'moe' else 'Qwen2, dense'}), "
        f"{info.total / 1e6:.2f}M params, vocab {tok.vocab_size}, random init",
        "prompt_tokens_mean": mean_prompt,
    }


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# ============================================================================================== r1
def run_r1(where: Path, args: argparse.Namespace, tag: str) -> dict:
    from r1.train import train
    from r1.train.config import TrainConfig
    from r1.train.grpo.stage import GRPOStage
    from r1.train.metrics import read_metrics

    class FullLengthGRPO(GRPOStage):
        """The stage as shipped, sampling with `ignore_eos` so every completion is exactly max_new_tokens long."""

        def _sampling(self, temperature: float, top_p: float, max_tokens: int):
            return super()._sampling(temperature, top_p, max_tokens).with_(ignore_eos=True)

    imports_mib = peak_rss_mib()
    items = [json.loads(line) for line in (where / "items.jsonl").read_text(encoding="utf-8").splitlines()]
    out = where / f"run-r1-{tag}"
    cfg = TrainConfig.from_dict(
        {
            "stage": "grpo",
            "model": {"path": str(where / "model")},
            "grpo": {
                "preset": "grpo",
                "prompts_per_rollout": PROMPTS,
                "group_size": GROUP,
                "max_new_tokens": NEW_TOKENS,
                "temperature": 1.0,
                "top_p": 1.0,
                "beta": BETA,
                "epochs": 1,
                "task": TASK,
                "template": TEMPLATE,
                "reward": REWARD,
                "eval_items": 0,
                "train_items": len(items),
            },
            "optim": {"lr": LR, "betas": [0.9, 0.999], "weight_decay": 0.0, "grad_clip": 1.0},
            "schedule": {"kind": "constant", "warmup_steps": 0},
            "train": {
                "out": str(out),
                "steps": args.warmup + args.steps,
                "batch_size": PROMPTS * GROUP,
                "seed": 0,
                "dtype": args.dtype,
                "device": "cpu",
                "threads": args.threads,
            },
            "checkpoint": {"every": 0, "final": False},
            "logging": {"progress": False, "plots": False, "report": False},
        }
    )
    train(cfg, stage=FullLengthGRPO(cfg, data=items))
    steps = [r for r in read_metrics(out / "metrics.jsonl") if r.get("event") == "step"][args.warmup :]
    gen = [r["time/rollout"] for r in steps]
    score = [r["time/reward"] + r["time/logprobs"] for r in steps]  # reward, then packing + the π_ref forward
    return {
        "step_s": [r["step_time"] for r in steps],
        "gen_s": gen,
        "score_s": score,
        "completion_tokens": statistics.mean(r["length_mean"] for r in steps),
        "imports_rss_mib": imports_mib,
    }


# ============================================================================================== TRL
def run_trl(where: Path, args: argparse.Namespace, tag: str) -> dict:
    import datasets
    import torch
    import transformers
    from transformers import AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from r1.rewards import build_reward
    from r1.tasks import apply_template
    from r1.tokenizer import Tokenizer

    imports_mib = peak_rss_mib()
    transformers.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    model_dir = where / "model"
    tok = Tokenizer.load(model_dir)
    reward = build_reward(REWARD)
    rows = []
    for line in (where / "items.jsonl").read_text(encoding="utf-8").splitlines():
        item = json.loads(line)
        # BOS in the text: r1 prepends it to every prompt, TRL's tokenizer call adds nothing
        rows.append({"prompt": tok.bos_token + apply_template(item, TEMPLATE)["prompt"], "item": line})

    def accuracy(prompts, completions, completion_ids, item, **kwargs) -> list[float]:
        # TRL's `completions` are decoded with skip_special_tokens, which drops <answer>/</answer> (special tokens in
        # r1's tokenizer); decode the ids with the specials kept, as r1's engine does.
        return [reward(tok.decode(ids), json.loads(it)) for ids, it in zip(completion_ids, item)]

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.times: list[float] = []
            self.lengths: list[float] = []

        def on_step_begin(self, args, state, control, **kwargs):
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.times.append(time.perf_counter() - self.t0)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "completions/mean_length" in logs:
                self.lengths.append(logs["completions/mean_length"])

    config = GRPOConfig(
        output_dir=str(where / f"run-trl-{tag}"),
        use_cpu=True,
        bf16=args.dtype == "bf16",
        fp16=False,
        gradient_checkpointing=args.trl_gc,
        seed=0,
        model_init_kwargs={"dtype": torch.float32},
        max_steps=args.warmup + args.steps,
        per_device_train_batch_size=PROMPTS * GROUP,
        gradient_accumulation_steps=1,
        generation_batch_size=PROMPTS * GROUP,
        num_generations=GROUP,
        num_iterations=1,
        max_completion_length=NEW_TOKENS,
        generation_kwargs={"min_new_tokens": NEW_TOKENS},
        temperature=1.0,
        top_p=1.0,
        top_k=0,
        beta=BETA,
        epsilon=0.2,
        loss_type="grpo",
        scale_rewards="group",
        learning_rate=LR,
        lr_scheduler_type="constant",
        warmup_steps=0,
        weight_decay=0.0,
        max_grad_norm=1.0,
        optim="adamw_torch_fused",
        adam_beta1=0.9,
        adam_beta2=0.999,
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        disable_tqdm=True,
        log_completions=False,
    )
    timer = StepTimer()
    trainer = GRPOTrainer(
        model=str(model_dir),
        reward_funcs=[accuracy],
        args=config,
        train_dataset=datasets.Dataset.from_list(rows),
        processing_class=AutoTokenizer.from_pretrained(model_dir),
        callbacks=[timer],
    )
    # the time split, by wrapping two of the trainer's methods: sampling alone, and the whole rollout (tokenize,
    # sample, reward, π_ref forward, advantages); training is the rest of the step
    spent: dict[str, list[float]] = {"_generate_single_turn": [], "_generate_and_score_completions": []}

    def timed(fn, log: list[float]):
        def wrapper(*a, **kw):
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                log.append(time.perf_counter() - t0)

        return wrapper

    for name, log in spent.items():
        setattr(trainer, name, timed(getattr(trainer, name), log))
    trainer.train()
    w = args.warmup
    gen, whole = spent["_generate_single_turn"][w:], spent["_generate_and_score_completions"][w:]
    return {
        "step_s": timer.times[w:],
        "gen_s": gen,
        "score_s": [b - a for a, b in zip(gen, whole)],
        "completion_tokens": statistics.mean(timer.lengths[w:]),
        "imports_rss_mib": imports_mib,
    }


def child(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    where = Path(args.dir)
    fn = run_r1 if args.child == "r1" else run_trl
    res = fn(where, args, args.tag)
    res["peak_rss_mib"] = peak_rss_mib()
    print(MARK + json.dumps(res), flush=True)


# ============================================================================================== driver
def spawn(side: str, where: Path, args: argparse.Namespace, tag: str) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        side,
        "--dir",
        str(where),
        "--tag",
        tag,
        "--threads",
        str(args.threads),
        "--steps",
        str(args.steps),
        "--warmup",
        str(args.warmup),
        "--dtype",
        args.dtype,
    ]
    if args.trl_gc:
        cmd.append("--trl-gc")
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(args.threads),
        "MKL_NUM_THREADS": str(args.threads),
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONWARNINGS": "ignore",
    }
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(MARK)]
    if proc.returncode or not lines:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-8000:])
        raise SystemExit(f"{side} run failed (exit {proc.returncode})")
    res = json.loads(lines[-1][len(MARK) :])
    res["wall_s"] = time.perf_counter() - t0
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=5, help="timed optimizer steps per run")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps at the start of each run")
    ap.add_argument("--repeats", type=int, default=3, help="rounds of (r1, TRL) runs, order alternating")
    ap.add_argument("--threads", type=int, default=1, help="torch threads on both sides")
    ap.add_argument("--model-kind", choices=sorted(PRESET), default="moe")
    ap.add_argument(
        "--dtype",
        choices=["fp32", "bf16"],
        default="bf16",
        help="both sides: bf16 autocast (TRL's default bf16=True, r1 train.dtype=bf16), or fp32",
    )
    ap.add_argument(
        "--trl-gc",
        action="store_true",
        help="leave TRL's default gradient checkpointing on (off by default: r1 does not checkpoint)",
    )
    ap.add_argument("--items", type=int, default=512, help="prompt pool (modchain train split)")
    ap.add_argument("--quick", action="store_true", help="1 round of 2 timed steps")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--child", choices=["r1", "trl"], help=argparse.SUPPRESS)
    ap.add_argument("--dir", help=argparse.SUPPRESS)
    ap.add_argument("--tag", default="0", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)
    if args.quick:
        args.steps, args.repeats = 2, 1
    import torch
    import transformers
    import trl

    tmp = tempfile.TemporaryDirectory(prefix="bench-grpo-")
    where = Path(tmp.name)
    setup = prepare(where, args.model_kind, args.items)
    print(
        f"model: {setup['model']}\n{PROMPTS} prompts × {GROUP} samples × {NEW_TOKENS} new tokens (EOS ignored), "
        f"prompts ~{setup['prompt_tokens_mean']:.0f} tokens ({TASK}, {TEMPLATE}), β {BETA}, lr {LR:g}, {args.dtype}"
        f"{', TRL gradient checkpointing' if args.trl_gc else ''}, {args.threads} thread(s); {args.warmup} "
        f"warm-up + {args.steps} timed steps per run, {args.repeats} "
        f"round(s)\ntorch {torch.__version__}, transformers {transformers.__version__}, trl {trl.__version__}",
        flush=True,
    )
    runs: dict[str, list[dict]] = {"r1": [], "trl": []}
    for rep in range(args.repeats):
        order = ["r1", "trl"] if rep % 2 == 0 else ["trl", "r1"]
        for side in order:
            res = spawn(side, where, args, f"{rep}")
            runs[side].append(res)
            print(
                f"  round {rep} {side:>3}: {statistics.median(res['step_s']):7.2f} s/step  "
                f"({', '.join(f'{t:.2f}' for t in res['step_s'])})  peak RSS {res['peak_rss_mib']:,.0f} MiB  "
                f"completion {res['completion_tokens']:.1f} tokens  (process {res['wall_s']:.0f} s)",
                flush=True,
            )
    tmp.cleanup()

    summary = {}
    for side, rs in runs.items():
        times = [t for r in rs for t in r["step_s"]]
        summary[side] = {
            "s_per_step_median": statistics.median(times),
            "s_per_step_min": min(times),
            "s_per_step_max": max(times),
            "peak_rss_mib": max(r["peak_rss_mib"] for r in rs),
            "imports_rss_mib": max(r["imports_rss_mib"] for r in rs),
            "completion_tokens_mean": statistics.mean(r["completion_tokens"] for r in rs),
            "step_s": times,
        }
        gen, score = ([x for r in rs for x in r[k]] for k in ("gen_s", "score_s"))
        summary[side].update(
            {
                "gen_s": statistics.median(gen),
                "score_s": statistics.median(score),
                "train_s": statistics.median(t - g - c for t, g, c in zip(times, gen, score)),
            }
        )
    ratio = summary["trl"]["s_per_step_median"] / summary["r1"]["s_per_step_median"]
    names = {"r1": "r1", "trl": f"TRL {trl.__version__}"}
    print(
        f"\n{'side':<10} {'s/step median (min-max)':>26} {'peak RSS MiB':>13} {'after imports':>14} "
        f"{'completion tokens':>18}"
    )
    for side, s in summary.items():
        span = f"{s['s_per_step_median']:.2f} ({s['s_per_step_min']:.2f}-{s['s_per_step_max']:.2f})"
        print(
            f"{names[side]:<10} {span:>26} {s['peak_rss_mib']:>13,.0f} {s['imports_rss_mib']:>14,.0f} "
            f"{s['completion_tokens_mean']:>18.1f}"
        )
    print(f"\nmedian s/step split {'generate':>9} {'reward + π_ref':>14} {'train (fwd, bwd, AdamW)':>24}")
    for side, s in summary.items():
        print(f"  {names[side]:<18} {s['gen_s']:>9.2f} {s['score_s']:>14.2f} {s['train_s']:>24.2f}")
    print(f"ratio TRL/r1 = {ratio:.2f}×  (medians of {len(summary['r1']['step_s'])} timed steps per side)")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "model": setup["model"],
                    "prompts": PROMPTS,
                    "group_size": GROUP,
                    "max_new_tokens": NEW_TOKENS,
                    "beta": BETA,
                    "threads": args.threads,
                    "warmup": args.warmup,
                    "steps": args.steps,
                    "repeats": args.repeats,
                    "model_kind": args.model_kind,
                    "torch": torch.__version__,
                    "transformers": transformers.__version__,
                    "trl": trl.__version__,
                    "sides": summary,
                    "ratio_trl_over_r1": ratio,
                },
                indent=2,
            )
            + "\n",
            encoding="utf-8",
        )


if __name__ == "__main__":
    main()
