"""Training data: the built-in corpus (`corpus.py`) and documents → packed or length-bucketed batches (`packing.py`)."""
