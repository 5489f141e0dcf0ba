"""Pipelines: a runner (`runner.py`) executes a recipe's stages (`stages/`) into one run folder; recipes (`recipes/`)
say which stages a job runs, built from its settings. `r1 run` (`cli.py`) is the command."""
