"""The model's maths: routing rules, dispatch, losses, balancing, attention paths, caches, YaRN, configs."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from r1.cli import main as cli
from r1.errors import ConfigError
from r1.model import PRESETS, ModelConfig, Transformer, preset
from r1.model.info import model_info
from r1.model.moe import MoE
from r1.model.rope import inv_frequencies


def tiny(**kw) -> ModelConfig:
    return preset("tiny", vocab_size=97, max_position_embeddings=128, initializer_range=0.1, **kw)


def model_of(cfg: ModelConfig, seed: int = 0) -> Transformer:
    torch.manual_seed(seed)
    return Transformer(cfg).eval()


# ---------------------------------------------------------------------------------------------- config
@pytest.mark.parametrize(
    "change, field, rule",
    [
        (dict(topk_group=1, num_experts_per_tok=6), "topk_group", "fewer than num_experts_per_tok"),
        (dict(n_group=3), "n_group", "must divide n_routed_experts=16"),
        (dict(num_experts_per_tok=17), "num_experts_per_tok", "must be in [1, n_routed_experts=16]"),
        (dict(qk_rope_head_dim=15), "qk_rope_head_dim", "must be even"),
        (dict(scoring_func="softmax"), "scoring_func", "deepseek_v3 routes with 'sigmoid' scores"),
        (dict(hidden_size=0), "hidden_size", "must be a positive integer"),
        (dict(first_k_dense_replace=9), "first_k_dense_replace", "must be in [0, num_hidden_layers=4]"),
        (dict(eos_token_id=5000), "eos_token_id", "must be a token id"),
    ],
)
def test_invalid_config_names_field_and_rule(change, field, rule):
    with pytest.raises(ValueError) as err:
        preset("tiny", **change)
    assert f"{field}=" in str(err.value) and rule in str(err.value)


def test_dense_config_rules():
    with pytest.raises(ConfigError, match="num_key_value_heads=3: must divide num_attention_heads=4"):
        preset("tiny-llama", num_key_value_heads=3)
    with pytest.raises(ConfigError, match="unknown field"):
        preset("tiny", not_a_field=1)
    with pytest.raises(ConfigError, match="valid presets"):
        preset("gpt-5")


def test_hf_test_config_routing_is_rejected():
    # transformers' own tiny test config keeps 1 group of 4 experts but asks for top-8: it would pick masked experts
    with pytest.raises(ConfigError, match="topk_group"):
        preset("tiny", n_routed_experts=8, n_group=2, topk_group=1, num_experts_per_tok=8)


def test_presets_are_valid_and_sized():
    for name in PRESETS:
        cfg = preset(name)
        assert cfg.to_hf_dict()["model_type"] == cfg.model_type
        assert ModelConfig.from_hf_dict(cfg.to_hf_dict()) == cfg
    assert 1e6 < model_info(preset("tiny")).total < 1e7
    assert 1e7 < model_info(preset("small")).total < 1e8


def test_presets_are_the_recorded_configs():
    """Every preset field as recorded in tests/fixtures/model_presets.json (written from the presets when they were
    Python constructors, before they became r1/model/presets/*.json): a changed preset is a deliberate fixture edit."""
    recorded = json.loads((Path(__file__).parent / "fixtures" / "model_presets.json").read_text())
    assert sorted(PRESETS) == sorted(recorded)
    for name in PRESETS:
        assert dataclasses.asdict(preset(name)) == recorded[name], name
        # the file holds nothing the reader passes over: it is what `r1 model config` writes back
        assert json.loads(PRESETS[name].read_text()) == preset(name).to_hf_dict(), name


def test_671b_counts_match_the_report(capsys):
    info = model_info(preset("deepseek-v3-671b"))
    assert abs(info.total / 671e9 - 1) < 0.01
    assert abs(info.active / 37e9 - 1) < 0.03  # 37.55B computed; the report rounds to 37B
    assert info.total == 671_026_419_200
    assert abs(info.mtp / 11.61e9 - 1) < 0.01
    assert info.kv_elements_per_token_per_layer == {"mla_absorbed": 576, "mla_naive": 40960, "mha_same_heads": 32768}
    assert abs(model_info(preset("deepseek-v2-lite")).total / 15.706e9 - 1) < 0.001
    assert cli(["model", "info", "--preset", "deepseek-v3-671b"]) == 0
    out = capsys.readouterr().out
    assert "671.03B" in out and "37.55B" in out and "576" in out


def test_softmax_scale_and_yarn_frequencies():
    v3 = preset("deepseek-v3-671b")
    assert v3.softmax_scale == pytest.approx(0.1352338, abs=1e-7)
    assert preset("deepseek-v2-lite").softmax_scale == pytest.approx(0.1147214, abs=1e-7)
    freqs, factor = inv_frequencies(v3)
    base = 1.0 / 10000 ** (torch.arange(0, 64, 2, dtype=torch.float32) / 64)
    assert factor == 1.0  # mscale / mscale_all_dim = 1: the temperature goes into the softmax scale instead
    assert torch.allclose(freqs[:11], base[:11])  # low = 10: high frequencies extrapolate
    assert torch.allclose(freqs[23:], base[23:] / 40)  # high = 23: low frequencies interpolate
    assert ((freqs[11:23] < base[11:23]) & (freqs[11:23] > base[11:23] / 40)).all()
    assert preset("tiny").softmax_scale == pytest.approx(1 / math.sqrt(48))


# ---------------------------------------------------------------------------------------------- routing
def test_bias_changes_selection_but_not_weights():
    cfg = tiny(n_group=1, topk_group=1)
    moe = model_of(cfg).moe_layers()[0]
    x = torch.randn(64, cfg.hidden_size)
    scores, idx, w = moe.gate(x)
    moe.gate.e_score_correction_bias[5] = 10.0  # expert 5 now always wins a slot
    scores2, idx2, w2 = moe.gate(x)
    assert torch.equal(scores, scores2)
    assert (idx2 == 5).any(dim=1).all()
    raw = scores.gather(1, idx2)
    assert torch.allclose(w2, raw / raw.sum(-1, keepdim=True) * cfg.routed_scaling_factor)


def test_group_limited_routing_masks_other_groups():
    cfg = tiny()  # 16 experts, 4 groups of 4, keep 2
    moe = model_of(cfg).moe_layers()[0]
    x = torch.randn(256, cfg.hidden_size)
    scores, idx, _ = moe.gate(x)
    z = scores + moe.gate.e_score_correction_bias
    group_score = z.view(-1, 4, 4).topk(2, dim=-1).values.sum(-1)
    kept = group_score.topk(2, dim=-1).indices
    chosen_groups = idx // 4
    for t in range(x.shape[0]):
        assert set(chosen_groups[t].tolist()) <= set(kept[t].tolist())
    # and −∞ masking: even when every corrected score is negative, masked experts stay out
    moe.gate.e_score_correction_bias.fill_(-5.0)
    _, idx_neg, _ = moe.gate(x)
    group_neg = (scores - 5).view(-1, 4, 4).topk(2, dim=-1).values.sum(-1).topk(2, dim=-1).indices
    for t in range(x.shape[0]):
        assert set((idx_neg[t] // 4).tolist()) <= set(group_neg[t].tolist())


def test_sorted_dispatch_equals_dense_reference():
    cfg = tiny()
    moe: MoE = model_of(cfg).moe_layers()[0]
    x = torch.randn(2, 9, cfg.hidden_size)
    y = moe(x)
    x2 = x.reshape(-1, cfg.hidden_size)
    _, idx, w = moe.gate(x2)
    ref = moe.shared_experts(x2)
    for t in range(x2.shape[0]):  # every expert on its tokens, the slow obvious way
        for j in range(cfg.num_experts_per_tok):
            ref[t] += w[t, j] * moe.experts[int(idx[t, j])](x2[t])
    assert torch.allclose(y.reshape(-1, cfg.hidden_size), ref, atol=1e-5)
    assert moe.last_counts.sum() == x2.shape[0] * cfg.num_experts_per_tok


def test_padded_and_looped_expert_paths_agree():
    cfg = tiny()
    moe: MoE = model_of(cfg).moe_layers()[0]
    x = torch.randn(300, cfg.hidden_size, requires_grad=True)
    _, idx, w = moe.gate(x)
    flat = idx.flatten()
    counts = torch.bincount(flat, minlength=cfg.n_routed_experts).tolist()
    looped = moe._run_looped(x, flat, w.flatten(), counts)
    padded = moe._run_padded(x, flat, w.flatten(), counts)
    assert torch.allclose(looped, padded, atol=1e-5)
    # padding rows (copies of token 0) must not leak into any gradient
    g = torch.randn_like(looped)
    params = [x, *moe.parameters()]
    grads_l = torch.autograd.grad(looped, params, g, allow_unused=True, retain_graph=True)
    grads_p = torch.autograd.grad(padded, params, g, allow_unused=True)
    for a, b in zip(grads_l, grads_p):
        assert (a is None and b is None) or torch.allclose(a, b, atol=1e-5)


def test_sequence_balance_loss_formula_and_gradient_path():
    cfg = tiny(seq_aux_loss_alpha=0.01)
    moe = model_of(cfg).moe_layers()[0].train()
    x = torch.randn(3, 7, cfg.hidden_size)
    moe(x)
    got = moe.last_balance_loss
    scores, idx, _ = moe.gate(x.reshape(-1, cfg.hidden_size))
    E, K, T = cfg.n_routed_experts, cfg.num_experts_per_tok, 7
    total = 0.0
    for b in range(3):
        s, i = scores.view(3, T, E)[b], idx.view(3, T, K)[b]
        f = torch.stack([(i == e).any(-1).float().sum() for e in range(E)]) * E / (K * T)
        p = (s / s.sum(-1, keepdim=True)).mean(0)
        total += (f * p).sum()
    assert got.item() == pytest.approx(0.01 * total.item() / 3, rel=1e-5)
    got.backward()
    assert moe.gate.weight.grad.abs().sum() > 0  # through P only: f is a count


def test_bias_update_rule():
    model = model_of(tiny())
    counts = torch.zeros(len(model.moe_layers()), 16)
    counts[:, 0] = 100  # over-loaded
    counts[:, 1:3] = 10
    model.update_router_bias(counts, gamma=0.001)
    b = model.moe_layers()[0].gate.e_score_correction_bias
    mean = counts[0].mean()
    assert b[0].item() == pytest.approx(-0.001) and b[3].item() == pytest.approx(0.001)
    assert b[1].item() == pytest.approx(0.001 if 10 < mean else -0.001)
    assert b.dtype == torch.float32 and not any(b is p for p in model.parameters())


# ---------------------------------------------------------------------------------------------- forward
def test_losses_compose_and_counts_are_reported():
    cfg = tiny(seq_aux_loss_alpha=1e-3, mtp_loss_weight=0.3)
    model = model_of(cfg).train()
    ids = torch.randint(0, cfg.vocab_size, (2, 33))
    out = model(ids, labels=ids)
    assert out.loss.item() == pytest.approx((out.lm_loss + 0.3 * out.mtp_loss + out.balance_loss).item(), rel=1e-6)
    manual = F.cross_entropy(out.logits[:, :-1].reshape(-1, cfg.vocab_size), ids[:, 1:].reshape(-1))
    assert out.lm_loss.item() == pytest.approx(manual.item(), rel=1e-6)
    n_moe = cfg.num_hidden_layers - cfg.first_k_dense_replace + cfg.num_nextn_predict_layers
    assert out.expert_counts.shape == (n_moe, cfg.n_routed_experts)
    assert out.expert_counts[0].sum() == 2 * 33 * cfg.num_experts_per_tok
    assert out.expert_counts[-1].sum() == 2 * 32 * cfg.num_experts_per_tok  # the MTP block sees T − 1 tokens
    out.loss.backward()
    assert model.mtp[0].eh_proj.weight.grad.abs().sum() > 0


def test_mtp_loss_matches_hand_computation():
    cfg = tiny(seq_aux_loss_alpha=0.0)
    model = model_of(cfg)
    ids = torch.randint(0, cfg.vocab_size, (2, 12))
    out = model(ids, labels=ids)
    m = model.mtp[0]
    emb = model.model.embed_tokens(ids[:, 1:])
    x = m.eh_proj(torch.cat((m.enorm(emb), m.hnorm(out.hidden[:, :-1])), -1))
    h = model(ids[:, :11]).hidden  # reuse the rope/mask plumbing for positions 0..10
    del h
    from r1.model.rope import rope_cos_sin

    inv, fac = model.rope(ids.device)
    cos, sin = rope_cos_sin(torch.arange(11).expand(2, 11), inv, fac)
    y = super(type(m), m).forward(x, cos, sin, None, torch.arange(11).expand(2, 11))
    logits = model.lm_head(m.shared_head.norm(y))
    ref = F.cross_entropy(logits[:, :-1].reshape(-1, cfg.vocab_size), ids[:, 2:].reshape(-1))
    assert out.mtp_loss.item() == pytest.approx(ref.item(), rel=1e-6)


def test_ignored_labels_and_empty_targets():
    cfg = tiny()
    model = model_of(cfg)
    ids = torch.randint(0, cfg.vocab_size, (1, 10))
    labels = ids.clone()
    labels[:, :6] = -100
    out = model(ids, labels=labels)
    ref = F.cross_entropy(out.logits[0, 5:-1], ids[0, 6:])
    assert out.lm_loss.item() == pytest.approx(ref.item(), rel=1e-6)
    none = model(ids, labels=torch.full_like(ids, -100))
    assert none.lm_loss.item() == 0.0


@pytest.mark.parametrize("name", ["tiny", "tiny-qwen2"])
def test_packed_documents_do_not_attend_across(name):
    cfg = preset(name, vocab_size=97, max_position_embeddings=128)
    model = model_of(cfg)
    a, b = torch.randint(0, 97, (1, 7)), torch.randint(0, 97, (1, 5))
    packed = torch.cat((a, b), 1)
    seg = torch.tensor([[0] * 7 + [1] * 5])
    pos = torch.cat((torch.arange(7), torch.arange(5)))[None]
    with torch.no_grad():
        got = model(packed, positions=pos, segment_ids=seg).logits
        ref = torch.cat((model(a).logits, model(b).logits), 1)
    assert torch.allclose(got, ref, atol=1e-5)


def _doc_mask(seg: torch.Tensor) -> torch.Tensor:
    T = seg.shape[1]
    return (torch.ones(T, T, dtype=torch.bool).tril() & (seg[:, :, None] == seg[:, None, :]))[:, None]


@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("T, block, recompute", [(70, 16, False), (70, 16, True), (64, 64, False), (5, 32, False)])
def test_blocked_causal_attention_equals_sdpa(packed, T, block, recompute, monkeypatch):
    from r1.model.kernels import attention

    if recompute:
        monkeypatch.setattr(attention, "_SAVE_PROBS_MAX", 0)
    torch.manual_seed(0)
    B, H = 3, 2
    q, k = torch.randn(B, H, T, 12), torch.randn(B, H, T, 12)
    v = torch.randn(B, H, T, 8)  # narrower than q/k, as MLA's v_head_dim
    seg = torch.randint(0, 3, (B, T)).sort(-1).values
    mask = _doc_mask(seg) if packed else None
    args = [x.requires_grad_() for x in (q, k, v)]
    got = attention.blocked_causal_attention(*args, 0.3, mask, block=block)
    ref = F.scaled_dot_product_attention(
        *args, attn_mask=_doc_mask(seg) if packed else None, is_causal=not packed, scale=0.3
    )
    g = torch.randn_like(ref)
    grads = torch.autograd.grad(got, args, g)
    ref_grads = torch.autograd.grad(ref, args, g)
    assert torch.allclose(got, ref, atol=1e-5)
    for a, b in zip(grads, ref_grads):
        assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("off, T, block", [(9, 20, 8), (5, 7, 32), (16, 64, 16)])
def test_blocked_attention_with_shared_keys_equals_sdpa(off, T, block):
    """Keys longer than queries: the first `off` (a shared prompt, partly padding) open to every query."""
    from r1.model.kernels import attention

    torch.manual_seed(0)
    B, H, S = 3, 2, off + T
    q, k, v = torch.randn(B, H, T, 12), torch.randn(B, H, S, 12), torch.randn(B, H, S, 8)
    lens = torch.tensor([off, off - 2, 1])  # real prompt keys per row; the rest of the first `off` is padding
    prompt = torch.arange(off)[None, :] < lens[:, None]
    mask = torch.cat(
        (prompt[:, None, :].expand(B, T, off), torch.ones(T, T, dtype=torch.bool).tril().expand(B, T, T)), dim=-1
    )[:, None]
    args = [x.requires_grad_() for x in (q, k, v)]
    ref = F.scaled_dot_product_attention(*args, attn_mask=mask, scale=0.3)
    g = torch.randn_like(ref)
    ref_grads = torch.autograd.grad(ref, args, g)
    # the full mask, or only the shared keys' padding (the causal part is built in)
    for got in (
        attention.blocked_causal_attention(*args, 0.3, mask, block=block),
        attention.blocked_causal_attention(*args, 0.3, block=block, shared_keys_BK=prompt),
    ):
        assert torch.allclose(got, ref, atol=1e-5)
        for a, b in zip(torch.autograd.grad(got, args, g), ref_grads):
            assert torch.allclose(a, b, atol=1e-5)


def test_blocked_causal_attention_gradcheck():
    from r1.model.kernels.attention import blocked_causal_attention

    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 1, 7, d, dtype=torch.float64, requires_grad=True) for d in (3, 3, 2))
    mask = _doc_mask(torch.tensor([[0] * 3 + [1] * 4, [0] * 7]))
    f = lambda *t: blocked_causal_attention(*t, 0.5, mask, block=3)  # noqa: E731
    assert torch.autograd.gradcheck(f, (q, k, v), fast_mode=True)


def test_blocked_causal_attention_under_autocast_is_close_to_fp32():
    from r1.model.kernels.attention import blocked_causal_attention

    torch.manual_seed(0)
    q, k, v = torch.randn(2, 4, 100, 48), torch.randn(2, 4, 100, 48), torch.randn(2, 4, 100, 32)
    ref = blocked_causal_attention(q, k, v, 48**-0.5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = blocked_causal_attention(q, k, v, 48**-0.5)
    assert low.dtype == torch.bfloat16 and (low.float() - ref).abs().max() < 0.05


def test_rmsnorm_gradcheck_and_reference():
    from r1.model.layers import RMSNorm

    torch.manual_seed(0)
    norm = RMSNorm(8, eps=1e-6).double()
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
    x = torch.randn(3, 5, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(norm, (x,))
    ref = norm.weight * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)
    assert torch.allclose(norm(x), ref, atol=1e-12)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # a bf16 input is normalized in fp32, the output stays fp32
        y = RMSNorm(8)(x.detach().float().bfloat16())
    assert y.dtype == torch.float32


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_fused_lm_head_cross_entropy(dtype, monkeypatch):
    from r1.model.kernels import heads

    monkeypatch.setattr(heads, "_CE_CHUNK", 97 * 4)  # several row chunks, the last one partial
    cfg = tiny()
    model = model_of(cfg).to(dtype)
    ids = torch.randint(0, cfg.vocab_size, (2, 11))
    labels = ids.clone()
    labels[0, :4] = -100
    h = torch.randn(2, 11, cfg.hidden_size, dtype=dtype, requires_grad=True)
    logits, loss = model._logits_and_loss(h, labels)
    ref_logits = model.lm_head(h)
    ref = F.cross_entropy(ref_logits[:, :-1].reshape(-1, cfg.vocab_size), labels[:, 1:].reshape(-1))
    assert torch.allclose(logits, ref_logits) and torch.allclose(loss, ref)
    with torch.no_grad():
        assert torch.allclose(model._logits_and_loss(h, labels)[1], ref)
    # gradients, with the loss scaled and a second objective reaching the head through the logits
    w = model.lm_head.weight
    extra = torch.randn_like(logits)
    got = torch.autograd.grad(0.7 * loss + (logits * extra).sum(), (h, w))
    want = torch.autograd.grad(0.7 * ref + (ref_logits * extra).sum(), (h, w))
    for a, b in zip(got, want):
        assert torch.allclose(a, b, atol=1e-6 if dtype == torch.float32 else 1e-12)
    if dtype == torch.float64:
        h2 = h.detach()[:, :4].requires_grad_()
        assert torch.autograd.gradcheck(lambda a: model._logits_and_loss(a, labels[:, :4])[1], (h2,), fast_mode=True)


def test_fused_lm_head_cross_entropy_bf16_autocast_matches_unfused():
    cfg = tiny()
    model = model_of(cfg)
    ids = torch.randint(0, cfg.vocab_size, (2, 9))
    h = torch.randn(2, 9, cfg.hidden_size, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits, loss = model._logits_and_loss(h, ids)
        ref_logits = model.lm_head(h)
    ref = F.cross_entropy(ref_logits[:, :-1].float().reshape(-1, cfg.vocab_size), ids[:, 1:].reshape(-1))
    assert logits.dtype == torch.bfloat16 and torch.equal(logits, ref_logits)
    assert loss.item() == pytest.approx(ref.item(), rel=1e-5)
    g, g_ref = torch.autograd.grad(loss, h)[0], torch.autograd.grad(ref, h)[0]
    assert (g - g_ref).abs().max() <= 0.02 * g_ref.abs().max()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_fused_token_logprob_head(dtype, monkeypatch):
    """log π(target), its entropy and the gradient, against log_softmax over full logits."""
    from r1.model.kernels import heads

    monkeypatch.setattr(heads, "_CE_CHUNK", 97 * 4)  # several row chunks, the last one partial
    torch.manual_seed(0)
    cfg = tiny()
    w = (torch.randn(cfg.vocab_size, 16, dtype=dtype) * 0.5).requires_grad_()
    h = torch.randn(11, 16, dtype=dtype, requires_grad=True)
    target = torch.randint(0, cfg.vocab_size, (11,))
    logp, ent = heads.LinearLogProb.apply(h, w, target, True, True)
    full = F.linear(h, w).log_softmax(-1)
    ref = full.gather(1, target[:, None])[:, 0]
    ref_ent = -(full.exp() * full).sum(-1)
    tol = 1e-6 if dtype == torch.float32 else 1e-12
    assert torch.allclose(logp, ref, atol=tol) and torch.allclose(ent, ref_ent.detach(), atol=tol)
    assert not ent.requires_grad
    g = torch.randn(11, dtype=dtype)
    for a, b in zip(torch.autograd.grad((logp * g).sum(), (h, w)), torch.autograd.grad((ref * g).sum(), (h, w))):
        assert torch.allclose(a, b, atol=tol)
    with torch.no_grad():  # no gradient, no entropy: logsumexp and a gather
        assert torch.allclose(heads.LinearLogProb.apply(h, w, target, False, False)[0], ref, atol=tol)
    if dtype == torch.float64:
        f = lambda a, b: heads.LinearLogProb.apply(a, b, target, True, False)[0]  # noqa: E731
        assert torch.autograd.gradcheck(f, (h, w), fast_mode=True)


def test_fused_token_logprob_head_bf16_autocast_is_close():
    cfg = tiny()
    model = model_of(cfg)
    h = torch.randn(1, 9, cfg.hidden_size, requires_grad=True)
    index, target = torch.arange(9), torch.randint(0, cfg.vocab_size, (9,))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logp, ent = model._score(h, index, target, True)
    ref = model.lm_head(h[0]).float().log_softmax(-1).gather(1, target[:, None])[:, 0]
    assert logp.dtype == torch.float32 and (logp - ref).abs().max() < 0.05
    g, g_ref = torch.autograd.grad(logp.sum(), h)[0], torch.autograd.grad(ref.sum(), h)[0]
    assert (g - g_ref).abs().max() <= 0.02 * g_ref.abs().max()


@pytest.mark.parametrize("name", ["tiny", "tiny-qwen2"])
def test_shared_prompt_forward_equals_separate_rows(name):
    """Completions of a few prompts, the prompts run once: same log-probs and gradients as full rows."""
    from r1.model.prefix import share_prompts
    from r1.train.grpo.rollout import completion_logprobs

    cfg = preset(name, vocab_size=97, max_position_embeddings=128, initializer_range=0.1)
    model = model_of(cfg).train()
    torch.manual_seed(1)
    prompts = [torch.randint(1, 97, (n,)) for n in (5, 9, 7)]
    rows = [(p, torch.randint(1, 97, (int(c),))) for p in prompts for c in torch.randint(1, 10, (4,))]
    S = max(len(p) + len(c) for p, c in rows)
    ids = torch.zeros(len(rows), S, dtype=torch.long)
    for i, (p, c) in enumerate(rows):
        ids[i, : len(p) + len(c)] = torch.cat((p, c))
    pl, cl = torch.tensor([len(p) for p, _ in rows]), torch.tensor([len(c) for _, c in rows])
    layout = share_prompts(ids, pl, cl)
    assert layout is not None and layout.prompt_ids.shape[0] == 3  # 12 rows, 3 distinct prompts
    assert share_prompts(ids[::4], pl[::4], cl[::4]) is None  # one row per prompt: nothing to share
    # the CPU kernel and the mask the SDPA (GPU) path uses agree
    N, H = layout.flat_ids().shape[1], 2
    q, k, v = torch.randn(1, N, H, 8), torch.randn(1, N, H, 8), torch.randn(1, N, H, 6)
    got = layout.attend(q, k, v, 0.4)[0, layout.split :]
    P, Tp = layout.prompt_ids.shape
    B, Tc = layout.completion_ids.shape
    kp, vp = (x[0, : layout.split].view(P, Tp, H, -1)[layout.row_prompt] for x in (k, v))
    kc, vc = (x[0, layout.split :].view(B, Tc, H, -1) for x in (k, v))
    qc = q[0, layout.split :].view(B, Tc, H, -1)
    want = F.scaled_dot_product_attention(
        qc.transpose(1, 2),
        torch.cat((kp, kc), 1).transpose(1, 2),
        torch.cat((vp, vc), 1).transpose(1, 2),
        layout.completion_mask(),
        scale=0.4,
    )
    assert torch.allclose(got.view(B, Tc, H, -1), want.transpose(1, 2), atol=1e-5)
    adv = torch.randn(len(rows), int(cl.max()))
    results = []
    for share in (False, True):
        model.zero_grad(set_to_none=True)
        logp, ent, _ = completion_logprobs(model, ids, pl, cl, entropy=True, share_prompts=share)
        (logp * adv).sum().backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        results.append((logp.detach(), ent, grads))
    (a, ea, ga), (b, eb, gb) = results
    full = model(ids).logits.log_softmax(-1)
    for r in range(len(rows)):  # and both are what the full logits say
        n = int(cl[r])
        want = full[r, pl[r] - 1 : pl[r] - 1 + n].gather(1, ids[r, pl[r] : pl[r] + n, None])[:, 0]
        assert torch.allclose(a[r, :n], want, atol=1e-5) and (a[r, n:] == 0).all()
    assert torch.allclose(a, b, atol=1e-5) and torch.allclose(ea, eb, atol=1e-5)
    assert ga.keys() == gb.keys()
    for k in ga:
        assert (ga[k] - gb[k]).abs().max() <= 1e-5 * ga[k].abs().max(), k  # fp32 rounding, summed differently


@pytest.mark.parametrize("rope", [None, "yarn"])
def test_absorbed_and_naive_mla_agree(rope):
    scaling = None
    if rope:
        scaling = dict(type="yarn", factor=4.0, original_max_position_embeddings=32, mscale=1.0, mscale_all_dim=1.0)
    cfg = tiny(rope_scaling=scaling)
    model = model_of(cfg).double()
    ids = torch.randint(0, cfg.vocab_size, (2, 24))
    with torch.no_grad():
        naive = model(ids).logits
        model.set_mla_impl("absorb")
        absorbed = model(ids).logits
    assert (naive - absorbed).abs().max().item() < 1e-10


@pytest.mark.parametrize("name,impl", [("tiny", "absorb"), ("tiny", "naive"), ("tiny-llama", "gqa")])
def test_cached_decoding_equals_full_forward(name, impl):
    cfg = preset(name, vocab_size=97, max_position_embeddings=128)
    model = model_of(cfg)
    ids = torch.randint(0, 97, (3, 20))
    with torch.no_grad():
        full = model(ids).logits
        cache = model.new_cache(3, 32, mla_impl=impl if impl != "gqa" else "absorb")
        pre = model(ids[:, :12], positions=torch.arange(12).expand(3, 12), cache=cache).logits
        steps = [model(ids[:, t : t + 1], positions=torch.full((3, 1), t), cache=cache).logits for t in range(12, 20)]
    assert torch.allclose(torch.cat([pre, *steps], 1), full, atol=1e-5)


def test_absorbed_cache_holds_only_latent_and_rope_key():
    cfg = preset("deepseek-v3-671b")
    from r1.model.cache import KVCache

    assert KVCache.slot_shapes(cfg, "absorb") == [(576,)]
    small = tiny()
    cache = model_of(small).new_cache(2, 16, dtype=torch.bfloat16)
    assert cache.bytes_per_token() == (small.kv_lora_rank + small.qk_rope_head_dim) * 2 * small.num_hidden_layers


def test_rows_advance_independently_in_the_cache():
    cfg = tiny()
    model = model_of(cfg)
    a, b = torch.randint(0, 97, (1, 9)), torch.randint(0, 97, (1, 4))
    with torch.no_grad():
        ref_a, ref_b = model(a).logits[0, -1], model(b).logits[0, -1]
        cache = model.new_cache(2, 16)
        padded = torch.cat((a, torch.cat((b, torch.zeros(1, 5, dtype=torch.long)), 1)))
        model(padded, cache=cache)  # row 1's tail is junk beyond its length; later writes overwrite it
        nxt = torch.tensor([[a[0, -1]], [b[0, -1]]])
        # re-feed each row's last token at its own position: only slots ≤ position are visible
        out = model(nxt, positions=torch.tensor([[8], [3]]), cache=cache).logits[:, -1]
    assert torch.allclose(out[0], ref_a, atol=1e-5) and torch.allclose(out[1], ref_b, atol=1e-5)


def test_meta_model_skips_initialisers_and_restores_them(monkeypatch):
    """Building on meta runs no parameter initialiser (on meta they import torch._dynamo: ~1 s per process)."""
    import subprocess
    import sys

    from torch import nn

    from r1.model.transformer import meta_model

    code = (
        "import sys; from r1.model.checkpoint import load_pretrained; from r1.model.info import model_info; "
        "from r1.model import preset; m = load_pretrained('r1/assets/base-tiny'); "
        "n = model_info(preset('deepseek-v3-671b')).total; "
        "print(n, 'torch._dynamo' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["671026419200", "False"]
    before = nn.Linear.reset_parameters, nn.Embedding.reset_parameters
    model = meta_model(preset("tiny"))
    assert all(p.is_meta for p in model.parameters())
    assert (nn.Linear.reset_parameters, nn.Embedding.reset_parameters) == before

    def broken(cfg):
        raise RuntimeError("build failed")

    monkeypatch.setattr("r1.model.transformer.Transformer", broken)
    with pytest.raises(RuntimeError, match="build failed"):
        meta_model(preset("tiny"))
    assert (nn.Linear.reset_parameters, nn.Embedding.reset_parameters) == before


@pytest.mark.parametrize("name", ["tiny", "small", "deepseek-v2-lite", "qwen2.5-1.5b", "tiny-qwen3", "tiny-llama"])
def test_model_info_counts_the_whole_module_tree(name):
    """model_info builds one decoder layer per kind; the full tree has exactly the counted tensors."""
    from r1.model.transformer import meta_model

    cfg = preset(name)
    model = meta_model(cfg)
    info = model_info(cfg)
    params = sum(p.numel() for p in model.parameters()) - sum(p.numel() for p in model.mtp.parameters())
    buffers = sum(b.numel() for b in model.buffers()) - sum(b.numel() for b in model.mtp.buffers())
    assert (info.parameters, info.buffers) == (params, buffers)
    assert info.mtp == sum(p.numel() for p in model.mtp.parameters()) + sum(b.numel() for b in model.mtp.buffers())
    routed = [m for m in model.moe_layers() if m not in [layer.mlp for layer in model.mtp]]
    expert_tensors = sum(p.numel() for m in routed for p in [*m.experts.parameters(), *m.experts.buffers()])
    assert info.routed_experts == expert_tensors


# ---------------------------------------------------------------------------------------------- structure
def _imports(package: str) -> dict[str, set[str]]:
    """Module → the modules of `package` it imports anywhere in its body (function-level imports included)."""
    import ast
    from pathlib import Path

    import r1

    base = Path(r1.__file__).parent.parent
    files = {".".join(p.relative_to(base).with_suffix("").parts).removesuffix(".__init__"): p
             for p in (base / package.replace(".", "/")).rglob("*.py")}  # fmt: skip
    graph = {}
    for name, path in files.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in files else node.module
                         for a in node.names]  # fmt: skip
            found.update(n for n in names if n in files and n != name)
        graph[name] = found
    return graph


@pytest.mark.parametrize("package", ["r1.model", "r1.engine", "r1"])
def test_no_import_cycles(package):
    graph = _imports(package)
    done: set[str] = set()

    def visit(m: str, path: list[str]) -> None:
        if m in path:
            raise AssertionError("import cycle: " + " -> ".join([*path[path.index(m) :], m]))
        if m not in done:
            for n in sorted(graph[m]):
                visit(n, [*path, m])
            done.add(m)

    for m in sorted(graph):
        visit(m, [])
    seen = {
        "r1.model": ("r1.model.prefix", "r1.model.kernels.attention"),
        "r1.engine": ("r1.engine.engine", "r1.engine.scheduler"),
        "r1": ("r1.tasks.reasoning_gym", "r1.tasks.base"),
    }
    assert seen[package][1] in graph[seen[package][0]]  # the scan sees what it should


@pytest.mark.parametrize(
    ("name", "extra"),
    [
        ("tiny", {}),
        ("tiny-qwen3", {"attention_bias": True}),
        ("tiny-llama", {"attention_bias": True, "mlp_bias": True}),
    ],
    ids=["deepseek", "qwen3-biases", "llama-biases"],
)
def test_every_path_reads_weights_through_the_accessor(name, extra, monkeypatch):
    """With `r1.model.weights.weight` answering 2·W, every path must compute what a model with doubled weights
    computes: a kernel that read `.weight` itself (or a copy built from it) would see W and differ."""
    import copy
    import sys

    from r1.model import weights

    model = model_of(preset(name, vocab_size=97, max_position_embeddings=64, initializer_range=0.1, **extra))
    doubled = copy.deepcopy(model)
    with torch.no_grad():
        for n, p in doubled.named_parameters():
            if n.endswith("weight") and "embed_tokens" not in n:  # embeddings are looked up, not multiplied
                p.mul_(2)
    ids = torch.randint(0, 97, (3, 6), generator=torch.Generator().manual_seed(0))
    pos = torch.arange(6).expand(3, 6)

    def run(m):
        out = m.train()(ids, labels=ids)  # training: fused CE head, MTP, padded / looped experts
        m.eval()
        fused = m.fused_weights(head_dtype=torch.bfloat16)
        with torch.inference_mode():
            score = m(ids, score=(torch.arange(5), ids[0, 1:])).token_logprobs  # the fused log-prob head
            cache = m.new_cache(3, 8)
            prefill = m.decode_step(ids, pos, cache, fused)  # any T: the modules, MoE.decode (grouped GEMM)
            step = m.decode_step(ids[:, :1], torch.full((3, 1), 6), cache, fused)  # MLA's latent step
            one = m.decode_step(ids[:1, :1], pos[:1, :1], m.new_cache(1, 8), fused)  # one token's experts
        return [out.loss.detach(), score, prefill, step, one]

    want = run(doubled)
    original = weights.weight
    for mod in [m for k, m in sys.modules.items() if k.startswith("r1.model") and m is not None]:
        if getattr(mod, "weight", None) is original:
            monkeypatch.setattr(mod, "weight", lambda module: 2 * original(module))
    got = run(model)
    for a, b in zip(got, want):
        assert torch.equal(a, b)
