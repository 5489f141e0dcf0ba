"""The vocabulary head's fused kernels: logits with their next-token loss, and target log-probs with the entropy.

Both form the [tokens, vocab] softmax in cache-sized row chunks so its gradient never exists as one fp32 tensor; the
model calls them with autocast off and inputs already in the dtype to compute in (`Transformer._head_inputs`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100
_CE_CHUNK = 1 << 18  # logits per row chunk of the fused cross-entropy (1 MiB in fp32)


def shifted_targets(labels_BT: torch.Tensor) -> torch.Tensor:
    """Position t's target is labels[t + 1]; the last position gets IGNORE_INDEX. Flattened to [B·T]."""
    return F.pad(labels_BT[:, 1:], (0, 1), value=IGNORE_INDEX).reshape(-1)


def next_token_loss(logits_BTV: torch.Tensor, labels_BT: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of position t predicting labels[t + 1], in fp32, ignoring IGNORE_INDEX (0 if none)."""
    target = shifted_targets(labels_BT)
    if not (target != IGNORE_INDEX).any():
        return logits_BTV.sum() * 0.0  # keeps the graph; no token to learn from
    logits = logits_BTV.reshape(target.shape[0], -1).float()
    return F.cross_entropy(logits, target, ignore_index=IGNORE_INDEX)


class LinearCrossEntropy(torch.autograd.Function):
    """logits = h Wᵀ and their token-mean cross-entropy, with the loss gradient formed in the forward pass.

    The gradient of the summed CE w.r.t. the logits, softmax − onehot (zero on ignored rows), is computed on
    cache-sized row chunks right after each chunk's log-softmax, instead of the unfused path's passes over all of
    [N, V] (log-probs out, a zero-filled NLL gradient, a log-softmax backward). In fp32 it is kept as separate
    row chunks and backward forms dh and dW chunk by chunk: no [N, V] gradient is ever allocated (at 32 MiB and
    up, every fresh allocation is new mmap'd memory, page-faulted in on first write). A 16-bit gradient goes into
    one buffer and through one GEMM per input, so dW's sum over tokens (which cancels heavily) accumulates in
    fp32 inside the GEMM instead of being rounded per chunk. The mean's 1/n is applied in backward as
    (incoming gradient)/n to dh and dW, as the NLL backward applies it: a trainer that backpropagates loss × n
    gets the exact unit scale. The logits are still returned, and a gradient arriving through them is added.
    """

    @staticmethod
    def forward(ctx, h_NC, w_VC, target_N, need_grad: bool):
        logits = F.linear(h_NC, w_VC)
        N, V = logits.shape
        acc = torch.promote_types(logits.dtype, torch.float32)  # the softmax runs in fp32 or wider
        valid = target_N != IGNORE_INDEX
        ignored = (~valid).nonzero().flatten()
        tgt = torch.where(valid, target_N, 0)[:, None]
        logp_target = torch.empty(N, dtype=acc, device=logits.device)
        rows = max(1, _CE_CHUNK // V)
        whole = torch.empty_like(logits) if need_grad and logits.element_size() < 4 else None
        chunks = []
        for a in range(0, N, rows):
            b = min(a + rows, N)
            logp = torch.log_softmax(logits[a:b], dim=-1, dtype=acc)
            logp_target[a:b] = logp.gather(1, tgt[a:b])[:, 0]
            if need_grad:
                g = logp.exp_().scatter_add_(1, tgt[a:b], logp.new_full((b - a, 1), -1.0))
                g.index_fill_(0, ignored[(ignored >= a) & (ignored < b)] - a, 0.0)
                if whole is not None:
                    whole[a:b] = g
                else:
                    chunks.append(g.to(logits.dtype))
        n = valid.sum()
        ctx.save_for_backward(h_NC, w_VC)
        ctx.chunks, ctx.rows, ctx.n = ([whole] if whole is not None else chunks), rows, n
        ctx.set_materialize_grads(False)
        return logits, -logp_target.masked_fill(~valid, 0.0).sum() / n.clamp(min=1)

    @staticmethod
    def backward(ctx, g_logits, g_loss):
        h, w = ctx.saved_tensors
        need_h, need_w = ctx.needs_input_grad[:2]
        dh = dw = None
        if g_loss is not None and ctx.chunks:
            if len(ctx.chunks) == 1:
                dh = ctx.chunks[0] @ w if need_h else None
                dw = ctx.chunks[0].t() @ h if need_w else None
            else:
                dh = torch.empty_like(h) if need_h else None
                dw = torch.zeros_like(w) if need_w else None
                for i, g in enumerate(ctx.chunks):
                    a, b = i * ctx.rows, i * ctx.rows + g.shape[0]
                    if need_h:
                        torch.mm(g, w, out=dh[a:b])
                    if need_w:
                        dw.addmm_(g.t(), h[a:b])
            n = ctx.n.clamp(min=1)
            scale = float(g_loss) / float(n) if g_loss.device.type == "cpu" else g_loss / n
            if not (isinstance(scale, float) and scale == 1.0):
                dh = dh.mul_(scale) if dh is not None else None
                dw = dw.mul_(scale) if dw is not None else None
        if g_logits is not None:
            if need_h:
                dh = g_logits @ w if dh is None else dh.add_(g_logits @ w)
            if need_w:
                dw = g_logits.t() @ h if dw is None else dw.add_(g_logits.t() @ h)
        return dh, dw, None, None


class LinearLogProb(torch.autograd.Function):
    """log softmax(h Wᵀ)[target] for each row, and (no gradient) the entropy of that distribution.

    Row chunks of about 1 MiB of logits at a time: each chunk's logits GEMM, a log-softmax in fp32 for the target's
    log-prob and the entropy −Σ p·log p, and p kept for backward, whose dh and dW GEMMs run chunk by chunk on p
    itself (see backward). No [M, V] tensor is allocated in fp32 (above 32 MiB every
    allocation is fresh mmap'd memory, page-faulted in on first write, and a chunk stays in cache between its
    GEMM and its softmax); a 16-bit p goes into one buffer so dW's sum over rows accumulates in fp32 inside one
    GEMM, as in LinearCrossEntropy. Without a gradient or entropy each chunk is a logsumexp and a gather.
    """

    @staticmethod
    def forward(ctx, h_MC, w_VC, target_M, need_grad: bool, want_entropy: bool):
        M, V = h_MC.shape[0], w_VC.shape[0]
        acc = torch.promote_types(h_MC.dtype, torch.float32)
        tgt = target_M[:, None]
        logp_t = torch.empty(M, dtype=acc, device=h_MC.device)
        ent = torch.zeros(M, dtype=acc, device=h_MC.device)
        rows = max(1, _CE_CHUNK // V)
        low = need_grad and h_MC.element_size() < 4
        whole = torch.empty(M, V, dtype=h_MC.dtype, device=h_MC.device) if low else None
        chunks = []
        for a in range(0, M, rows):
            b = min(a + rows, M)
            x = F.linear(h_MC[a:b], w_VC)
            if not (need_grad or want_entropy):
                logp_t[a:b] = x.gather(1, tgt[a:b])[:, 0].to(acc) - torch.logsumexp(x.to(acc), dim=-1)
                continue
            logp = torch.log_softmax(x, dim=-1, dtype=acc)
            logp_t[a:b] = logp.gather(1, tgt[a:b])[:, 0]
            p = torch.exp(logp, out=x) if x.dtype == acc and not want_entropy else logp.exp()
            if want_entropy:
                ent[a:b] = -logp.mul_(p).sum(-1)
            if whole is not None:
                whole[a:b] = p
            elif need_grad:
                chunks.append(p)
        ctx.mark_non_differentiable(ent)
        if need_grad:
            ctx.save_for_backward(h_MC, w_VC, target_M)
            ctx.probs, ctx.rows = ([whole] if whole is not None else chunks), rows
        return logp_t, ent

    @staticmethod
    def backward(ctx, g_logp, g_ent):
        # d logits = g·(onehot − p), never formed: its onehot half is a gather / index_add of W and g·h rows, and
        # its p half goes through the GEMMs with g applied to the small [M, C] side (p W then ·g; pᵀ (g·h)).
        h, w, target = ctx.saved_tensors
        probs, rows = ctx.probs, ctx.rows
        need_h, need_w = ctx.needs_input_grad[:2]
        if len(probs) == 1:
            rows = h.shape[0]
        acc = torch.promote_types(h.dtype, torch.float32)
        g = g_logp.to(acc)[:, None]
        gh = h.to(acc) * g
        dh = w.to(acc).index_select(0, target) * g if need_h else None
        dw = torch.zeros(w.shape, dtype=acc, device=w.device).index_add_(0, target, gh) if need_w else None
        gh_in = gh.to(h.dtype)
        for i, p in enumerate(probs):
            a = i * rows
            b = a + p.shape[0]
            if need_h:
                dh[a:b] -= (p @ w).to(acc) * g[a:b]
            if need_w:
                if p.dtype == acc:
                    dw.addmm_(p.t(), gh_in[a:b], alpha=-1.0)
                else:
                    dw -= (p.t() @ gh_in[a:b]).to(acc)
        return (dh.to(h.dtype) if need_h else None), (dw.to(w.dtype) if need_w else None), None, None, None
