"""The model's CPU kernels, one module per concern; plain tensors in and out, so the modules pick which to run.

- `attention`: causal attention over blocks of query rows that never computes the masked triangle (training,
  full-sequence scoring, shared prompts), and the SDPA call the other paths use;
- `heads`: the vocabulary head fused with the next-token loss, or with the targets' log-probs and entropy;
- `experts`: MoE dispatch: per-expert loop, padded batched GEMMs, grouped GEMM, one token's experts;
- `norm`: RMSNorm with a hand-written backward, and its fused decode-step form.
"""
