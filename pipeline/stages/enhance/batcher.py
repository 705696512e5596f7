"""A dynamic batcher: crops from any number of producer threads → batches for one backend.

A batch for an entry size is flushed when it reaches `max_batch` crops or when its oldest crop has
waited `max_wait_ms`, whichever comes first; a synchronous caller can also ask for an immediate flush
(`map`), so the runner's frame loop never waits for a batch that will not fill. Each crop's result
comes back on its own Future, so order per caller is kept whatever the batching. The input queue is
bounded: `submit` blocks when the worker falls behind (back-pressure instead of unbounded growth).
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from typing import Callable

import numpy as np

_FLUSH = object()
_CLOSE = object()


class BatcherClosed(RuntimeError):
    """submit() after close()."""


class DynamicBatcher:
    """`submit(lr) -> Future[np.ndarray]`; one worker thread runs `run_batch` on (B,e,e,3) stacks."""

    def __init__(self, run_batch: Callable[[np.ndarray], np.ndarray], max_batch: int = 64,
                 max_wait_ms: float = 5.0, max_queue: int = 1024, name: str = "enhance-batcher") -> None:
        if max_batch < 1 or max_queue < 1 or max_wait_ms < 0:
            raise ValueError("max_batch and max_queue must be >= 1, max_wait_ms >= 0")
        self.run_batch = run_batch
        self.max_batch, self.max_wait = max_batch, max_wait_ms / 1000.0
        self._queue: queue.Queue = queue.Queue(maxsize=max_queue)
        self._closed = threading.Event()
        self._submit_lock = threading.Lock()
        self.batches: list[int] = []  # sizes of the batches run, for tests and the bench (bounded below)
        self._worker = threading.Thread(target=self._loop, name=name, daemon=True)
        self._worker.start()

    # ---------------------------------------------------------------- producer side

    def submit(self, lr: np.ndarray, timeout: float | None = None) -> Future:
        """Queue one crop (uint8 (e,e,3)); blocks while the queue is full (raises queue.Full on timeout)."""
        fut: Future = Future()
        with self._submit_lock:  # close() cannot slip in between the check and the put
            if self._closed.is_set():
                raise BatcherClosed("batcher is closed")
            self._queue.put((lr, fut, time.perf_counter()), timeout=timeout)
        return fut

    def flush(self) -> None:
        """Run whatever is pending now instead of waiting for max_batch / max_wait."""
        if not self._closed.is_set():
            self._queue.put(_FLUSH)

    def map(self, lrs: list[np.ndarray], flush: bool = True) -> list[np.ndarray]:
        """Synchronous use: submit all, flush, wait; results in input order. Errors re-raise here."""
        futs = [self.submit(lr) for lr in lrs]
        if flush and futs:
            self.flush()
        return [f.result() for f in futs]

    def close(self, timeout: float | None = None) -> None:
        """Stop accepting work, run everything already queued, stop the worker."""
        with self._submit_lock:
            if self._closed.is_set():
                return
            self._closed.set()
        self._queue.put(_CLOSE)
        self._worker.join(timeout)

    def __enter__(self) -> "DynamicBatcher":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---------------------------------------------------------------- worker side

    def _loop(self) -> None:
        pending: dict[tuple, list] = {}  # shape → [(lr, future, t_submit)], in arrival order
        while True:
            timeout = None
            if pending:
                oldest = min(items[0][2] for items in pending.values())
                timeout = max(0.0, oldest + self.max_wait - time.perf_counter())
            try:
                taken = [self._queue.get(timeout=timeout)]
            except queue.Empty:
                taken = []
            # Everything that queued up while the last batch ran joins the pending groups before any of
            # them is judged by its age: otherwise, under load, every crop would already be older than
            # max_wait when it is taken and would run alone. (At most a queue's worth: back-pressure holds.)
            while taken and len(taken) < self._queue.maxsize:
                try:
                    taken.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            for item in taken:
                if item is _CLOSE:
                    for key in list(pending):
                        self._run(pending.pop(key))
                    return
                if item is _FLUSH:
                    for key in list(pending):
                        self._run(pending.pop(key))
                    continue
                lr, fut, t = item
                if not fut.set_running_or_notify_cancel():
                    continue
                key = getattr(lr, "shape", None)
                group = pending.setdefault(key, [])
                group.append(item)
                if len(group) >= self.max_batch:
                    self._run(pending.pop(key))
            now = time.perf_counter()
            for key in [k for k, items in pending.items() if now - items[0][2] >= self.max_wait]:
                self._run(pending.pop(key))

    def _run(self, items: list) -> None:
        futs = [f for _, f, _ in items]
        try:
            out = self.run_batch(np.stack([lr for lr, _, _ in items]))
            if len(out) != len(items):
                raise RuntimeError(f"backend returned {len(out)} results for {len(items)} inputs")
        except BaseException as e:  # every waiting caller gets the error; the worker lives on
            for f in futs:
                f.set_exception(e)
            return
        self.batches.append(len(items))
        del self.batches[:-1000]
        for f, y in zip(futs, out):
            f.set_result(y)
