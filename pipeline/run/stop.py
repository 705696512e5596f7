"""Stopping a run cleanly on a terminating signal, at any moment.

SIGINT (Ctrl-C), SIGTERM (`kill`, a service manager), SIGHUP (a dropped SSH connection or closed terminal),
SIGQUIT (Ctrl-\\) and SIGUSR1/SIGUSR2 all stop a run the same way (`SIGNALS`); only SIGKILL cannot be
caught, and `enhance-faces gallery DIR` recovers what such a run left. docs/robustness.md lists them.

The command's very first statement installs `interrupt` for all of them (`install`), before the package's
heavy imports, so even a signal that arrives while Python is still loading ends the command with a message
and 128 + the signal's number instead of a silent death.

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

# every signal whose default action ends the process and that a person or a supervisor sends to stop a run
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)
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


def install(handler: Callable[[int, object], None] | int = interrupt) -> None:
    """Set `handler` (default: `interrupt`) for every one of `SIGNALS`; only the main thread can."""
    if threading.current_thread() is threading.main_thread():
        for s in SIGNALS:
            signal.signal(s, handler)


def say(message: str) -> None:
    """`message` on stderr, if there is still one (after SIGHUP the terminal may be gone)."""
    try:
        print(message, file=sys.stderr, flush=True)
    except (OSError, ValueError, RuntimeError):  # gone, closed, or a print it interrupted
        pass


def interrupted_by() -> Interrupted | None:
    """The start-up interruption, if a signal caused whatever ended the command (an import raising
    ImportError because the signal's exception went off inside it, say)."""
    return Interrupted(RECEIVED[0]) if RECEIVED else None


class StopFlag:
    """Set by the first of `SIGNALS` once `started()`; before that a signal raises `Interrupted`."""

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

    def set(self, reason: str | None = None, message: str | None = None) -> None:
        """Ask the run to stop (`reason`: the signal's name, or why); `message` is shown on stderr, from a
        helper thread (printing inside a signal handler could meet the main thread's own print)."""
        if self.event.is_set():
            return
        self.signal = reason
        self.event.set()

        def stopping() -> None:
            if message:
                say(message)
            for cb in list(self._callbacks):
                cb()

        threading.Thread(target=stopping, daemon=True).start()

    def __bool__(self) -> bool:
        return self.event.is_set()

    def handle(self, signum: int, _frame: object = None) -> None:
        """The signal handler: raise during start-up, stop on the first signal, abort on the second."""
        if self.starting:
            RECEIVED.append(signum)
            raise Interrupted(signum)
        if not self.event.is_set():
            self.signum = signum
            name = signal.Signals(signum).name
            self.set(name, f"stopping on {name}: ending open tracks, closing the video, writing the manifest "
                           "and report (a second signal stops at once)")
            return
        self.abort(signum)

    def abort(self, signum: int) -> None:
        """Second signal: every abort callback (manifests first), a message, and exit at once."""
        for cb in list(self._aborts):
            try:
                cb()
            except Exception as e:  # noqa: BLE001 - the others must still run; say what failed
                say(f"while stopping: {e}")
        say(f"stopped at once by a second {signal.Signals(signum).name}: manifest written, "
            "gallery and report not (run.py gallery DIR writes them)")
        try:
            sys.stdout.flush()
        except (OSError, ValueError):
            pass
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
