"""Hugging Face checkpoints in and out: `config.json` + safetensors (sharded with an index when large).

On disk everything is in the HF layout (docs/architecture.md, "Checkpoints"): per-expert keys, MTP module k under
`model.layers.{num_hidden_layers + k}` with stored copies of the shared embedding and head that loading ties back,
no `lm_head.weight` when tied. Reading also accepts FP8 weights (128×128 `weight_scale_inv`), transformers v5's fused
expert tensors and compressed-tensors int8/int4 checkpoints (kept quantised, r1/model/quant.py), and a quantised
model saves in that format. Only safetensors are read; pickles never are.
"""

from __future__ import annotations

import json
import math
import os
import re
import warnings
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from r1.errors import CheckpointError
from r1.io import atomic_path, atomic_write_text
from r1.model import quant, quant_config
from r1.model.config import ModelConfig
from r1.model.transformer import Transformer, meta_model

INDEX_NAME = "model.safetensors.index.json"
SINGLE_NAME = "model.safetensors"
FP8_BLOCK = 128
_MTP_COPIES = ("embed_tokens.weight", "shared_head.head.weight")


# ============================================================================================ save
def to_hf_state_dict(model: Transformer) -> dict[str, torch.Tensor]:
    """The model's tensors under their HF checkpoint names (MTP renamed, shared copies added, tied head dropped)."""
    cfg = model.config
    out: dict[str, torch.Tensor] = {}
    for name, t in model.state_dict().items():
        m = re.match(r"mtp\.(\d+)\.(.*)", name)
        if m:
            name = f"model.layers.{cfg.num_hidden_layers + int(m.group(1))}.{m.group(2)}"
        out[name] = t
    if cfg.tie_word_embeddings:
        out.pop("lm_head.weight", None)
    for k in range(cfg.num_nextn_predict_layers):
        prefix = f"model.layers.{cfg.num_hidden_layers + k}."
        out[prefix + "embed_tokens.weight"] = model.model.embed_tokens.weight
        out[prefix + "shared_head.head.weight"] = model.lm_head.weight
    return out


def save_pretrained(
    model: Transformer,
    path: str | os.PathLike,
    dtype: torch.dtype | None = None,
    max_shard_bytes: int = 5 * 1024**3,
    generation_defaults: dict | None = None,
) -> Path:
    """Write config.json, generation_config.json and the weights; every file is written atomically."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for name, t in to_hf_state_dict(model).items():
        t = t.detach()
        if dtype is not None and t.is_floating_point() and not name.endswith("e_score_correction_bias"):
            t = t.to(dtype)
        tensors[name] = t.contiguous().clone().cpu()  # clone: shared storage (tied copies) is not allowed on disk
    shards = _plan_shards(tensors, max_shard_bytes)
    old = {p.name for p in path.glob("model*.safetensors")}
    if len(shards) == 1:
        with atomic_path(path / SINGLE_NAME) as tmp:
            save_file(shards[0], tmp, metadata={"format": "pt"})
        written = {SINGLE_NAME}
        (path / INDEX_NAME).unlink(missing_ok=True)
    else:
        n = len(shards)
        weight_map, written = {}, set()
        for i, shard in enumerate(shards, start=1):
            fname = f"model-{i:05d}-of-{n:05d}.safetensors"
            with atomic_path(path / fname) as tmp:
                save_file(shard, tmp, metadata={"format": "pt"})
            weight_map.update({k: fname for k in shard})
            written.add(fname)
        total = sum(t.numel() * t.element_size() for t in tensors.values())
        index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
        atomic_write_text(path / INDEX_NAME, json.dumps(index, indent=2) + "\n")
    for stale in old - written:
        (path / stale).unlink(missing_ok=True)
    hf = model.config.to_hf_dict()
    hf["torch_dtype"] = str(stored_dtype(tensors)).removeprefix("torch.")  # what the files hold
    qc = quant_config.quantization_config(model)
    if qc is not None:
        hf["quantization_config"] = qc
    atomic_write_text(path / "config.json", json.dumps(hf, indent=2, sort_keys=True) + "\n")
    gen = {
        "bos_token_id": model.config.bos_token_id,
        "eos_token_id": model.config.eos_token_id,
        "do_sample": True,
        "temperature": 0.6,  # DeepSeek-R1 usage recommendation
        "top_p": 0.95,
    }
    gen.update(generation_defaults or {})
    atomic_write_text(path / "generation_config.json", json.dumps(gen, indent=2) + "\n")
    return path


def _plan_shards(tensors: dict[str, torch.Tensor], max_bytes: int) -> list[dict[str, torch.Tensor]]:
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for name, t in tensors.items():
        nbytes = t.numel() * t.element_size()
        if shards[-1] and size + nbytes > max_bytes:
            shards.append({})
            size = 0
        shards[-1][name] = t
        size += nbytes
    return shards


# ============================================================================================ load
def load_config(path: str | os.PathLike) -> ModelConfig:
    return ModelConfig.from_hf_dict(_config_dict(Path(path)), source=str(Path(path) / "config.json"))


def _config_dict(path: Path) -> dict:
    f = path / "config.json"
    if not f.is_file():
        raise CheckpointError(f"{path}: no config.json (expected a Hugging Face model directory)")
    try:
        d = json.loads(f.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{f}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(d, dict):
        raise CheckpointError(f"{f}: must hold a JSON object")
    return d


def quantization(path: str | os.PathLike) -> dict | None:
    """The compressed-tensors `quantization_config` of a model directory, None for a full-precision one."""
    path = Path(path)
    q = _config_dict(path).get("quantization_config") if (path / "config.json").is_file() else None
    return q if isinstance(q, dict) and q.get("quant_method") == "compressed-tensors" else None


def load_pretrained(
    path: str | os.PathLike,
    dtype: torch.dtype | None = None,
    device: str | torch.device = "cpu",
    config: ModelConfig | None = None,
) -> Transformer:
    """Build the model from a HF directory (single, sharded, FP8 block-quantised or compressed-tensors safetensors).

    Floating-point weights are cast to `dtype`, by default the one the checkpoint stores most of them in (FP8 counts
    as bf16), so the model holds one dtype; routing biases stay fp32; compressed-tensors linears stay quantised.
    """
    path = Path(path)
    cfg = config or load_config(path)
    model = meta_model(cfg)
    state = convert_hf_state_dict(read_safetensors(path), cfg)
    qc = quantization(path)
    if qc is not None:
        quant_config.prepare_model(model, state, qc, str(path / "config.json"))
    expected = {k: v for k, v in model.state_dict().items()}
    if cfg.tie_word_embeddings:
        expected.pop("lm_head.weight", None)
    mtp_absent = bool(cfg.num_nextn_predict_layers) and not any(k.startswith("mtp.") for k in state)
    if mtp_absent:  # transformers drops MTP weights when it saves; keep a freshly initialised module
        warnings.warn(
            f"{path}: no MTP weights in the checkpoint; the MTP module(s) start from random init", stacklevel=2
        )
        expected = {k: v for k, v in expected.items() if not k.startswith("mtp.")}
    check_keys(state, expected, str(path))
    target = dtype or stored_dtype(state)
    if qc is not None and (torch.device(device).type != "cpu" or target not in (torch.float32, torch.bfloat16)):
        raise CheckpointError(
            f"{path}: int8/int4 weights run on CPU in float32 or bfloat16 (torch's CPU kernels); "
            f"asked for device={device}, dtype={str(target).removeprefix('torch.')}"
        )
    for name, t in state.items():
        want = torch.float32 if name.endswith("e_score_correction_bias") else target
        state[name] = t.to(device=device, dtype=want if t.is_floating_point() else t.dtype)
    model.load_state_dict(state, strict=False, assign=True)
    if mtp_absent:
        model.mtp.to_empty(device=device)
        _init_modules(model.mtp, cfg.initializer_range)
        model.mtp.to(target)
        for moe in model.moe_layers():
            moe.gate.e_score_correction_bias.data = moe.gate.e_score_correction_bias.float()
    if cfg.tie_word_embeddings:
        model.lm_head.weight = model.model.embed_tokens.weight
    leftover = [n for n, p in [*model.named_parameters(), *model.named_buffers()] if p.is_meta]
    leftover += [n for n, m in quant.quantized_modules(model).items() if m.weight is None]
    if leftover:
        raise CheckpointError(f"{path}: tensors left unloaded: {leftover[:10]}")
    model._rope = {}
    return model.eval()


def stored_dtype(tensors: dict[str, torch.Tensor]) -> torch.dtype:
    """The floating-point dtype holding most of the weights' elements (fp32 routing biases aside; fp32 if none)."""
    sizes: dict[torch.dtype, int] = {}
    for name, t in tensors.items():
        if t.is_floating_point() and not name.endswith("e_score_correction_bias"):
            sizes[t.dtype] = sizes.get(t.dtype, 0) + t.numel()
    return max(sizes, key=sizes.__getitem__) if sizes else torch.float32


def _init_modules(module: torch.nn.Module, std: float) -> None:
    from r1.model.layers import RMSNorm
    from r1.model.moe import Router

    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.Linear):
                torch.nn.init.normal_(m.weight, 0.0, std)
            elif isinstance(m, RMSNorm):
                torch.nn.init.ones_(m.weight)
            elif isinstance(m, Router):
                torch.nn.init.normal_(m.weight, 0.0, std)
                if m.use_bias:
                    m.e_score_correction_bias.zero_()


def read_safetensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """All tensors of a checkpoint directory (or one .safetensors file), with FP8 blocks dequantised."""
    path = Path(path)
    if path.is_file():
        files = [path]
    elif (path / INDEX_NAME).is_file():
        try:
            index = json.loads((path / INDEX_NAME).read_text())
            names = sorted(set(index["weight_map"].values()))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise CheckpointError(f"{path / INDEX_NAME}: malformed index ({exc})") from None
        files = [path / n for n in names]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise CheckpointError(f"{path}: shards named in {INDEX_NAME} are missing: {missing}")
    elif (path / SINGLE_NAME).is_file():
        files = [path / SINGLE_NAME]
    else:
        found = sorted(p.name for p in path.glob("*.safetensors"))
        if found:
            files = [path / n for n in found]
        elif list(path.glob("*.bin")) or list(path.glob("*.pt")) or list(path.glob("*.pth")):
            raise CheckpointError(f"{path}: only pickle weights (*.bin/*.pt) found; r1 reads safetensors only")
        else:
            raise CheckpointError(f"{path}: no *.safetensors weights found")
    tensors: dict[str, torch.Tensor] = {}
    for f in files:
        tensors.update(_read_file(f))
    return dequantize_fp8(tensors)


def _read_file(f: Path) -> dict[str, torch.Tensor]:
    try:
        with safe_open(str(f), framework="pt") as sf:
            return {k: sf.get_tensor(k) for k in sf.keys()}  # noqa: SIM118 (safe_open is not a dict)
    except Exception as exc:  # safetensors raises its own error types for truncated/corrupt files
        raise CheckpointError(f"{f}: cannot read safetensors file ({exc})") from None


def dequantize_fp8(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """W[i, j] = fp8[i, j] · scale_inv[i // 128, j // 128] for every weight with a `weight_scale_inv` sibling."""
    out = {}
    for name, t in tensors.items():
        if name.endswith(".weight_scale_inv"):
            continue
        scale = tensors.get(name + "_scale_inv") if name.endswith(".weight") else None
        if scale is not None:
            t = dequantize_block(t, scale, name)
        out[name] = t
    return out


def dequantize_block(w: torch.Tensor, scale_inv: torch.Tensor, name: str = "weight") -> torch.Tensor:
    rows, cols = w.shape
    want = (math.ceil(rows / FP8_BLOCK), math.ceil(cols / FP8_BLOCK))
    if tuple(scale_inv.shape) != want:
        raise CheckpointError(f"{name}_scale_inv: shape {tuple(scale_inv.shape)}, expected {want} for {rows}x{cols}")
    s = scale_inv.float().repeat_interleave(FP8_BLOCK, 0)[:rows].repeat_interleave(FP8_BLOCK, 1)[:, :cols]
    return (w.float() * s).to(torch.bfloat16)


def convert_hf_state_dict(tensors: dict[str, torch.Tensor], cfg: ModelConfig) -> dict[str, torch.Tensor]:
    """HF names → r1 names: MTP layers to `mtp.K`, shared copies dropped, fused experts split per expert."""
    L = cfg.num_hidden_layers
    out: dict[str, torch.Tensor] = {}
    for name, t in tensors.items():
        if name.endswith("rotary_emb.inv_freq"):
            continue  # derived from the config, some old checkpoints store it
        m = re.match(r"model\.layers\.(\d+)\.(.*)", name)
        if m and int(m.group(1)) >= L:
            k, rest = int(m.group(1)) - L, m.group(2)
            if rest in _MTP_COPIES or k >= cfg.num_nextn_predict_layers:
                continue  # copies of shared weights, or deeper MTP modules than this config uses
            name = f"mtp.{k}.{rest}"
        fused = re.match(r"(.*\.mlp\.experts)\.(gate_up_proj|down_proj)$", name)
        if fused:
            prefix, kind = fused.groups()
            if kind == "gate_up_proj":
                gate, up = t.chunk(2, dim=1)
                for e in range(t.shape[0]):
                    out[f"{prefix}.{e}.gate_proj.weight"] = gate[e]
                    out[f"{prefix}.{e}.up_proj.weight"] = up[e]
            else:
                for e in range(t.shape[0]):
                    out[f"{prefix}.{e}.down_proj.weight"] = t[e]
            continue
        out[name] = t
    if cfg.tie_word_embeddings:
        out.pop("lm_head.weight", None)
    return out


def check_keys(state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], where: str) -> None:
    """Raise one error listing every missing, unexpected and mis-shaped tensor."""
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshaped = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in sorted(set(state) & set(expected))
        if tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    if missing or unexpected or misshaped:
        parts = []
        for label, items in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped)):
            if items:
                shown = ", ".join(items[:8]) + (f", … ({len(items)} in all)" if len(items) > 8 else "")
                parts.append(f"{label}: {shown}")
        raise CheckpointError(f"{where}: checkpoint does not match the model config; " + "; ".join(parts))
