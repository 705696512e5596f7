"""Child processes the test servers run (RTSP camera, MQTT broker): stopped one way for all of them."""

from __future__ import annotations

import subprocess


def reap(proc: subprocess.Popen | None) -> None:
    """Kill `proc` if it still runs, wait for it, and close its output pipe."""
    if proc is None:
        return
    if proc.poll() is None:
        proc.kill()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:  # pragma: no cover
        pass
    if proc.stdout is not None:
        proc.stdout.close()


def stop(proc: subprocess.Popen | None, timeout: float = 5.0) -> None:
    """SIGTERM and wait up to `timeout` (an orderly shutdown), then `reap` whatever is left."""
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
    reap(proc)
