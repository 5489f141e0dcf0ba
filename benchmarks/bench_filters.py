"""Precision and recall of the rejection-sampling filters (`r1.data.filters`) on worked solutions with injected
defects (`r1.data.filter_check`: clean English and Chinese R1-format completions, with near misses, and each defect
injected into its own copies), for a few seeds, and how long the filters take per sample.

    python benchmarks/bench_filters.py [--clean 200] [--defective 100] [--seeds 0 1 2]

Columns: precision = refused defective / all refused, recall = refused defective / all defective; tp, fp, fn, tn
are counted over the clean cases and the cases of the filter's own defect.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from r1.data.filter_check import defect_cases, measure
from r1.data.filters import DEFECT_FILTERS, FILTERS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clean", type=int, default=200, help="clean cases per seed")
    parser.add_argument("--defective", type=int, default=100, help="cases per defect per seed")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    print(f"{args.clean} clean + {args.defective} per defect per seed; seeds {args.seeds}\n")
    print(f"| {'filter':<15} | seed | precision | recall |  tp |  fp |  fn |  tn | µs/sample |")
    print(f"|{'-' * 17}|-----:|----------:|-------:|----:|----:|----:|----:|----------:|")
    for seed in args.seeds:
        cases = defect_cases(args.clean, args.defective, seed=seed)
        table = measure(cases=cases)
        for name in DEFECT_FILTERS:
            keep, row = FILTERS[name], table[name]
            start = time.perf_counter()
            for case in cases:
                keep(case.sample, case.kept)
            us = (time.perf_counter() - start) / len(cases) * 1e6
            print(
                f"| {name:<15} | {seed:>4} | {row['precision']:>9.3f} | {row['recall']:>6.3f} | {row['tp']:>3} | "
                f"{row['fp']:>3} | {row['fn']:>3} | {row['tn']:>3} | {us:>9.1f} |"
            )
    load = os.getloadavg()[0]
    print(f"\nCPU {torch.backends.cpu.get_cpu_capability()}, load average {load:.1f} (timings are one thread, Python)")


if __name__ == "__main__":
    main()
