"""r1: DeepSeek-R1, whole and readable.

The DeepSeek-V3 model family and dense students (`r1.model`), a byte-level BPE tokenizer with the R1 chat
template (`r1.tokenizer`), and on top of them the engine, tasks, rewards, evaluation, training stages and
server. Nothing here touches the network.
"""

__version__ = "0.1.0"
