"""Reusable pipeline stages: corpus and tokenizer, training (any `r1 train` stage), a model folder, held-out
evaluation, and a dataset generated from a model (cold start, rejection sampling, distillation traces)."""
