"""What a run counts and how it ended: stage timings, live latency, `RunStats` (the manifest's `stats`) and
the `RunResult` a session returns.

Statuses a manifest can hold: `running` (being written, or — when no process holds the folder — crashed),
`complete`, `complete_with_errors` (the input had frames that could not be decoded or used, or ended before
the frames its container lists), `interrupted` (stopped by a signal), `failed` (an output could not be
written, e.g. a full disk) and `crashed` (set by `enhance-faces gallery` on a folder whose run died).
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

STATUSES = ("running", "complete", "complete_with_errors", "interrupted", "failed", "crashed")


class Timings:
    """Wall time per stage, summed over the run."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        t = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - t

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 3) for k, v in dict(self.seconds).items()}  # a copy: other threads add stages


class Latency:
    """Capture → annotated-frame-written latency of live frames: recent window for percentiles."""

    def __init__(self, window: int = 20000) -> None:
        self.recent: deque[float] = deque(maxlen=window)
        self.max = 0.0

    def add(self, seconds: float) -> None:
        self.recent.append(seconds)
        self.max = max(self.max, seconds)

    def as_dict(self) -> dict | None:
        if not self.recent:
            return None
        v = np.sort(np.fromiter(self.recent, float))
        return {"p50_ms": round(1000 * float(v[len(v) // 2]), 1),
                "p95_ms": round(1000 * float(v[min(len(v) - 1, int(len(v) * 0.95))]), 1),
                "max_ms": round(1000 * self.max, 1), "samples": len(v)}


@dataclass
class RunStats:
    """What a run counted: the manifest's `stats` (same keys) and the command line's summary."""

    frames: int = 0  # decoded and processed (files never drop a frame)
    faces: int = 0
    tracks: int = 0
    enhanced: int = 0
    report_error: str | None = None  # the gallery/report could not be written; the run itself went on
    wall_s: float = 0.0
    fps: float = 0.0
    realtime_factor: float | None = None
    frames_expected: int | None = None  # what the container's index lists, up to source.max_frames (None: unknown)
    skipped_frames: int = 0  # packets or pictures that could not be decoded
    small_frames: int = 0  # decoded, but smaller than the smallest face looked for: not searched
    decode_errors: list[str] = field(default_factory=list)
    dropped_frames: int = 0
    reconnects: int = 0
    latency: dict | None = None
    peak_rss_mb: float = 0.0
    events: dict | None = None  # events written to events.jsonl and each network sink's counters (sent, dropped, …)
    stopped_by: str | None = None
    finished: str = ""

    def counts(self) -> dict:
        """The running counters (a running run's manifest writes these)."""
        keys = ("frames", "faces", "tracks", "enhanced") + (("report_error",) if self.report_error else ())
        return {k: getattr(self, k) for k in keys}

    def short_by(self) -> int:
        """How many frames the container lists that never came out of the decoder (0 when it does not say)."""
        return 0 if self.frames_expected is None else max(0, self.frames_expected - self.frames)

    def had_errors(self) -> bool:
        """Whether the input had frames that could not be decoded or used, or ended early."""
        return bool(self.skipped_frames or self.small_frames or self.short_by())

    def as_dict(self) -> dict:
        d = asdict(self)
        if self.report_error is None:
            del d["report_error"]
        return d


@dataclass
class RunResult:
    """One source's run, as `run_source` returns it."""

    status: str  # one of STATUSES
    out: Path
    source: str
    timings: dict[str, float]
    generator: dict | None
    stats: RunStats
    error: str | None = None  # why the run failed, if it did
