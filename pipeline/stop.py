"""Stopping a run cleanly: the first SIGINT/SIGTERM asks every source to stop, a second one exits at once."""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Callable, Iterator


class StopFlag:
    """Set by the first SIGINT/SIGTERM; a second one exits at once."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signal: str | None = None
        self._callbacks: list[Callable[[], None]] = []

    def on_stop(self, callback: Callable[[], None]) -> None:
        """Run `callback` (in a helper thread) when a stop is requested: e.g. close a camera whose
        read is blocked while it is down, so the frame loop sees the end instead of waiting forever."""
        self._callbacks.append(callback)

    def set(self, reason: str | None = None) -> None:
        if self.event.is_set():
            return
        self.signal = reason
        self.event.set()
        threading.Thread(target=lambda: [cb() for cb in list(self._callbacks)], daemon=True).start()

    def __bool__(self) -> bool:
        return self.event.is_set()

    @contextmanager
    def installed(self) -> Iterator[StopFlag]:
        if threading.current_thread() is not threading.main_thread():
            yield self
            return

        def handler(signum: int, _frame: object) -> None:
            if self.event.is_set():
                raise SystemExit(128 + signum)  # second signal: leave now
            self.set(signal.Signals(signum).name)

        old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for s, h in old.items():
                signal.signal(s, h)
