"""Progress for long work: live rich bars on a terminal (one per source), a line every few seconds in logs."""

from __future__ import annotations

import sys
import threading
import time

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class ProgressBoard:
    """Owns the terminal display; each source gets a `SourceProgress` line."""

    def __init__(self, enabled: bool = True, every_s: float = 5.0) -> None:
        self.enabled, self.every_s = enabled, every_s
        self.console = Console(stderr=True)
        self._lock = threading.Lock()
        self._bar: Progress | None = None
        if enabled and self.console.is_terminal:
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

    def add(self, name: str, total: int | None) -> "SourceProgress":
        return SourceProgress(self, name, total)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


class SourceProgress:
    """frames, fps, faces, tracks and ETA (files) or drops (live feeds) for one source."""

    def __init__(self, board: ProgressBoard, name: str, total: int | None) -> None:
        self.board, self.name, self.total = board, name, total
        self.start = time.perf_counter()
        self._last_line = self.start
        self._task = None
        if board._bar is not None:
            self._task = board._bar.add_task(name, total=total, fps=0.0, faces=0, tracks=0, extra="",
                                             total_text=total if total else "live")

    def update(self, frames: int, faces: int, tracks: int, dropped: int = 0) -> None:
        now = time.perf_counter()
        fps = frames / max(now - self.start, 1e-9)
        extra = f"  {dropped} dropped" if dropped else ""
        if self._task is not None and self.board._bar is not None:
            self.board._bar.update(self._task, completed=frames, fps=fps, faces=faces, tracks=tracks, extra=extra)
        elif self.board.enabled and now - self._last_line >= self.board.every_s:
            self._last_line = now
            eta = f"{(self.total - frames) / fps:.0f}s" if self.total and fps > 0 else "?"
            total = self.total if self.total else "live"
            with self.board._lock:
                print(f"{self.name}: {frames}/{total} frames  {fps:.1f} fps  {faces} faces  {tracks} tracks"
                      f"{extra}  ETA {eta}", file=sys.stderr, flush=True)
