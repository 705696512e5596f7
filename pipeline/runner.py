"""The runner: source → detect → track → align → enhance → sinks, one frame at a time.

Memory stays bounded: frames stream through; per track only the observations' metadata and the
policy's K candidates are kept, and a track is written out as soon as it ends.
Stopping (SIGINT/SIGTERM) ends the frame loop; everything after it — ending open tracks, closing
the video, writing the manifest — always runs, so an interrupted run leaves playable, listed files.
"""

from __future__ import annotations

import dataclasses
import platform
import resource
import signal
import threading
import time
from collections import defaultdict, deque
from contextlib import ExitStack, contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import numpy as np

from . import __version__
from .align import Aligner
from .config import Config
from .detect import Detector
from .enhance.stage import Enhancer, Policy
from .errors import EnhanceError
from .models import sha256
from .progress import ProgressBoard
from .provenance import signer_from_config
from .sinks.annotate import Annotator
from .sinks.manifest import Manifest
from .sinks.report import write_report
from .sinks.tracks import TrackWriter
from .sinks.events import EventLog
from .sinks.video import SegmentedVideoWriter, VideoWriter
from .sources import Source, open_source
from .track import Tracker
from .types import Face, TrackSummary


class StopFlag:
    """Set by the first SIGINT/SIGTERM; a second one exits at once."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signal: str | None = None
        self._callbacks: list = []

    def on_stop(self, callback) -> None:
        """Run `callback` (in a helper thread) when a stop is requested: e.g. close a camera whose
        read is blocked while it is down, so the frame loop sees the end instead of waiting forever."""
        self._callbacks.append(callback)

    def set(self, reason: str | None = None) -> None:
        if self.event.is_set():
            return
        self.signal = reason
        self.event.set()
        threading.Thread(target=lambda: [cb() for cb in list(self._callbacks)], daemon=True).start()

    def __bool__(self) -> bool:
        return self.event.is_set()

    @contextmanager
    def installed(self) -> Iterator["StopFlag"]:
        if threading.current_thread() is not threading.main_thread():
            yield self
            return

        def handler(signum: int, _frame: object) -> None:
            if self.event.is_set():
                raise SystemExit(128 + signum)  # second signal: leave now
            self.set(signal.Signals(signum).name)

        old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for s, h in old.items():
                signal.signal(s, h)


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


class Pipeline:
    """The stages built once from a Config and shared by every source (one detector, one enhancer)."""

    def __init__(self, cfg: Config, models_dir: str | Path | None = None, progress: bool = True) -> None:
        self.cfg = cfg
        self.board = ProgressBoard(progress)
        self.detector = Detector(cfg.detect, models_dir)
        self.detector_path = self.detector.path
        self.aligner = Aligner(cfg.align)
        self.enhancer = None if cfg.enhance.policy == "none" else Enhancer(cfg.enhance)
        self.annotator = Annotator(cfg.output.inset_size)
        self._detector_sha = sha256(self.detector_path)
        self.models_dir = models_dir
        self.signer = signer_from_config(cfg.to_dict())  # fails early on a bad certificate

    def info(self, inputs: list[str]) -> dict:
        return {
            "tool": f"enhance {__version__}",
            "inputs": inputs,
            "settings": self.cfg.to_dict(),
            "models": {self.detector_path.name: {"path": str(self.detector_path), "sha256": self._detector_sha}},
            "generator": self.enhancer.info if self.enhancer else None,
            "host": {"python": platform.python_version(), "machine": platform.machine()},
        }

    def close(self) -> None:
        self.board.close()
        if self.enhancer is not None:
            self.enhancer.close()

    def run(self, source: Source, out: Path, stop: StopFlag | None = None) -> dict:
        """Process one source into `out`; returns the run's stats. Always finalizes outputs."""
        cfg = self.cfg
        stop = stop if stop is not None else StopFlag()
        prepare_out(out)
        timings = Timings()
        info = self.info([source.uri])
        manifest = Manifest(out, info)
        events = EventLog(out / "events.jsonl")
        source.on_event = lambda e: events({"source": source.name, **e})
        if source.live:
            stop.on_stop(source.close)

        def new_tracker() -> Tracker:
            return Tracker(cfg.track, source.fps)

        tracker = new_tracker()
        policy = Policy(cfg.enhance.policy, cfg.enhance.best_k, cfg.enhance.every_n, cfg.enhance.improve)
        writer = TrackWriter(out, save_tiles=cfg.output.tiles, run_info=info,
                             unmarked=cfg.output.unmarked_tiles, signer=self.signer)
        video: VideoWriter | SegmentedVideoWriter | None = None
        if cfg.output.video and source.live:
            video = SegmentedVideoWriter(out, source.width, source.height, source.fps,
                                         cfg.output.segment_minutes * 60, cfg.output.video_crf, cfg.output.video_preset)
        elif cfg.output.video:
            video = VideoWriter(out / "annotated.mp4", source.width, source.height, source.fps, source.time_base,
                                cfg.output.video_crf, cfg.output.video_preset)
        open_tracks: dict[int, TrackSummary] = {}
        insets: dict[int, Face] = {}
        stats = {"frames": 0, "faces": 0, "tracks": 0, "enhanced": 0}
        latency = Latency()
        shown: list[Face] = []
        segment = 0
        bar = self.board.add(source.name, source.frame_count)

        def end_track(tid: int, reason: str) -> None:
            summary = open_tracks.pop(tid, None)
            insets.pop(tid, None)
            pending, kept = policy.finish(tid)
            if summary is None:
                return
            if pending and self.enhancer:
                with timings("enhance"):
                    self.enhancer(pending)
                stats["enhanced"] += len(pending)
            summary.enhanced = sorted(kept, key=lambda f: -f.quality)
            with timings("write"):
                manifest.add_track(writer.write(summary))
            events({"source": source.name, "event": "track_end", "track": tid, "reason": reason,
                    "observations": len(summary.faces), "enhanced": len(summary.enhanced),
                    "last_time": round(summary.faces[-1].time, 3)})
            if source.live:
                checkpoint()

        last_checkpoint = [time.perf_counter()]

        def checkpoint(every_s: float = 30.0) -> None:
            """Live feeds run for days: refresh gallery and manifest now and then, not only at exit."""
            if time.perf_counter() - last_checkpoint[0] < every_s:
                return
            last_checkpoint[0] = time.perf_counter()
            with timings("write"):
                if cfg.output.gallery:
                    try:
                        write_report(out, cfg.to_dict(), self.models_dir)
                    except EnhanceError as e:
                        stats["report_error"] = str(e)
                manifest.write(timings.as_dict(), {**stats, "frames_so_far": stats["frames"]}, "running")

        def end_all(reason: str) -> None:
            for tid in tracker.finish() + sorted(open_tracks):
                end_track(tid, reason)

        status = "complete"
        started = time.perf_counter()
        frames = iter(source)
        try:
            while not stop:
                with timings("decode"):
                    frame = next(frames, None)
                if frame is None:
                    break
                if frame.segment != segment:  # the camera reconnected: its tracks ended at the disconnect
                    segment = frame.segment
                    end_all("disconnect")
                    tracker, shown = new_tracker(), []
                    if isinstance(video, SegmentedVideoWriter):
                        video.roll(frame.image.shape[1], frame.image.shape[0])
                if frame.index % cfg.detect.stride == 0:
                    with timings("detect"):
                        faces = self.detector(frame.image)
                    for f in faces:
                        f.frame_index, f.time, f.source = frame.index, frame.time, source.name
                    with timings("track"):
                        tracker(faces, frame.time)
                    with timings("align"):
                        for f in faces:
                            if f.track_id > 0:
                                self.aligner(frame.image, f)
                    todo = []
                    for f in faces:
                        if f.track_id <= 0:
                            continue
                        if f.track_id not in open_tracks:
                            open_tracks[f.track_id] = TrackSummary(f.track_id, source.name)
                            stats["tracks"] += 1
                            events({"source": source.name, "event": "track_start", "track": f.track_id,
                                    "frame": frame.index, "time": round(frame.time, 3)})
                        open_tracks[f.track_id].faces.append(f)
                        if policy(f):
                            todo.append(f)
                    if todo and self.enhancer:
                        with timings("enhance"):
                            self.enhancer(todo)
                        stats["enhanced"] += len(todo)
                        for f in todo:  # a copy: the policy may later drop this face's pixels
                            insets[f.track_id] = dataclasses.replace(f)
                    for f in faces:  # only the policy's candidates keep pixels
                        if f.enhanced is None and not policy.keeps(f):
                            f.crop = f.lr = None
                    shown = faces
                    stats["faces"] += len(faces)
                    with timings("write"):
                        manifest.add_faces(faces)
                if video is not None:
                    with timings("annotate"):
                        image = self.annotator(frame.image, shown, insets)
                    with timings("encode"):
                        video.write(image, frame.time)
                if frame.captured is not None:
                    latency.add(time.time() - frame.captured)
                for tid in tracker.ended(frame.time):
                    end_track(tid, "lost")
                stats["frames"] += 1
                bar.update(stats["frames"], stats["faces"], stats["tracks"], getattr(source, "dropped", 0))
            if stop:
                status = "interrupted"
        finally:
            end_all("end of input" if status == "complete" else "stopped")
            if video is not None:
                with timings("encode"):
                    video.close()
            if cfg.output.gallery:  # gallery.png, people.json and report.html, from the files just written
                with timings("report"):
                    try:
                        write_report(out, cfg.to_dict(), self.models_dir)
                    except EnhanceError as e:
                        stats["report_error"] = str(e)
            wall = time.perf_counter() - started
            stats.update(
                wall_s=round(wall, 3),
                fps=round(stats["frames"] / wall, 2) if wall > 0 else 0.0,
                realtime_factor=(round(stats["frames"] / source.fps / wall, 3)
                                 if wall > 0 and source.fps and not source.live else None),
                skipped_frames=source.skipped,
                decode_errors=source.errors[:20],
                dropped_frames=getattr(source, "dropped", 0),
                reconnects=getattr(source, "generation", 0),
                latency=latency.as_dict(),
                peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                stopped_by=stop.signal,
                finished=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            )
            events({"source": source.name, "event": "run_end", "status": status, "frames": stats["frames"]})
            events.close()
            manifest.write(timings.as_dict(), stats, status)
            manifest.close()
        return {"status": status, "out": str(out), "source": source.name, "timings": timings.as_dict(),
                "generator": self.enhancer.info if self.enhancer else None, **stats}


def _named_inputs(inputs: list[str], cfg: Config) -> list[tuple[str | None, str]]:
    return [(None, spec) for spec in inputs] + [(c.name or None, c.uri) for c in cfg.sources]


def process(inputs: list[str], out: Path, cfg: Config, models_dir: str | Path | None = None,
            progress: bool = True) -> list[dict]:
    """Process every input; one input writes into `out`, several (or a `sources:` list) into `out/<name>/`.

    Several sources run at once, one thread each, sharing the detector and the generator.
    """
    named = _named_inputs(inputs, cfg)
    if not named:
        raise EnhanceError("no input: give INPUT on the command line or a `sources:` list in the config")
    stop = StopFlag()
    with ExitStack() as opened:
        # Open every source first, so a bad input fails before any work is done.
        sources = [opened.enter_context(open_source(spec, cfg.source, name=name)) for name, spec in named]
        prepare_out(out)
        pipe = Pipeline(cfg, models_dir, progress)
        opened.callback(pipe.close)
        targets, names = [], set()
        for src in sources:
            if len(sources) == 1 and not cfg.sources:
                targets.append(out)
                continue
            name = safe_name(src.name if src.live or src.name in {c.name for c in cfg.sources} else Path(src.name).stem)
            while name in names:
                name += "_"
            names.add(name)
            targets.append(out / name)
        with stop.installed():
            if len(sources) == 1:
                return [pipe.run(sources[0], targets[0], stop)]
            results = _run_concurrently(pipe, sources, targets, stop)
    if cfg.output.gallery:  # one report over every camera: people seen by several cameras are grouped
        write_report(out, cfg.to_dict(), models_dir)
    return results


def _run_concurrently(pipe: Pipeline, sources: list[Source], targets: list[Path], stop: StopFlag) -> list[dict]:
    results: list[dict | None] = [None] * len(sources)
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            results[i] = pipe.run(sources[i], targets[i], stop)
        except BaseException as e:  # re-raised in the main thread
            errors.append(e)
            stop.set(f"error in {sources[i].name}")

    threads = [threading.Thread(target=work, args=(i,), name=f"source-{i}", daemon=True) for i in range(len(sources))]
    for t in threads:
        t.start()
    for t in threads:
        while t.is_alive():
            t.join(timeout=0.2)  # short joins keep the main thread free to take signals
    if errors:
        raise errors[0]
    return [r for r in results if r is not None]


def safe_name(name: str) -> str:
    """A file-system-safe folder name for a source."""
    keep = "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip("._")
    return keep or "source"
