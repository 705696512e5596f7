"""Per frame: detect → track → align → keep or enhance per the policy, for one stream of frames.

Shared by a run's `Session` (one per source) and the notebook API's `FaceEnhancer`, so both follow and
enhance faces the same way; what becomes of the results (files and events, or records handed back) is
theirs. The stages themselves (`Stages`: detector, aligner, generator) are shared by every stream.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..core.runstats import RunStats, Timings
from ..core.types import Face, Frame, Track
from ..stages.enhance.policy import Policy
from ..stages.enhance.window import FusionWindow
from ..stages.track import Tracker

if TYPE_CHECKING:  # the flow reads cfg, detector, aligner, enhancer and detect_turns; the sinks' imports stay out
    from .build import Stages


@dataclass
class Step:
    """What one frame did: every face found, the tracks it started, the faces that became an inset, and the
    tracks it ended (unseen for `track.lost_seconds`), finalized."""

    faces: list[Face] = field(default_factory=list)
    detected: bool = True  # False: a frame between detections (`detect.stride`): the faces shown before stay
    started: list[Track] = field(default_factory=list)  # first observation in this frame (`track.faces[0]`)
    improved: list[Face] = field(default_factory=list)  # enhanced now, better than the track's inset before
    ended: list[Track] = field(default_factory=list)  # finalized: kept faces enhanced, candidates best first


class FaceFlow:
    """The per-stream state: tracker, policy and fusion window; counts into `stats`, times into `timings`."""

    def __init__(self, stages: Stages, fps: float, live: bool, stats: RunStats | None = None,
                 timings: Timings | None = None) -> None:
        cfg = stages.cfg
        self.stages, self.fps, self.live = stages, fps, live
        self.stats = stats if stats is not None else RunStats()
        self.timings = timings if timings is not None else Timings()
        self.tracker = Tracker(cfg.track, fps)
        self.policy = Policy(cfg.enhance)
        frames = stages.enhancer.frames if stages.enhancer is not None else 0
        centred = cfg.enhance.fusion_window == "centred" or (cfg.enhance.fusion_window == "auto" and not live)
        self.window = FusionWindow(frames, centred) if frames > 1 else None
        self.detections = 0  # frames detected so far: every `detect.small_every`-th gets the full small-face pass
        self.last: list[np.ndarray] = []  # the previous detection's boxes

    @property
    def tracks(self) -> dict[int, Track]:
        """The open tracks by id."""
        return self.tracker.tracks

    def insets(self) -> dict[int, Face]:
        """Each open track's best enhanced face so far, by track id (what the annotated video shows)."""
        return {t.id: t.inset for t in self.tracker.tracks.values() if t.inset is not None}

    def finish(self) -> list[Track]:
        """End every open track (the stream is over or the camera reconnected), finalized; the next frame
        starts a new tracker with fresh ids."""
        ended = [self.finalize(t) for t in self.tracker.finish() if t.faces]
        self.tracker = Tracker(self.stages.cfg.track, self.fps)
        self.detections, self.last = 0, []
        return ended

    def followed(self) -> list[np.ndarray]:
        """Where this stream's faces were last seen (the previous detection's, each open track's latest): between
        full small-face passes the detector looks for small faces only there."""
        return self.last + [t.faces[-1].box for t in self.tracker.tracks.values() if t.faces]

    def step(self, frame: Frame) -> Step:
        """One frame: its faces detected (every `detect.stride`-th frame, where a face can fit), tracked,
        aligned and enhanced as the policy picks; the tracks it ended come back finalized."""
        cfg = self.stages.cfg
        for track in self.tracker.tracks.values():  # the last frame's pixels that no track needs any more go
            track.settle()
        if min(frame.image.shape[:2]) < cfg.detect.min_face:  # no face that size fits: not searched
            self.stats.small_frames += 1
            step = Step()
        elif frame.index % cfg.detect.stride == 0:
            step = self._detect(frame)
        else:
            step = Step(detected=False)
        step.ended = [self.finalize(t) for t in self.tracker.ended(frame.time) if t.faces]
        self.stats.frames += 1
        return step

    def _detect(self, frame: Frame) -> Step:
        """Detect, track, align and enhance (what the policy picks now) one frame's faces."""
        stages = self.stages
        with self.timings("detect"), stages.detect_turns.turn() if self.live else nullcontext():
            full = self.detections % stages.cfg.detect.small_every == 0
            faces = stages.detector(frame.image, None if full else self.followed())
        self.detections, self.last = self.detections + 1, [f.box for f in faces]
        for f in faces:
            f.frame_index, f.time, f.source, f.captured = frame.index, frame.time, frame.source, frame.captured
        with self.timings("track"):
            self.tracker(faces, frame.time)
        tracked = [f for f in faces if f.track_id > 0]
        with self.timings("align"):
            for f in tracked:
                stages.aligner(frame.image, f)
        step, now = Step(faces), []
        for f in tracked:
            track = self.tracker.tracks[f.track_id]
            if not track.faces:
                self.stats.tracks += 1
                step.started.append(track)
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
                step.improved.append(f)
        self.stats.faces += len(faces)
        return step

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

    def finalize(self, track: Track) -> Track:
        """A track that ended: enhance what the policy kept for later; its candidates best first."""
        if self.window is not None:
            self._released(track, ending=True)
            track.recent.clear()
        self._enhance([f for f in track.candidates if f.enhanced is None and not f.resolved])
        track.candidates.sort(key=lambda f: -f.quality)
        track.inset = track.promised = None  # no longer shown: only the candidates keep their pixels
        track.settle()
        return track
