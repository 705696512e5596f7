"""One progress view for a whole job: recordings done/total, frames/s, faces, ETA.

Each recording's session reports its counters to one small actor (at most once a second, fire-and-forget,
through the same `board.add(…).update(…)` calls a local run makes); the driver reads the actor and draws a
bar on a terminal, or a line every few seconds in a log, or (`--progress json`) one JSON line on stderr
every interval and a final one:

    {"progress": "running"|"final", "engine": "ray", "elapsed_s", "recordings", "done", "failed",
     "frames", "faces", "fps", "eta_s"}
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import ray
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from ..run.progress import ProgressSettings, settings_of

REPORT_EVERY_S = 1.0  # how often a recording tells the driver how far it is


@ray.remote(num_cpus=0)
class ProgressActor:
    """The latest counters of every recording: name → (frames, faces, total frames or None)."""

    def __init__(self) -> None:
        self.runs: dict[str, tuple[int, int, int | None]] = {}

    def update(self, key: str, frames: int, faces: int, total: int | None) -> None:
        self.runs[key] = (frames, faces, total)

    def snapshot(self) -> dict[str, tuple[int, int, int | None]]:
        return self.runs


class RemoteBoard:
    """`ProgressBoard`'s interface inside a Ray task: forwards one recording's counters to the actor."""

    def __init__(self, actor: Any, key: str) -> None:
        self.actor, self.key = actor, key
        self.last: tuple[int, int, int | None] | None = None
        self.sent = 0.0
        self.total: int | None = None

    def add(self, name: str, total: int | None) -> RemoteBoard:
        self.total = total
        return self

    def update(self, frames: int, faces: int, tracks: int, dropped: int = 0) -> None:
        self.last = (frames, faces, self.total)
        if time.monotonic() - self.sent >= REPORT_EVERY_S:
            self._send()

    def finish(self, status: str, frames: int, faces: int, tracks: int, dropped: int = 0) -> None:
        """The recording's run ended: its final counters, sent now."""
        self.last = (frames, faces, self.total)
        self._send()

    def close(self) -> None:
        if self.last is not None:
            self._send()

    def _send(self) -> None:
        self.sent = time.monotonic()
        self.actor.update.remote(self.key, *self.last)


class JobView:
    """The driver's display: a bar on a terminal, else a line every `every_s` seconds (JSON in json mode)."""

    def __init__(self, total: int, enabled: bool | str | ProgressSettings = True) -> None:
        settings = settings_of(enabled)
        self.total, self.mode, self.every_s = total, settings.mode, settings.every_s
        self.enabled = self.mode != "off"
        self.started = time.perf_counter()
        self._last_line = self.started
        self._console = Console(stderr=True)
        self._bar: Progress | None = None
        self._counts: dict[str, Any] = {"done": 0, "failed": 0, "frames": 0, "faces": 0, "eta_s": None}
        if self.mode == "auto" and self._console.is_terminal:
            self._bar = Progress(TextColumn("[bold]recordings"), BarColumn(), TextColumn("{task.fields[text]}"),
                                 TimeElapsedColumn(), console=self._console)
            self._task = self._bar.add_task("job", total=total or None, text="")
            self._bar.start()

    def show(self, done: int, failed: int, frames: int, faces: int, eta_s: float | None) -> None:
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        self._counts = {"done": done, "failed": failed, "frames": frames, "faces": faces, "eta_s": eta_s}
        if self.mode == "json":
            if time.perf_counter() - self._last_line >= self.every_s:
                self._last_line = time.perf_counter()
                self._json("running")
            return
        eta = f"{eta_s:.0f}s" if eta_s is not None else "?"
        bad = f" ({failed} failed)" if failed else ""
        text = f"{done}/{self.total}{bad}  {frames / elapsed:.1f} fps  {faces} faces  ETA {eta}"
        if self._bar is not None:
            self._bar.update(self._task, completed=done, text=text)
        elif self.enabled and time.perf_counter() - self._last_line >= self.every_s:
            self._last_line = time.perf_counter()
            print(f"recordings {text}", file=sys.stderr, flush=True)

    def _json(self, state: str) -> None:
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        c = self._counts
        line = {"progress": state, "engine": "ray", "elapsed_s": round(elapsed, 2), "recordings": self.total,
                "done": c["done"], "failed": c["failed"], "frames": c["frames"], "faces": c["faces"],
                "fps": round(c["frames"] / elapsed, 2), "eta_s": None if c["eta_s"] is None else round(c["eta_s"], 1)}
        print(json.dumps(line, separators=(",", ":")), file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        if self.mode == "json" and self.enabled:
            self.enabled = False  # once
            self._json("final")


def eta(fps: float, runs: dict[str, tuple[int, int, int | None]], finished: set[str],
        not_started: int) -> float | None:
    """Seconds left at the job's frame rate so far: what the unfinished recordings still have to do, those
    not started yet taken to be as long as the average recording seen so far."""
    totals = [t for _, _, t in runs.values() if t]
    if fps <= 0 or not totals:
        return None
    mean = sum(totals) / len(totals)
    left = sum(max(0.0, (t or mean) - f) for k, (f, _, t) in runs.items() if k not in finished)
    return (left + not_started * mean) / fps
