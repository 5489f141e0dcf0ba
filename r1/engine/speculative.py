"""Self-speculative decoding with DeepSeek-V3's multi-token prediction (MTP) modules.

One round, for every row of the batch at once:
1. Draft k tokens with the MTP modules. Module j (0-based) at index i takes h^j_i (the main model's final-norm
   hidden state for j = 0, else module j-1's output) and Emb(t_{i+j+1}) and predicts t_{i+j+2}: exactly what it was
   trained on (`Transformer._mtp_loss`). Each module keeps its own attention slots and its input hidden states in
   the cache (`KVCache(mtp_layers=, hidden_states=)`), so a round only feeds it the positions verified since the
   last one; its last position gives the next draft. Past the trained depth D the last module is reused one position
   further on, its own output standing in for the main model's hidden state, as vLLM chains its MTP proposer.
2. Verify: one `decode_step` of the main model over [last token, d_1 … d_k] gives the target logits of k + 1
   positions (and their hidden states, which the MTP modules read next round).
3. Accept with the rule that keeps the target distribution (Leviathan et al. 2023; vLLM's rejection sampler):
   greedy rows accept while the draft is the target's argmax; sampled rows accept d_i with probability
   min(1, p_i(d_i)/q_i(d_i)) and on the first rejection draw from max(p_i − q_i, 0) renormalised; if all k pass,
   a bonus token comes from p_{k+1}. p and q are the target's and the draft's distributions after the request's
   own temperature, top-k and top-p, applied identically to both.
Rejected positions need no cleanup: caches are rows indexed by absolute position, stale slots beyond a row's length
are masked and overwritten before anything attends to them, so rolling back is the row's shorter length.

Randomness stays per sample: a sampled row draws its draft and acceptance uniforms (2k per round) from its own
second stream, and the final token of each round (the corrected or bonus one) from the stream plain decoding uses.
A seeded request therefore repeats itself whatever else is in the batch, as long as speculation runs the same
rounds (`speculative="on"`, or greedy decoding, which gives the plain decoder's tokens). `auto` switches speculation
by batch size, so a seeded *sampled* request that shares the engine with a varying load may take other (equally
distributed) tokens; pass `speculative="off"` where bit-for-bit repeats under load matter, as r1's batch jobs
do (evaluation, RL rollouts, the generate stage, distillation).

`auto` speculates while at most `max_batch` rows decode and the rows' running acceptance says it pays: speculation
spends one MTP block per draft and a wider verify forward; on a CPU at small batch a decode step costs mostly its
fixed per-op overhead, which k + 1 tokens share, while at large batch the verify costs ~k + 1 times a step and the
rejected tokens are pure loss (the break-even figures are in benchmarks/bench_spec.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from r1.engine.sampling import BatchParams, UniformStream, _inverse_cdf, sample_seed, sampling_logprobs
from r1.errors import UserError
from r1.model.cache import KVCache
from r1.model.transformer import Transformer
from r1.model.weights import FusedWeights

SPEC_MODES = ("auto", "on", "off")
DEFAULT_NUM_TOKENS = 1  # k; see benchmarks/bench_spec.py
AUTO_MAX_BATCH = 16  # `auto` speculates up to this many rows (k = 1 still wins at 16, loses at 32: bench_spec.py)
# `auto` stops speculating while the rows' running acceptance would not pay, and tries one round again every
# PROBE_EVERY plain steps. A round costs about BREAK_EVEN[0] + BREAK_EVEN[1]·k plain steps at batch 1 (measured on
# the shipped base and on a `small` model, benchmarks/bench_spec.py: ~1.7 steps for k = 1) and emits 1 + k·a tokens
# at acceptance a, so it pays while a ≥ (BREAK_EVEN[0] − 1)/k + BREAK_EVEN[1] (0.65 for k = 1, 0.55 for k = 3).
BREAK_EVEN = (1.15, 0.5)
PROBE_EVERY = 32
EWMA = 0.25  # weight of the newest round in a row's running acceptance
SPEC_SALT = 0x5EC0_DE5E_ED00_0001  # the draft/accept stream of a sample differs from its main stream


@dataclass(frozen=True)
class SpecConfig:
    """How the engine speculates. mode: "auto" (where it pays), "on" (always, when the model has MTP), "off".
    num_tokens: k drafted tokens per round. max_batch: `auto` speculates while at most this many rows decode."""

    mode: str = "auto"
    num_tokens: int = DEFAULT_NUM_TOKENS
    max_batch: int = AUTO_MAX_BATCH

    def __post_init__(self) -> None:
        if self.mode not in SPEC_MODES:
            raise UserError(f"speculative={self.mode!r}: must be one of {', '.join(SPEC_MODES)}")
        if not isinstance(self.num_tokens, int) or not 1 <= self.num_tokens <= 8:
            raise UserError(f"num_speculative_tokens={self.num_tokens!r}: must be an integer in [1, 8]")
        if not isinstance(self.max_batch, int) or self.max_batch < 1:
            raise UserError(f"speculative max_batch={self.max_batch!r}: must be an integer >= 1")


@dataclass
class RowOutcome:
    """What one row emits in a round: the accepted drafts, then the corrected or bonus token, with both logprobs as
    `sample` reports them (under the distribution sampled from, 0 for greedy; under the unmodified model)."""

    tokens: list[int]
    logprobs: list[float]
    model_logprobs: list[float]
    accepted: int


class Speculator:
    """Drafts with the MTP modules, verifies with the main model, accepts by the exact rule (see module docstring).

    It reads and updates the scheduler's rows: `cache_len`, `req.prompt`, `tokens`, and its own per-row fields
    `mtp_len` (positions whose module-0 slots hold verified inputs), `spec_uniforms`, `acceptance`, `since_spec`.
    """

    def __init__(self, model: Transformer, config: SpecConfig) -> None:
        D = model.config.num_nextn_predict_layers
        if D < 1 or not model.config.is_deepseek:
            raise UserError(f"speculative={config.mode!r}: the model has no MTP module to draft with")
        self.model, self.config = model, config
        self.k = config.num_tokens
        self.depth = min(D, self.k)  # modules that keep cache slots (the rest of the chain reuses the last)
        self.stats = {
            "spec_rounds": 0,  # verify forwards
            "spec_drafts": 0,  # row-rounds
            "spec_draft_tokens": 0,
            "spec_accepted_tokens": 0,
            "spec_emitted_tokens": 0,  # tokens the rounds produced up to each sequence's end (counted by the caller)
        }
        self.accepted_per_position = [0] * self.k
        self.min_acceptance = (BREAK_EVEN[0] - 1) / self.k + BREAK_EVEN[1]  # `auto`'s floor (see BREAK_EVEN)
        self._offsets = torch.arange(self.k + 1)
        self._rows_k = torch.empty(0, self.k + 1, dtype=torch.long)
        self._prev: tuple | None = None  # the last round's rows, positions, hidden states, emitted tokens, accepted

    # ------------------------------------------------------------------------------------------- policy
    def wants(self, rows: list) -> bool:
        """Whether this decode step should be a speculative round."""
        mode = self.config.mode
        if mode == "off" or not rows:
            return False
        if mode == "on":
            return True
        if len(rows) > self.config.max_batch:
            return False
        if sum(s.acceptance for s in rows) >= self.min_acceptance * len(rows):
            return True
        return all(s.since_spec >= PROBE_EVERY for s in rows)

    def cache_slots(self) -> int:
        """Extra positions a cache needs past max_len: a row one token short of the end still verifies k drafts."""
        return self.k

    # ------------------------------------------------------------------------------------------- MTP cache
    def catch_up(self, rows: list, cache: KVCache, fused: FusedWeights | None) -> None:
        """Feed the MTP modules the verified positions they have not seen (after a prefill, or plain decoding),
        all but the newest, which the next round's draft starts from. `rows` are rows [0, len(rows)) of `cache`."""
        if all(s.cache_len - 1 <= s.mtp_len for s in rows):
            return
        self._prev = None
        for j in range(self.depth):
            starts = [max(0, s.mtp_len - j) for s in rows]
            # module j at index i needs t_{i+j+1}: known up to t_n, and index n-1 of module 0 is left to the draft
            ends = [s.cache_len - 2 - j for s in rows]
            if all(e < st for st, e in zip(starts, ends)):
                break
            self._module_pass(j, rows, starts, ends, [[] for _ in rows], cache, fused)
        for s in rows:
            s.mtp_len = max(s.mtp_len, s.cache_len - 1)

    def _rows_t(self, B: int) -> torch.Tensor:
        """Cache rows [B, k+1] for indexing a round's positions."""
        if self._rows_k.shape[0] < B:
            self._rows_k = torch.arange(max(B, 64))[:, None].expand(-1, self.k + 1)
        return self._rows_k[:B]

    def _module_pass(self, j, rows, starts, ends, drafts, cache, fused) -> torch.Tensor:
        """Module j over indices [start, end] of each row, padded to the longest by repeating a row's last index
        (which rewrites one slot with the same values; a row with nothing to do rewrites its first unverified slot,
        which is recomputed before anything reads it). Stores its outputs as module j+1's input hidden states and
        returns each row's last output [B, D]."""
        B = len(rows)
        m = [e - st + 1 for st, e in zip(starts, ends)]
        M = max(m)
        ids_l, pos_l = [], []
        for b, s in enumerate(rows):
            if m[b] < 1:
                toks, m[b] = [s.tokens[-1]], 1
            else:
                toks = _tokens(s, starts[b] + j + 1, starts[b] + j + 1 + m[b], drafts[b])
            ids_l.append(toks + [toks[-1]] * (M - m[b]))
            pos_l.append([starts[b] + min(o, m[b] - 1) for o in range(M)])
        ids, pos = torch.tensor(ids_l), torch.tensor(pos_l)  # [B, M]
        rows_t = self.model._rows(B, ids.device)[:, None].expand(B, M)
        out = self.model.mtp_decode(j, cache.hidden[j][rows_t, pos], ids, pos, cache, fused)
        if j + 1 < self.depth:
            cache.hidden[j + 1][rows_t, pos] = out
        return out[:, 0] if M == 1 else out[rows_t[:, 0], torch.tensor(m) - 1]

    # ------------------------------------------------------------------------------------------- one round
    @torch.inference_mode()
    def round(
        self, rows: list, cache: KVCache, fused: FusedWeights | None, bp: BatchParams
    ) -> tuple[list[RowOutcome], torch.Tensor]:
        """Draft, verify, accept for rows [0, B) of `cache`. Returns each row's outcome and the target logits
        [B, k+1, V] (row b's emitted tokens were drawn at positions 0 … accepted)."""
        model, k, B = self.model, self.k, len(rows)
        if max(s.cache_len - s.mtp_len for s in rows) > k + 1:  # a long lag: feed it without padding every row
            self.catch_up(rows, cache, fused)
        greedy = bp.all_greedy
        u_draft = u_acc = u_final = None
        if not greedy:  # 2k uniforms per sampled row from its own draft stream, the final one from its main stream
            u2k, u1 = [], []
            for s in rows:
                if s.uniforms is None:
                    u2k.append([0.0] * (2 * k))
                    u1.append(0.0)
                    continue
                if s.spec_uniforms is None:
                    s.spec_uniforms = UniformStream(sample_seed(s.req.seed, s.index) ^ SPEC_SALT)
                u2k.append([s.spec_uniforms.next() for _ in range(2 * k)])
                u1.append(s.uniforms.next())
            u = torch.tensor(u2k, dtype=torch.float64)
            u_draft, u_acc, u_final = u[:, :k], u[:, k:], torch.tensor(u1, dtype=torch.float64)

        # 1. draft
        drafts: list[list[int]] = [[] for _ in rows]
        q_rows: list[torch.Tensor] = []  # per draft position: the draft distribution [B, V] (sampled rows)
        draft_tok = torch.empty(B, k, dtype=torch.long)
        prev, self._prev = self._prev, None
        h = None
        for j in range(k):
            if j == 0 and prev is not None and prev[0] == rows and all(s.since_spec == 0 for s in rows):
                # Straight after a round: module 0's inputs are that verify's positions, hidden states and emitted
                # tokens as they stand (slots past a row's accepted run get garbage, rewritten before being read).
                _, p_pos, p_hid, p_emit, p_acc = prev
                out = model.mtp_decode(0, p_hid, p_emit, p_pos, cache, fused)
                if self.depth > 1:
                    cache.hidden[1][self._rows_t(B), p_pos] = out
                h = out.gather(1, p_acc[:, None, None].expand(B, 1, out.shape[2]))[:, 0]
            elif j < self.depth:
                starts = [max(0, s.mtp_len - j) for s in rows]
                ends = [s.cache_len - 1 for s in rows]
                h = self._module_pass(j, rows, starts, ends, drafts, cache, fused)
            else:  # past the trained depth: the last module again, one position on, on its own output
                pos = torch.tensor([[s.cache_len - 1 + j - self.depth + 1] for s in rows])
                h = model.mtp_decode(self.depth - 1, h[:, None], draft_tok[:, j - 1 : j], pos, cache, fused)[:, 0]
            logits = model.mtp_head(min(j, self.depth - 1), h, fused).float()
            tok, q = self._draw(logits, bp, u_draft[:, j] if u_draft is not None else None, greedy)
            draft_tok[:, j] = tok
            q_rows.append(q)
            if j + 1 < self.depth:  # the next module's general pass reads this round's drafts from lists
                for b, t in enumerate(tok.tolist()):
                    drafts[b].append(t)
        for s in rows:
            s.mtp_len = s.cache_len
        self.last_drafts = draft_tok  # [B, k], for inspection and tests

        # 2. verify
        last = torch.tensor([[s.tokens[-1]] for s in rows])
        ids = torch.cat((last, draft_tok), dim=1)  # [B, k+1]
        pos = torch.tensor([[s.cache_len] for s in rows]) + self._offsets
        hid = model.decode_step(ids, pos, cache, fused, hidden=True)
        cache.hidden[0][self._rows_t(B), pos] = hid
        target = model.head(hid, fused).float()  # [B, k+1, V]

        # 3. accept
        outcomes, emitted, n_acc = self._accept(rows, target, draft_tok, q_rows, bp, u_acc, u_final, greedy)
        self._prev = (rows, pos, hid, emitted, n_acc)
        st = self.stats
        st["spec_rounds"] += 1
        st["spec_drafts"] += B
        st["spec_draft_tokens"] += B * k
        for o, s in zip(outcomes, rows):
            st["spec_accepted_tokens"] += o.accepted
            for i in range(o.accepted):
                self.accepted_per_position[i] += 1
            s.acceptance = (1 - EWMA) * s.acceptance + EWMA * (o.accepted / k)
            s.since_spec = 0
        return outcomes, target

    def _draw(self, logits_BV: torch.Tensor, bp: BatchParams, u_B: torch.Tensor | None, greedy: bool):
        """A draft token per row and the draft distribution q it came from (None when every row is greedy)."""
        if greedy:
            return logits_BV.argmax(-1), None
        q = sampling_logprobs(logits_BV, bp).exp()
        tok = _inverse_cdf(q, u_B)[0][:, 0]
        if bp.any_greedy:
            tok = torch.where(bp.temperature == 0, logits_BV.argmax(-1), tok)
        return tok, q

    def _accept(self, rows, target, draft_tok, q_rows, bp, u_acc, u_final, greedy):
        B, K1, V = target.shape
        k = K1 - 1
        model_lp = target.log_softmax(-1)  # [B, k+1, V]
        if greedy:
            best = target.argmax(-1)  # [B, k+1]
            ok = (draft_tok == best[:, :k]).int()
            n_acc = ok.cumprod(1).sum(1)  # leading matches
            final = best.gather(1, n_acc[:, None])[:, 0]
            lp_emit = None
        else:
            flat = bp.index(torch.arange(B).repeat_interleave(K1))
            p = sampling_logprobs(target.reshape(B * K1, V), flat).exp().view(B, K1, V)
            n_acc, final = rejection_sample(p, torch.stack(q_rows, 1), draft_tok, u_acc, u_final)
            if bp.any_greedy:
                g = bp.temperature == 0
                best = target.argmax(-1)
                n_greedy = (draft_tok == best[:, :k]).int().cumprod(1).sum(1)
                n_acc = torch.where(g, n_greedy, n_acc)
                final = torch.where(g, best.gather(1, n_acc[:, None])[:, 0], final)
            lp_emit = p.clamp(min=1e-45).log()  # the processed distribution's logprob of what was emitted
        emitted = torch.cat((draft_tok, final[:, None]), 1)  # [B, k+1]: d_1 … d_a, then the final token at a
        emitted.scatter_(1, n_acc[:, None], final[:, None])
        mlp = model_lp.gather(2, emitted[:, :, None])[:, :, 0].tolist()
        lp = lp_emit.gather(2, emitted[:, :, None])[:, :, 0].tolist() if lp_emit is not None else None
        out = []
        for b, (a, toks) in enumerate(zip(n_acc.tolist(), emitted.tolist())):
            row_lp = lp[b][: a + 1] if lp is not None and rows[b].uniforms is not None else [0.0] * (a + 1)
            out.append(RowOutcome(toks[: a + 1], row_lp, mlp[b][: a + 1], a))
        return out, emitted, n_acc


def rejection_sample(
    p: torch.Tensor, q: torch.Tensor, drafts: torch.Tensor, u_accept: torch.Tensor, u_final: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The speculative sampling rule, per row: draft i (drawn from q_i) is accepted with probability
    min(1, p_i(d_i)/q_i(d_i)) while every earlier one was; the token after the accepted run is drawn from
    max(p_a − q_a, 0) renormalised at the first rejection a, or from p_{k+1} when all k were accepted. Whatever q is,
    each emitted token then follows p given the tokens before it.

    p: target distributions [B, k+1, V]; q: draft distributions [B, k, V]; drafts [B, k]; u_accept [B, k] and
    u_final [B] uniforms in [0, 1). Returns (accepted count [B], the token after the run [B])."""
    B, K1, V = p.shape
    k = K1 - 1
    p_d = p[:, :k].gather(2, drafts[:, :, None])[:, :, 0].double()
    q_d = q.gather(2, drafts[:, :, None])[:, :, 0].double()
    n_acc = (u_accept * q_d < p_d).int().cumprod(1).sum(1)  # u < p/q, written without dividing
    idx = n_acc[:, None, None].expand(B, 1, V)
    p_at = p.gather(1, idx)[:, 0]
    q_at = torch.cat((q, torch.zeros_like(q[:, :1])), 1).gather(1, idx)[:, 0]  # q after the k-th: 0, the bonus is p
    resid = (p_at - q_at).clamp_(min=0)
    resid = torch.where(resid.sum(-1, keepdim=True) > 0, resid, p_at)  # p = q there: a rejection cannot happen
    return n_acc, _inverse_cdf(resid, u_final)[0][:, 0]


def _tokens(s, lo: int, hi: int, drafts: list[int]) -> list[int]:
    """Tokens lo..hi-1 of a row's sequence (prompt, sampled tokens, then this round's drafts)."""
    P, T = len(s.req.prompt), len(s.tokens)
    out: list[int] = []
    if lo < P:
        out += s.req.prompt[lo : min(hi, P)]
    if hi > P and lo < P + T:
        out += s.tokens[max(0, lo - P) : hi - P]
    if hi > P + T:
        out += drafts[max(0, lo - P - T) : hi - P - T]
    return out
