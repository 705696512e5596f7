"""One source's run: frames in (`step`), finished tracks out (`end_track`), outputs published (`finish`).

`run_source` is then the whole loop, as supervision's `process_video` is:

    session = Session(stages, source, out, stop)
    for frame in session.frames():
        session.step(frame)
    return session.finish(status)

Memory stays bounded: frames stream through (a recording is decoded a few frames ahead in a helper thread,
`ReadAhead`, so decoding uses the core the detector leaves idle); per track only the observations' metadata
and the policy's candidates are kept, and a track is written out as soon as it ends. `finish` always runs
(also after a stop or an error), so an interrupted run leaves playable, listed files.

Crash safety: the manifest is on disk from the session's start (status "running") and rewritten every
`MANIFEST_EVERY_S` by a helper thread (`Publisher`, at a lower CPU priority), which also refreshes a live
feed's gallery and report every `CHECKPOINT_S`: bookkeeping never holds up frames. The sources of one run
write their reports one at a time, at spread-out moments, with one embedder between them. A write error (disk full) stops the run; `finish`
then writes nothing more but the manifest, with the space its reserve held, and the status "failed".
"""

from __future__ import annotations

import random
import resource
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

from ..core.errors import EnhanceError, OutputError
from ..core.runstats import Latency, RunResult, RunStats, Timings
from ..core.text import iso_utc
from ..core.types import Face, Frame, Track
from ..io.events import RunEnded, RunStarted, track_ended, track_started, track_updated
from ..io.publish import Publisher
from ..io.sinks.events import source_events
from ..io.sinks.manifest import Manifest
from ..io.sinks.tracks import TrackWriter
from ..io.sinks.video import SegmentedVideoWriter, VideoWriter
from ..io.sources import Source
from ..io.sources.readahead import ReadAhead
from .build import Stages
from .flow import FaceFlow, Step
from .stop import StopFlag

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


@contextmanager
def removed_if_unused(out: Path) -> Iterator[Path]:
    """The folders a run is about to create for `out` are removed again when it fails or is stopped before
    writing anything into them (bad weights, a bad detector, a signal during start-up): a failed start
    leaves no empty output folder behind. A folder that holds anything is never touched."""
    out = Path(out)
    missing = [p for p in (out, *out.parents) if not p.exists()]  # deepest first, as mkdir(parents=True) makes them
    try:
        yield out
    except BaseException:
        for folder in missing:
            try:
                folder.rmdir()  # only an empty folder can be removed
            except OSError:
                break
        raise


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
        self.manifest = Manifest(out, self.info, jsonl=cfg.output.detections_jsonl)
        self.events = source_events(out / "events.jsonl", stages.network)  # also to MQTT, webhook
        source.on_event = self.events
        if source.live:
            stop.on_stop(source.close)
        self.writer = TrackWriter(out, cfg.output, run_info=self.info, signer=stages.signer, sheets=cfg.tile_sheets(),
                                  dedupe=cfg.gallery.dedupe)
        expected, limit = source.frames_expected, cfg.source.max_frames
        self.stats = RunStats(frames_expected=min(expected, limit) if expected is not None and limit else expected)
        self.flow = FaceFlow(stages, source.fps, source.live, self.stats, self.timings)  # detect → … → enhance
        self.latency = Latency()
        self.shown: list[Face] = []  # the faces drawn on frames between detections
        self.segment = 0
        total = source.frame_count or None
        self.bar = stages.board.add(source.name, min(total, limit) if total and limit else total or limit or None)
        self.started = time.perf_counter()
        # sources started together would write manifests and reports at the same moments: spread them out
        self._last_manifest = self.started - random.uniform(0, MANIFEST_EVERY_S)
        self._last_report = self.started - random.uniform(0, CHECKPOINT_S / 2)
        self.manifest.write({}, self._running_stats(), "running")  # a run killed from here on has a manifest
        self.events(RunStarted(source=source.name, live=source.live))
        refresh = self._refresh_report if source.live and cfg.output.gallery else None
        self.publisher = Publisher(self._snapshot, refresh, source.name, stages.publishing.gate)
        # a recording is decoded ahead in a helper thread; a live feed already reads in its own
        self._reader = None if source.live else ReadAhead(source, source.name)
        self._report_cache: dict = {}  # per-track analysis kept between a live feed's report refreshes
        self._done = False
        stop.on_abort(self.abort)
        self.catalog = None if stages.catalog is None else stages.catalog.sink(  # finished tracks, as they end
            out, self.info, self.manifest.started, source.name, source.live)

    # ------------------------------------------------------------------ frames

    def frames(self) -> Iterator[Frame]:
        """The source's frames (time waited for them counted as "decode") until the input ends or a stop is
        asked for."""
        frames = iter(self._reader if self._reader is not None else self.source)
        while not self.stop:
            with self.timings("decode"):
                frame = next(frames, None)
            if frame is None:
                return
            yield frame

    def step(self, frame: Frame) -> None:
        """Detect, track, align and enhance one frame, draw and encode it, and write the tracks it ended."""
        if frame.segment != self.segment:  # the camera reconnected: its tracks ended at the disconnect
            self.segment = frame.segment
            self._end_all("disconnect")
            self.shown = []
            if isinstance(self.video, SegmentedVideoWriter):
                self.video.roll(frame.image.shape[1], frame.image.shape[0])
        step = self.flow.step(frame)
        if step.detected:
            self.shown = self._announce(step, frame)
        if self.video is not None:
            with self.timings("annotate"):
                image = self.stages.annotator(frame.image, self.shown, self.flow.insets())
            with self.timings("encode"):
                self.video.write(image, frame.time)
        if frame.captured is not None:
            self.latency.add(time.time() - frame.captured)
        for track in step.ended:
            self.end_track(track, "lost")
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

    def _announce(self, step: Step, frame: Frame) -> list[Face]:
        """A detected frame's track events out, rows of faces no track holds (yet) written; its faces back."""
        size = (frame.image.shape[1], frame.image.shape[0])
        for track in step.started:
            self.events(track_started(track, size))
            if self.catalog is not None:  # an open row until it ends: a run killed now leaves it marked open
                first = track.faces[0]
                self.catalog.opened(track.id, first.time, None if first.captured is None else iso_utc(first.captured))
        for f in step.improved:
            self.events(track_updated(self.flow.tracks[f.track_id], f, size))
        with self.timings("write"):  # a tracked face's row is written with its track, tile files known
            self.manifest.add_faces([f for f in step.faces if f.track_id <= 0])
        return step.faces

    # ------------------------------------------------------------------ tracks

    def end_track(self, track: Track, reason: str) -> None:
        """Write a finalized track out and log its end."""
        with self.timings("write"):
            written = self.writer.write_track(track)
            self.manifest.add_rows(written.rows)
            self.manifest.add_track(written.summary)
        if self.catalog is not None:
            self.catalog.add(track.id)
        size = (self.source.width, self.source.height)
        self.events(track_ended(track, reason, size, written.best_tile, self.out))

    def _end_all(self, reason: str) -> None:
        for track in self.flow.finish():
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
        from ..report import write_report  # scipy and jinja2 load only when a report is written

        shared = self.stages.publishing.cache
        if "embedder" in shared:  # loaded once for every source of the run
            self._report_cache.setdefault("embedder", shared["embedder"])
        try:
            write_report(self.out, self.cfg, self.stages.models_dir, cache=self._report_cache)
        except EnhanceError as e:
            self.stats.report_error = str(e)
        if "embedder" in self._report_cache:
            shared.setdefault("embedder", self._report_cache["embedder"])

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
        if self._reader is not None:
            self._reader.close()  # before anything closes the source it decodes
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
        stats = self._final_stats(failure)
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
        if self.catalog is not None:
            self.catalog.close(status)
        self.bar.finish(status, self.stats.frames, self.stats.faces, self.stats.tracks, self.source.dropped)
        self._done = True
        gen = self.stages.enhancer.info if self.stages.enhancer else None
        return RunResult(status, self.out, self.source.name, self.timings.as_dict(), gen, self.stats, why)

    def _log_end(self, status: str) -> None:
        try:
            self.events(RunEnded(source=self.source.name, status=status, frames=self.stats.frames))
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

    def _final_stats(self, failure: BaseException | None = None) -> dict:
        """The run's figures; `failure`: what ended it early (then a short input is not the input's fault)."""
        s, src = self.stats, self.source
        wall = time.perf_counter() - self.started
        s.wall_s = round(wall, 3)
        s.fps = round(s.frames / wall, 2) if wall > 0 else 0.0
        s.realtime_factor = round(s.frames / src.fps / wall, 3) if wall > 0 and src.fps and not src.live else None
        s.skipped_frames, s.decode_errors = src.skipped, src.errors[:20]
        short = s.short_by()
        if short and not self.stop and failure is None:  # the input itself ended: it is cut or damaged
            s.decode_errors = [*s.decode_errors, f"input ends early: {short} of the {s.frames_expected} frames "
                                                  "its container lists never decoded (cut or damaged file)"]
        s.dropped_frames, s.reconnects = src.dropped, src.generation
        s.latency = self.latency.as_dict()
        s.peak_rss_mb = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        s.events = self.events.stats()
        s.stopped_by = self.stop.signal
        s.finished = datetime.now(timezone.utc).isoformat(timespec="seconds")
        return s.as_dict()
