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
from collections import defaultdict
from contextlib import ExitStack, contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from . import __version__
from .align import Aligner
from .config import Config
from .detect import Detector
from .enhance.stage import Enhancer, Policy
from .errors import EnhanceError
from .models import find_model, sha256
from .progress import RunProgress
from .sinks.annotate import Annotator
from .sinks.gallery import write_gallery
from .sinks.manifest import Manifest
from .sinks.tracks import TrackWriter
from .sinks.video import VideoWriter
from .sources import Source, open_source
from .track import Tracker
from .types import Face, TrackSummary


class StopFlag:
    """Set by the first SIGINT/SIGTERM; a second one exits at once."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signal: str | None = None

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
            self.signal = signal.Signals(signum).name
            self.event.set()

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


class Pipeline:
    """The stages built once from a Config; `run()` processes one source into one output folder."""

    def __init__(self, cfg: Config, models_dir: str | Path | None = None, progress: bool = True) -> None:
        self.cfg = cfg
        self.progress = progress
        self.detector_path = find_model(cfg.detect.model, models_dir)
        self.detector = Detector(
            self.detector_path, cfg.detect.input_size, cfg.detect.threshold, cfg.detect.min_face
        )
        self.aligner = Aligner(cfg.align.entries, cfg.align.entry_margin)
        self.enhancer = None if cfg.enhance.policy == "none" else Enhancer(
            cfg.enhance.weights or None, cfg.enhance.batch_size, cfg.enhance.threads
        )
        self.annotator = Annotator(cfg.output.inset_size)

    def info(self, inputs: list[str]) -> dict:
        return {
            "tool": f"enhance {__version__}",
            "inputs": inputs,
            "settings": self.cfg.to_dict(),
            "models": {self.detector_path.name: {"path": str(self.detector_path), "sha256": sha256(self.detector_path)}},
            "generator": self.enhancer.info if self.enhancer else None,
            "host": {"python": platform.python_version(), "machine": platform.machine()},
        }

    def run(self, source: Source, out: Path, stop: StopFlag | None = None) -> dict:
        """Process one source into `out`; returns the run's stats. Always finalizes outputs."""
        cfg = self.cfg
        stop = stop if stop is not None else StopFlag()
        prepare_out(out)
        timings = Timings()
        manifest = Manifest(out, self.info([source.uri]))
        tracker = Tracker(source.fps, cfg.track.high_threshold, cfg.track.match_threshold,
                          cfg.track.lost_seconds, cfg.track.min_hits)
        policy = Policy(cfg.enhance.policy, cfg.enhance.best_k, cfg.enhance.every_n, cfg.enhance.improve)
        writer = TrackWriter(out, save_tiles=cfg.output.tiles)
        video = (VideoWriter(out / "annotated.mp4", source.width, source.height, source.fps, source.time_base,
                             cfg.output.video_crf, cfg.output.video_preset) if cfg.output.video else None)
        open_tracks: dict[int, TrackSummary] = {}
        finished: list[TrackSummary] = []
        insets: dict[int, Face] = {}
        stats = {"frames": 0, "faces": 0, "tracks": 0, "enhanced": 0}
        shown: list[Face] = []
        bar = RunProgress(source.name, source.frame_count, self.progress)

        def end_track(tid: int) -> None:
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
            summary.faces = summary.faces[:1]  # written out; the gallery needs only the kept tiles
            finished.append(summary)

        status = "complete"
        started = time.perf_counter()
        frames = iter(source)
        try:
            while not stop:
                with timings("decode"):
                    frame = next(frames, None)
                if frame is None:
                    break
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
                for tid in tracker.ended(frame.time):
                    end_track(tid)
                stats["frames"] += 1
                bar.update(stats["frames"], stats["faces"], stats["tracks"])
            if stop:
                status = "interrupted"
        finally:
            bar.close()
            for tid in tracker.finish() + sorted(open_tracks):
                end_track(tid)
            if video is not None:
                with timings("encode"):
                    video.close()
            if cfg.output.gallery:
                with timings("write"):
                    write_gallery(out / "gallery.png", finished, cfg.output.gallery_per_track)
            wall = time.perf_counter() - started
            stats.update(
                wall_s=round(wall, 3),
                fps=round(stats["frames"] / wall, 2) if wall > 0 else 0.0,
                realtime_factor=round(stats["frames"] / source.fps / wall, 3) if wall > 0 and source.fps else None,
                skipped_frames=source.skipped,
                decode_errors=source.errors[:20],
                peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                stopped_by=stop.signal,
                finished=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            )
            manifest.write(timings.as_dict(), stats, status)
            manifest.close()
        return {"status": status, "out": str(out), "timings": timings.as_dict(),
                "generator": self.enhancer.info if self.enhancer else None, **stats}


def process(inputs: list[str], out: Path, cfg: Config, models_dir: str | Path | None = None,
            progress: bool = True) -> list[dict]:
    """Process each input; one input writes into `out`, several into `out/<name>/`."""
    results = []
    stop = StopFlag()
    names: set[str] = set()
    with ExitStack() as opened:
        # Open every source first, so a bad input fails before any work is done.
        sources = [opened.enter_context(open_source(spec, cfg.source)) for spec in inputs]
        prepare_out(out)
        pipe = Pipeline(cfg, models_dir, progress)
        with stop.installed():
            for src in sources:
                target = out
                if len(sources) > 1:
                    name = safe_name(src.name)
                    while name in names:
                        name += "_"
                    names.add(name)
                    target = out / name
                results.append(pipe.run(src, target, stop))
                if stop:
                    break
    return results


def safe_name(name: str) -> str:
    """A file-system-safe folder name for a source."""
    keep = "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip("._")
    return keep or "source"
