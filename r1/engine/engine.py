"""The one inference engine that RL, evaluation, chat and the server share.

    engine = Engine.from_pretrained("runs/sft/final")
    out = engine.generate(["2 + 2 ="], SamplingParams(temperature=0.6, top_p=0.95, max_tokens=64, n=4))
    out[0].samples[0].text, out[0].samples[0].logprobs, out[0].samples[0].model_logprobs

Two ways to drive it. Synchronously: `generate`, `chat` and `stream` step the scheduler in the calling thread until
their requests finish. In the background: `start()` runs the scheduler in a thread, `submit()` returns a handle whose
events arrive as tokens are decoded, and `generate` just waits on handles; requests from many callers share batches.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch

from r1.engine.requests import Completion, Event, RequestDone, RequestHandle
from r1.engine.sampling import SamplingParams
from r1.engine.scheduler import Scheduler
from r1.engine.speculative import AUTO_MAX_BATCH, DEFAULT_NUM_TOKENS, SpecConfig, Speculator
from r1.engine.threads import EngineThreads
from r1.errors import UserError
from r1.model.cache import KVCache
from r1.model.transformer import Transformer
from r1.tokenizer import Tokenizer

DEFAULT_MAX_LEN = 4096  # tokens per sequence (prompt + completion) unless asked otherwise; caps cache memory

Prompt = str | Sequence[int] | Sequence[Mapping[str, Any]]


class Engine:
    """Batched generation on one model: preallocated KV cache, continuous batching, per-request sampling.

    max_batch: rows of the KV cache = sequences decoded together (a request with n samples takes n rows).
    max_len: tokens per sequence, prompt included (default: the model's context, at most 4096).
    mla_impl: "absorb" caches only MLA's latent (DeepSeek); "naive" caches per-head K/V (for checks).
    prefill_tokens: at most this many prompt tokens per prefill forward (bounds activation memory).
    head_dtype: run the vocabulary projection in this dtype (e.g. bf16 when the trainer runs under bf16 autocast:
        its logits are bf16 GEMMs too, and it is the largest GEMM of a decode step); default: the weights' dtype.
    threads: CPU threads for every forward; default: one thread for forwards too small to share (a small model's
        decode steps), the process's threads where a probe of this machine finds they pay (see `threads.py`; the
        choice is printed once). The caller's thread count is restored after each step.
    speculative: MTP self-speculative decoding (`r1.engine.speculative`): "auto" (default: where it pays, i.e. for
        models with MTP modules at small batch), "on" or "off". Outputs keep the model's distribution either way;
        greedy outputs are the same tokens.
    num_speculative_tokens: k, the tokens the MTP modules draft per round (default 1).
    speculative_max_batch: `auto` speculates while at most this many sequences decode together.
    """

    def __init__(
        self,
        model: Transformer,
        tokenizer: Tokenizer,
        max_batch: int = 64,
        max_len: int | None = None,
        mla_impl: str = "absorb",
        cache_dtype: torch.dtype | None = None,
        prefill_tokens: int = 4096,
        head_dtype: torch.dtype | None = None,
        threads: int | None = None,
        speculative: str = "auto",
        num_speculative_tokens: int | None = None,
        speculative_max_batch: int | None = None,
    ) -> None:
        cfg = model.config
        if max_batch < 1:
            raise UserError(f"max_batch={max_batch}: must be >= 1")
        if mla_impl not in ("absorb", "naive"):
            raise UserError(f"mla_impl={mla_impl!r}: must be 'absorb' or 'naive'")
        if tokenizer.vocab_size > cfg.vocab_size:
            raise UserError(f"tokenizer has {tokenizer.vocab_size} ids but the model only {cfg.vocab_size}")
        limit = cfg.max_position_embeddings
        max_len = min(limit, DEFAULT_MAX_LEN) if max_len is None else max_len
        if not 2 <= max_len <= limit:
            raise UserError(f"max_len={max_len}: must be in [2, {limit}] (the model's max_position_embeddings)")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_batch, self.max_len = max_batch, max_len
        self.mla_impl = mla_impl
        self.threads = EngineThreads(model, threads)
        spec = spec_config(speculative, num_speculative_tokens, speculative_max_batch)
        self.scheduler = Scheduler(
            model, tokenizer, max_batch, max_len, mla_impl, cache_dtype, prefill_tokens, head_dtype, spec, self.threads
        )
        self._ids = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._drive_lock = threading.Lock()  # one thread steps the scheduler at a time

    @classmethod
    def from_pretrained(
        cls, path: str | os.PathLike, dtype: str | torch.dtype | None = "auto", device: str = "cpu", **kwargs: Any
    ) -> Engine:
        """Load a Hugging Face directory written by `save_pretrained` (weights + tokenizer files).

        dtype: what the model computes in: a torch dtype or its name ('float32', 'bfloat16', 'float16'), or
        'auto' (or None): see `r1.dtypes.inference_dtype` (a float32 checkpoint stays float32 on CPU; a 16-bit
        one runs in bfloat16 where the CPU has native bf16, else in float32).
        """
        from r1.dtypes import checkpoint_dtype, inference_dtype
        from r1.model.checkpoint import load_pretrained

        dtype = inference_dtype(dtype, checkpoint_dtype(path), device)
        model = load_pretrained(path, dtype=dtype, device=device)
        return cls(model, Tokenizer.load(path), **kwargs)

    # -------------------------------------------------------------------------------------------- info
    def cache_bytes_per_token(self) -> int:
        """KV-cache bytes one token costs over all layers (MLA absorbed: kv_lora_rank + rope dims per layer)."""
        cfg = self.model.config
        dtype = self.scheduler.cache_dtype or next(self.model.parameters()).dtype
        per_layer = KVCache.elements_per_token(cfg, self.mla_impl)
        return per_layer * cfg.num_hidden_layers * torch.empty((), dtype=dtype).element_size()

    @property
    def stats(self) -> dict[str, int]:
        """Counters: prefill forwards and tokens, decode steps, generated tokens; with speculation also its rounds
        (verify forwards), drafts (row-rounds), draft, accepted and emitted tokens (`spec_*`)."""
        return self.scheduler.stats

    @property
    def speculator(self) -> Speculator | None:
        """The MTP speculator (None: speculation off, or a model without MTP modules)."""
        return self.scheduler.spec

    def num_active(self) -> int:
        """Sequences being decoded now (cache rows in use)."""
        return self.scheduler.num_active()

    def num_pending(self) -> int:
        return self.scheduler.num_pending()

    # ------------------------------------------------------------------------------------------ prompts
    def encode(self, prompt: Prompt, add_bos: bool = False) -> list[int]:
        """Token ids for a prompt: ids as given, text encoded as is, or chat messages through the chat template.

        Messages are someone's text: control-token strings inside them stay plain text (`sanitize_control_tokens`),
        so only the template writes turns. Training renders its data with the tokenizer itself."""
        if isinstance(prompt, str):
            ids = self.tokenizer.encode(prompt)
            bos = self.tokenizer.bos_id
            return [bos, *ids] if add_bos and bos is not None and ids[:1] != [bos] else ids
        items = list(prompt)
        if items and all(isinstance(m, Mapping) for m in items):
            return self.tokenizer.apply_chat_template(
                items, add_generation_prompt=True, tokenize=True, sanitize_control_tokens=True
            )
        if not all(isinstance(t, int) and not isinstance(t, bool) for t in items):
            raise UserError("a prompt must be a string, a list of token ids, or a list of chat messages")
        return [int(t) for t in items]

    def check_prompt(self, ids: Sequence[int], params: SamplingParams) -> None:
        """Reject what can never run: empty or too-long prompts, unknown ids, more samples than rows."""
        if not ids:
            raise UserError("prompt is empty: give at least one token")
        if len(ids) >= self.max_len:
            raise UserError(
                f"prompt has {len(ids)} tokens; the engine's context is {self.max_len} (max_len), "
                "which must leave room for at least one generated token"
            )
        V = self.model.config.vocab_size
        bad = next((t for t in ids if not 0 <= t < V), None)
        if bad is not None:
            raise UserError(f"prompt token id {bad} is outside the vocabulary [0, {V})")
        if params.n > self.max_batch:
            raise UserError(f"n={params.n}: must be at most the engine's max_batch={self.max_batch}")

    # ------------------------------------------------------------------------------------------ generate
    def submit(
        self,
        prompt: Prompt,
        params: SamplingParams | None = None,
        stream: bool = True,
        on_event: Callable[[Event], None] | None = None,
    ) -> RequestHandle:
        """Queue one request; events go to `on_event` (called on the engine thread) or to the handle's queue."""
        params = params or SamplingParams()
        ids = self.encode(prompt)
        self.check_prompt(ids, params)
        handle = RequestHandle(next(self._ids), ids, params, stream, on_event)
        handle._wake = self._wake
        with self._cond:
            self.scheduler.add(handle)
            self._cond.notify()
        return handle

    def weights_updated(self) -> None:
        """Re-derive the decode step's weight copies from the model's parameters (after an optimizer step)."""
        with self.threads.scope():  # copies are small ops here too: on a busy machine 2 threads stall on each
            self.scheduler.fused.refresh(force=True)

    def generate(
        self, prompts: Sequence[Prompt], params: SamplingParams | Sequence[SamplingParams] | None = None
    ) -> list[Completion]:
        """Generate for every prompt (one `SamplingParams` for all, or one per prompt); results in prompt order.

        Always samples from the model's current weights: RL updates them in place between calls.
        """
        prompts = list(prompts)
        self.weights_updated()
        if params is None or isinstance(params, SamplingParams):
            plist = [params or SamplingParams()] * len(prompts)
        else:
            plist = list(params)
            if len(plist) != len(prompts):
                raise UserError(f"got {len(plist)} SamplingParams for {len(prompts)} prompts")
        encoded = [self.encode(p) for p in prompts]
        for ids, sp in zip(encoded, plist):  # validate all before queueing any
            self.check_prompt(ids, sp)
        handles = [self.submit(ids, sp, stream=False) for ids, sp in zip(encoded, plist)]
        self._run_until(lambda: all(h.done() for h in handles))
        return [h.result() for h in handles]

    def chat(self, messages: Sequence[Mapping[str, Any]], params: SamplingParams | None = None) -> Completion:
        """One chat turn: render `messages` with the chat template (which opens `<think>\\n`) and generate."""
        return self.generate([messages], params)[0]

    def stream(self, prompt: Prompt, params: SamplingParams | None = None) -> Iterator[Event]:
        """Events of one request as they are decoded; closing the iterator early cancels the request."""
        handle = self.submit(prompt, params, stream=True)
        try:
            if self.running:
                yield from handle.events()
                return
            while True:
                with self._drive_lock:
                    if self.scheduler.has_work():
                        self._step()
                for ev in handle.pending_events():
                    yield ev
                    if isinstance(ev, RequestDone):
                        return
        finally:
            if not handle.done():
                handle.cancel()
                if not self.running:
                    self._run_until(handle.done)

    def _run_until(self, done: Callable[[], bool]) -> None:
        if self.running:
            while not done():
                self._wait_done(done)
            return
        with self._drive_lock:
            while not done():
                try:
                    self._step()
                except Exception as exc:
                    self.scheduler.fail_all(exc)
                    raise

    def _step(self) -> None:
        with self.threads.scope():  # the forwards pick their thread counts; the caller's is back afterwards
            self.scheduler.step()

    def _wait_done(self, done: Callable[[], bool]) -> None:
        with self._cond:
            self._cond.wait_for(lambda: done() or not self.running, timeout=0.05)

    # ------------------------------------------------------------------------------------- background
    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> Engine:
        """Run the scheduler in a background thread (idempotent); submitted requests are served as they come."""
        if self.running:
            return self
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="r1-engine", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop the background thread after its current step; requests still in flight are failed."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
        self._thread = None
        if self.scheduler.has_work():
            self.scheduler.fail_all(RuntimeError("engine stopped"))

    def __enter__(self) -> Engine:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._stopping or self.scheduler.has_work())
                if self._stopping:
                    return
            with self._drive_lock:
                try:
                    self._step()
                except Exception as exc:  # a failing batch must not kill the server: fail its requests, go on
                    self.scheduler.fail_all(exc)
            with self._cond:
                self._cond.notify_all()  # waiters in _wait_done re-check their handles


def spec_config(mode: str = "auto", num_tokens: int | None = None, max_batch: int | None = None) -> SpecConfig:
    """The engine's speculation settings from its arguments (checked: a bad value is a one-line UserError)."""
    return SpecConfig(
        mode,
        DEFAULT_NUM_TOKENS if num_tokens is None else num_tokens,
        AUTO_MAX_BATCH if max_batch is None else max_batch,
    )
