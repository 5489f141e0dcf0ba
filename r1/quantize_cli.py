"""`r1 quantize`: a full-precision model folder → a weight-only int8 or int4 one (compressed-tensors format).

    r1 quantize --bits 8 --model base-tiny --out runs/base-int8
    r1 quantize --bits 4 --group-size 32 --model runs/sft/final --out runs/sft-int4

The output folder is what `r1 chat`, `r1 serve`, `r1 eval`, `r1.load` and `Engine.from_pretrained` read (the
linears stay quantised in memory), and what transformers (with the `compressed-tensors` package: `pip install
r1[quant]`) and vLLM load. What is quantised and what stays in full precision: r1/model/quant.py.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "quantize",
        help="weight-only int8/int4 quantisation of a model folder (compressed-tensors format)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", required=True, metavar="DIR", help="full-precision model folder (or a shipped name)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder to write the quantised model to")
    p.add_argument("--bits", type=int, choices=(8, 4), required=True, help="8: per output row; 4: in groups")
    p.add_argument(
        "--group-size", type=int, choices=(32, 64, 128), default=None, help="input columns per scale (4 bits; 128)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from r1.assets import model_path
    from r1.errors import UserError
    from r1.model import quant
    from r1.model.checkpoint import load_pretrained, quantization, save_pretrained
    from r1.tokenizer import Tokenizer

    scheme = quant.parse_scheme(args.bits, args.group_size)
    src, out = model_path(args.model), Path(args.out)
    if quantization(src) is not None:
        raise UserError(f"{src} is already quantised (its config.json has a compressed-tensors quantization_config)")
    if out.resolve() == src.resolve():
        raise UserError(f"--out {out}: must differ from --model (the full-precision weights would be overwritten)")
    model = load_pretrained(src)
    report = quant.quantize_model(model, scheme)
    save_pretrained(model, out)
    if (src / "tokenizer.json").is_file():
        Tokenizer.load(src).save(out)
    if (src / "generation_config.json").is_file():  # the source's sampling defaults, not save_pretrained's
        shutil.copyfile(src / "generation_config.json", out / "generation_config.json")
    size = quant.weight_bytes(model)
    used = {s.name: sum(1 for v in report.schemes.values() if v == s) for s in set(report.schemes.values())}
    reasons: dict[str, int] = {}
    for why in report.kept.values():
        reasons[why] = reasons.get(why, 0) + 1
    print(f"wrote {out}: {len(report.schemes)} linears quantised ({json.dumps(used, sort_keys=True)})")
    print(
        f"  their weights: {size['fp32'] / 2**20:.2f} MiB in fp32 -> {size['quantized'] / 2**20:.2f} MiB "
        f"({size['fp32'] / size['quantized']:.2f}x smaller: values + scales as held in memory)"
    )
    for why, n in sorted(reasons.items()):
        print(f"  {n} kept in full precision: {why}")
    print("  embeddings, norms, routers, the head and the MTP modules stay in full precision")
    return 0
