"""GRPO (DeepSeekMath, DeepSeek-R1) as a stage of the shared training core; Dr. GRPO, DAPO and GSPO as presets.

algorithm.py  J(θ): group advantages, the clipped surrogate, k3 KL, loss aggregations (one screen)
options.py    everything under `grpo:`, the published presets, `resolve_options`
stage.py      `GRPOStage`: rollouts in `prepare`, `policy_loss` in `loss`, held-out pass@1 in `evaluate`
rollout.py    sampling groups from the engine, the rollout tensors, log-probabilities, rollout statistics
watchdog.py   plain-language warnings when a run is going nowhere
report.py     plots, the report section, completions logged at each evaluation
"""

from r1.train.grpo.algorithm import AGGREGATIONS, group_advantages, k3_kl, policy_loss
from r1.train.grpo.options import PRESETS, GRPOOptions, resolve_options

__all__ = ["AGGREGATIONS", "PRESETS", "GRPOOptions", "group_advantages", "k3_kl", "policy_loss", "resolve_options"]
