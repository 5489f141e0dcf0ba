"""config.json's `quantization_config` for compressed-tensors checkpoints: written for a model r1 quantised, read
(and checked) for any checkpoint, and used to get a model ready to load its quantised tensors.

The config lists `config_groups`, each a weight scheme and the modules it `targets` (exact names, `re:` patterns or
the class `Linear`; compressed-tensors ranks them in that order), and the modules to `ignore`. Names are the
checkpoint's (MTP layer k is `model.layers.{num_hidden_layers + k}`). The numbers and the module: r1/model/quant.py.
"""

from __future__ import annotations

import re
from typing import Any

import torch
from torch import nn

from r1.errors import CheckpointError, ConfigError
from r1.model.quant import (
    INT4_GROUPS,
    INT8_FORMATS,
    MIXED,
    PACKED,
    QuantizedLinear,
    Scheme,
    checked_shape,
    dense_weight,
    format_keys,
    kept_dense,
    quantized_modules,
    set_module,
)


def quantization_config(model: nn.Module) -> dict[str, Any] | None:
    """config.json's `quantization_config` for a model with quantised linears (None without any).

    The routed experts' scheme (else the most common) targets every `Linear`; the others target their modules by
    name patterns (a name match outranks a class match in compressed-tensors); `ignore` names every other linear
    of the checkpoint: the head, kv_b_proj, the MTP layers, the routers (vLLM builds those as linears too).
    """
    mods = quantized_modules(model)
    if not mods:
        return None
    by_scheme: dict[tuple[Scheme, str], list[str]] = {}
    for name, m in mods.items():
        by_scheme.setdefault((m.scheme, m.format), []).append(name)
    # the experts' scheme first (transformers takes the first group targeting a class as the fused experts'),
    # else the most common
    experts = [(m.scheme, m.format) for n, m in mods.items() if ".mlp.experts." in n]
    order = sorted(by_scheme, key=lambda s: (experts[:1] != [s], -len(by_scheme[s])))
    mtp = tuple(f"mtp.{k}." for k in range(len(model.mtp)))
    every = [n for n, m in model.named_modules() if isinstance(m, (nn.Linear, QuantizedLinear))]
    every = [n for n in every + _router_names(model) if not n.startswith(mtp)]
    groups = {}
    for i, (s, fmt) in enumerate(order):
        groups[f"group_{i}"] = {
            "targets": ["Linear"] if i == 0 else _patterns(by_scheme[s, fmt], every),
            "weights": s.weights_args(),
            "input_activations": None,
            "output_activations": None,
            "format": fmt,
        }
    L = model.config.num_hidden_layers
    ignore = _patterns([n for n in every if n not in mods], every)
    ignore += [rf"re:^model\.layers\.{L + k}\." for k in range(len(model.mtp))]  # the MTP layers, all of them
    formats = {fmt for _, fmt in order}
    return {
        "quant_method": "compressed-tensors",
        "format": formats.pop() if len(formats) == 1 else MIXED,
        "quantization_status": "compressed",
        "config_groups": groups,
        "ignore": ignore,
        "kv_cache_scheme": None,
        "global_compression_ratio": None,
        "sparsity_config": {},
        "transform_config": {},
    }


def _hf_name(name: str, model: nn.Module) -> str:
    m = re.match(r"mtp\.(\d+)\.(.*)", name)
    return f"model.layers.{model.config.num_hidden_layers + int(m.group(1))}.{m.group(2)}" if m else name


def _router_names(model: nn.Module) -> list[str]:
    routers = {id(m.gate) for m in model.moe_layers()}
    return [n for n, m in model.named_modules() if id(m) in routers]


def _patterns(names: list[str], every: list[str]) -> list[str]:
    """`re:` patterns matching exactly `names` among `every`: layer and expert numbers generalised where that
    matches nothing else, else the exact names."""
    chosen = set(names)
    out: list[str] = []
    for general in dict.fromkeys(_generalise(n) for n in names):
        hits = {n for n in every if re.match(general, n)}
        if hits <= chosen:
            out.append("re:" + general)
        else:
            out += ["re:^" + re.escape(n) + "$" for n in sorted(hits & chosen)]
    return out


def _generalise(name: str) -> str:
    return "^" + re.sub(r"\\\.\d+(?=\\\.)", r"\\.\\d+", re.escape(name)) + "$"


def read_quantization_config(q: Any, source: str) -> list[tuple[list[str], Scheme, str]]:
    """Check a compressed-tensors `quantization_config` is one r1 runs: weight-only symmetric int8/int4, by row or
    group, no activation or KV-cache quantisation. Returns (targets, scheme, format) per config group, in order."""
    where = f"{source}: quantization_config"
    if not isinstance(q, dict):
        raise ConfigError(f"{where}: must be a mapping")
    fmt = q.get("format")
    if fmt not in (PACKED, *INT8_FORMATS, MIXED):
        raise ConfigError(f"{where}.format={fmt!r}: r1 reads {PACKED!r} and int8 {INT8_FORMATS} checkpoints")
    if q.get("kv_cache_scheme") is not None:
        raise ConfigError(f"{where}.kv_cache_scheme: KV-cache quantisation is not implemented in r1")
    groups = q.get("config_groups")
    if not isinstance(groups, dict) or not groups:
        raise ConfigError(f"{where}.config_groups: must be a non-empty mapping of quantisation schemes")
    out = []
    for gname, g in groups.items():
        at = f"{where}.config_groups.{gname}"
        if not isinstance(g, dict):
            raise ConfigError(f"{at}: must be a mapping (preset names are not read)")
        for act in ("input_activations", "output_activations"):
            if g.get(act) is not None:
                raise ConfigError(f"{at}.{act}: r1 runs weight-only quantisation; activations must be null")
        w = g.get("weights") or {}
        if w.get("type", "int") != "int" or w.get("num_bits") not in (4, 8):
            raise ConfigError(f"{at}.weights: r1 reads 8- and 4-bit integer weights, got {w!r}")
        if not w.get("symmetric", True):
            raise ConfigError(f"{at}.weights.symmetric=false: r1 reads symmetric weights (no zero points)")
        if w.get("actorder") not in (None, "static", "weight"):
            raise ConfigError(f"{at}.weights.actorder={w.get('actorder')!r}: activation-ordered groups are not read")
        strategy = w.get("strategy")
        if strategy not in ("channel", "group"):
            raise ConfigError(f"{at}.weights.strategy={strategy!r}: must be 'channel' or 'group'")
        gformat = g.get("format") or fmt  # compressed-tensors: a group's own format overrides the top-level one
        if gformat not in (PACKED, *INT8_FORMATS) or (gformat != PACKED and w["num_bits"] != 8):
            raise ConfigError(f"{at}.format={gformat!r}: not a format r1 reads for {w['num_bits']}-bit weights")
        size = w.get("group_size") if strategy == "group" else None
        if strategy == "group" and (not isinstance(size, int) or size < 1):
            raise ConfigError(f"{at}.weights.group_size={size!r}: a group strategy needs a positive group size")
        try:
            scheme = Scheme(w["num_bits"], size) if w["num_bits"] == 8 or size in INT4_GROUPS else None
        except ConfigError as exc:
            raise ConfigError(f"{at}.weights: {exc}") from None
        if scheme is None:
            raise ConfigError(f"{at}.weights.group_size={size}: 4-bit weights need one of {INT4_GROUPS}")
        targets = g.get("targets")
        if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
            raise ConfigError(f"{at}.targets: must be a list of module names, `re:` patterns or class names")
        out.append((targets, scheme, gformat))
    return out


def _matches(name: str, target: str) -> bool:
    return re.match(target[3:], name) is not None if target.startswith("re:") else target == name


def scheme_for(name: str, groups: list, ignore: list[str]) -> tuple[Scheme, str] | None:
    """The (scheme, format) a checkpoint's config gives linear `name` (HF name), by compressed-tensors' precedence:
    an exact name, then a `re:` pattern, then the class `Linear`; None when ignored or not targeted."""
    if any(_matches(name, t) for t in ignore):
        return None
    best = None
    for targets, scheme, fmt in groups:
        for t in targets:
            rank = 2 if t == "Linear" else 1 if t.startswith("re:") and _matches(name, t) else 0 if t == name else None
            if rank is not None and (best is None or rank < best[0]):
                best = (rank, scheme, fmt)
    return None if best is None else (best[1], best[2])


def prepare_model(model: nn.Module, state: dict[str, torch.Tensor], q: dict, source: str) -> None:
    """Get a meta model and the (r1-named) checkpoint tensors of a compressed-tensors checkpoint ready to load.

    A linear whose tensors are quantised in the file becomes an empty `QuantizedLinear` of its scheme; those r1
    keeps dense (kv_b_proj, the MTP modules, shapes the int4 kernel cannot take) are dequantised in `state` into a
    plain `weight`. Tensors that are not quantised load as they are.
    """
    groups = read_quantization_config(q, source)
    ignore = q.get("ignore") or []
    for name, m in list(model.named_modules()):
        if not isinstance(m, nn.Linear):
            continue
        keys = [k for k in ("weight_packed", "weight_scale") if f"{name}.{k}" in state]
        if not keys:
            continue
        hf = _hf_name(name, model)
        found = scheme_for(hf, groups, ignore)
        if found is None:
            raise CheckpointError(f"{source}: {hf} is stored quantised but no quantization_config group targets it")
        scheme, fmt = found
        t = {k: state.pop(f"{name}.{k}") for k in format_keys(fmt) if f"{name}.{k}" in state}
        missing = [k for k in format_keys(fmt) if k not in t]
        if missing:
            raise CheckpointError(f"{source}: {hf} is quantised ({fmt}) but lacks {', '.join(missing)}")
        if scheme.group_size and m.in_features % scheme.group_size:
            raise CheckpointError(f"{source}: {hf}: width {m.in_features} is not a multiple of {scheme.group_size}")
        shape = checked_shape(t, scheme, fmt, f"{source}: {hf}")
        if shape != (m.out_features, m.in_features):
            raise CheckpointError(
                f"{source}: {hf} holds a {list(shape)} weight; the config needs [{m.out_features}, {m.in_features}]"
            )
        fits = scheme.bits == 8 or m.out_features % 16 == 0
        if name.startswith("mtp.") or kept_dense(name, model) or not fits:
            state[f"{name}.weight"] = dense_weight(t, scheme, fmt, f"{source}: {hf}")
            continue
        ql = QuantizedLinear(m.in_features, m.out_features, scheme, m.bias is not None, t["weight_scale"].dtype, fmt)
        set_module(model, name, ql)
        state.update({f"{name}.{k}": v for k, v in t.items()})
