"""`r1 model …`: inspect presets and checkpoints."""

from __future__ import annotations

import argparse
import json

from r1.cli import add_command
from r1.model.config import PRESETS, preset


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "model")
    msub = p.add_subparsers(dest="model_command", metavar="ACTION", required=True)
    info = msub.add_parser("info", help="parameter counts and KV-cache size of a preset or checkpoint")
    src = info.add_mutually_exclusive_group(required=True)
    src.add_argument("--preset", choices=list(PRESETS), help="a built-in config")
    src.add_argument("--model", metavar="DIR", help="a Hugging Face model directory (reads config.json only)")
    info.add_argument("--json", action="store_true", help="print machine-readable JSON")
    info.set_defaults(func=_info)
    cfg = msub.add_parser("config", help="print a preset's config.json (HF format)")
    cfg.add_argument("--preset", choices=list(PRESETS), required=True)
    cfg.set_defaults(func=_config)


def _info(args: argparse.Namespace) -> int:
    from r1.model.checkpoint import load_config
    from r1.model.info import model_info

    cfg = preset(args.preset) if args.preset else load_config(args.model)
    info = model_info(cfg)
    if args.json:
        print(json.dumps({"config": args.preset or args.model, **info.to_dict()}, indent=2))
        return 0
    name = args.preset or args.model
    kv = info.kv_elements_per_token_per_layer
    lines = [
        f"{name}  ({cfg.model_type}, built on the meta device in {info.build_seconds:.1f}s)",
        f"  total parameters         {_fmt(info.total)}   (main model's checkpoint tensors, without MTP)",
        f"  active per token         {_fmt(info.active)}",
        f"    without embedding+head {_fmt(info.active_without_embeddings)}",
    ]
    if info.buffers:
        lines.insert(
            2,
            f"    = {info.parameters:,} parameters + {info.buffers:,} fp32 routing-bias buffers"
            " (torch's model.parameters() counts the former)",
        )
    if info.routed_experts:
        k, e = cfg.num_experts_per_tok, cfg.n_routed_experts
        lines.append(f"  routed experts           {_fmt(info.routed_experts)}   ({k} of {e} active per layer)")
    d = cfg.num_nextn_predict_layers
    lines.append(f"  MTP modules              {_fmt(info.mtp)}   (depth {d}; embedding and head shared)")
    lines.append(f"  KV cache per token per layer (elements; bytes/token over {cfg.num_hidden_layers} layers in bf16):")
    for key, v in kv.items():
        lines.append(f"    {key:<18} {v:>9,}   ({info.kv_bytes_per_token_bf16[key]:,} bytes/token)")
    if "mla_absorbed" in kv:
        mha, naive = kv["mha_same_heads"] / kv["mla_absorbed"], kv["mla_naive"] / kv["mla_absorbed"]
        lines.append(f"    MHA / MLA-absorbed = {mha:.1f}x, naive / absorbed = {naive:.1f}x")
    print("\n".join(lines))
    return 0


def _config(args: argparse.Namespace) -> int:
    print(json.dumps(preset(args.preset).to_hf_dict(), indent=2, sort_keys=True))
    return 0


def _fmt(n: int) -> str:
    for unit, div in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= div:
            return f"{n / div:,.2f}{unit} ({n:,})"
    return f"{n:,}"
