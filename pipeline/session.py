"""One source's run: frames in (`step`), finished tracks out (`end_track`), outputs published (`finish`).

`run_source` is then the whole loop, as supervision's `process_video` is:

    session = Session(stages, source, out, stop)
    for frame in session.frames():
        session.step(frame)
    return session.finish(status)

Memory stays bounded: frames stream through; per track only the observations' metadata and the policy's
candidates are kept, and a track is written out as soon as it ends. `finish` always runs (also after a
stop or an error), so an interrupted run leaves playable, listed files.
"""

from __future__ import annotations

import resource
import time
from collections import defaultdict, deque
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from .enhance.policy import Policy
from .enhance.window import FusionWindow
from .errors import EnhanceError
from .sinks.events import EventLog
from .sinks.manifest import Manifest
from .sinks.tracks import TrackWriter
from .sinks.video import SegmentedVideoWriter, VideoWriter
from .sources import Source
from .stages import Stages
from .stop import StopFlag
from .track import Tracker
from .types import Face, Frame, Track

CHECKPOINT_S = 30.0  # live feeds: gallery, report and manifest refreshed this often


def prepare_out(out: Path) -> Path:
    """Create the output folder or fail with one line saying why."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise EnhanceError(f"cannot write to output folder {out}: {e.strerror or e}") from None
    return out


def run_source(stages: Stages, source: Source, out: Path, stop: StopFlag | None = None) -> RunResult:
    """Process one source into `out`; outputs are always finalized, after a stop or an error too."""
    stop = stop if stop is not None else StopFlag()
    session = Session(stages, source, out, stop)
    status = "complete"
    try:
        for frame in session.frames():
            session.step(frame)
        if stop:
            status = "interrupted"
    finally:
        result = session.finish(status)
    return result


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
        return {k: round(v, 3) for k, v in self.seconds.items()}


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

    frames: int = 0
    faces: int = 0
    tracks: int = 0
    enhanced: int = 0
    report_error: str | None = None  # the gallery/report could not be written; the run itself went on
    wall_s: float = 0.0
    fps: float = 0.0
    realtime_factor: float | None = None
    skipped_frames: int = 0
    decode_errors: list[str] = field(default_factory=list)
    dropped_frames: int = 0
    reconnects: int = 0
    latency: dict | None = None
    peak_rss_mb: float = 0.0
    stopped_by: str | None = None
    finished: str = ""

    def counts(self) -> dict:
        """The running counters (a live run's checkpoints write these)."""
        keys = ("frames", "faces", "tracks", "enhanced") + (("report_error",) if self.report_error else ())
        return {k: getattr(self, k) for k in keys}

    def as_dict(self) -> dict:
        d = asdict(self)
        if self.report_error is None:
            del d["report_error"]
        return d


@dataclass
class RunResult:
    """One source's run, as `run_source` returns it."""

    status: str  # complete | interrupted
    out: Path
    source: str
    timings: dict[str, float]
    generator: dict | None
    stats: RunStats


class Session:
    """The per-source state of a run: tracker, policy, writers, counters; the stages are shared."""

    def __init__(self, stages: Stages, source: Source, out: Path, stop: StopFlag) -> None:
        cfg = self.cfg = stages.cfg
        self.stages, self.source, self.out, self.stop = stages, source, prepare_out(out), stop
        self.timings = Timings()
        self.info = stages.info([source.uri])
        self.manifest = Manifest(out, self.info)
        self.events = EventLog(out / "events.jsonl")
        source.on_event = lambda e: self.events({"source": source.name, **e})
        if source.live:
            stop.on_stop(source.close)
        self.tracker = Tracker(cfg.track, source.fps)
        self.policy = Policy(cfg.enhance)
        frames = stages.enhancer.frames if stages.enhancer is not None else 0
        centred = cfg.enhance.fusion_window == "centred" or (cfg.enhance.fusion_window == "auto" and not source.live)
        self.window = FusionWindow(frames, centred) if frames > 1 else None
        self.writer = TrackWriter(out, cfg.output, run_info=self.info, signer=stages.signer)
        self.video: VideoWriter | SegmentedVideoWriter | None = None
        if cfg.output.video and source.live:
            self.video = SegmentedVideoWriter(out, source.width, source.height, source.fps, cfg.output)
        elif cfg.output.video:
            self.video = VideoWriter(out / "annotated.mp4", source.width, source.height, source.fps, cfg.output,
                                     source.time_base)
        self.stats = RunStats()
        self.latency = Latency()
        self.shown: list[Face] = []  # the faces drawn on frames between detections
        self.segment = 0
        self.bar = stages.board.add(source.name, source.frame_count)
        self.started = self._last_checkpoint = time.perf_counter()

    # ------------------------------------------------------------------ frames

    def frames(self) -> Iterator[Frame]:
        """The source's frames (decode time counted) until the input ends or a stop is asked for."""
        frames = iter(self.source)
        while not self.stop:
            with self.timings("decode"):
                frame = next(frames, None)
            if frame is None:
                return
            yield frame

    def step(self, frame: Frame) -> None:
        """Detect, track, align and enhance one frame, draw and encode it, and end the tracks it lost."""
        if frame.segment != self.segment:  # the camera reconnected: its tracks ended at the disconnect
            self.segment = frame.segment
            self._end_all("disconnect")
            self.tracker, self.shown = Tracker(self.cfg.track, self.source.fps), []
            if isinstance(self.video, SegmentedVideoWriter):
                self.video.roll(frame.image.shape[1], frame.image.shape[0])
        if frame.index % self.cfg.detect.stride == 0:
            self.shown = self._detect(frame)
        if self.video is not None:
            with self.timings("annotate"):
                insets = {t.id: t.inset for t in self.tracker.tracks.values() if t.inset is not None}
                image = self.stages.annotator(frame.image, self.shown, insets)
            with self.timings("encode"):
                self.video.write(image, frame.time)
        if frame.captured is not None:
            self.latency.add(time.time() - frame.captured)
        for track in self.tracker.ended(frame.time):
            self.end_track(track, "lost")
        self.stats.frames += 1
        self.bar.update(self.stats.frames, self.stats.faces, self.stats.tracks, self.source.dropped)

    def _detect(self, frame: Frame) -> list[Face]:
        stages, name = self.stages, self.source.name
        with self.timings("detect"):
            faces = stages.detector(frame.image)
        for f in faces:
            f.frame_index, f.time, f.source = frame.index, frame.time, name
        with self.timings("track"):
            self.tracker(faces, frame.time)
        tracked = [f for f in faces if f.track_id > 0]
        with self.timings("align"):
            for f in tracked:
                stages.aligner(frame.image, f)
        now = []
        for f in tracked:
            track = self.tracker.tracks[f.track_id]
            if not track.faces:
                self.stats.tracks += 1
                self.events({"source": name, "event": "track_start", "track": track.id, "frame": frame.index,
                             "time": round(frame.time, 3)})
            track.observe(f)
            select, keep = self.policy.select(track, f), self.policy.keeps(track, f)
            if keep:
                track.keep(f, self.policy.limit)
            if self.window is None:
                now += [f] if select else []
                continue
            self.window.remember(track, f)
            if select or keep:
                track.waiting.append((f, select))
            if select:
                track.promised = f
            now += self._released(track)
        self._enhance(now)
        for f in now:  # each one beats the one shown before (policy.select)
            if f.enhanced is not None:
                self.tracker.tracks[f.track_id].inset = f
        self.stats.faces += len(faces)
        with self.timings("write"):
            self.manifest.add_faces(faces)
        return faces

    def _released(self, track: Track, ending: bool = False) -> list[Face]:
        """Fusion: the waiting faces whose window is complete (all of them when the track ends), neighbours
        attached; returns those to enhance now. Candidates the policy has since dropped are forgotten."""
        due, still = [], []
        for face, now in track.waiting:
            if not (now or any(face is c for c in track.candidates)):
                continue
            if ending or self.window.ready(track, face):
                self.window.attach(track, face)
                due += [face] if now and not ending else []
            else:
                still.append((face, now))
        track.waiting = still
        return due

    def _enhance(self, faces: list[Face]) -> None:
        if faces and self.stages.enhancer is not None:
            with self.timings("enhance"):
                self.stages.enhancer(faces)
            self.stats.enhanced += len(faces)

    # ------------------------------------------------------------------ tracks

    def end_track(self, track: Track, reason: str) -> None:
        """Enhance what the policy kept for later, write the track out and log its end."""
        if not track.faces:  # ended before its first observation was taken (an error mid-frame)
            return
        if self.window is not None:
            self._released(track, ending=True)
            track.recent.clear()
        self._enhance([f for f in track.candidates if f.enhanced is None])
        track.candidates.sort(key=lambda f: -f.quality)
        with self.timings("write"):
            self.manifest.add_track(self.writer.write(track))
        self.events({"source": self.source.name, "event": "track_end", "track": track.id, "reason": reason,
                     "observations": len(track.faces), "enhanced": len(track.candidates),
                     "last_time": round(track.faces[-1].time, 3)})
        if self.source.live:
            self.checkpoint()

    def _end_all(self, reason: str) -> None:
        for track in self.tracker.finish():
            self.end_track(track, reason)

    # ------------------------------------------------------------------ outputs

    def checkpoint(self, every_s: float = CHECKPOINT_S) -> None:
        """Live feeds run for days: refresh manifest, gallery and report now and then, not only at exit."""
        if time.perf_counter() - self._last_checkpoint < every_s:
            return
        self._last_checkpoint = time.perf_counter()
        with self.timings("write"):
            self._publish("running", lambda: {**self.stats.counts(), "frames_so_far": self.stats.frames}, None)

    def finish(self, status: str) -> RunResult:
        """End every open track, close the video, publish manifest, gallery and report; always safe to call."""
        self._end_all("end of input" if status == "complete" else "stopped")
        if self.video is not None:
            with self.timings("encode"):
                self.video.close()
        self.events({"source": self.source.name, "event": "run_end", "status": status, "frames": self.stats.frames})
        self.events.close()
        self._publish(status, self._final_stats, "report")
        self.manifest.close()
        gen = self.stages.enhancer.info if self.stages.enhancer else None
        return RunResult(status, self.out, self.source.name, self.timings.as_dict(), gen, self.stats)

    def _publish(self, status: str, stats: Callable[[], dict], report_timing: str | None) -> None:
        """manifest.json, then gallery.png/people.json/report.html read back from it, then the manifest
        again so that it lists the report's files too."""
        self.manifest.write(self.timings.as_dict(), stats(), status)
        if not self.cfg.output.gallery:
            return
        from .report import write_report  # scipy and jinja2 load only when a report is written

        with self.timings(report_timing) if report_timing else nullcontext():
            try:
                write_report(self.out, self.cfg, self.stages.models_dir)
            except EnhanceError as e:
                self.stats.report_error = str(e)
        self.manifest.write(self.timings.as_dict(), stats(), status)

    def _final_stats(self) -> dict:
        s, src = self.stats, self.source
        wall = time.perf_counter() - self.started
        s.wall_s = round(wall, 3)
        s.fps = round(s.frames / wall, 2) if wall > 0 else 0.0
        s.realtime_factor = round(s.frames / src.fps / wall, 3) if wall > 0 and src.fps and not src.live else None
        s.skipped_frames, s.decode_errors = src.skipped, src.errors[:20]
        s.dropped_frames, s.reconnects = src.dropped, src.generation
        s.latency = self.latency.as_dict()
        s.peak_rss_mb = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        s.stopped_by = self.stop.signal
        s.finished = datetime.now(timezone.utc).isoformat(timespec="seconds")
        return s.as_dict()
