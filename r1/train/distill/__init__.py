"""Logit distillation into a student that shares the teacher's tokenizer (`stage: distill`); see `stage`."""
