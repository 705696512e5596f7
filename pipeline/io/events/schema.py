"""The event records: one frozen dataclass per kind, `to_dict`/`from_dict` in today's `events.jsonl` form."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ...core.text import _parse_at, _relative_tile, iso_utc

# ---------------------------------------------------------------------------------------------- events


@dataclass(frozen=True, kw_only=True)
class Event:
    """What every event has: the camera (`source`), the wall-clock `at` and the stream `time`.

    Subclasses declare their kind (`KIND`, the "event" field) and their own fields; a field with a default
    of None is optional and left out of `to_dict()` while unknown, so old readers see the old shape.
    """

    KIND: ClassVar[str] = ""
    TIME_KEY: ClassVar[str | None] = "time"  # the dict key of `time`; None: this kind has no stream time
    WALL: ClassVar[bool] = False  # written with "wall" (= at) as the live sources do today

    source: str
    at: float = field(default_factory=time.time)
    time: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)  # fields this version does not know

    @property
    def kind(self) -> str:
        return self.KIND

    @property
    def camera(self) -> str:
        """The camera's name (the same as `source`; MQTT and Frigate call it camera)."""
        return self.source

    def to_dict(self) -> dict[str, Any]:
        """The events.jsonl row: "at", "source", "event", this kind's fields, then known optional ones."""
        d: dict[str, Any] = {"at": iso_utc(self.at), "source": self.source, "event": self.kind}
        optional: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name in _BASE_FIELDS:
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
        for k, v in self.extra.items():
            d.setdefault(k, v)
        return d


_BASE_FIELDS = frozenset(f.name for f in dataclasses.fields(Event))


@dataclass(frozen=True, kw_only=True)
class TrackStarted(Event):
    """A track was confirmed: its first observation is at `frame`/`time`."""

    KIND: ClassVar[str] = "track_start"
    track: int
    frame: int
    score: float | None = None  # detector confidence of the first observation


@dataclass(frozen=True, kw_only=True)
class TrackUpdated(Event):
    """A track's best tile improved (a better-quality observation was enhanced)."""

    KIND: ClassVar[str] = "track_update"
    track: int
    frame: int
    observations: int
    enhanced: int
    best_tile: str | None = None  # relative to the run folder, POSIX separators
    confidence: float | None = None  # 0–1 trust in the best enhanced tile (enhance/confidence.py)
    quality: float | None = None  # the observation quality that made it the best
    person: int | str | None = None  # person group, if already known

    def __post_init__(self) -> None:
        object.__setattr__(self, "best_tile", _relative_tile(self.best_tile))


@dataclass(frozen=True, kw_only=True)
class TrackEnded(Event):
    """A track ended (`reason`: lost, disconnect, end of input, stopped); `time` is its last observation."""

    KIND: ClassVar[str] = "track_end"
    TIME_KEY: ClassVar[str | None] = "last_time"
    track: int
    reason: str
    observations: int
    enhanced: int
    first_time: float | None = None
    best_tile: str | None = None  # e.g. tracks/7/best.png
    confidence: float | None = None
    person: int | str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "best_tile", _relative_tile(self.best_tile))


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


@dataclass(frozen=True, kw_only=True)
class OtherEvent(Event):
    """An event kind this version does not know; its fields are kept in `extra` and written back as read."""

    name: str = "unknown"

    @property
    def kind(self) -> str:
        return self.name

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"at": iso_utc(self.at), "source": self.source, "event": self.name}
        if self.time is not None:
            d["time"] = self.time
        for k, v in self.extra.items():
            d.setdefault(k, v)
        return d


KINDS: Mapping[str, type[Event]] = {
    c.KIND: c
    for c in (TrackStarted, TrackUpdated, TrackEnded, RunStarted, RunEnded, CameraOffline, CameraReconnecting,
              CameraOnline, CameraGaveUp, FramesDropped)
}
ONLINE_KINDS = (RunStarted, CameraOnline)  # after these the camera is delivering frames to us
OFFLINE_KINDS = (CameraOffline, CameraGaveUp, RunEnded)  # after these it is not


def from_dict(d: Mapping[str, Any]) -> Event:
    """An event from its events.jsonl / runner dict form (today's or `to_dict()`'s).

    `at` comes from "wall" when present (when the live source saw it), else from "at" (when it was
    logged), else now. Raises ValueError when a known kind lacks a field it needs.
    """
    kind = d.get("event")
    at = _parse_at(d.get("wall"))
    if at is None:
        at = _parse_at(d.get("at"))
    common: dict[str, Any] = {"source": str(d.get("source", "")), "at": time.time() if at is None else at}
    cls = KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        rest = {k: v for k, v in d.items() if k not in ("at", "wall", "source", "event", "time")}
        t = d.get("time")
        return OtherEvent(name=str(kind), time=t if isinstance(t, (int, float)) else None, extra=rest, **common)
    used = {"at", "source", "event"}
    if cls.WALL:
        used.add("wall")
    kwargs: dict[str, Any] = {}
    if cls.TIME_KEY is not None and cls.TIME_KEY in d:
        used.add(cls.TIME_KEY)
        if d[cls.TIME_KEY] is not None:
            kwargs["time"] = float(d[cls.TIME_KEY])
    for f in dataclasses.fields(cls):
        if f.name in _BASE_FIELDS:
            continue
        if f.name in d:
            kwargs[f.name] = d[f.name]
            used.add(f.name)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ValueError(f"{kind} event without {f.name!r}")
    extra = {k: v for k, v in d.items() if k not in used}
    return cls(extra=extra, **common, **kwargs)


