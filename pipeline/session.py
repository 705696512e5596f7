"""One source's run: frames in (`step`), finished tracks out (`end_track`), outputs published (`finish`).

`run_source` is then the whole loop, as supervision's `process_video` is:

    session = Session(stages, source, out, stop)
    for frame in session.frames():
        session.step(frame)
    return session.finish(status)

Memory stays bounded: frames stream through; per track only the observations' metadata and the policy's
candidates are kept, and a track is written out as soon as it ends. `finish` always runs (also after a
stop or an error), so an interrupted run leaves playable, listed files.

Crash safety: the manifest is on disk from the session's start (status "running") and rewritten every
`MANIFEST_EVERY_S` by a helper thread (`Publisher`), which also refreshes a live feed's gallery and report
every `CHECKPOINT_S`: bookkeeping never holds up frames. A write error (disk full) stops the run; `finish`
then writes nothing more but the manifest, with the space its reserve held, and the status "failed".
"""

from __future__ import annotations

import resource
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

from .enhance.policy import Policy
from .enhance.window import FusionWindow
from .errors import EnhanceError, OutputError
from .publish import Publisher
from .runstats import Latency, RunResult, RunStats, Timings
from .sinks.events import EventLog
from .sinks.manifest import Manifest
from .sinks.tracks import TrackWriter
from .sinks.video import SegmentedVideoWriter, VideoWriter
from .sources import Source
from .stages import Stages
from .stop import StopFlag
from .track import Tracker
from .types import Face, Frame, Track

MANIFEST_EVERY_S = 5.0  # a running run's manifest is rewritten this often (by a helper thread)
CHECKPOINT_S = 30.0  # live feeds: gallery and report refreshed this often (by the same helper)
STOPPED_AT_ONCE = ("stopped at once by a second signal: open tracks, gallery and report were not written "
                   "(run.py gallery DIR writes gallery and report)")


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
    status, error = "complete", None
    try:
        for frame in session.frames():
            session.step(frame)
        if stop:
            status = "interrupted"
    except BaseException as e:  # finalized below, then raised: a write error is one line, a bug a traceback
        error = e
        raise
    finally:
        result = session.finish(status, error)
    return result


class Session:
    """The per-source state of a run: tracker, policy, writers, counters; the stages are shared."""

    def __init__(self, stages: Stages, source: Source, out: Path, stop: StopFlag) -> None:
        cfg = self.cfg = stages.cfg
        self.stages, self.source, self.out, self.stop = stages, source, prepare_out(out), stop
        self.timings = Timings()
        self.info = stages.info([source.uri])
        self.video: VideoWriter | SegmentedVideoWriter | None = None  # first: a bad preset leaves no files
        if cfg.output.video and source.live:
            self.video = SegmentedVideoWriter(out, source.width, source.height, source.fps, cfg.output)
        elif cfg.output.video:
            self.video = VideoWriter(out / "annotated.mp4", source.width, source.height, source.fps, cfg.output,
                                     source.time_base)
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
        self.writer = TrackWriter(out, cfg.output, run_info=self.info, signer=stages.signer, sheets=cfg.tile_sheets(),
                                  dedupe=cfg.gallery.dedupe)
        expected, limit = source.frames_expected, cfg.source.max_frames
        self.stats = RunStats(frames_expected=min(expected, limit) if expected is not None and limit else expected)
        self.latency = Latency()
        self.shown: list[Face] = []  # the faces drawn on frames between detections
        self.segment = 0
        self.bar = stages.board.add(source.name, source.frame_count)
        self.started = self._last_manifest = self._last_report = time.perf_counter()
        self.manifest.write({}, self._running_stats(), "running")  # a run killed from here on has a manifest
        refresh = self._refresh_report if source.live and cfg.output.gallery else None
        self.publisher = Publisher(self._snapshot, refresh, source.name)
        self._report_cache: dict = {}  # per-track analysis kept between a live feed's report refreshes
        self._done = False
        stop.on_abort(self.abort)

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
        if min(frame.image.shape[:2]) < self.cfg.detect.min_face:  # no face that size fits: not searched
            self.stats.small_frames += 1
            self.shown = []
        elif frame.index % self.cfg.detect.stride == 0:
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
        self._tick()

    def _tick(self) -> None:
        """Now and then ask the helper for a manifest (a live feed's report every CHECKPOINT_S); never waits."""
        self.publisher.check()
        now = time.perf_counter()
        if now - self._last_manifest < MANIFEST_EVERY_S:
            return
        self._last_manifest = now
        report = now - self._last_report >= CHECKPOINT_S
        if report:
            self._last_report = now
        self.publisher.request(report)

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

    def _end_all(self, reason: str) -> None:
        for track in self.tracker.finish():
            self.end_track(track, reason)

    # ------------------------------------------------------------------ outputs

    def _running_stats(self) -> dict:
        return {**self.stats.counts(), "frames_so_far": self.stats.frames}

    def _snapshot(self) -> None:
        """The manifest as the run stands (helper thread)."""
        self.manifest.write(self.timings.as_dict(), self._running_stats(), "running")

    def _refresh_report(self) -> None:
        """A live feed's gallery and report, brought up to date (helper thread; only new tracks are read)."""
        with self.timings("refresh"):
            self._report()

    def _report(self) -> None:
        from .report import write_report  # scipy and jinja2 load only when a report is written

        try:
            write_report(self.out, self.cfg, self.stages.models_dir, cache=self._report_cache)
        except EnhanceError as e:
            self.stats.report_error = str(e)

    def abort(self) -> None:
        """A second signal: close the video and write the manifest now; nothing is written after it."""
        if self._done:
            return
        if self.video is not None:
            self._attempt(self.video.close)
        self.manifest.write(self.timings.as_dict(), self._running_stats(), "interrupted", STOPPED_AT_ONCE)
        self.manifest.seal()
        for partial in self.out.rglob("*.tmp"):  # a file cut mid-write: its writer never renames it now
            partial.unlink(missing_ok=True)

    def finish(self, status: str, error: BaseException | None = None) -> RunResult:
        """End every open track, close the video, publish manifest, gallery and report; always safe to call.

        After a write error (`error`, or one met here) only the manifest is still written, in the space its
        reserve kept, with status "failed" and the error.
        """
        failure = error
        if not isinstance(error, OutputError):
            failure = self._attempt(lambda: self._end_all("end of input" if status == "complete" else "stopped"))
            failure = failure or error
        self.publisher.close()
        failure = failure or self.publisher.error
        if self.video is not None:
            with self.timings("encode"):
                failure = self._attempt(self.video.close) or failure
        failure = self._attempt(self._log_end, status) or failure
        self.manifest.release_reserve()  # the room it kept is for these last writes (the disk may be full)
        stats = self._final_stats()
        if failure is not None:
            status = "failed"
        elif status == "complete" and self.stats.had_errors():
            status = "complete_with_errors"
        why = None if failure is None else str(failure) or type(failure).__name__
        self.manifest.write(self.timings.as_dict(), stats, status, why)
        if failure is None and self.cfg.output.gallery:
            with self.timings("report"):
                self._report()
            self.manifest.write(self.timings.as_dict(), self._final_stats(), status)
        self.manifest.close()
        self._done = True
        gen = self.stages.enhancer.info if self.stages.enhancer else None
        return RunResult(status, self.out, self.source.name, self.timings.as_dict(), gen, self.stats, why)

    def _log_end(self, status: str) -> None:
        try:
            self.events({"source": self.source.name, "event": "run_end", "status": status, "frames": self.stats.frames})
        finally:
            self.events.close()

    @staticmethod
    def _attempt(step: Callable[..., None], *args: object) -> OutputError | None:
        """Run one finishing step; a write error is returned (the other steps still run), a bug is raised."""
        try:
            step(*args)
        except OutputError as e:
            return e
        return None

    def _final_stats(self) -> dict:
        s, src = self.stats, self.source
        wall = time.perf_counter() - self.started
        s.wall_s = round(wall, 3)
        s.fps = round(s.frames / wall, 2) if wall > 0 else 0.0
        s.realtime_factor = round(s.frames / src.fps / wall, 3) if wall > 0 and src.fps and not src.live else None
        s.skipped_frames, s.decode_errors = src.skipped, src.errors[:20]
        short = s.short_by()
        if short and not self.stop:
            s.decode_errors = [*s.decode_errors, f"input ends early: {short} of the {s.frames_expected} frames "
                                                  "its container lists never decoded (cut or damaged file)"]
        s.dropped_frames, s.reconnects = src.dropped, src.generation
        s.latency = self.latency.as_dict()
        s.peak_rss_mb = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        s.stopped_by = self.stop.signal
        s.finished = datetime.now(timezone.utc).isoformat(timespec="seconds")
        return s.as_dict()
