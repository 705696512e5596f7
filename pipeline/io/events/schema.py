"""The event records: one frozen dataclass per kind; `row()` is its `events.jsonl` line.

Events are built typed where they happen (the session for tracks and runs, `LiveSource` for the camera)
and only ever serialized: `row()` for events.jsonl and the webhook, `TrackSnapshot.payload()` for MQTT.
"""

from __future__ import annotations

import dataclasses
import re
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ...core.text import _relative_tile, iso_utc

# ---------------------------------------------------------------------------------------------- camera slug

_SLUG_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def camera_slug(name: str) -> str:
    """The camera's identifier in MQTT topics, payloads, ids and file names: one rule, used everywhere.

    Letters, digits, `_` and `-` are kept (Frigate's own rule for camera names); every run of other
    characters (`/ : . @` spaces, MQTT's `+ #`) becomes one `_`; leading and trailing `_` go; an empty
    result is "camera". So `lobby` stays `lobby` and an unnamed `rtsp://127.0.0.1:18554/lobby`, whose
    display name is `127.0.0.1:18554/lobby`, is `127_0_0_1_18554_lobby`.
    """
    return _SLUG_UNSAFE.sub("_", str(name)).strip("_") or "camera"


# ---------------------------------------------------------------------------------------------- events

_NOT_IN_ROW = {"row": False}  # field metadata: carried by the event, never written to events.jsonl


@dataclass(frozen=True, kw_only=True)
class Event:
    """What every event has: the camera (`source`, its display name), the wall-clock `at` and the
    stream `time`.

    Subclasses declare their kind (`KIND`, the "event" field) and their own fields; a field with a default
    of None is optional and left out of `row()` while unknown.
    """

    KIND: ClassVar[str] = ""
    TIME_KEY: ClassVar[str | None] = "time"  # the row key of `time`; None: this kind has no stream time
    WALL: ClassVar[bool] = False  # also written as "wall" (= at), as the live sources' events always were

    source: str
    at: float = field(default_factory=time.time)
    time: float | None = None

    @property
    def kind(self) -> str:
        return self.KIND

    @property
    def camera(self) -> str:
        """The camera's slug (`camera_slug(source)`): what topics, payloads and ids name it by."""
        return camera_slug(self.source)

    def row(self) -> dict[str, Any]:
        """The events.jsonl row: "at", "source", "camera", "event", this kind's fields, then the known
        optional ones."""
        d: dict[str, Any] = {"at": iso_utc(self.at), "source": self.source, "camera": self.camera,
                             "event": self.kind}
        optional: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name in _BASE_FIELDS or f.metadata.get("row") is False:
                continue
            value = getattr(self, f.name)
            if f.default is None:
                if value is not None:
                    optional[f.name] = value
            else:
                d[f.name] = value
        if self.TIME_KEY is not None:
            d[self.TIME_KEY] = None if self.time is None else round(self.time, 3)
        if self.WALL:
            d["wall"] = self.at
        d.update(optional)
        return d


_BASE_FIELDS = frozenset(f.name for f in dataclasses.fields(Event))


@dataclass(frozen=True, kw_only=True)
class TrackEvent(Event):
    """What every track event says about the face it is about (the first, the new best, the last).

    `score`: the detector's confidence in that observation; `top_score`: the highest of the track so far;
    `box`: [x1, y1, x2, y2] in the pixels of a frame `frame_size` = [width, height]; `snapshot`: the best
    observation's aligned crop as the camera captured it (BGR array; MQTT sends it as JPEG, events.jsonl
    never holds it); `root`: the run folder (absolute) that `best_tile` is relative to.
    """

    track: int
    observations: int = 1
    enhanced: int = 0
    score: float | None = None
    top_score: float | None = None
    box: tuple[float, float, float, float] | None = None
    frame_size: tuple[int, int] | None = None
    best_tile: str | None = None  # relative to the run folder (`root`), POSIX separators
    enhance_confidence: float | None = None  # 0–1 trust in the best enhanced tile (enhance/confidence.py)
    person: int | str | None = None  # person group, if already known
    snapshot: np.ndarray | None = field(default=None, repr=False, compare=False, metadata=_NOT_IN_ROW)
    root: str | None = field(default=None, metadata=_NOT_IN_ROW)

    def __post_init__(self) -> None:
        object.__setattr__(self, "best_tile", _relative_tile(self.best_tile))

    @property
    def area(self) -> float | None:
        """The box's area in frame pixels (Frigate's `area`)."""
        if self.box is None:
            return None
        x1, y1, x2, y2 = self.box
        return round(max(0.0, x2 - x1) * max(0.0, y2 - y1), 1)


@dataclass(frozen=True, kw_only=True)
class TrackStarted(TrackEvent):
    """A track was confirmed: its first observation is at `frame`/`time`."""

    KIND: ClassVar[str] = "track_start"
    frame: int


@dataclass(frozen=True, kw_only=True)
class TrackUpdated(TrackEvent):
    """A track's best tile improved (a better-quality observation was enhanced)."""

    KIND: ClassVar[str] = "track_update"
    frame: int
    quality: float | None = None  # the observation quality that made it the best


@dataclass(frozen=True, kw_only=True)
class TrackEnded(TrackEvent):
    """A track ended (`reason`: lost, disconnect, end of input, stopped); `time` is its last observation."""

    KIND: ClassVar[str] = "track_end"
    TIME_KEY: ClassVar[str | None] = "last_time"
    reason: str
    first_time: float | None = None


@dataclass(frozen=True, kw_only=True)
class RunStarted(Event):
    """Processing of a source began (its camera answered): the camera is online for us."""

    KIND: ClassVar[str] = "run_start"
    TIME_KEY: ClassVar[str | None] = None
    live: bool | None = None


@dataclass(frozen=True, kw_only=True)
class RunEnded(Event):
    """Processing of a source ended (`status`: complete, interrupted, failed)."""

    KIND: ClassVar[str] = "run_end"
    TIME_KEY: ClassVar[str | None] = None
    status: str
    frames: int


@dataclass(frozen=True, kw_only=True)
class CameraOffline(Event):
    """A live feed failed (read error, end of stream, silence); its open tracks end here."""

    KIND: ClassVar[str] = "disconnect"
    WALL: ClassVar[bool] = True
    reason: str
    segment: int


@dataclass(frozen=True, kw_only=True)
class CameraReconnecting(Event):
    """About to wait `after_s` before reconnect `attempt`."""

    KIND: ClassVar[str] = "reconnect"
    WALL: ClassVar[bool] = True
    attempt: int
    after_s: float
    reason: str


@dataclass(frozen=True, kw_only=True)
class CameraOnline(Event):
    """A live feed is back after `downtime_s`; frames of the new connection have segment `segment`."""

    KIND: ClassVar[str] = "reconnected"
    WALL: ClassVar[bool] = True
    attempt: int
    segment: int
    downtime_s: float


@dataclass(frozen=True, kw_only=True)
class CameraGaveUp(Event):
    """The feed stayed down through `attempts` reconnects; its run ends."""

    KIND: ClassVar[str] = "gave_up"
    WALL: ClassVar[bool] = True
    attempts: int
    reason: str


@dataclass(frozen=True, kw_only=True)
class FramesDropped(Event):
    """Processing fell behind a live feed: `count` frames dropped since the last report, `total` in all."""

    KIND: ClassVar[str] = "dropped"
    WALL: ClassVar[bool] = True
    count: int
    total: int


ONLINE_KINDS = (RunStarted, CameraOnline)  # after these the camera is delivering frames to us
OFFLINE_KINDS = (CameraOffline, CameraGaveUp, RunEnded)  # after these it is not
