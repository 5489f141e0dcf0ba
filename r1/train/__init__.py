"""Training: one core loop (`core.py`) shared by every stage; pretraining, SFT and GRPO (`grpo/`) plug into it.

    from r1.train import load_config, train
    result = train(load_config("configs/pretrain-tiny.yaml", ["train.steps=50"]))

See `core.py` for the loop and the `Stage` contract, `config.py` for the config keys, `checkpointing.py` for
the run folder and exact resume, `distributed.py` for torchrun/FSDP2.
"""

from r1.train.config import TrainConfig, load_config
from r1.train.core import LossOutput, Stage, StageContext, TrainResult, train

__all__ = ["LossOutput", "Stage", "StageContext", "TrainConfig", "TrainResult", "load_config", "train"]
