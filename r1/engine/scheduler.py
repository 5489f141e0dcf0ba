"""Continuous batching over one preallocated KV cache: admit, prefill, decode, retire — between every two steps.

Rows of the cache are sequences. Active sequences always occupy rows [0, B), so one decode forward runs on a
window of exactly B rows; when sequences finish, survivors from the end move into the holes (one cache copy of the
moved rows' filled slots), so a long request never holds the short ones back and freed rows are reused at once.

A new request with n samples takes n rows: its prompt is prefilled once, in its first row, together with the other
requests admitted at the same step (right-padded to the longest; each row's logits are read at its own last
position, and pad slots are overwritten by later decode writes before anything attends to them). The filled slots
are then copied to the n-1 sibling rows and each row samples its own first token.

Prefill and decode both run the model's own `decode_step` (with the weight copies it reuses, refreshed at each
admission). Per decode step: one `decode_step` over all rows, one vectorised `sample`, one `.tolist()`, and a
Python pass over plain ints to check stops. Per-row state that feeds the forward (last token, position, sampling
parameters) is kept as tensors and rebuilt only when the set of rows changes.

With a `Speculator` (models with MTP modules, `speculative` "auto" or "on"), a decode step may instead be one
speculative round (`speculative.py`): the MTP modules draft k tokens per row, one forward verifies them, and each
row records its accepted tokens one by one, so stops, EOS and max_tokens cut a run exactly where plain decoding
would. The cache then has MTP slots and hidden-state buffers, which prefill and plain steps fill too (`auto` may
switch speculation on later in a request's life).
"""

from __future__ import annotations

import threading
from collections import deque

import torch

from r1.engine.cache import WindowCache
from r1.engine.requests import Completion, RequestHandle, Sample, SampleDone, TokenEvent, TopLogprobs
from r1.engine.sampling import BatchParams, UniformStream, sample, sample_seed, top_logprobs
from r1.engine.speculative import SpecConfig, Speculator
from r1.engine.text import TextTracker
from r1.engine.threads import EngineThreads
from r1.model.cache import KVCache
from r1.model.transformer import Transformer
from r1.tokenizer import Tokenizer


class _Seq:
    """One sample in flight: the row it lives in, its tokens and logprobs, its random stream and text state."""

    __slots__ = (
        "req", "index", "tokens", "logprobs", "model_logprobs", "top", "uniforms", "tracker", "stop_ids", "done",
        "mtp_len", "spec_uniforms", "acceptance", "since_spec",
    )  # fmt: skip

    def __init__(self, req: _Request, index: int, tokenizer: Tokenizer, eos_ids: frozenset[int]) -> None:
        p = req.params
        self.req, self.index = req, index
        self.tokens: list[int] = []
        self.logprobs: list[float] = []
        self.model_logprobs: list[float] = []
        self.top: list[TopLogprobs] | None = [] if p.top_logprobs else None
        self.uniforms = None if p.greedy else UniformStream(sample_seed(req.seed, index))
        need_text = req.handle.stream or bool(p.stop)
        self.tracker = TextTracker(tokenizer, p.stop) if need_text else None
        self.stop_ids = frozenset(p.stop_token_ids) | (frozenset() if p.ignore_eos else eos_ids)
        self.done = False
        # speculative decoding (speculative.py): positions the MTP modules have seen, the draft/accept uniforms,
        # the running acceptance (optimistic until measured) and plain steps since the last round
        self.mtp_len = 0
        self.spec_uniforms: UniformStream | None = None
        self.acceptance = 1.0
        self.since_spec = 0

    @property
    def cache_len(self) -> int:
        """Slots of this row holding real K/V: the prompt and every sampled token but the last (not fed yet)."""
        return len(self.req.prompt) + len(self.tokens) - 1


class _Request:
    __slots__ = ("handle", "prompt", "params", "seed", "seqs", "results", "open")

    def __init__(self, handle: RequestHandle) -> None:
        self.handle = handle
        self.prompt = handle.prompt_ids
        self.params = handle.params
        self.seed = handle.params.seed
        self.seqs: list[_Seq] = []
        self.results: list[Sample | None] = [None] * handle.params.n
        self.open = handle.params.n


class Scheduler:
    """Owns the cache and the batch; `step()` does one round of retire/admit/prefill/decode. One thread at a time."""

    def __init__(
        self,
        model: Transformer,
        tokenizer: Tokenizer,
        max_batch: int,
        max_len: int,
        mla_impl: str = "absorb",
        cache_dtype: torch.dtype | None = None,
        prefill_tokens: int = 4096,
        head_dtype: torch.dtype | None = None,
        speculative: SpecConfig | None = None,
        threads: EngineThreads | None = None,
    ) -> None:
        self.model, self.tokenizer = model, tokenizer
        self.threads = threads or EngineThreads(model)  # each forward's CPU threads (inside the engine's step scope)
        spec = speculative or SpecConfig()
        mtp = model.config.num_nextn_predict_layers > 0 and model.config.is_deepseek
        self.spec = Speculator(model, spec) if spec.mode == "on" or (spec.mode == "auto" and mtp) else None
        self.fused = model.fused_weights(head_dtype=head_dtype)  # the decode step's weight copies
        self.max_batch, self.max_len = max_batch, max_len
        self.mla_impl, self.cache_dtype = mla_impl, cache_dtype
        self.prefill_tokens = prefill_tokens
        cfg = model.config
        eos = {i for i in (tokenizer.eos_id, cfg.eos_token_id) if i is not None and 0 <= i < cfg.vocab_size}
        self.eos_ids = frozenset(eos)
        self.pad_id = tokenizer.pad_id if tokenizer.pad_id is not None else 0
        self._cache: WindowCache | None = None
        self._inbox: deque[_Request] = deque()
        self._inbox_lock = threading.Lock()
        self._pending: deque[_Request] = deque()
        self.rows: list[_Seq] = []
        self._dirty = True
        self._ids = self._pos = None
        self._bp: BatchParams | None = None
        self.stats = {"prefill_forwards": 0, "prefill_tokens": 0, "decode_steps": 0, "generated_tokens": 0}
        if self.spec is not None:
            self.stats = {**self.stats, **self.spec.stats}

    # ------------------------------------------------------------------------------------------- public
    @property
    def cache(self) -> KVCache:
        if self._cache is None:  # allocated on first use: constructing an engine should not grab memory
            sp = self.spec
            extra = dict(mtp_layers=sp.depth, hidden_states=sp.depth) if sp is not None else {}
            slots = self.max_len + (sp.cache_slots() if sp is not None else 0)
            self._cache = WindowCache(
                self.model.new_cache(self.max_batch, slots, self.cache_dtype, self.mla_impl, **extra)
            )
        return self._cache.cache

    def add(self, handle: RequestHandle) -> None:
        """Queue a request (thread-safe); it joins the batch at the next step that has rows for all its samples."""
        with self._inbox_lock:
            self._inbox.append(_Request(handle))

    def has_work(self) -> bool:
        return bool(self.rows or self._pending or self._inbox)

    def num_active(self) -> int:
        """Rows in use (sequences being decoded)."""
        return len(self.rows)

    def num_pending(self) -> int:
        return len(self._pending) + len(self._inbox)

    @torch.inference_mode()
    def step(self) -> None:
        """Retire cancelled rows, admit what fits (prefill + first token), then one decode step for every row."""
        try:
            self._cancel()
            self._admit()
            self._retire()
            if self.rows:
                self._decode()
                self._retire()
        except BaseException:
            # Interrupted mid-step (Ctrl-C in chat, an error): the Python-side rows are the truth; rebuild the
            # step tensors from them next time rather than trust half-updated ones.
            self._dirty = True
            raise

    def fail_all(self, error: BaseException) -> None:
        """The model raised: end every request in flight with the error and start from an empty batch."""
        reqs = {id(s.req): s.req for s in self.rows}
        with self._inbox_lock:
            self._pending.extend(self._inbox)
            self._inbox.clear()
        reqs.update((id(r), r) for r in self._pending)
        self.rows, self._dirty = [], True
        self._pending.clear()
        for r in reqs.values():
            if not r.handle.done():
                r.handle.finish(None, error, self.stats["decode_steps"])

    # ------------------------------------------------------------------------------------------- admit
    def _cancel(self) -> None:
        for s in self.rows:
            if not s.done and s.req.handle.cancelled:
                self._finish(s, "cancelled")
        if any(r.handle.cancelled for r in self._pending):
            keep = deque()
            for r in self._pending:
                if r.handle.cancelled:
                    r.handle.finish(Completion(r.handle.id, r.prompt, []), None, self.stats["decode_steps"])
                else:
                    keep.append(r)
            self._pending = keep

    def _admit(self) -> None:
        with self._inbox_lock:
            self._pending.extend(self._inbox)
            self._inbox.clear()
        free = self.max_batch - len(self.rows)
        new: list[_Request] = []
        while self._pending and self._pending[0].params.n <= free:
            req = self._pending.popleft()
            if req.handle.cancelled:
                req.handle.finish(Completion(req.handle.id, req.prompt, []), None, self.stats["decode_steps"])
                continue
            free -= req.params.n
            new.append(req)
        if not new:
            return
        self.fused.refresh()  # weights may have changed since the last admission (RL updates between calls)
        base, m = len(self.rows), len(new)
        for r in new:
            r.seqs = [_Seq(r, j, self.tokenizer, self.eos_ids) for j in range(r.params.n)]
        # First samples take rows [base, base + m) so the prefill runs on one window; siblings follow.
        primaries = [r.seqs[0] for r in new]
        siblings = [s for r in new for s in r.seqs[1:]]
        self.rows.extend(primaries + siblings)
        self._dirty = True
        logits = self._prefill(new, base)  # [m, V]
        if siblings:
            src = [base + i for i, r in enumerate(new) for _ in r.seqs[1:]]
            dst = list(range(base + m, base + m + len(siblings)))
            length = max(len(r.prompt) for r in new if r.params.n > 1)
            self.cache.copy_rows(torch.tensor(src), torch.tensor(dst), length)
        which = list(range(m)) + [i for i, r in enumerate(new) for _ in r.seqs[1:]]
        seqs = primaries + siblings
        rows_logits = logits[torch.tensor(which)] if siblings else logits
        self._sample_and_record(seqs, rows_logits, BatchParams.build([s.req.params for s in seqs]))
        if self.spec is not None and self.spec.wants(self.rows):
            # the MTP modules read the prompt now, while the new rows are one window (a batch `auto` decodes plainly
            # skips it: the first round, if one comes, catches its rows up)
            live = [s for s in seqs if not s.done]
            if live and live == self.rows[base : base + len(live)]:
                self.spec.catch_up(live, self._window(base, base + len(live)), self.fused)

    def _prefill(self, new: list[_Request], base: int) -> torch.Tensor:
        """Prefill the prompts into rows base.. (one per request); return each prompt's last-position logits."""
        out: list[torch.Tensor] = []
        group: list[_Request] = []
        longest = 0
        start = base
        for r in new:
            n = len(r.prompt)
            if group and (len(group) + 1) * max(longest, n) > self.prefill_tokens:
                out.append(self._prefill_group(group, start))
                start += len(group)
                group, longest = [], 0
            group.append(r)
            longest = max(longest, n)
        out.append(self._prefill_group(group, start))
        return torch.cat(out)

    def _prefill_group(self, group: list[_Request], start: int) -> torch.Tensor:
        g = len(group)
        lens = [len(r.prompt) for r in group]
        T = max(lens)
        ids = torch.full((g, T), self.pad_id, dtype=torch.long)
        for i, r in enumerate(group):
            ids[i, : lens[i]] = torch.tensor(r.prompt, dtype=torch.long)
        window = self._window(start, start + g)
        chunk = max(1, self.prefill_tokens // g)  # long prompts go in chunks: positions carry the offset
        last_h: list[torch.Tensor | None] = [None] * g
        for c0 in range(0, T, chunk):
            c1 = min(T, c0 + chunk)
            pos = torch.arange(c0, c1).expand(g, -1)
            self.threads.use(g * (c1 - c0))
            h = self.model.decode_step(ids[:, c0:c1], pos, window, self.fused, hidden=True)
            if window.hidden:  # what the MTP modules draft from
                window.hidden[0][:, c0:c1] = h
            self.stats["prefill_forwards"] += 1
            for i, n in enumerate(lens):
                if c0 <= n - 1 < c1:
                    last_h[i] = h[i, n - 1 - c0]
        self.stats["prefill_tokens"] += sum(lens)
        return self.model.head(torch.stack(last_h), self.fused).float()  # type: ignore[arg-type]

    def _window(self, start: int, stop: int) -> KVCache:
        _ = self.cache
        assert self._cache is not None
        return self._cache.window(start, stop)

    # ------------------------------------------------------------------------------------------- decode
    def _decode(self) -> None:
        B = len(self.rows)
        if self._dirty:
            self._bp = BatchParams.build([s.req.params for s in self.rows])
            self._ids = self._pos = None
            self._dirty = False
        assert self._bp is not None
        if self.spec is not None and self.spec.wants(self.rows):
            self._speculate(B)
            return
        if self._ids is None or self._pos is None:  # a new batch, or rows advanced unevenly in a speculative round
            self._ids = torch.tensor([[s.tokens[-1]] for s in self.rows], dtype=torch.long)
            self._pos = torch.tensor([[s.cache_len] for s in self.rows], dtype=torch.long)
        self.threads.use(B)  # the sampling that follows runs on the same count
        window = self._window(0, B)
        if self.spec is None:
            logits = self.model.decode_step(self._ids, self._pos, window, self.fused)[:, -1]
        else:  # keep the hidden states: speculation may resume, and its MTP modules start from them
            h = self.model.decode_step(self._ids, self._pos, window, self.fused, hidden=True)
            window.hidden[0][self.model._rows(B, h.device), self._pos[:, 0]] = h[:, 0]
            logits = self.model.head(h[:, -1], self.fused)
            for s in self.rows:
                s.since_spec += 1
        self.stats["decode_steps"] += 1
        tok = self._sample_and_record(self.rows, logits, self._bp)
        if not self._dirty:
            self._ids = tok[:, None]
            self._pos = self._pos + 1
        else:
            self._ids = self._pos = None

    def _speculate(self, B: int) -> None:
        """One speculative round (speculative.py); each row records its tokens in order until it finishes."""
        assert self.spec is not None and self._bp is not None
        rows = list(self.rows)
        self.threads.use(B * (self.spec.k + 1))  # the verify forward's rows (the drafts' are fewer)
        outcomes, target = self.spec.round(rows, self._window(0, B), self.fused, self._bp)
        self.stats["decode_steps"] += 1
        tops = self._spec_top_logprobs(rows, outcomes, target) if self._bp.top_logprobs else None
        for b, (s, o) in enumerate(zip(rows, outcomes)):
            for i, (t, a, m) in enumerate(zip(o.tokens, o.logprobs, o.model_logprobs)):
                self.stats["generated_tokens"] += 1
                self.spec.stats["spec_emitted_tokens"] += 1
                self._record(s, t, a, m, tops[b][i] if tops is not None else None)
                if s.done:  # a stop inside the run: what follows it is dropped
                    break
        self.stats.update(self.spec.stats)
        self._ids = self._pos = None  # rows advanced by different amounts: the plain step rebuilds its inputs

    def _spec_top_logprobs(self, rows: list[_Seq], outcomes, target: torch.Tensor) -> list[list[TopLogprobs | None]]:
        """Top logprobs of every emitted token, from the target logits at the position it was drawn at."""
        assert self._bp is not None
        which = [(b, i) for b, o in enumerate(outcomes) for i in range(len(o.tokens))]
        idx_b = torch.tensor([b for b, _ in which])
        logits = target[idx_b, torch.tensor([i for _, i in which])]
        toks = torch.tensor([outcomes[b].tokens[i] for b, i in which])
        seqs = [rows[b] for b, _ in which]
        flat = self._top_logprobs(seqs, logits, self._bp.index(idx_b), toks)
        out: list[list[TopLogprobs | None]] = [[] for _ in rows]
        for (b, _), top in zip(which, flat):
            out[b].append(top)
        return out

    def _sample_and_record(self, seqs: list[_Seq], logits_BV: torch.Tensor, bp: BatchParams) -> torch.Tensor:
        u = torch.tensor([s.uniforms.next() if s.uniforms is not None else 0.0 for s in seqs], dtype=torch.float64)
        tok, lp, mlp = sample(logits_BV, bp, u)
        self.stats["generated_tokens"] += len(seqs)
        if not bp.top_logprobs:
            for s, t, a, b in zip(seqs, tok.tolist(), lp.tolist(), mlp.tolist()):
                self._record(s, t, a, b)
            return tok
        tops = self._top_logprobs(seqs, logits_BV, bp, tok)
        for s, t, a, b, top in zip(seqs, tok.tolist(), lp.tolist(), mlp.tolist(), tops):
            self._record(s, t, a, b, top)
        return tok

    @staticmethod
    def _top_logprobs(
        seqs: list[_Seq], logits_BV: torch.Tensor, bp: BatchParams, tok: torch.Tensor
    ) -> list[TopLogprobs | None]:
        """Each asking row's most likely tokens; computed on those rows only, as it costs a sort of the vocabulary."""
        rows = [i for i, s in enumerate(seqs) if s.top is not None]
        out: list[TopLogprobs | None] = [None] * len(seqs)
        if not rows:
            return out
        idx = torch.tensor(rows)
        ids, lp, mlp = top_logprobs(logits_BV[idx], bp.index(idx), tok[idx], bp.top_logprobs)
        for r, i, a, b in zip(rows, ids.tolist(), lp.tolist(), mlp.tolist()):
            k = seqs[r].req.params.top_logprobs
            out[r] = list(zip(i[:k], a[:k], b[:k]))
        return out

    def _record(self, s: _Seq, tok: int, lp: float, mlp: float, top: TopLogprobs | None = None) -> None:
        s.tokens.append(tok)
        s.logprobs.append(lp)
        s.model_logprobs.append(mlp)
        if s.top is not None:
            s.top.append(top)  # type: ignore[arg-type]
        p = s.req.params
        reason: str | None = None
        stop_reason: int | str | None = None
        delta = ""
        if tok in s.stop_ids:
            reason, stop_reason = "stop", tok
        else:
            if s.tracker is not None:
                delta = s.tracker.push(tok)
                if s.tracker.stop_string is not None:
                    reason, stop_reason = "stop", s.tracker.stop_string
            if reason is None and (len(s.tokens) >= p.max_tokens or len(s.req.prompt) + len(s.tokens) >= self.max_len):
                reason = "length"
        if s.req.handle.stream:
            s.req.handle.emit(TokenEvent(s.index, tok, delta, lp, mlp, top))
        if reason is not None:
            self._finish(s, reason, stop_reason)

    def _finish(self, s: _Seq, reason: str, stop_reason: int | str | None = None) -> None:
        s.done = True
        self._dirty = True
        tail = ""
        if s.tracker is not None:
            tail = s.tracker.finish()
            text = s.tracker.text
        else:
            ids = s.tokens[:-1] if isinstance(stop_reason, int) else s.tokens
            text = self.tokenizer.decode(ids)
        result = Sample(s.index, s.tokens, text, s.logprobs, s.model_logprobs, reason, stop_reason, s.top)
        req = s.req
        req.results[s.index] = result
        req.open -= 1
        if req.handle.stream:
            req.handle.emit(SampleDone(result, tail))
        if req.open == 0:
            samples = [r for r in req.results if r is not None]
            req.handle.finish(Completion(req.handle.id, req.prompt, samples), None, self.stats["decode_steps"])

    def _retire(self) -> None:
        """Drop finished rows, moving survivors from the end into the holes so rows [0, B) stay in use."""
        if not any(s.done for s in self.rows):
            return
        n = sum(not s.done for s in self.rows)
        holes = [i for i in range(n) if self.rows[i].done]
        movers = [i for i in range(n, len(self.rows)) if not self.rows[i].done]
        if movers:
            length = max(self.rows[i].cache_len for i in movers)
            self.cache.copy_rows(torch.tensor(movers), torch.tensor(holes), length)
            for h, mv in zip(holes, movers):
                self.rows[h] = self.rows[mv]
        del self.rows[n:]
        self._dirty = True
