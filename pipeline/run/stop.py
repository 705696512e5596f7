"""Stopping a run cleanly on SIGINT/SIGTERM, at any moment.

During start-up (opening inputs, loading models) nothing has been written yet: a signal ends the command at
once with a message (`Interrupted`). Once frames flow, the first signal asks every source to stop, and the
run finishes as usual (tracks written, video finalized, manifest "interrupted", report). A second signal
does not wait for that: the abort callbacks write each manifest (and close each video) first, then the
process exits.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from contextlib import contextmanager
from typing import Callable, Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)
RECEIVED: list[int] = []  # signals that ended a start-up (a library may turn the exception into its own)


class Interrupted(KeyboardInterrupt):
    """A signal before any output was written (start-up). The command exits with 128 + the signal's number."""

    def __init__(self, signum: int, what: str = "during start-up: nothing was processed") -> None:
        self.name = signal.Signals(signum).name
        self.exit_code = 128 + signum
        super().__init__(f"interrupted by {self.name} {what}".strip())


def interrupt(signum: int, _frame: object = None) -> None:
    """A plain handler (a command's start, before a run installs its own): end the command with a message."""
    RECEIVED.append(signum)
    raise Interrupted(signum, "")


def interrupted_by() -> Interrupted | None:
    """The start-up interruption, if a signal caused whatever ended the command (an import raising
    ImportError because the signal's exception went off inside it, say)."""
    return Interrupted(RECEIVED[0]) if RECEIVED else None


class StopFlag:
    """Set by the first SIGINT/SIGTERM once `started()`; before that a signal raises `Interrupted`."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signal: str | None = None
        self.signum: int | None = None
        self.starting = True
        self._callbacks: list[Callable[[], None]] = []
        self._aborts: list[Callable[[], None]] = []

    def on_stop(self, callback: Callable[[], None]) -> None:
        """Run `callback` (in a helper thread) when a stop is requested: e.g. close a camera whose
        read is blocked while it is down, so the frame loop sees the end instead of waiting forever."""
        self._callbacks.append(callback)

    def on_abort(self, callback: Callable[[], None]) -> None:
        """Run `callback` (in the signal handler, before exiting) on a second signal: write what must be on disk."""
        self._aborts.append(callback)

    def started(self) -> None:
        """Start-up is over: from now on a signal stops the run cleanly instead of ending the command."""
        self.starting = False

    def set(self, reason: str | None = None) -> None:
        if self.event.is_set():
            return
        self.signal = reason
        self.event.set()
        threading.Thread(target=lambda: [cb() for cb in list(self._callbacks)], daemon=True).start()

    def __bool__(self) -> bool:
        return self.event.is_set()

    def handle(self, signum: int, _frame: object = None) -> None:
        """The signal handler: raise during start-up, stop on the first signal, abort on the second."""
        if self.starting:
            RECEIVED.append(signum)
            raise Interrupted(signum)
        if not self.event.is_set():
            self.signum = signum
            self.set(signal.Signals(signum).name)
            return
        self.abort(signum)

    def abort(self, signum: int) -> None:
        """Second signal: every abort callback (manifests first), a message, and exit at once."""
        for cb in list(self._aborts):
            try:
                cb()
            except Exception as e:  # noqa: BLE001 - the others must still run; say what failed
                print(f"while stopping: {e}", file=sys.stderr)
        print(f"stopped at once by a second {signal.Signals(signum).name}: manifest written, "
              "gallery and report not (run.py gallery DIR writes them)", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(128 + signum)

    @contextmanager
    def installed(self) -> Iterator[StopFlag]:
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        old = {s: signal.signal(s, self.handle) for s in SIGNALS}
        try:
            yield self
        finally:
            for s, h in old.items():
                signal.signal(s, h)
