"""One progress view for a whole job: recordings done/total, frames/s, faces, ETA.

Each recording's session reports its counters to one small actor (at most once a second, fire-and-forget,
through the same `board.add(…).update(…)` calls a local run makes); the driver reads the actor and draws a
bar on a terminal, or a line every few seconds in a log, or (`--progress json`) one JSON line on stderr
every interval in the schema the local engine writes (`run.progress`, schema 1), every recording one
source in it.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import ray
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from ..run.batch import JobRecord
from ..run.progress import JsonLines, ProgressSettings, settings_of, source_line

REPORT_EVERY_S = 1.0  # how often a recording tells the driver how far it is


@ray.remote(num_cpus=0)
class ProgressActor:
    """The latest counters of every recording: folder → (frames, faces, tracks, total frames or None, fps)."""

    def __init__(self) -> None:
        self.runs: dict[str, tuple[int, int, int, int | None, float]] = {}

    def update(self, key: str, frames: int, faces: int, tracks: int, total: int | None, fps: float) -> None:
        self.runs[key] = (frames, faces, tracks, total, fps)

    def snapshot(self) -> dict[str, tuple[int, int, int, int | None, float]]:
        return self.runs


class RemoteBoard:
    """`ProgressBoard`'s interface inside a Ray task: forwards one recording's counters to the actor."""

    def __init__(self, actor: Any, key: str) -> None:
        self.actor, self.key = actor, key
        self.last: tuple[int, int, int, int | None, float] | None = None
        self.sent = 0.0
        self.total: int | None = None
        self.started = time.monotonic()

    def add(self, name: str, total: int | None) -> RemoteBoard:
        self.total, self.started = total, time.monotonic()
        return self

    def _counts(self, frames: int, faces: int, tracks: int) -> tuple[int, int, int, int | None, float]:
        return frames, faces, tracks, self.total, round(frames / max(time.monotonic() - self.started, 1e-9), 2)

    def update(self, frames: int, faces: int, tracks: int, dropped: int = 0) -> None:
        self.last = self._counts(frames, faces, tracks)
        if time.monotonic() - self.sent >= REPORT_EVERY_S:
            self._send()

    def finish(self, status: str, frames: int, faces: int, tracks: int, dropped: int = 0) -> None:
        """The recording's run ended: its final counters, sent now."""
        self.last = self._counts(frames, faces, tracks)
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
        self.lines: JsonLines | None = settings.lines if self.mode == "json" else None
        self.started = time.perf_counter()
        self._last_line = self.started
        self._console = Console(stderr=True)
        self._bar: Progress | None = None
        self._sources: list[dict] = []
        if self.lines is not None:
            self.lines.running = lambda: list(self._sources)
        if self.mode == "auto" and self._console.is_terminal:
            self._bar = Progress(TextColumn("[bold]recordings"), BarColumn(), TextColumn("{task.fields[text]}"),
                                 TimeElapsedColumn(), console=self._console)
            self._task = self._bar.add_task("job", total=total or None, text="")
            self._bar.start()

    def show(self, job: JobRecord, snapshot: dict, done: int, failed: int, eta_s: float | None) -> None:
        """The job as it stands: every recording's state and counters (`snapshot`: the progress actor's)."""
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        self._sources = sources(job, snapshot)
        if self.lines is not None:
            if time.perf_counter() - self._last_line >= self.every_s:
                self._last_line = time.perf_counter()
                self.lines.emit("running")
            return
        frames = sum(s["frames"] for s in self._sources)
        faces = sum(s["faces"] for s in self._sources)
        eta = f"{eta_s:.0f}s" if eta_s is not None else "?"
        bad = f" ({failed} failed)" if failed else ""
        text = f"{done}/{self.total}{bad}  {frames / elapsed:.1f} fps  {faces} faces  ETA {eta}"
        if self._bar is not None:
            self._bar.update(self._task, completed=done, text=text)
        elif self.enabled and time.perf_counter() - self._last_line >= self.every_s:
            self._last_line = time.perf_counter()
            print(f"recordings {text}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def sources(job: JobRecord, snapshot: dict) -> list[dict]:
    """Every source of the job as a JSON line's source: its state, and the counters its task last sent."""
    out = []
    for entry in job.sources:
        run = job.runs.get(entry.folder)
        state = run["status"] if run else ("running" if entry.folder in snapshot else "pending")
        if state == "skipped" or (state == "failed" and entry.folder not in snapshot):
            out.append(source_line(entry.name, state, error=run.get("reason") if run else None))
            continue
        frames, faces, tracks, total, fps = snapshot.get(entry.folder, (0, 0, 0, None, 0.0))
        if run and state != "running":
            frames, faces, tracks = (run.get(k) or v for k, v in (("frames", frames), ("faces", faces),
                                                                  ("tracks", tracks)))
        eta = (total - frames) / fps if state == "running" and total and fps > 0 else (0.0 if run else None)
        out.append(source_line(entry.name, state, frames, total, faces, tracks, fps, eta, error=run.get("reason") if run else None))
    return out


def eta(fps: float, runs: dict[str, tuple[int, int, int, int | None, float]], finished: set[str],
        not_started: int) -> float | None:
    """Seconds left at the job's frame rate so far: what the unfinished recordings still have to do, those
    not started yet taken to be as long as the average recording seen so far."""
    totals = [r[3] for r in runs.values() if r[3]]
    if fps <= 0 or not totals:
        return None
    mean = sum(totals) / len(totals)
    left = sum(max(0.0, (r[3] or mean) - r[0]) for k, r in runs.items() if k not in finished)
    return (left + not_started * mean) / fps
