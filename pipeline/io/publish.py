"""Bookkeeping off the frame loop: a helper thread keeps a running run's manifest (and a live feed's gallery
and report) up to date, so writing them never holds up frames, however many tracks have ended.

The frame loop only asks (`request`, which never blocks); the helper does the work, and requests that
arrive while it is busy are merged into one. What the helper could not write (a full disk) is raised in
the frame loop by `check`, so the run stops there like after any other write error.

Bookkeeping must never take the frames' CPU: the helper runs at a lower scheduling priority (`NICE`, where
the system allows it: Linux schedules threads one by one), and threads it starts (a report's ONNX Runtime
pool) inherit that. Live feeds share a `gate`, so their reports are written one at a time, never all at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

NICE = 10  # added to the helper thread's niceness: the frame loops win the CPU when there is not enough

log = logging.getLogger(__name__)


@dataclass
class Shared:
    """What the publishers of one run's sources share: the `gate` (one report at a time) and what a report
    loads once for all of them (`cache`: the people embedder)."""

    gate: threading.Lock = field(default_factory=threading.Lock)
    cache: dict[str, Any] = field(default_factory=dict)


class Publisher:
    """Runs `snapshot` (and `report` when asked) in a helper thread, one request at a time."""

    def __init__(self, snapshot: Callable[[], None], report: Callable[[], None] | None = None,
                 name: str = "run", gate: threading.Lock | None = None) -> None:
        """`gate`: a lock shared with other publishers; a report is written only while holding it."""
        self._snapshot, self._report = snapshot, report
        self._gate = gate if gate is not None else contextlib.nullcontext()
        self._wake = threading.Event()
        self._want_report = False
        self._closing = False
        self.error: Exception | None = None  # an OutputError (disk full), or a bug shown as one in the frame loop
        self.busy_s = 0.0  # time the helper spent writing (for tests and the curious)
        self.done = 0  # requests served
        self.reports = 0  # reports written
        self._thread = threading.Thread(target=self._run, name=f"publish {name}", daemon=True)
        self._thread.start()

    def request(self, report: bool = False) -> None:
        """Write the manifest (and the report, if asked and there is one) soon; returns at once."""
        if report and self._report is not None:
            self._want_report = True
        self._wake.set()

    def check(self) -> None:
        """Raise, in the caller's thread, the write error the helper ran into."""
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        """Finish the write under way (if any) and stop the helper; the caller writes the final files itself."""
        self._closing = True
        self._wake.set()
        self._thread.join()

    def _run(self) -> None:
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), os.getpriority(os.PRIO_PROCESS, 0) + NICE)
        except (AttributeError, OSError) as e:  # not Linux, or not allowed: the same priority as the frames
            log.debug("publisher keeps its priority: %s", e)
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._closing:
                return
            report, self._want_report = self._want_report, False
            t = time.perf_counter()
            try:
                self._snapshot()
                if report:
                    with self._gate:
                        self._report()
                    self.reports += 1
                    self._snapshot()  # the manifest then lists the report's files too
            except Exception as e:  # noqa: BLE001 - raised again in the frame loop by check()
                self.error = e
                return
            finally:
                self.busy_s += time.perf_counter() - t
                self.done += 1
