"""Reward throughput: r1's accuracy + format + language-consistency rewards vs open-r1's way of scoring accuracy.

Scores N synthetic completions (GRPO-shaped: groups of G samples per question; half correct; most well-formed with
<think>/<answer> tags, some malformed, some boxed; a fifth reasoning in Chinese; a tenth with surd answers written
in forms only Math-Verify can equate) and prints completions scored per second, overall and per component, with
cold caches (first pass) and warm (same batch again).

The peer is open-r1's `accuracy_reward` [OR1 src/open_r1/rewards.py]: Math-Verify parses the reference and the whole
completion (LaTeX extraction, boxed first) and verifies, on every sample. It is re-implemented here with the same
Math-Verify calls (open-r1 itself needs a GPU stack to install) and timed on the same completions; its rate is printed
with the ratio. Note the peer does not give the same verdicts (it ignores <answer> tags without LaTeX anchors);
this compares cost, not accuracy.

    python benchmarks/bench_rewards.py [--n 10000] [--group 8] [--peer-n 1000] [--seed 0]
"""

from __future__ import annotations

import argparse
import random
import time

from r1.rewards import answers, build_reward

ZH_STEPS = ["首先计算乘法", "然后把结果相加", "检查一下答案", "所以最后的结果是"]
EN_STEPS = ["First compute the product", "then add the results", "let me check the answer", "so the final result is"]


def synthetic(n: int, group: int, seed: int) -> tuple[list[str], list[dict]]:
    """`n` completions in groups of `group` per question, with their items (see module docstring for the mix)."""
    rng = random.Random(seed)
    completions: list[str] = []
    items: list[dict] = []
    while len(completions) < n:
        a, b, c = rng.randint(2, 99), rng.randint(2, 99), rng.randint(2, 99)
        symbolic = rng.random() < 0.1
        if symbolic:  # k√m: equal forms differ as text (√(k²m)), so only Math-Verify can judge them
            k, m = rng.randint(2, 9), rng.choice([2, 3, 5, 6, 7])
            ref = rf"{k}\sqrt{{{m}}}"
            question = f"Simplify sqrt({k * k * m})."
        else:
            value = a + b * c
            ref = str(value)
            question = f"What is {a} + {b} * {c}?"
        item = {"prompt": question, "answer": ref, "task": "bench_arith", "meta": {}}
        chinese = rng.random() < 0.2
        if chinese:
            item["prompt"] = f"计算 {a} + {b} × {c} 等于多少？"
        for _ in range(min(group, n - len(completions))):
            correct = rng.random() < 0.5
            if symbolic:
                kk = k if correct else k + rng.randint(1, 3)
                answer = rf"\sqrt{{{kk * kk * m}}}" if rng.random() < 0.5 else rf"{kk}\sqrt{{{m}}}"
            else:
                answer = str(value if correct else value + rng.randint(1, 9))
            steps = ZH_STEPS if chinese else EN_STEPS
            reasoning = " ".join(rng.sample(steps, k=rng.randint(2, 4))) + f" {b} * {c} = {b * c}."
            if chinese and rng.random() < 0.3:
                reasoning += " wait, let me double check this."  # language mixing
            style = rng.random()
            if style < 0.7:
                text = f"<think>\n{reasoning}\n</think>\n<answer>\n{answer}\n</answer>"
            elif style < 0.85:
                text = f"<think>\n{reasoning}\n</think>\nThe answer is $\\boxed{{{answer}}}$."
            elif style < 0.95:
                text = f"<think>{reasoning}</think><answer>{answer}</answer><answer>{answer}</answer>"  # malformed
            else:
                text = f"{reasoning} {answer}"  # no tags at all
            completions.append(text)
            items.append(item)
    return completions, items


def rate(fn, completions, items) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn(completions, items)
    return len(completions) / (time.perf_counter() - start), out


def peer_accuracy(completions: list[str], items: list[dict]) -> list[float]:
    """open-r1's accuracy_reward, same Math-Verify calls (see module docstring)."""
    from latex2sympy2_extended import NormalizationConfig
    from math_verify import LatexExtractionConfig, parse, verify

    rewards = []
    for content, item in zip(completions, items):
        # open-r1's datasets carry LaTeX solutions; a bare "123" has no anchor and open-r1 would skip the sample
        solution = f"${item['answer']}$"
        gold = parse(solution, extraction_mode="first_match", extraction_config=[LatexExtractionConfig()])
        if not gold:
            rewards.append(1.0)
            continue
        pred = parse(
            content,
            extraction_config=[
                LatexExtractionConfig(
                    normalization_config=NormalizationConfig(
                        nits=False, malformed_operators=False, basic_latex=True, boxed="all", units=True
                    ),
                    boxed_match_priority=0,
                    try_extract_without_anchor=False,
                )
            ],
            extraction_mode="first_match",
        )
        try:
            rewards.append(float(verify(gold, pred)))
        except Exception:  # noqa: BLE001
            rewards.append(0.0)
    return rewards


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="completions to score")
    parser.add_argument("--group", type=int, default=8, help="completions per question (GRPO group size)")
    parser.add_argument("--peer-n", type=int, default=1000, help="completions the (slow) peer scores")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    completions, items = synthetic(args.n, args.group, args.seed)
    spec = {"accuracy": 1.0, "format": 1.0, "language_consistency": 1.0}
    composite = build_reward(spec)
    answers.answers_match("1", "1")  # import Math-Verify and SymPy outside the timings
    answers.answers_match(r"\frac{1}{2}", "0.5")

    print(f"{args.n} completions, groups of {args.group}, accuracy + format + language_consistency")
    answers.clear_caches()
    cold, batch = rate(composite.score, completions, items)
    warm, _ = rate(composite.score, completions, items)
    means = batch.means()
    print(f"  composite, cold caches : {cold:10,.0f} completions/s  ({args.n / cold:.2f} s)")
    print(f"  composite, warm caches : {warm:10,.0f} completions/s")
    print("  means: " + ", ".join(f"{k}={v:.3f}" for k, v in means.items()))

    for name in spec:
        part = build_reward({name: 1.0})
        answers.clear_caches()
        r, _ = rate(part.score, completions, items)
        print(f"  {name:22} {r:10,.0f} completions/s  ({1e6 / r:7.1f} µs per completion, cold)")

    subset_c, subset_i = completions[: args.peer_n], items[: args.peer_n]
    peer, peer_scores = rate(peer_accuracy, subset_c, subset_i)  # first, so any warm-up favours the peer
    answers.clear_caches()
    ours, our_batch = rate(build_reward({"accuracy": 1.0}).score, subset_c, subset_i)
    print(f"accuracy on the first {len(subset_c)} completions, cold caches (mean reward in brackets):")
    print(f"  r1 accuracy            {ours:10,.0f} completions/s  [{our_batch.means()['reward']:.3f}]")
    print(f"  open-r1-style accuracy {peer:10,.0f} completions/s  [{sum(peer_scores) / len(peer_scores):.3f}]")
    print(f"  ratio r1 / open-r1-style: {ours / peer:.1f}x")


if __name__ == "__main__":
    main()
