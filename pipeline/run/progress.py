"""Progress for long work: live rich bars on a terminal (one per source), a line every few seconds in logs,
or, for wrappers and schedulers, JSON lines on stderr (`--progress json`).

JSON mode prints one line every `every_s` seconds from a timer ("starting" while models load, then
"running"; a camera waiting to reconnect still reports), and a "final" one when the run ends, however
short it was:

    {"progress": "starting"|"running"|"final", "elapsed_s", "frames", "faces", "tracks", "fps", "eta_s",
     "sources": [{"source", "frames", "total", "fps", "faces", "tracks", "dropped", "eta_s", "status"}]}

`total` and `eta_s` are null for a live feed (and `eta_s` until a rate is known); `status` is "running"
until the source's run ends, then its manifest status. Top-level counts sum the sources; the top-level
`eta_s` is the longest of theirs.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Literal

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

Mode = Literal["auto", "json", "off"]
EVERY_S = 5.0  # a log line / JSON line this often


@dataclass(frozen=True)
class ProgressSettings:
    """What the command line asks for: a mode and the seconds between lines."""

    mode: Mode = "auto"
    every_s: float = EVERY_S


def settings_of(progress: bool | str | ProgressSettings) -> ProgressSettings:
    """`True`/`False` (the old switch), a mode's name, or `ProgressSettings`."""
    if isinstance(progress, ProgressSettings):
        return progress
    if isinstance(progress, bool):
        return ProgressSettings("auto" if progress else "off")
    if progress not in ("auto", "json", "off"):
        raise ValueError(f"progress must be auto, json or off, got {progress!r}")
    return ProgressSettings(progress)  # type: ignore[arg-type]


class ProgressBoard:
    """Owns the progress output; each source gets a `SourceProgress`."""

    def __init__(self, enabled: bool | str | ProgressSettings = True) -> None:
        settings = settings_of(enabled)
        self.mode: Mode = settings.mode
        self.enabled, self.every_s = self.mode != "off", settings.every_s
        self.console = Console(stderr=True)
        self._lock = threading.Lock()
        self._bar: Progress | None = None
        self._sources: list[SourceProgress] = []
        self.started = time.perf_counter()
        self._stop = threading.Event()
        self._timer: threading.Thread | None = None
        if self.mode == "auto" and self.console.is_terminal:
            self._bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TaskProgressColumn(),
                TextColumn("{task.completed}/{task.fields[total_text]} frames  {task.fields[fps]:.1f} fps  "
                           "{task.fields[faces]} faces  {task.fields[tracks]} tracks{task.fields[extra]}"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=self.console,
            )
            self._bar.start()
        elif self.mode == "json":
            self._timer = threading.Thread(target=self._tick, name="progress", daemon=True)
            self._timer.start()

    def add(self, name: str, total: int | None) -> SourceProgress:
        src = SourceProgress(self, name, total)
        with self._lock:
            self._sources.append(src)
        return src

    def _tick(self) -> None:
        while not self._stop.wait(self.every_s):
            self.emit("running" if self._sources else "starting")

    def snapshot(self, state: str) -> dict[str, Any]:
        """The JSON line's content: every source as it stands, and their sums."""
        with self._lock:
            sources = [s.as_dict() for s in self._sources]
        etas = [s["eta_s"] for s in sources if s["status"] == "running"]
        return {
            "progress": state,
            "elapsed_s": round(time.perf_counter() - self.started, 2),
            "frames": sum(s["frames"] for s in sources),
            "faces": sum(s["faces"] for s in sources),
            "tracks": sum(s["tracks"] for s in sources),
            "fps": round(sum(s["fps"] for s in sources), 2),
            "eta_s": None if not etas or None in etas else max(etas),
            "sources": sources,
        }

    def emit(self, state: str) -> None:
        line = json.dumps(self.snapshot(state), separators=(",", ":"))
        with self._lock:
            print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        """Stop the display; in JSON mode print the final line (once)."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        if self._timer is not None and not self._stop.is_set():
            self._stop.set()
            self._timer.join(timeout=self.every_s + 1)
            self.emit("final")


class SourceProgress:
    """frames, fps, faces, tracks and ETA (files) or drops (live feeds) for one source."""

    def __init__(self, board: ProgressBoard, name: str, total: int | None) -> None:
        self.board, self.name, self.total = board, name, total
        self.start = time.perf_counter()
        self._last_line = self.start
        self._task = None
        self.frames = self.faces = self.tracks = self.dropped = 0
        self.status = "running"
        self._ended: float | None = None
        if board._bar is not None:
            self._task = board._bar.add_task(name, total=total, fps=0.0, faces=0, tracks=0, extra="",
                                             total_text=total if total else "live")

    def _fps(self) -> float:
        end = self._ended if self._ended is not None else time.perf_counter()
        return self.frames / max(end - self.start, 1e-9)

    def update(self, frames: int, faces: int, tracks: int, dropped: int = 0) -> None:
        self.frames, self.faces, self.tracks, self.dropped = frames, faces, tracks, dropped
        if self.board.mode != "auto":
            return
        now = time.perf_counter()
        fps = self._fps()
        extra = f"  {dropped} dropped" if dropped else ""
        if self._task is not None and self.board._bar is not None:
            self.board._bar.update(self._task, completed=frames, fps=fps, faces=faces, tracks=tracks, extra=extra)
        elif now - self._last_line >= self.board.every_s:
            self._last_line = now
            eta = f"{(self.total - frames) / fps:.0f}s" if self.total and fps > 0 else "?"
            total = self.total if self.total else "live"
            with self.board._lock:
                print(f"{self.name}: {frames}/{total} frames  {fps:.1f} fps  {faces} faces  {tracks} tracks"
                      f"{extra}  ETA {eta}", file=sys.stderr, flush=True)

    def finish(self, status: str, frames: int, faces: int, tracks: int, dropped: int = 0) -> None:
        """The source's run ended with `status` (its manifest's): the final counts, its rate frozen."""
        self.frames, self.faces, self.tracks, self.dropped = frames, faces, tracks, dropped
        self._ended, self.status = time.perf_counter(), status

    def as_dict(self) -> dict[str, Any]:
        fps = self._fps()
        running = self.status == "running"
        eta = (self.total - self.frames) / fps if running and self.total and fps > 0 else (None if running else 0.0)
        return {"source": self.name, "frames": self.frames, "total": self.total, "fps": round(fps, 2),
                "faces": self.faces, "tracks": self.tracks, "dropped": self.dropped,
                "eta_s": None if eta is None else round(max(eta, 0.0), 1), "status": self.status}
