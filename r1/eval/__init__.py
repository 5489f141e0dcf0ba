"""R1-protocol evaluation: pass@1 as mean correctness over k samples, unbiased pass@k, cons@k, format, lengths.

`evaluate(items, generate_fn, ...)` runs any generator over task items; `write_report` writes results.json,
samples.jsonl and results.md. `r1 eval` drives both from the command line.
"""

from r1.eval.evaluate import EvalResult, GenerateFn, evaluate
from r1.eval.metrics import cons_at_k, majority_vote, pass_at_k
from r1.eval.report import write_report

__all__ = ["EvalResult", "GenerateFn", "cons_at_k", "evaluate", "majority_vote", "pass_at_k", "write_report"]
