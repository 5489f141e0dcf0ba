"""The engine's thread policy: which count each forward runs on, that the caller's count comes back, that a count the
user gives wins, and the measurement it rests on (its shape and caching; nothing here is timed)."""

from __future__ import annotations

import math
import subprocess
import sys
import time

import pytest
import torch

from r1.engine import Engine, SamplingParams
from r1.engine import threads as T
from r1.engine.testing import tiny_model, tiny_tokenizer
from r1.errors import UserError
from r1.model.info import model_info

# An idle-machine curve (shape as measured: no gain for tiny matmuls, ~1.9x for big ones) and a busy machine's.
FLOPS = tuple(2.0 * r * 256 * 256 for r in (1, 2, 4, 8, 16, 32, 64, 128, 256))
ONE = tuple(f / 50e9 + 2e-6 for f in FLOPS)
IDLE = T.Speeds(2, FLOPS, ONE, tuple(o / s for o, s in zip(ONE, (0.9, 1.0, 1.05, 1.2, 1.35, 1.5, 1.7, 1.85, 1.9))))
BUSY = T.Speeds(2, FLOPS[-1:], ONE[-1:], ())


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


@pytest.fixture(scope="module")
def model(tok):
    return tiny_model(tok, "tiny", max_len=64)


@pytest.fixture
def two_threads():
    """The process on 2 threads (what the policy caps at), restored after the test."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def recording(model, monkeypatch) -> list[tuple[int, int]]:
    """(rows, threads) of every forward the engine runs on `model`; the forward itself then runs on one thread (2
    threads on a busy test machine would only be slow)."""
    seen: list[tuple[int, int]] = []
    step = model.decode_step

    def spy(ids, *args, **kwargs):
        n = torch.get_num_threads()
        seen.append((ids.numel(), n))
        torch.set_num_threads(1)
        try:
            return step(ids, *args, **kwargs)
        finally:
            torch.set_num_threads(n)

    monkeypatch.setattr(model, "decode_step", spy)
    return seen


def fake_speeds(curve: T.Speeds, calls: list[int]):
    def speeds(n: int) -> T.Speeds:
        calls.append(n)
        return curve

    return speeds


def engine_with(model, tok, curve: T.Speeds | None, threads: int | None = None, said: list[str] | None = None):
    calls: list[int] = []
    eng = Engine(model, tok, max_batch=8, max_len=64, threads=threads, speculative="off")  # plain steps: 1 row each
    if curve is not None:  # the engine's policy, on a given measurement instead of a timed one
        eng.threads._speeds = fake_speeds(curve, calls)
    eng.threads._say = (said if said is not None else []).append
    return eng, calls


PARAMS = SamplingParams(temperature=1.0, max_tokens=3, seed=1)


def test_busy_machine_runs_every_forward_on_one_thread_and_restores_the_callers_count(
    model, tok, two_threads, monkeypatch
):
    said: list[str] = []
    eng, calls = engine_with(model, tok, BUSY, said=said)
    seen = recording(model, monkeypatch)
    eng.generate([[5] * 40, [6] * 3], PARAMS)
    assert seen and all(n == 1 for _, n in seen), seen
    assert torch.get_num_threads() == 2  # the caller's count is back after the steps
    assert calls and set(calls) == {2}
    assert len(said) == 1 and "1 thread for every forward" in said[0] and "busy" in said[0]
    eng.generate([[7] * 5], PARAMS)
    assert len(said) == 1  # said once, not per step or per call


def test_idle_machine_shares_big_forwards_only(model, tok, two_threads, monkeypatch):
    said: list[str] = []
    eng, _ = engine_with(model, tok, IDLE, said=said)
    fewest = eng.threads.min_rows(2)
    assert 1 < fewest <= 64  # a batch-1 decode step stays on one thread; a long prefill shares
    seen = recording(model, monkeypatch)
    copies: list[int] = []
    refresh = eng.scheduler.fused.refresh
    monkeypatch.setattr(
        eng.scheduler.fused, "refresh", lambda **kw: copies.append(torch.get_num_threads()) or refresh(**kw)
    )
    eng.generate([[5] * 60], PARAMS.with_(max_tokens=2))  # one prefill of 60 tokens, then a single-row decode step
    assert copies and set(copies) == {1}  # the weight copies, outside any forward: small ops on one thread
    assert seen[0] == (60, 2 if fewest <= 60 else 1)
    assert all(n == 1 for rows, n in seen[1:]) and all(rows == 1 for rows, _ in seen[1:])
    assert torch.get_num_threads() == 2
    assert len(said) == 1 and f"{fewest} rows" in said[0]
    assert [eng.threads.threads_for(r) for r in (1, fewest - 1, fewest, 10 * fewest)] == [1, 1, 2, 2]


def test_user_count_always_wins_without_a_probe(model, tok, two_threads, monkeypatch):
    for threads, curve in ((2, BUSY), (1, IDLE)):
        said: list[str] = []
        eng, calls = engine_with(model, tok, curve, threads=threads, said=said)
        seen = recording(model, monkeypatch)
        eng.generate([[5] * 4, [6] * 3], PARAMS.with_(max_tokens=2))  # a prefill and one decode step
        assert len(seen) == 2 and {n for _, n in seen} == {threads}
        assert calls == [] and len(said) == 1 and f"engine: {threads} thread" in said[0] and "--threads" in said[0]
        assert torch.get_num_threads() == 2
        monkeypatch.undo()


def test_one_thread_process_never_probes(model, tok, monkeypatch):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        said: list[str] = []
        eng, calls = engine_with(model, tok, IDLE, said=said)
        seen = recording(model, monkeypatch)
        eng.generate([[5] * 60], PARAMS)
        assert {n for _, n in seen} == {1} and calls == []
        assert len(said) == 1 and said[0].startswith("engine: 1 thread for every forward (the process's 1 thread;")
    finally:
        torch.set_num_threads(before)


def test_count_is_restored_when_a_forward_fails(model, tok, two_threads, monkeypatch):
    eng, _ = engine_with(model, tok, BUSY)

    def boom(*args, **kwargs):
        assert torch.get_num_threads() == 1
        raise RuntimeError("boom")

    monkeypatch.setattr(model, "decode_step", boom)
    with pytest.raises(RuntimeError, match="boom"):
        eng.generate([[5] * 4], PARAMS)
    assert torch.get_num_threads() == 2


def test_use_outside_a_step_changes_nothing(model, two_threads):
    policy = T.EngineThreads(model, speeds=lambda n: BUSY, say=lambda s: None)
    assert policy.use(1) == 2 and torch.get_num_threads() == 2
    with policy.scope():
        assert policy.use(1) == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "2"])
def test_bad_thread_counts_are_user_errors(model, tok, bad):
    with pytest.raises(UserError, match=r"threads=.*must be an integer >= 1"):
        Engine(model, tok, max_batch=2, max_len=64, threads=bad)


def test_speedup_of_the_curve():
    assert BUSY.busy and BUSY.speedup([1e9]) == 0.0
    assert IDLE.speedup([FLOPS[-1]]) == pytest.approx(1.9)
    assert IDLE.speedup([FLOPS[-1] * 1000]) == pytest.approx(1.9)  # past the largest size: its speed-up
    assert IDLE.speedup([FLOPS[0] / 100]) == pytest.approx(0.9)  # below the smallest: never more than 1
    assert IDLE.speedup([math.sqrt(FLOPS[3] * FLOPS[4])]) == pytest.approx((1.2 + 1.35) / 2)  # log-size midpoint
    # a sum of matmuls is weighted by their times: one big matmul outweighs many tiny ones
    mixed = IDLE.speedup([FLOPS[-1]] + [FLOPS[0]] * 4)
    assert 0.9 < mixed < 1.9 and mixed > IDLE.speedup([FLOPS[-1] / 64] + [FLOPS[0]] * 4)


@pytest.mark.parametrize("kind", ["tiny", "tiny-qwen2"])
def test_matmul_flops_match_the_parameter_count(tok, kind):
    """Every matmul weight once, the routed experts at their top-k share: 2 FLOPs per active weight per row."""
    m = tiny_model(tok, kind, max_len=64)
    cfg = m.config
    info = model_info(cfg)
    vectors = sum(t.numel() for layer in m.model.layers for t in [*layer.parameters(), *layer.buffers()] if t.dim() < 2)
    vectors += m.model.norm.weight.numel()
    head = cfg.vocab_size * cfg.hidden_size
    expected = 2 * (info.active - info.embedding - info.head - vectors) + 2 * head
    assert sum(T.matmul_flops(m)) == pytest.approx(expected)
    assert max(T.matmul_flops(m)) == 2 * head


def test_measurement_shape_and_cache(monkeypatch, two_threads):
    speeds = T.measure(2)
    assert torch.get_num_threads() == 2  # the probe puts the count back
    assert speeds.threads == 2 and speeds.seconds > 0
    assert list(speeds.flops) == sorted(speeds.flops) and all(t > 0 for t in speeds.one)
    assert speeds.busy or (len(speeds.many) == len(speeds.flops) and all(t > 0 for t in speeds.many))

    made: list[int] = []
    monkeypatch.setattr(T, "measure", lambda n: made.append(n) or IDLE)
    monkeypatch.setattr(T, "_measured", {})
    assert T.measured_speeds(3) is IDLE and T.measured_speeds(3) is IDLE and made == [3]
    T._measured[3] = (IDLE, T._measured[3][1] - T.PROBE_SECONDS)  # a minute later: measured again
    T.measured_speeds(3)
    assert made == [3, 3]


def test_other_processes_runnable_threads_are_seen():
    """A CPU-bound process is runnable all the time: the count the busy check rests on includes it (Linux)."""
    if T.runnable_elsewhere() is None:
        pytest.skip("the OS does not report runnable threads")
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        assert max(T.runnable_elsewhere() for _ in range(5)) >= 1
    finally:
        spin.kill()
        spin.wait()


def test_a_new_measurement_that_flips_busy_is_said_again(model):
    said: list[str] = []
    curves = iter([IDLE, IDLE, BUSY, BUSY])
    policy = T.EngineThreads(model, speeds=lambda n: next(curves), say=said.append)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with policy.scope():
            assert [policy.threads_for(10_000) for _ in range(4)] == [2, 2, 1, 1]
    finally:
        torch.set_num_threads(before)
    assert len(said) == 2 and "busy" in said[1]


def test_the_server_warm_up_says_the_choice_before_serving(model, tok, two_threads):
    from r1.serve.cli import warm_up

    said: list[str] = []
    eng, _ = engine_with(model, tok, BUSY, said=said)
    warm_up(eng, "model-dir")  # what `r1 serve` runs before its "serving ..." line
    assert len(said) == 1 and said[0].startswith("engine: 1 thread for every forward (the cores are busy")
