"""r1: DeepSeek-R1, whole and readable.

The DeepSeek-V3 model family and dense students (`r1.model`), a byte-level BPE tokenizer with the R1 chat
template (`r1.tokenizer`), and on top of them the engine, tasks, rewards, evaluation, training stages and
server. Nothing here touches the network.

    import r1
    model = r1.load("base-tiny")      # or a model folder; see r1.api
    print(model.chat("Compute 3+4*2 from left to right, mod 10.").content)
"""

__version__ = "0.1.0"

from r1.api import Model, load  # noqa: E402  (light: the engine is imported when a model is loaded)

__all__ = ["Model", "__version__", "load"]
