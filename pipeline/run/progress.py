"""Progress for long work: live rich bars on a terminal (one per source), a line every few seconds in logs,
or, for wrappers and schedulers, JSON lines on stderr (`--progress json`, schema 1, the same for both
engines; `progress.schema.json` beside this file is the JSON Schema, docs/jobs.md explains it).

Every JSON line carries `schema`, `run_id` (one per command), `time` (ISO 8601, UTC), `engine`, `out` and
`state`. A "starting"/"running" line comes every `every_s` seconds (a camera waiting to reconnect still
reports) with the totals and every source (`frames`, `total`, `faces`, `tracks`, `fps`, `eta_s`, its
`state`); an "error" line says what failed (a source's one-line reason, or why nothing could start); and
one "final" line always ends the command, however short it was and also when everything was skipped or
nothing could start, with the `outcome` and the `exit_code`.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
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
    lines: JsonLines | None = field(default=None, compare=False)  # json mode: the command's JSON stream


def settings_of(progress: bool | str | ProgressSettings) -> ProgressSettings:
    """`True`/`False` (the old switch), a mode's name, or `ProgressSettings`."""
    if isinstance(progress, ProgressSettings):
        return progress
    if isinstance(progress, bool):
        return ProgressSettings("auto" if progress else "off")
    if progress not in ("auto", "json", "off"):
        raise ValueError(f"progress must be auto, json or off, got {progress!r}")
    return ProgressSettings(progress)  # type: ignore[arg-type]


SCHEMA = 1
SCHEMA_FILE = Path(__file__).with_name("progress.schema.json")


def source_line(name: str, state: str, frames: int = 0, total: int | None = None, faces: int = 0, tracks: int = 0,
                fps: float = 0.0, eta_s: float | None = None, dropped: int = 0, error: str | None = None) -> dict:
    """One source in a JSON line."""
    line = {"source": name, "state": state, "frames": frames, "total": total, "faces": faces, "tracks": tracks,
            "fps": round(fps, 2), "eta_s": None if eta_s is None else round(max(eta_s, 0.0), 1), "dropped": dropped}
    if error:
        line["error"] = error
    return line


class JsonLines:
    """The `--progress json` stream of one command: every line with the same header, one final line.

    Sources not running in this process (skipped, failed before starting, waiting, or running on a Ray node)
    are `set` here; `running` returns those a `ProgressBoard` follows. A line's totals sum every source.
    """

    def __init__(self, out: str | Path, engine: str = "local", stream: Any = None) -> None:
        self.run_id = uuid.uuid4().hex
        self.out = str(Path(out).absolute())
        self.engine = engine
        self.stream = stream
        self.started = time.perf_counter()
        self.fixed: dict[str, dict] = {}
        self.running: Callable[[], list[dict]] = list
        self.finished = False
        self._lock = threading.Lock()

    def set(self, line: dict) -> None:
        """A source's line (`source_line`), kept until replaced."""
        with self._lock:
            self.fixed[line["source"]] = line

    def _write(self, state: str, **fields: Any) -> None:
        line = {"schema": SCHEMA, "run_id": self.run_id,
                "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
                "engine": self.engine, "out": self.out, "state": state, **fields}
        text = json.dumps(line, separators=(",", ":"), default=str)
        with self._lock:
            if self.finished:
                return
            print(text, file=self.stream or sys.stderr, flush=True)

    def body(self) -> dict[str, Any]:
        with self._lock:
            fixed = dict(self.fixed)
        live = self.running()
        sources = [s for s in fixed.values() if s["source"] not in {x["source"] for x in live}] + live
        etas = [s["eta_s"] for s in sources if s["state"] in ("running", "pending")]
        elapsed = time.perf_counter() - self.started
        running = [s["fps"] for s in sources if s["state"] == "running"]
        frames = sum(s["frames"] for s in sources)
        return {"elapsed_s": round(elapsed, 2),
                "frames": frames, "faces": sum(s["faces"] for s in sources),
                "tracks": sum(s["tracks"] for s in sources),  # the rate now, or over the whole command once ended
                "fps": round(sum(running) if running else frames / max(elapsed, 1e-9), 2),
                "eta_s": None if not etas or None in etas else max(etas), "sources": sources}

    def emit(self, state: str) -> None:
        """A "starting" or "running" line."""
        self._write(state, **self.body())

    def error(self, message: str, source: str | None = None) -> None:
        self._write("error", error=message, source=source)

    def final(self, exit_code: int, outcome: str) -> None:
        """The last line (once): the totals, the outcome and the exit code."""
        if not self.finished:
            self._write("final", **self.body(), outcome=outcome, exit_code=exit_code)
            self.finished = True


@contextmanager
def reporting(lines: JsonLines | None) -> Iterator[None]:
    """An error that ends the command becomes an "error" line and the final line (when not written yet), with
    the exit code the command line then returns."""
    from ..core.errors import EnhanceError
    from ..core.text import clean

    try:
        yield
    except (EnhanceError, KeyboardInterrupt) as e:
        if lines is not None and not lines.finished:
            code = getattr(e, "exit_code", 130)
            lines.error(clean(str(e)) or "interrupted")
            lines.final(code, "interrupted" if code > 128 else "refused" if code == 74 else "failed")
        raise
    except Exception as e:  # a bug: its traceback follows on stderr, and Python exits with 1
        if lines is not None and not lines.finished:
            lines.error(clean(f"{type(e).__name__}: {e}"))
            lines.final(1, "failed")
        raise


class ProgressBoard:
    """Owns the progress output; each source gets a `SourceProgress`."""

    def __init__(self, enabled: bool | str | ProgressSettings = True) -> None:
        settings = settings_of(enabled)
        self.mode: Mode = settings.mode
        self.enabled, self.every_s = self.mode != "off", settings.every_s
        self.lines = settings.lines if self.mode == "json" else None
        self._owns_lines = self.mode == "json" and self.lines is None  # made here: its final line too
        if self._owns_lines:
            self.lines = JsonLines("")
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
        elif self.lines is not None:
            self.lines.running = self.sources
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

    def sources(self) -> list[dict[str, Any]]:
        """Every source this board follows, as JSON lines show them."""
        with self._lock:
            return [s.as_dict() for s in self._sources]

    def emit(self, state: str) -> None:
        if self.lines is not None:
            self.lines.emit(state)

    def close(self) -> None:
        """Stop the display (the command's final JSON line is written by whoever made its `JsonLines`)."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        if self._timer is not None and not self._stop.is_set():
            self._stop.set()
            self._timer.join(timeout=self.every_s + 1)
            if self._owns_lines and self.lines is not None:
                failed = any(s.status == "failed" for s in self._sources)
                self.lines.final(1 if failed else 0, "incomplete" if failed else "complete")


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
        return source_line(self.name, self.status, self.frames, self.total, self.faces, self.tracks, fps, eta,
                           self.dropped)
