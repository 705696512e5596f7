"""The records that flow between stages.

One `Frame` per decoded picture, one `Face` per detected face in it, one `Track` per person followed.
A `Face` is filled in stage by stage (detect → track → align → enhance); the tracker keeps each open
`Track`, which is all the run remembers between frames; the sinks consume both. No stage keeps its own
parallel bookkeeping.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Frame:
    """A decoded picture in BGR order with its presentation time."""

    image: np.ndarray  # HxWx3 uint8, BGR, already rotated upright
    index: int  # 0-based index among the frames this source delivered
    time: float  # presentation time in seconds from the start of the stream
    source: str  # the source's display name (credentials never appear here)
    pts: int | None = None  # raw presentation timestamp in the stream's time base
    captured: float | None = None  # wall-clock time (time.time()) a live frame was received, for latency
    segment: int = 0  # connection generation of a live source: increments at every reconnect


@dataclass
class Face:
    """One face in one frame, as it passes through the stages."""

    box: np.ndarray  # (4,) float32 x1, y1, x2, y2 in source pixels
    kps: np.ndarray  # (5, 2) float32: left eye, right eye, nose, left mouth, right mouth
    score: float  # detector confidence
    frame_index: int = -1
    time: float = 0.0
    source: str = ""
    captured: float | None = None  # wall-clock time (time.time()) its frame was received: live sources only
    track_id: int = -1  # set by the tracker; -1 = not (yet) tracked
    # align
    crop: np.ndarray | None = None  # 128x128 BGR aligned crop, sampled from the source (the "original")
    lr: np.ndarray | None = None  # entry x entry BGR low-res generator input, sampled from the source
    entry: int = 0  # generator entry size chosen for this face: 16, 32 or 64
    resolved: bool = False  # camera resolves more than the largest entry takes: shown as captured, never synthesized
    matrix: np.ndarray | None = None  # (2, 3) source → 128 canonical crop
    inverse: np.ndarray | None = None  # (2, 3) 128 canonical crop → source
    quality: float = 0.0  # 0..1 score used to pick the observations worth enhancing
    sharpness: float = 0.0
    frontalness: float = 0.0
    # enhance
    neighbours: list[Face] = field(default_factory=list)  # other observations of the track fused into this one
    enhanced: np.ndarray | None = None  # 128x128 BGR generator output (synthesized pixels)
    consistency: float | None = None  # mean |enhanced shrunk to the input size − input|, 0–255
    confidence: float | None = None  # 0–1: how far the enhanced face can be trusted (enhance/confidence.py)

    @property
    def size(self) -> float:
        """Face size in source pixels: the larger side of the detector box."""
        return float(max(self.box[2] - self.box[0], self.box[3] - self.box[1]))

    @property
    def height(self) -> float:
        return float(self.box[3] - self.box[1])


@dataclass
class Track:
    """One person followed through one source: opened and ended by the tracker, filled in by the run.

    Each observation is one `Face`, held once: `faces` lists them all, and the other lists point at the same
    records: `candidates` (the ones whose pixels the enhancement policy keeps: enhanced already or waiting
    for the track's end), `inset` (the latest enhanced face, drawn beside the track in the video), and with
    track fusion `recent` (a bounded ring of the latest observations, whose low-res crops the generator
    fuses), `waiting` (faces whose window still waits for later frames) and `promised`. Pixels are what cost
    memory, so `settle` drops them from every observation that none of those still needs.
    """

    id: int
    source: str
    faces: list[Face] = field(default_factory=list)
    candidates: list[Face] = field(default_factory=list)
    inset: Face | None = None
    last_seen: float = 0.0
    recent: list[Face] = field(default_factory=list)  # fusion: the latest observations, their low-res crops kept
    waiting: list[tuple[Face, bool]] = field(default_factory=list)  # fusion: (face, enhance when ready) awaiting later frames
    promised: Face | None = None  # fusion: the face picked for the inset, enhanced once its window is complete
    pixels: list[Face] = field(default_factory=list, repr=False)  # the observations that may still carry pixels

    def observe(self, face: Face) -> None:
        """Record an aligned observation (its pixels stay until `settle` finds nothing needs them)."""
        self.faces.append(face)
        self.pixels.append(face)

    def keep(self, face: Face, limit: int | None = None) -> None:
        """Hold `face`'s pixels for the generator; with `limit`, only the best `limit` by quality stay."""
        self.candidates.append(face)
        if limit is not None:
            self.candidates.sort(key=lambda f: -f.quality)
            del self.candidates[limit:]

    def settle(self) -> None:
        """Drop the pixels no holder needs any more: a candidate, a waiting face, the inset and the promised
        face keep theirs; a face in the fusion ring, or fused into a face not yet enhanced, keeps its
        low-res crop; every other observation keeps its metadata only."""
        whole = [*self.candidates, *(f for f, _ in self.waiting), *(f for f in (self.inset, self.promised) if f)]
        keep = {id(f) for f in whole}
        low = {id(f) for f in self.recent} | {id(n) for f in whole if f.enhanced is None for n in f.neighbours}
        still = []
        for f in self.pixels:
            if id(f) in keep:
                still.append(f)
                continue
            f.crop = f.enhanced = None
            f.neighbours = []  # its record names what was fused into it only when it is a candidate
            if id(f) in low:
                still.append(f)
            else:
                f.lr = None
        self.pixels = still

    @property
    def enhanced(self) -> list[Face]:
        """The enhanced candidates, best first."""
        return sorted((f for f in self.candidates if f.enhanced is not None), key=lambda f: -f.quality)
