"""How many CPU threads the engine's forwards run on: one for forwards too small to share, more only where they pay.

Why: a decode step of a small model is a few hundred small ops, and every op that runs in parallel forks to the
OpenMP team and waits at a barrier for all of its threads. When other processes keep the cores busy, the second
thread is often descheduled and each barrier waits for the OS scheduler. Measured on the shared 2-core AVX512 VM
(load 5-9): the tiny preset decoded 8-36x slower on 2 threads than on 1 (batch 1: 287 vs 35 new tokens/s, batch
64: 3,537 vs 97; with OMP_WAIT_POLICY=PASSIVE still 4x and 2.5x slower), while on an idle machine 2 threads are what
made batch 64 fast (12.5k new tokens/s in docs/LOG.md).

So before its first parallel forward the engine looks at the machine and times one matmul shape at several sizes
on one thread and on the process's threads (`measure`: ~5 ms on an idle machine, at most ~0.3 s; cached per process
and taken again after a minute, as the load of a shared machine changes). The machine is busy, and every forward
runs on one thread, when other processes keep as many runnable threads as the extra threads would need cores (the
OS's running count, sampled during the probe) or when the largest size gains nothing. Otherwise a forward of `rows`
rows (a decode step's batch, a prefill's tokens) runs its matmuls at sizes rows x (each weight's FLOPs per row,
from the model's shapes), and uses the threads where those matmuls, timed by the measured curve, add up to at least
1.3x faster. A thread count the user gives (`Engine(threads=)`, `r1 serve --threads`, `train.threads`, `r1 run
--threads`) is used for every forward instead, with no probe.

What can and cannot be changed at run time (torch 2.13 CPU wheels link GNU OpenMP, libgomp): `torch.set_num_threads`
costs ~0.2 us (OpenMP and MKL keep their thread pools), so switching per forward is free; OMP_WAIT_POLICY and
GOMP_SPINCOUNT are read once when libgomp loads (at `import torch`) and are the user's to set; KMP_BLOCKTIME is Intel
OpenMP's and does nothing here; inter-op threads (`set_num_interop_threads`) serve `torch.jit.fork`, which the
engine does not use. The thread count is process-wide: the engine sets it for its own forwards and puts the
caller's back after each step, so training keeps its threads.

Numerics: the MoE decode's grouped GEMM rounds differently on 1 and 2 threads, so an engine whose choice changes
(auto, on a machine whose load changes) can sample different tokens for the same seed at batch > 1; pass
`threads=` for numbers that repeat across processes (one thread always gives the same).
"""

from __future__ import annotations

import bisect
import contextlib
import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from r1.errors import UserError
from r1.model.weights import weight

GAIN = 1.3  # how much faster a forward's matmuls must get for it to run on more than one thread
PROBE_SECONDS = 60.0  # a measurement is reused this long, then taken again (machine load drifts)
PROBE_BUDGET = 0.3  # seconds one probe may take at most (on a busy machine each parallel op may wait for the OS)
_PROBE_WIDTH = 256  # the probe multiplies [rows, 256] by [256, 256]
_PROBE_ROWS = (256, 128, 64, 32, 16, 8, 4, 2, 1)  # largest first: a busy machine is told after one size
_ROUNDS = 5  # timings per size and thread count, interleaved


@dataclass(frozen=True)
class Speeds:
    """Seconds per matmul of `flops` FLOPs (ascending) on one thread and on `threads`; `many` is empty when the
    machine is busy (`busy_because` says why): nothing will gain."""

    threads: int
    flops: tuple[float, ...]
    one: tuple[float, ...]
    many: tuple[float, ...]
    seconds: float = 0.0  # what measuring took
    busy_because: str = ""

    @property
    def busy(self) -> bool:
        return not self.many

    def speedup(self, matmul_flops: Sequence[float]) -> float:
        """How much faster these matmuls run on `threads` than on one, by the measured curve: each one's time on one
        thread and its speed-up interpolated in log size; above the largest size measured, its speed-up; below the
        smallest, none (at most 1)."""
        if self.busy:
            return 0.0
        one = many = 0.0
        for f in matmul_flops:
            t = self._interpolate(f, [math.log(x) for x in self.one], extend=True)
            ratio = self._interpolate(f, [a / b for a, b in zip(self.one, self.many)], extend=False)
            one += math.exp(t)
            many += math.exp(t) / ratio
        return one / many

    def _interpolate(self, f: float, ys: list[float], extend: bool) -> float:
        """ys (log seconds when `extend`, else speed-ups) at log f; log seconds grow with log f past the ends."""
        xs = [math.log(x) for x in self.flops]
        lf = math.log(f)
        if lf <= xs[0]:
            return ys[0] + (lf - xs[0]) if extend else min(ys[0], 1.0)
        if lf >= xs[-1]:
            return ys[-1] + (lf - xs[-1]) if extend else ys[-1]
        i = bisect.bisect_right(xs, lf)
        a = (lf - xs[i - 1]) / (xs[i] - xs[i - 1])
        return (1 - a) * ys[i - 1] + a * ys[i]


_lock = threading.Lock()
_measured: dict[int, tuple[Speeds, float]] = {}  # threads -> (speeds, when measured)


def measured_speeds(threads: int) -> Speeds:
    """`measure(threads)`, cached for PROBE_SECONDS per process."""
    with _lock:
        hit = _measured.get(threads)
        now = time.monotonic()
        if hit is None or now - hit[1] >= PROBE_SECONDS:
            hit = _measured[threads] = (measure(threads), now)
        return hit[0]


def measure(threads: int, clock: Callable[[], float] = time.perf_counter) -> Speeds:
    """Time [rows, 256] x [256, 256] matmuls on one thread and on `threads`, interleaved, largest first, within
    PROBE_BUDGET. Busy (nothing timed, or the timings dropped) when other processes keep runnable threads on the
    cores the extra threads need (sampled before and between timings, where the OS says), or when the largest size
    does not gain: a short probe can fall into a quiet moment of a busy machine, the runnable count rarely does."""
    before = torch.get_num_threads()
    start = clock()
    others = [n for n in (runnable_elsewhere() for _ in range(3)) if n is not None]
    spare = available_cores() - threads + 0.5  # other runnable threads the cores can hold beside ours

    def busy(why: str) -> Speeds:
        return Speeds(threads, (), (), (), clock() - start, why)

    def crowded() -> str:
        mean = sum(others) / len(others) if others else 0.0
        if mean < spare:
            return ""
        return f"{mean:.1f} runnable threads of other processes on {available_cores()} cores"

    if crowded():
        return busy(crowded())
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(_PROBE_WIDTH, _PROBE_WIDTH, generator=gen)
    points: list[tuple[float, float, float]] = []
    try:
        with torch.inference_mode():
            for rows in _PROBE_ROWS:
                x = torch.randn(rows, _PROBE_WIDTH, generator=gen)
                flops = 2 * rows * _PROBE_WIDTH * _PROBE_WIDTH
                reps = max(1, math.ceil(4e6 / flops))  # each timing does >= 4 MFLOP: long enough for the clock
                spent = {1: 0.0, threads: 0.0}
                done = 0
                while done < _ROUNDS and (done == 0 or clock() - start < PROBE_BUDGET):
                    for n in (1, threads):
                        torch.set_num_threads(n)
                        F.linear(x, w)  # wakes the team (or lets it go back to sleep) before timing
                        t = clock()
                        for _ in range(reps):
                            F.linear(x, w)
                        spent[n] += clock() - t
                    done += 1
                n = runnable_elsewhere()
                if n is not None:
                    others.append(n)
                # total times, not a median: on a busy machine the stalls *are* the cost of a parallel forward
                one, many = spent[1] / (done * reps), spent[threads] / (done * reps)
                if not points and one < GAIN * many:
                    return busy(f"{threads} threads ran a {flops / 1e6:.0f} MFLOP matmul no {GAIN}x faster than 1")
                points.append((flops, one, many))
                if clock() - start > PROBE_BUDGET:
                    break
    finally:
        torch.set_num_threads(before)
    if crowded():
        return busy(crowded())
    points.sort()
    return Speeds(
        threads,
        tuple(p[0] for p in points),
        tuple(p[1] for p in points),
        tuple(p[2] for p in points),
        clock() - start,
    )


def runnable_elsewhere() -> int | None:
    """Threads of other processes runnable right now (Linux: /proc/loadavg's running count, less this process's
    running threads); None where the OS does not say."""
    try:
        with open("/proc/loadavg") as f:
            running = int(f.read().split()[3].split("/")[0])
        mine = 0
        for tid in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{tid}/stat") as f:
                    stat = f.read()
            except OSError:  # the thread ended meanwhile
                continue
            mine += stat[stat.rindex(")") + 2] == "R"
    except (OSError, ValueError, IndexError):
        return None
    return max(0, running - mine)


def available_cores() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def matmul_flops(model: nn.Module) -> list[float]:
    """Weight FLOPs per row of each matmul of a forward: every 2-D weight of the decoder layers and the head, 2·numel;
    a MoE layer's routed experts as grouped GEMMs (one per weight of an expert) over their top-k share. The embedding
    is a lookup and MTP modules do not decode; attention over the cache is left out (it depends on the context)."""
    cfg = model.config
    out: list[float] = []
    for layer in model.model.layers:
        experts = getattr(layer.mlp, "experts", None)
        routed = {id(p) for p in experts.parameters()} if experts is not None else set()
        for p in layer.parameters():
            if p.dim() == 2 and id(p) not in routed:
                out.append(2.0 * p.numel())
        if experts is not None:
            share = cfg.num_experts_per_tok / cfg.n_routed_experts
            for p in experts[0].parameters():
                if p.dim() == 2:
                    out.append(2.0 * p.numel() * share * len(experts))
    out.append(2.0 * weight(model.lm_head).numel())
    return out


class EngineThreads:
    """The thread count of each forward of one engine: `scope()` around a scheduler step (inside it everything runs
    on one thread, or the user's count), `use(rows)` before each forward (rows: a decode step's batch, a prefill's
    tokens), which keeps its count for the sampling after it. Outside a scope `use` does nothing, so nothing leaks
    into the caller's threads.

    threads: a fixed count for every forward (the user's); None: choose per forward, at most the process's count
    (`torch.get_num_threads()` when the step starts) and the cores this process may use.
    """

    def __init__(
        self,
        model: nn.Module,
        threads: int | None = None,
        speeds: Callable[[int], Speeds] = measured_speeds,
        say: Callable[[str], None] | None = None,
    ) -> None:
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise UserError(f"threads={threads!r}: must be an integer >= 1 (or None: the engine chooses)")
        self.fixed = threads
        self.per_row = matmul_flops(model)
        self.params = sum(p.numel() for p in model.parameters())
        self._speeds = speeds
        self._say = say if say is not None else _say_once
        self._restore: int | None = None  # the caller's count while a scope is open
        self._ceiling = 1
        self._plan: tuple[Speeds, int] | None = None  # a measurement and the fewest rows that pay on it
        self._said: bool | None = None  # whether the last line printed said "busy"
        self._said_fixed = False  # whether the line for a count with no choice was printed

    @contextlib.contextmanager
    def scope(self) -> Iterator[None]:
        """Forwards inside run on the counts `use` picks; the caller's count is back afterwards."""
        if self._restore is not None:  # nested: the outer scope restores
            yield
            return
        before = torch.get_num_threads()
        self._restore = before
        self._ceiling = self.fixed or min(before, available_cores())
        start = self.fixed or 1  # the step's work outside forwards (weight copies, cache row moves) is small ops too
        if before != start:
            torch.set_num_threads(start)
        try:
            yield
        finally:
            self._restore = None
            if torch.get_num_threads() != before:
                torch.set_num_threads(before)

    def use(self, rows: int) -> int:
        """Set the thread count for a forward over `rows` rows (inside a scope); returns it."""
        if self._restore is None:
            return torch.get_num_threads()
        n = self.threads_for(rows)
        if torch.get_num_threads() != n:
            torch.set_num_threads(n)
        return n

    def threads_for(self, rows: int) -> int:
        """The count a forward over `rows` rows runs on (under the ceiling of the current or last scope)."""
        n = self.fixed or self._ceiling
        if self.fixed is not None or n <= 1:
            if not self._said_fixed:  # nothing to choose: say so once, without a probe
                self._said_fixed = True
                why = (
                    "the count given: threads= or --threads"
                    if self.fixed is not None
                    else f"the process's {self._ceiling} thread"
                )
                self._say(f"engine: {n} thread{'s' * (n > 1)} for every forward ({why}; {self._model()})")
            return n
        return n if rows >= self.min_rows(n) else 1

    def min_rows(self, n: int) -> int:
        """The fewest rows per forward for which `n` threads pay, on the current measurement (a large number when
        none do)."""
        speeds = self._speeds(n)
        if self._plan is None or self._plan[0] is not speeds:
            self._plan = (speeds, self._fewest_rows(speeds))
            if self._said != speeds.busy:  # the first choice; again only when the machine turns busy or free
                self._said = speeds.busy
                self._say(self.describe(speeds, self._plan[1]))
        return self._plan[1]

    def _fewest_rows(self, speeds: Speeds, limit: int = 1 << 20) -> int:
        if speeds.busy or speeds.speedup([limit * f for f in self.per_row]) < GAIN:
            return limit + 1
        lo, hi = 1, limit  # the speed-up grows with the matmuls' size: the smallest paying row count by bisection
        while lo < hi:
            mid = (lo + hi) // 2
            if speeds.speedup([mid * f for f in self.per_row]) >= GAIN:
                hi = mid
            else:
                lo = mid + 1
        return lo

    def describe(self, speeds: Speeds, rows: int) -> str:
        """The one line the engine prints about its choice."""
        n, model = speeds.threads, self._model()
        probe = f"{available_cores()} cores, measured in {speeds.seconds * 1e3:.0f} ms"
        if speeds.busy:
            return (
                f"engine: 1 thread for every forward (the cores are busy: {speeds.busy_because}; {model}; {probe}; "
                "measured again each minute)"
            )
        return (
            f"engine: 1 thread for forwards under {rows} rows (decode batch or prefill tokens), {n} threads from "
            f"{rows} ({model}; {probe})"
        )

    def _model(self) -> str:
        return f"model {self.params / 1e6:.1f}M params, {sum(self.per_row) / 1e6:.1f} MFLOP of matmuls per row"


def _say_once(message: str) -> None:
    from r1.dtypes import say_once

    say_once(message)
