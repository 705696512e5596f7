"""Progress for long work: a live rich bar on a terminal, a line every few seconds in logs."""

from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class RunProgress:
    """frames, fps, faces, tracks and ETA for one source."""

    def __init__(self, name: str, total: int | None, enabled: bool = True, every_s: float = 5.0) -> None:
        self.name, self.total, self.enabled, self.every_s = name, total, enabled, every_s
        self.console = Console(stderr=True)
        self.live = enabled and self.console.is_terminal
        self.start = time.perf_counter()
        self._last_line = self.start
        self._bar: Progress | None = None
        if self.live:
            self._bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TaskProgressColumn(),
                TextColumn("{task.completed}/{task.total} frames  {task.fields[fps]:.1f} fps  "
                           "{task.fields[faces]} faces  {task.fields[tracks]} tracks"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=self.console,
                transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task(name, total=total, fps=0.0, faces=0, tracks=0)

    def update(self, frames: int, faces: int, tracks: int) -> None:
        now = time.perf_counter()
        fps = frames / max(now - self.start, 1e-9)
        if self._bar is not None:
            self._bar.update(self._task, completed=frames, fps=fps, faces=faces, tracks=tracks)
        elif self.enabled and now - self._last_line >= self.every_s:
            self._last_line = now
            eta = f"{(self.total - frames) / fps:.0f}s" if self.total and fps > 0 else "?"
            total = self.total if self.total else "?"
            print(f"{self.name}: {frames}/{total} frames  {fps:.1f} fps  {faces} faces  {tracks} tracks  ETA {eta}",
                  file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
