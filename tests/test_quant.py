"""Weight-only int8/int4 quantisation: error bounds, kernels against dequantise-then-F.linear, the compressed-tensors
checkpoint both ways (r1's own round trip, transformers and compressed-tensors' own packing), decoding, the CLIs."""

from __future__ import annotations

import copy
import json

import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open

from r1.assets import model_path
from r1.cli import main as cli
from r1.errors import CheckpointError, ConfigError
from r1.model import quant, quant_config
from r1.model.checkpoint import load_config, load_pretrained, save_pretrained
from r1.model.quant import QuantizedLinear, QuantizedWeight, Scheme

pytestmark = pytest.mark.usefixtures("one_thread")

BASE = model_path("base-tiny")
SCHEMES = [Scheme(8), Scheme(4, 32), Scheme(4, 64), Scheme(4, 128)]
IDS = torch.randint(9, 300, (2, 40), generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def base():
    return load_pretrained(BASE)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """base-tiny quantised by `r1 quantize` to int8 and int4 (group 32)."""
    out = {}
    for bits, extra in ((8, []), (4, ["--group-size", "32"])):
        d = tmp_path_factory.mktemp("q") / f"int{bits}"
        assert cli(["quantize", "--bits", str(bits), *extra, "--model", "base-tiny", "--out", str(d)]) == 0
        out[bits] = d
    return out


def gaussian(n: int, k: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, k, generator=torch.Generator().manual_seed(seed)) * 0.05


# ============================================================================================ the numbers
@pytest.mark.parametrize("scheme", SCHEMES, ids=lambda s: s.name)
def test_quantize_dequantize_error_bounds(scheme):
    w = gaussian(96, 256)
    w[3, 7] = 0.9  # an outlier owns its row's (or group's) scale
    w[5] = 0.0  # an all-zero row dequantises to exactly zero
    qw = QuantizedWeight.from_float(w, scheme)
    q, s = qw.ints(), qw.scales()
    top = 1 << (scheme.bits - 1)
    assert q.dtype == torch.int8 and int(q.min()) >= -top and int(q.max()) <= top - 1
    g = scheme.group_size or 256
    assert s.shape == (96, 256 // g)
    err = (qw.dequantize() - w).abs().view(96, -1, g)
    # half a step, plus what rounding the scale to bf16 can add at the group's largest element
    bound = 0.5 * s[..., None] + w.abs().view(96, -1, g).amax(-1, keepdim=True) * 2**-8
    assert bool((err <= bound + 1e-7).all())
    assert torch.equal(qw.dequantize()[5], torch.zeros(256))
    # rounding error of a uniform step: RMS ≈ step/√12, far below the weights' own spread
    rel = (qw.dequantize() - w).norm() / w.norm()
    assert rel < {8: 0.01, 4: 0.15}[scheme.bits]
    assert torch.equal(s.to(torch.bfloat16).float(), s)  # scales are bf16-exact: file, kernels and dequant agree


def test_finer_groups_are_more_accurate():
    w = gaussian(64, 256, seed=1)
    errs = [(QuantizedWeight.from_float(w, s).dequantize() - w).norm() for s in (Scheme(4, 32), Scheme(4, 128))]
    assert errs[0] < errs[1]
    assert (QuantizedWeight.from_float(w, Scheme(8)).dequantize() - w).norm() < errs[0] / 8


@pytest.mark.parametrize("bits", [8, 4])
def test_compressed_tensors_packing_round_trip(bits):
    top = 1 << (bits - 1)
    q = torch.randint(-top, top, (7, 45), dtype=torch.int8, generator=torch.Generator().manual_seed(2))
    p = quant.pack_int32(q, bits)
    assert p.dtype == torch.int32 and p.shape == (7, -(-45 * bits // 32))
    assert torch.equal(quant.unpack_int32(p, bits, 45), q)


@pytest.mark.parametrize("bits", [8, 4])
def test_packing_matches_compressed_tensors(bits):
    helpers = pytest.importorskip(
        "compressed_tensors.compressors.pack_quantized.helpers", reason="compressed-tensors not installed (r1[quant])"
    )
    top = 1 << (bits - 1)
    q = torch.randint(-top, top, (16, 96), dtype=torch.int8, generator=torch.Generator().manual_seed(3))
    assert torch.equal(quant.pack_int32(q, bits), helpers.pack_to_int32(q, bits))
    assert torch.equal(quant.unpack_int32(helpers.pack_to_int32(q, bits), bits, 96), q)


def test_int4_cpu_layout_is_read_back_exactly():
    """`unpack_int4_cpu` inverts torch's own packer, full 64-row blocks and every tail."""
    gen = torch.Generator().manual_seed(4)
    for rows in range(16, 272, 16):
        for cols in (32, 96, 352):
            q = torch.randint(-8, 8, (rows, cols), dtype=torch.int8, generator=gen)
            assert torch.equal(quant.unpack_int4_cpu(quant.pack_int4_cpu(q), rows, cols), q), (rows, cols)


@pytest.mark.parametrize("scheme", SCHEMES, ids=lambda s: s.name)
@pytest.mark.parametrize("rows", [1, 5, 32, 33, 129])
def test_quantised_linear_equals_dequantise_then_linear(scheme, rows):
    w = gaussian(160, 256, seed=5)
    qw = QuantizedWeight.from_float(w, scheme)
    x = torch.randn(rows, 256, generator=torch.Generator().manual_seed(6))
    bias = torch.randn(160, generator=torch.Generator().manual_seed(7))
    dense = qw.dequantize()
    # the kernel computes on bf16 activations with fp32 accumulation and returns bf16: compare at that precision
    want = F.linear(x.bfloat16().float(), dense)
    got = qw._kernel(x)
    assert got.dtype == torch.float32 and got.shape == (rows, 160)
    assert torch.allclose(got, want, rtol=2**-7, atol=1e-3 * want.abs().max().item())
    # and `linear` is one of the two: the kernel (few rows, where it is faster) or exactly dequantise + GEMM
    y = qw.linear(x, bias)
    if rows > quant.KERNEL_ROWS[scheme.bits] or not quant.kernel_path()[0]:
        assert torch.equal(y, F.linear(x, dense, bias))
    else:
        assert torch.equal(y, got + bias)
    # batched inputs and bf16 activations
    assert torch.equal(qw.linear(x.view(1, rows, 256)).view(rows, 160), qw.linear(x))
    assert qw.linear(x.bfloat16()).dtype == torch.bfloat16


def test_weights_concatenate_and_stack_like_tensors():
    """The operations the decode paths apply to weights (row concatenation, expert stacks) keep them quantised."""
    a, b = (QuantizedWeight.from_float(gaussian(n, 128, seed=n), Scheme(4, 32)) for n in (64, 48))
    ab = torch.cat([a, b])
    assert isinstance(ab, QuantizedWeight) and ab.shape == (112, 128)
    assert torch.equal(ab.dequantize(), torch.cat([a.dequantize(), b.dequantize()]))
    stack = torch.stack([a.t(), b.t()]).contiguous()
    x = torch.randn(1, 128)
    assert torch.equal(x @ stack[1], b.linear(x))
    xs = torch.randn(5, 128)
    offs = torch.tensor([2, 5], dtype=torch.int32)
    got = torch._grouped_mm(xs, torch.stack([a.t(), a.t()]), offs=offs)
    assert torch.equal(got, torch.cat([a.linear(xs[:2]), a.linear(xs[2:])]))
    # anything else sees the dequantised weight
    assert torch.equal(torch.stack([a, a]), torch.stack([a.dequantize(), a.dequantize()]))


# ============================================================================================ the model
@pytest.mark.parametrize("scheme", SCHEMES, ids=lambda s: s.name)
def test_what_is_quantised_and_what_stays(base, scheme):
    model = copy.deepcopy(base)
    report = quant.quantize_model(model, scheme)
    mods = quant.quantized_modules(model)
    assert set(mods) == set(report.schemes) and len(mods) == 172  # 4 layers × attention, MLPs, 17 experts
    assert all(n.startswith("model.layers.") and not n.endswith("kv_b_proj") for n in mods)
    assert set(report.kept) == {f"model.layers.{i}.self_attn.kv_b_proj" for i in range(4)}
    # embeddings, norms, routers, the head, kv_b_proj and the whole MTP module: untouched, in full precision
    before, after = base.state_dict(), model.state_dict()
    for name, t in before.items():
        module = name.rsplit(".", 1)[0]
        if module in mods:
            continue
        assert torch.equal(after[name], t) and after[name].dtype == t.dtype, name
    assert all(isinstance(m, torch.nn.Linear) for n, m in model.mtp.named_modules() if "proj" in n)
    assert isinstance(model.lm_head, torch.nn.Linear) and model.lm_head.weight.dtype == torch.float32
    # the experts share one group size (transformers dequantises fused experts with one scheme)
    experts = {m.scheme for n, m in mods.items() if ".experts." in n or ".shared_experts." in n}
    assert len(experts) == 1
    size = quant.weight_bytes(model)
    assert size["fp32"] / size["quantized"] > {8: 3.9, 32: 6.3, 64: 6.9, 128: 7.0}[scheme.group_size or 8]


@pytest.mark.parametrize("bits", [8, 4])
def test_checkpoint_round_trip(folders, tmp_path, bits):
    """r1 writes, r1 reads the same weights; writing again gives the same tensors; the config is compressed-tensors'."""
    d = folders[bits]
    cfg = json.loads((d / "config.json").read_text())
    qc = cfg["quantization_config"]
    assert qc["quant_method"] == "compressed-tensors" and qc["format"] == "pack-quantized"
    assert qc["config_groups"]["group_0"]["targets"] == ["Linear"]
    ignored = {"re:^lm_head$", r"re:^model\.layers\.\d+\.mlp\.gate$", r"re:^model\.layers\.4\."}  # 4: the MTP layer
    assert ignored <= set(qc["ignore"])  # the routers too: vLLM builds them as linears
    with safe_open(str(d / "model.safetensors"), "pt") as f:
        keys = set(f.keys())
        packed = f.get_tensor("model.layers.1.mlp.experts.3.down_proj.weight_packed")
    assert "model.layers.1.mlp.experts.3.down_proj.weight" not in keys
    assert packed.dtype == torch.int32 and packed.shape == (128, 64 * bits // 32)
    assert "model.layers.4.mlp.experts.3.down_proj.weight" in keys  # MTP stays full precision on disk
    model = load_pretrained(d)
    assert len(quant.quantized_modules(model)) == 172
    save_pretrained(model, tmp_path / "again")
    first, second = str(d / "model.safetensors"), str(tmp_path / "again" / "model.safetensors")
    with safe_open(first, "pt") as a, safe_open(second, "pt") as b:
        assert set(a.keys()) == set(b.keys())
        for k in a.keys():  # noqa: SIM118
            assert torch.equal(a.get_tensor(k), b.get_tensor(k)), k
    again = load_pretrained(tmp_path / "again")
    with torch.no_grad():
        assert torch.equal(model(IDS).logits, again(IDS).logits)
    assert load_config(d).model_type == "deepseek_v3"


def heldout_batch(n: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Held-out modchain solutions (eval split, never pretrained on): ids [n, T] and labels masking the prompt."""
    from r1.data.corpus import prompt_for
    from r1.model.kernels.heads import IGNORE_INDEX
    from r1.tasks.base import get_task
    from r1.tokenizer import Tokenizer

    tok, task = Tokenizer.load(BASE), get_task("modchain")
    rows = []
    for i, item in enumerate(task.generate(n, seed=5, difficulty="2-6", split="eval")):
        prompt = tok.encode(prompt_for(item))
        response = tok.encode(" " + task.solution(item, style="steps", answer_format="tags", seed=i))
        rows.append((prompt, response))
    T = max(len(p) + len(r) for p, r in rows)
    ids = torch.full((n, T), tok.pad_id, dtype=torch.long)
    labels = torch.full((n, T), IGNORE_INDEX, dtype=torch.long)
    for i, (p, r) in enumerate(rows):
        ids[i, : len(p) + len(r)] = torch.tensor(p + r)
        labels[i, len(p) : len(p) + len(r)] = torch.tensor(r)
    return ids, labels


def test_quantised_model_stays_close_to_full_precision(base, folders):
    """On held-out text: the loss barely moves, and the next token mostly stays the same (bench_quant.py measures
    it at scale)."""
    ids, labels = heldout_batch()
    with torch.no_grad():
        ref = base(ids, labels=labels)
        for bits, nats, agree_min in ((8, 0.005, 0.98), (4, 0.05, 0.9)):  # loss per response token ≈ 0.2 nats
            out = load_pretrained(folders[bits])(ids, labels=labels)
            assert abs(out.lm_loss - ref.lm_loss) < nats, (bits, out.lm_loss, ref.lm_loss)
            seen = labels != -100
            agree = (out.logits.argmax(-1) == ref.logits.argmax(-1))[seen].float().mean()
            assert agree >= agree_min, (bits, agree)


@pytest.mark.parametrize("bits", [8, 4])
def test_transformers_reads_the_checkpoint(folders, bits, monkeypatch):
    """transformers (with compressed-tensors) loads r1's folder: its logits are r1's through dequantise + GEMM (the
    same arithmetic as its decompressed linears), and within bf16 activation rounding of r1's kernels."""
    pytest.importorskip("compressed_tensors", reason="transformers needs compressed-tensors for it (r1[quant])")
    transformers = pytest.importorskip("transformers")
    d = folders[bits]
    hf = transformers.AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32).eval()
    ours = load_pretrained(d)
    ids = heldout_batch(2)[0]
    with torch.no_grad():
        theirs, kernels = hf(ids).logits, ours(ids).logits
        monkeypatch.setattr(quant, "KERNEL_ROWS", {8: 0, 4: 0})
        dequantised = ours(ids).logits
    assert (dequantised - theirs).abs().max() < 1e-4 * theirs.abs().max()
    assert (kernels - theirs).norm() < 0.02 * theirs.norm()


def test_reads_a_checkpoint_packed_by_compressed_tensors(base, tmp_path):
    """compressed-tensors' own compressor and config classes write the file; r1 reads the weights they hold."""
    ct = pytest.importorskip("compressed_tensors", reason="compressed-tensors not installed (r1[quant])")
    from compressed_tensors.compressors import BaseCompressor
    from compressed_tensors.quantization import QuantizationArgs, QuantizationConfig, QuantizationScheme
    from compressed_tensors.quantization.utils import calculate_qparams

    args = QuantizationArgs(num_bits=4, type="int", symmetric=True, strategy="group", group_size=32)
    scheme = QuantizationScheme(targets=["Linear"], weights=args)
    compressor = BaseCompressor.get_value_from_registry("pack-quantized")
    save_pretrained(base, tmp_path)
    state = {}
    with safe_open(str(tmp_path / "model.safetensors"), "pt") as f:
        for k in f.keys():  # noqa: SIM118
            state[k] = f.get_tensor(k)
    names = [k[: -len(".weight")] for k in state if k.endswith("_proj.weight") and k.startswith("model.layers.1.")]
    names = [n for n in names if not n.endswith("kv_b_proj")]
    for n in names:
        w = state.pop(n + ".weight")
        g = w.view(w.shape[0], -1, 32)
        scale, zp = calculate_qparams(g.amin(-1), g.amax(-1), args)
        out = compressor.compress({"weight": w, "weight_scale": scale, "weight_zero_point": zp}, scheme)
        state.update({f"{n}.{k}": v for k, v in out.items()})
    from safetensors.torch import save_file

    save_file(state, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    cfg = json.loads((tmp_path / "config.json").read_text())
    qc = QuantizationConfig(
        config_groups={"group_0": scheme}, format="pack-quantized", quantization_status="compressed",
        ignore=["lm_head", r"re:.*kv_b_proj$", r"re:.*mlp\.gate$"],
    )  # fmt: skip
    cfg["quantization_config"] = {"quant_method": "compressed-tensors", "version": ct.__version__}
    cfg["quantization_config"].update(qc.model_dump(mode="json", exclude=["quant_method"]))
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    model = load_pretrained(tmp_path)
    mods = quant.quantized_modules(model)
    assert sorted(mods) == sorted(names)
    for n in names:  # their scales (max/7.5 in fp32, not bf16-exact) are kept as they are
        m = model.get_submodule(n)
        dq = compressor.decompress(_local(state, n), scheme)["weight"]
        assert torch.equal(m.weight.dequantize(), dq), n


def _local(state: dict, prefix: str) -> dict:
    return {k[len(prefix) + 1 :]: v for k, v in state.items() if k.startswith(prefix + ".")}


# ============================================================================================ decoding
@pytest.mark.parametrize("bits", [8, 4])
def test_engine_decode_equals_the_module_path(folders, bits, monkeypatch):
    """Token by token on the cache (fused copies, expert stacks, the latent step) against one full forward of held-out
    text: exact up to fp32 rounding through dequantise + GEMM, within bf16 activation rounding through the kernels
    (a top-k routing near a tie can flip under that rounding, so random ids make a poor check)."""
    model = load_pretrained(folders[bits])
    ids = heldout_batch(1)[0][:, :40]
    with monkeypatch.context() as m, torch.no_grad():
        m.setattr(quant, "KERNEL_ROWS", {8: 0, 4: 0})  # the reference: every product through dequantise + GEMM
        full = model(ids).logits[0]

    def stepwise() -> torch.Tensor:
        cache = model.new_cache(1, 64)
        fused = model.fused_weights()
        out = []
        with torch.inference_mode():
            out.append(model.decode_step(ids[:, :8], torch.arange(8)[None], cache, fused)[0])
            for t in range(8, ids.shape[1]):
                out.append(model.decode_step(ids[:, t : t + 1], torch.tensor([[t]]), cache, fused)[0])
        return torch.cat(out)

    step = stepwise()
    assert (step - full).norm() < 0.01 * full.norm()
    assert (step.argmax(-1) == full.argmax(-1)).float().mean() > 0.95
    monkeypatch.setattr(quant, "KERNEL_ROWS", {8: 0, 4: 0})
    assert (stepwise() - full).abs().max() < 1e-4 * full.abs().max()


@pytest.mark.parametrize("bits", [8, 4])
def test_quantised_folder_speculates_with_its_full_precision_mtp(folders, bits):
    """MTP self-speculation on a quantised model: the draft module stays dense, the verify pass runs the int
    kernels (k + 1 rows), and greedy tokens are plain decoding's."""
    from r1.data.corpus import prompt_for
    from r1.engine import Engine, SamplingParams
    from r1.tasks.base import get_task

    prompts = [prompt_for(item) for item in get_task("modchain").generate(3, seed=5, difficulty="2-6", split="eval")]
    params = SamplingParams(temperature=0.0, max_tokens=24, ignore_eos=True)
    out = {}
    for mode in ("off", "on"):
        eng = Engine.from_pretrained(folders[bits], speculative=mode, max_batch=4, max_len=128)
        out[mode] = [c.samples[0].tokens for c in eng.generate(prompts, params)]
    assert quant.quantized_modules(eng.model) and not quant.quantized_modules(eng.model.mtp)
    assert eng.stats["spec_accepted_tokens"] > 0
    assert out["on"] == out["off"]


def test_chat_serve_eval_and_load_accept_the_folder(folders, tmp_path, capsys):
    import openai

    from r1 import load
    from r1.engine import Engine
    from r1.serve.app import create_app
    from r1.serve.cli import generation_defaults, serve_in_thread

    d = str(folders[8])
    assert cli(["chat", "--model", d, "-p", "1+2*3 mod 10", "--max-tokens", "16", "--seed", "1"]) == 0
    assert "[answer]" in capsys.readouterr().out
    out = tmp_path / "eval"
    argv = ["eval", "--task", "modchain", "--difficulty", "2-3", "--n-items", "4", "-k", "2", "--model", d]
    assert cli([*argv, "--no-progress", "--out", str(out)]) == 0
    assert "pass@1" in capsys.readouterr().out
    reply = load(d, max_len=128).chat([{"role": "user", "content": "2+3 mod 10"}], max_tokens=16, seed=0)
    assert reply.text
    engine = Engine.from_pretrained(d, max_batch=2, max_len=128)
    assert quant.quantized_modules(engine.model)
    with serve_in_thread(create_app(engine, "q", generation_defaults(d))) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=60)
        r = client.chat.completions.create(model="q", messages=[{"role": "user", "content": "1+1"}], max_tokens=8)
        assert r.choices[0].finish_reason in ("stop", "length")


@pytest.mark.slow  # a fresh interpreter importing torch and uvicorn: several seconds
def test_r1_serve_command_serves_the_folder(folders):
    import openai
    from serving import r1_serve

    args = ("--max-len", "128", "--max-batch", "2", "--threads", "1", "--log-level", "warning")
    with r1_serve(str(folders[4]), *args) as base:
        client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0, timeout=60)
        r = client.chat.completions.create(model="r1", messages=[{"role": "user", "content": "3*3 mod 10"}])
        assert r.choices[0].message.content is not None


# ============================================================================================ bad input
def test_quantize_cli_errors(folders, tmp_path, capsys):
    base = ["quantize", "--model", "base-tiny", "--out", str(tmp_path / "x")]
    assert cli([*base, "--bits", "8", "--group-size", "32"]) == 2
    assert "--group-size 32" in capsys.readouterr().err
    assert cli(["quantize", "--bits", "8", "--model", str(folders[8]), "--out", str(tmp_path / "y")]) == 2
    assert "already quantised" in capsys.readouterr().err


@pytest.mark.parametrize(
    "change, field",
    [
        (lambda q: q["config_groups"]["group_0"]["weights"].update(symmetric=False), "symmetric"),
        (lambda q: q["config_groups"]["group_0"].update(input_activations={"num_bits": 8}), "input_activations"),
        (lambda q: q["config_groups"]["group_0"]["weights"].update(num_bits=3), "weights"),
        (lambda q: q["config_groups"]["group_0"]["weights"].update(type="float"), "weights"),
        (lambda q: q.update(format="marlin-24"), "format"),
        (lambda q: q.update(kv_cache_scheme={"num_bits": 8}), "kv_cache_scheme"),
        (lambda q: q["config_groups"]["group_0"]["weights"].update(group_size=16), "group_size"),
    ],
)
def test_configs_r1_cannot_run_are_refused_naming_the_field(folders, tmp_path, change, field):
    cfg = json.loads((folders[4] / "config.json").read_text())
    change(cfg["quantization_config"])
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match=field):
        load_config(tmp_path)


def test_damaged_quantised_tensors_are_named(folders, tmp_path):
    import shutil

    from safetensors.torch import save_file

    d = tmp_path / "bad"
    shutil.copytree(folders[4], d)
    with safe_open(str(d / "model.safetensors"), "pt") as f:
        state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    name = "model.layers.2.self_attn.o_proj"
    good = state[name + ".weight_packed"]
    state[name + ".weight_packed"] = good[:, :-1].contiguous()
    save_file(state, str(d / "model.safetensors"))
    with pytest.raises(CheckpointError, match=rf"config.json: {name}.weight_packed: shape"):
        load_pretrained(d)
    state[name + ".weight_packed"] = good
    state[name + ".weight_shape"] = torch.tensor([256, 64])  # consistent with itself, not with the model
    state[name + ".weight_scale"] = state[name + ".weight_scale"].reshape(256, 2).contiguous()
    state[name + ".weight_packed"] = good.reshape(256, -1)[:, :8].contiguous()
    save_file(state, str(d / "model.safetensors"))
    with pytest.raises(CheckpointError, match=rf"{name} holds a \[256, 64\] weight"):
        load_pretrained(d)
    with pytest.raises(CheckpointError, match="float32 or bfloat16"):
        load_pretrained(folders[4], dtype=torch.float16)


def test_module_state_dict_is_the_checkpoint_layout():
    lin = torch.nn.Linear(64, 32, bias=True)
    q = QuantizedLinear.from_linear(lin, Scheme(4, 32))
    sd = q.state_dict()
    assert set(sd) == {"bias", "weight_packed", "weight_scale", "weight_shape"}
    empty = QuantizedLinear(64, 32, Scheme(4, 32), bias=True)
    assert {k: tuple(v.shape) for k, v in empty.state_dict().items()} == {k: tuple(v.shape) for k, v in sd.items()}
    empty.load_state_dict(sd, assign=True)
    x = torch.randn(3, 64)
    assert torch.equal(empty(x), q(x))


def test_config_targets_rank_as_in_compressed_tensors():
    """An exact name outranks a `re:` pattern, which outranks the class `Linear`; `ignore` wins over all."""
    groups = [
        (["Linear"], Scheme(4, 128), "pack-quantized"),
        (["re:.*down_proj$"], Scheme(4, 32), "pack-quantized"),
        (["model.layers.0.mlp.down_proj"], Scheme(8), "int-quantized"),
    ]
    ignore = [r"re:.*\.o_proj$", "lm_head"]
    assert quant_config.scheme_for("model.layers.0.mlp.down_proj", groups, ignore) == (Scheme(8), "int-quantized")
    assert quant_config.scheme_for("model.layers.1.mlp.down_proj", groups, ignore)[0] == Scheme(4, 32)
    assert quant_config.scheme_for("model.layers.1.mlp.up_proj", groups, ignore)[0] == Scheme(4, 128)
    assert quant_config.scheme_for("model.layers.1.self_attn.o_proj", groups, ignore) is None
    assert quant_config.scheme_for("lm_head", groups, ignore) is None
