"""DynamicBatcher: order per caller, flush on size or wait, grouping by entry, back-pressure, errors, drain."""

from __future__ import annotations

import queue
import threading
import time

import numpy as np
import pytest

from pipeline.stages.enhance.batcher import BatcherClosed, DynamicBatcher


def tagged(i: int, e: int = 16) -> np.ndarray:
    """A crop whose first pixel encodes its id, so a result can be traced back to its input."""
    a = np.zeros((e, e, 3), np.uint8)
    a[0, 0] = (i % 256, (i // 256) % 256, e)
    return a


def echo(batch: np.ndarray) -> np.ndarray:
    """A stand-in backend: returns each input's tag, and checks every batch is one entry size."""
    assert len({batch.shape[1:]}) == 1
    return batch[:, 0, 0].copy()


def ident(y: np.ndarray) -> int:
    return int(y[0]) + 256 * int(y[1])


class Recorder:
    def __init__(self, fn=echo, delay: float = 0.0) -> None:
        self.fn, self.delay, self.shapes = fn, delay, []
        self.lock = threading.Lock()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        with self.lock:
            self.shapes.append(batch.shape)
        if self.delay:
            time.sleep(self.delay)
        return self.fn(batch)


def test_results_return_to_their_producer_in_order_under_concurrency():
    rec = Recorder()
    with DynamicBatcher(rec, max_batch=8, max_wait_ms=2, max_queue=16) as b:
        errors: list[str] = []

        def producer(p: int) -> None:
            futs = [(i, b.submit(tagged(p * 100 + i, (16, 32, 64)[i % 3]))) for i in range(60)]
            for i, f in futs:
                y = f.result(timeout=30)
                if ident(y) != (p * 100 + i) % 65536 or int(y[2]) != (16, 32, 64)[i % 3]:
                    errors.append(f"producer {p} item {i} got {ident(y)}")

        threads = [threading.Thread(target=producer, args=(p,)) for p in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert not errors
    assert sum(s[0] for s in rec.shapes) == 360
    assert max(s[0] for s in rec.shapes) <= 8
    assert any(s[0] > 1 for s in rec.shapes)  # concurrent producers really share batches


def test_full_batch_flushes_without_waiting():
    rec = Recorder()
    with DynamicBatcher(rec, max_batch=4, max_wait_ms=60_000) as b:
        t = time.perf_counter()
        futs = [b.submit(tagged(i)) for i in range(4)]
        [f.result(timeout=10) for f in futs]
        assert time.perf_counter() - t < 5
    assert rec.shapes[0][0] == 4


def test_partial_batch_flushes_after_max_wait():
    rec = Recorder()
    with DynamicBatcher(rec, max_batch=64, max_wait_ms=80) as b:
        t = time.perf_counter()
        futs = [b.submit(tagged(i)) for i in range(3)]
        [f.result(timeout=10) for f in futs]
        waited = time.perf_counter() - t
    assert 0.07 <= waited < 5
    assert rec.shapes == [(3, 16, 16, 3)]


def test_map_is_synchronous_and_flushes_at_once():
    with DynamicBatcher(Recorder(), max_batch=64, max_wait_ms=60_000) as b:
        t = time.perf_counter()
        out = b.map([tagged(i, e) for i, e in enumerate([16, 32, 16, 64, 32])])
        assert time.perf_counter() - t < 5
    assert [ident(y) for y in out] == [0, 1, 2, 3, 4]
    assert [int(y[2]) for y in out] == [16, 32, 16, 64, 32]


def test_entry_sizes_batch_separately():
    rec = Recorder()
    with DynamicBatcher(rec, max_batch=64, max_wait_ms=60_000) as b:
        b.map([tagged(i, (16, 32)[i % 2]) for i in range(10)])
    assert sorted(rec.shapes) == [(5, 16, 16, 3), (5, 32, 32, 3)]


def test_back_pressure_blocks_submit_when_the_queue_is_full():
    gate = threading.Event()

    def slow(batch):
        gate.wait(30)
        return echo(batch)

    b = DynamicBatcher(slow, max_batch=1, max_wait_ms=0, max_queue=2)
    try:
        first = b.submit(tagged(0))
        deadline = time.time() + 5
        while not first.running() and time.time() < deadline:  # the worker is now stuck inside `slow`
            time.sleep(0.005)
        b.submit(tagged(1))
        b.submit(tagged(2))  # queue (2) now full
        with pytest.raises(queue.Full):
            b.submit(tagged(3), timeout=0.2)
        blocked = threading.Thread(target=lambda: b.submit(tagged(4)))
        blocked.start()
        blocked.join(0.3)
        assert blocked.is_alive()  # waiting for room, not growing the queue
        gate.set()
        blocked.join(10)
        assert not blocked.is_alive()
        assert ident(first.result(timeout=10)) == 0
    finally:
        gate.set()
        b.close()


def test_backend_error_reaches_every_caller_and_the_worker_survives():
    calls = []

    def flaky(batch):
        calls.append(len(batch))
        if len(calls) == 1:
            raise RuntimeError("boom")
        return echo(batch)

    with DynamicBatcher(flaky, max_batch=2, max_wait_ms=60_000) as b:
        futs = [b.submit(tagged(i)) for i in range(2)]
        for f in futs:
            with pytest.raises(RuntimeError, match="boom"):
                f.result(timeout=10)
        assert [ident(y) for y in b.map([tagged(7), tagged(8)])] == [7, 8]


def test_wrong_result_count_is_an_error_not_a_hang():
    with DynamicBatcher(lambda batch: batch[:1, 0, 0], max_batch=3, max_wait_ms=60_000) as b:
        with pytest.raises(RuntimeError, match="results for"):
            b.map([tagged(i) for i in range(3)])


def test_close_drains_pending_work_then_rejects_new_work():
    rec = Recorder(delay=0.01)
    b = DynamicBatcher(rec, max_batch=4, max_wait_ms=60_000)
    futs = [b.submit(tagged(i)) for i in range(10)]
    b.close()
    assert all(f.done() for f in futs)
    assert [ident(f.result()) for f in futs] == list(range(10))
    with pytest.raises(BatcherClosed):
        b.submit(tagged(0))
    b.close()  # idempotent


def test_bad_settings_rejected():
    for kw in ({"max_batch": 0}, {"max_queue": 0}, {"max_wait_ms": -1}):
        with pytest.raises(ValueError):
            DynamicBatcher(echo, **kw)


def test_crops_queued_behind_a_slow_batch_share_the_next_one():
    """Under load every queued crop is already past max_wait when taken; they must still run together."""
    rec = Recorder(delay=0.3)
    with DynamicBatcher(rec, max_batch=64, max_wait_ms=1) as b:
        first = b.submit(tagged(0))
        deadline = time.time() + 5
        while not first.running() and time.time() < deadline:  # the worker is busy with the first batch
            time.sleep(0.005)
        later = [b.submit(tagged(i)) for i in range(1, 11)]
        assert [ident(f.result(timeout=10)) for f in later] == list(range(1, 11))
    assert [s[0] for s in rec.shapes] == [1, 10]
