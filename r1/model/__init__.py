"""The model family: DeepSeek-V3 (MLA, DeepSeekMoE, MTP, YaRN) and dense Llama/Qwen2-style students."""

from r1.model.cache import KVCache
from r1.model.config import PRESETS, ModelConfig, preset
from r1.model.transformer import IGNORE_INDEX, ModelOutput, Transformer

__all__ = ["IGNORE_INDEX", "PRESETS", "KVCache", "ModelConfig", "ModelOutput", "Transformer", "preset"]
