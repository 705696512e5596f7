"""Events: what happened to a camera and its tracks, as typed records shared by every event sink.

One schema feeds `events.jsonl`, MQTT and the webhook, so the three never disagree about what a field
means. `to_dict()` gives exactly the dict the runner writes to `events.jsonl` today (plus "at" and new
optional fields only when they are known), and `from_dict()` reads that dict back, so the runner can
switch from dicts to these classes without changing a byte of what other tools read:

    track_start  {"source", "event", "track", "frame", "time"}                         TrackStarted
    track_update {"source", "event", "track", "frame", "time", "observations", …}      TrackUpdated (new)
    track_end    {"source", "event", "track", "reason", "observations", "enhanced",
                  "last_time"}                                                          TrackEnded
    run_start    {"source", "event"}                                                    RunStarted (new)
    run_end      {"source", "event", "status", "frames"}                                RunEnded
    disconnect   {"source", "event", "reason", "segment", "time", "wall"}               CameraOffline
    reconnect    {"source", "event", "attempt", "after_s", "reason", "time", "wall"}    CameraReconnecting
    reconnected  {"source", "event", "attempt", "downtime_s", "segment", "time", "wall"} CameraOnline
    gave_up      {"source", "event", "attempts", "reason", "time", "wall"}              CameraGaveUp
    dropped      {"source", "event", "count", "total", "time", "wall"}                  FramesDropped

Every event has `source` (the camera's display name, never a URL with credentials), `at` (wall-clock
seconds since the epoch: written as "at", ISO 8601 UTC with milliseconds, the form `EventLog` already
writes, and as "wall" for the live-source events that carry it today) and `time` (seconds on the
stream's clock; a track end writes it as "last_time", a run end has none). An unknown kind read back
becomes an `OtherEvent` and fields a newer writer added are kept in `extra`, so nothing is lost.

Track events also fold into `TrackSnapshot`s (`TrackBook`): the `before`/`after` pair of a Frigate-style
`new`/`update`/`end` message, which MQTT and the webhook publish. `EventBus` fans one event out to several
sinks without letting a failing or slow sink reach the frame loop that emitted it.

`expand_env`, `Secrets` and `json_dumps` are the small helpers the network sinks share: `${VAR}` from the
environment, scrubbing credentials out of anything shown, and JSON that numpy values cannot break.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import PurePath, PurePosixPath, PureWindowsPath
from typing import Any, ClassVar, Protocol, runtime_checkable

from .errors import ConfigError

log = logging.getLogger(__name__)

__all__ = [
    "CameraGaveUp", "CameraOffline", "CameraOnline", "CameraReconnecting", "DictSink", "Event", "EventBus",
    "FramesDropped", "OtherEvent", "RunEnded", "RunStarted", "Secrets", "Sink", "TrackBook", "TrackEnded",
    "TrackSnapshot", "TrackStarted", "TrackUpdated", "envelope", "expand_env", "from_dict", "json_dumps",
]


# ---------------------------------------------------------------------------------------------- helpers

_ENV_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def expand_env(text: str, what: str = "a setting") -> tuple[str, list[str]]:
    """Fill `${VAR}` placeholders from the environment; returns the text and the values used.

    The values are secrets by assumption (that is why they live in the environment): callers scrub them
    from everything they show. A missing variable is a `ConfigError` naming the variable, never a value.
    """
    values: list[str] = []

    def fill(m: re.Match[str]) -> str:
        value = os.environ.get(m.group(1))
        if value is None:
            raise ConfigError(f"environment variable {m.group(1)} is not set (used in {what})")
        values.append(value)
        return value

    return _ENV_VAR.sub(fill, text), values


class Secrets:
    """Strings that must never be shown: `scrub(text)` replaces each one (3+ characters) with ***.

    Shorter strings are not scrubbed: replacing every "a" in a log line would hide more than it protects,
    and a one- or two-character password is not a secret worth the name.
    """

    def __init__(self, values: Iterable[str | None] = ()) -> None:
        self._values: list[str] = []
        self.add(*values)

    def add(self, *values: str | None) -> None:
        found = {v for v in values if v and len(v) >= 3} | set(self._values)
        self._values = sorted(found, key=len, reverse=True)  # longest first: a secret inside another

    def scrub(self, text: str) -> str:
        for s in self._values:
            text = text.replace(s, "***")
        return text

    def __bool__(self) -> bool:
        return bool(self._values)

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __repr__(self) -> str:
        return f"Secrets({len(self._values)} hidden)"


def _jsonable(o: Any) -> Any:
    """numpy scalars and arrays, paths and sets in an event must not stop it from being sent."""
    item = getattr(o, "item", None)
    if callable(item) and getattr(o, "ndim", 1) == 0:
        return _finite(item())
    tolist = getattr(o, "tolist", None)
    if callable(tolist):
        return _finite(tolist())
    if isinstance(o, PurePath):
        return o.as_posix()
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    return str(o)


def json_dumps(obj: Any) -> str:
    """Compact JSON as the sinks send it: UTF-8 text, numpy values as numbers, NaN as null."""
    return json.dumps(_finite(obj), default=_jsonable, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _finite(obj: Any) -> Any:
    """NaN/inf are not JSON: strict consumers (JavaScript's JSON.parse) reject the whole message."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _iso(at: float) -> str:
    """`EventLog`'s "at" form: ISO 8601, UTC, milliseconds."""
    return datetime.fromtimestamp(at, timezone.utc).isoformat(timespec="milliseconds")


def _parse_at(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=timezone.utc)
        return dt.timestamp()
    return None


def _relative_tile(path: str | PurePath | None) -> str | None:
    """A tile path as sent: POSIX, relative to the run folder (an absolute path would leak the host's layout)."""
    if path is None:
        return None
    p = path if isinstance(path, PurePath) else PurePosixPath(str(path).replace("\\", "/"))
    if p.is_absolute() or PureWindowsPath(str(path)).is_absolute() or ".." in p.parts:
        raise ValueError(f"best_tile must be relative to the run folder, got {str(path)!r}")
    return p.as_posix()


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
        d: dict[str, Any] = {"at": _iso(self.at), "source": self.source, "event": self.kind}
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
        d: dict[str, Any] = {"at": _iso(self.at), "source": self.source, "event": self.name}
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


# ---------------------------------------------------------------------------------------------- tracks


@dataclass(frozen=True, kw_only=True)
class TrackSnapshot:
    """A track as MQTT and the webhook show it at one moment: the `before`/`after` of a message.

    Field names follow Frigate's `frigate/events` objects where the meaning is the same (`id`, `camera`,
    `label`, `sub_label`, `start_time`, `end_time` (null while the track is open), `frame_time`; wall-clock
    epoch seconds), plus what Enhance knows: stream times, counts, the best tile and its confidence.
    """

    camera: str
    track: int
    start_time: float  # wall clock when the track started
    frame_time: float  # wall clock of the latest event about it
    first_time: float | None = None  # stream seconds of the first observation
    last_time: float | None = None  # stream seconds of the latest observation we heard of
    end_time: float | None = None
    end_reason: str | None = None
    observations: int = 1
    enhanced: int = 0
    best_tile: str | None = None
    confidence: float | None = None
    person: int | str | None = None

    @property
    def id(self) -> str:
        """Unique across cameras and tracker restarts: "<start epoch>-<camera>-<track>", like Frigate's ids."""
        return f"{self.start_time:.3f}-{self.camera}-{self.track}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "camera": self.camera,
            "track": self.track,
            "label": "face",
            "sub_label": None if self.person is None else str(self.person),
            "person": self.person,
            "start_time": self.start_time,
            "end_time": self.end_time,
            "frame_time": self.frame_time,
            "first_time": self.first_time,
            "last_time": self.last_time,
            "end_reason": self.end_reason,
            "observations": self.observations,
            "enhanced": self.enhanced,
            "best_tile": self.best_tile,
            # the best tile of an enhanced track is a generated reconstruction: say so wherever it is shown
            "ai_enhanced": self.enhanced > 0,
            "confidence": self.confidence,
        }


TRACK_TYPES: Mapping[type[Event], str] = {TrackStarted: "new", TrackUpdated: "update", TrackEnded: "end"}


class TrackBook:
    """Folds track events into one running `TrackSnapshot` per open track, giving each message its
    `before` (the last snapshot sent, None for `new`) and `after`.

    Each sink keeps its own book (no shared state between sinks). An `update` or `end` for a track whose
    start was never seen (a sink added mid-run) starts from that event alone. Ended tracks are forgotten,
    so a book's size is the number of open tracks.
    """

    def __init__(self) -> None:
        self._open: dict[tuple[str, int], TrackSnapshot] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._open)

    def apply(self, event: Event) -> tuple[str, TrackSnapshot | None, TrackSnapshot] | None:
        """(type, before, after) for a track event; None for any other event."""
        kind = TRACK_TYPES.get(type(event))
        if kind is None:
            return None
        key = (event.source, int(event.track))  # type: ignore[attr-defined]
        with self._lock:
            before = self._open.get(key)
            if isinstance(event, TrackStarted):
                before = None
                after = TrackSnapshot(camera=event.source, track=event.track, start_time=event.at,
                                      frame_time=event.at, first_time=event.time, last_time=event.time)
            else:
                base = before or TrackSnapshot(
                    camera=event.source, track=event.track, start_time=event.at, frame_time=event.at,
                    first_time=getattr(event, "first_time", None))
                changes: dict[str, Any] = {"frame_time": event.at, "observations": event.observations,
                                           "enhanced": event.enhanced}
                if event.time is not None:
                    changes["last_time"] = event.time
                for name in ("best_tile", "confidence", "person", "first_time"):
                    value = getattr(event, name, None)
                    if value is not None:
                        changes[name] = value
                if isinstance(event, TrackEnded):
                    changes.update(end_time=event.at, end_reason=event.reason)
                after = dataclasses.replace(base, **changes)
            if isinstance(event, TrackEnded):
                self._open.pop(key, None)
            else:
                self._open[key] = after
        return kind, before, after


def envelope(event: Event, book: TrackBook) -> dict[str, Any]:
    """The JSON object a webhook receives for `event` (and applies it to `book`).

    `{"type", "camera", "event"}` for every event, `event` being its events.jsonl row; track events add
    Frigate's `before`/`after` with type new/update/end, the others have their kind as type.
    """
    folded = book.apply(event)
    if folded is None:
        return {"type": event.kind, "camera": event.source, "event": event.to_dict()}
    kind, before, after = folded
    return {"type": kind, "camera": event.source, "event": event.to_dict(),
            "before": None if before is None else before.to_dict(), "after": after.to_dict()}


# ---------------------------------------------------------------------------------------------- fan-out


@runtime_checkable
class Sink(Protocol):
    """Something that takes events: `publish(event)` and, optionally, `close(timeout)`.

    A sink whose `publish` never blocks (it only queues) sets `nonblocking = True`; `EventBus` then calls
    it in the emitting thread instead of giving it a queue and a thread of its own.
    """

    def publish(self, event: Event) -> None: ...


class DictSink:
    """Adapts a dict consumer (such as `sinks.events.EventLog`) to `Sink`: it receives `event.to_dict()`."""

    def __init__(self, consumer: Callable[[dict], None]) -> None:
        self.consumer = consumer

    def publish(self, event: Event) -> None:
        self.consumer(event.to_dict())

    def close(self, timeout: float | None = None) -> None:
        close = getattr(self.consumer, "close", None)
        if callable(close):
            close()

    def __repr__(self) -> str:
        return f"DictSink({type(self.consumer).__name__})"


class _Lane:
    """One sink behind the bus: called inline, or fed through its own bounded queue and thread."""

    def __init__(self, sink: Any, name: str, inline: bool, max_queue: int) -> None:
        self.sink, self.name, self.inline = sink, name, inline
        self._deliver: Callable[[Event], None] = sink.publish if hasattr(sink, "publish") else sink
        self.delivered = self.dropped = self.errors = 0
        self._queue: deque[Event] = deque()
        self._max = max(1, int(max_queue))
        self._cond = threading.Condition()
        self._closing = False
        self._thread: threading.Thread | None = None
        if not inline:
            self._thread = threading.Thread(target=self._run, name=f"events to {name}", daemon=True)
            self._thread.start()

    def put(self, event: Event) -> None:
        if self.inline:
            self._call(event)
            return
        with self._cond:
            if self._closing:
                self.dropped += 1
                return
            if len(self._queue) >= self._max:  # a slow sink loses its oldest events, never the caller's time
                self._queue.popleft()
                self.dropped += 1
            self._queue.append(event)
            self._cond.notify()

    def _call(self, event: Event) -> None:
        try:
            self._deliver(event)
        except Exception as e:  # a sink's failure is its own: count it, say it once, carry on
            with self._cond:
                self.errors += 1
                first = self.errors == 1
            if first:
                log.warning("event sink %s failed (%s: %s); further failures are counted, not logged",
                            self.name, type(e).__name__, e)
        else:
            with self._cond:
                self.delivered += 1

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue:
                    return
                event = self._queue.popleft()
            self._call(event)

    def drain(self, deadline: float) -> None:
        """Stop taking events and wait (until `deadline`, monotonic) for the queue to empty."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(max(0.0, deadline - time.monotonic()))
            with self._cond:  # what could not be delivered in time is lost: count it
                self.dropped += len(self._queue)
                self._queue.clear()

    def close(self, deadline: float) -> None:
        close = getattr(self.sink, "close", None)
        if not callable(close):
            return
        try:
            close(timeout=max(0.0, deadline - time.monotonic()))
        except TypeError:  # a close() without a timeout
            close()

    def stats(self) -> dict[str, int]:
        return {"delivered": self.delivered, "dropped": self.dropped, "errors": self.errors,
                "queued": len(self._queue)}


class EventBus:
    """Delivers each event to every sink; a sink's exception or slowness never reaches the caller.

    The frame loop calls `emit` and moves on. A sink that declares `nonblocking = True` (its `publish`
    only queues, as the MQTT and webhook sinks do) or is added with `inline=True` (the events.jsonl
    writer: a local append, wanted on disk before the frame loop continues) is called in the caller's
    thread with its exceptions caught. Any other sink gets a thread and a queue of `max_queue` events;
    when it falls that far behind its oldest events are dropped and counted (`stats()`).

    `emit` also takes today's dicts (`{"source", "event", …}`), so `source.on_event = bus.for_source(name)`
    works unchanged. `close(timeout)` drains the queues and closes the sinks within one shared deadline.
    """

    def __init__(self, sinks: Iterable[Any] = ()) -> None:
        self._lanes: list[_Lane] = []
        self._lock = threading.Lock()
        self._closed = False
        self.invalid = 0  # dicts that were not a valid event
        for s in sinks:
            self.add(s)

    def add(self, sink: Any, *, name: str | None = None, inline: bool | None = None, max_queue: int = 1000) -> None:
        """Add a `Sink` (or any callable taking an `Event`). `inline=None`: inline if it says it never blocks."""
        if not (hasattr(sink, "publish") or callable(sink)):
            raise TypeError(f"not an event sink: {sink!r}")
        if inline is None:
            inline = bool(getattr(sink, "nonblocking", False))
        lane = _Lane(sink, name or type(sink).__name__, inline, max_queue)
        with self._lock:
            if self._closed:
                raise RuntimeError("EventBus is closed")
            self._lanes.append(lane)

    def emit(self, event: Event | Mapping[str, Any]) -> Event | None:
        """Send one event (or its dict form) to every sink; returns the event, None if it was invalid."""
        if not isinstance(event, Event):
            try:
                event = from_dict(event)
            except (ValueError, TypeError) as e:
                self.invalid += 1
                if self.invalid == 1:
                    log.warning("ignoring an invalid event (%s); further ones are counted, not logged", e)
                return None
        with self._lock:
            if self._closed:
                return event
            lanes = list(self._lanes)
        for lane in lanes:
            lane.put(event)
        return event

    __call__ = emit

    def for_source(self, source: str) -> Callable[[dict], None]:
        """A `Source.on_event` callback: its dicts, tagged with the camera's name, onto the bus."""
        return lambda e: self.emit({"source": source, **e})

    def stats(self) -> dict[str, dict[str, int]]:
        """Per sink: delivered, dropped (queue full or left at close), errors (exceptions), queued."""
        with self._lock:
            lanes = list(self._lanes)
        out: dict[str, dict[str, int]] = {}
        for lane in lanes:
            name, n = lane.name, 2
            while name in out:
                name, n = f"{lane.name}#{n}", n + 1
            out[name] = lane.stats()
        return out

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued and close every sink, all within `timeout` seconds. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            lanes = list(self._lanes)
        deadline = time.monotonic() + max(0.0, timeout)
        for lane in lanes:
            lane.drain(deadline)
        for lane in lanes:
            try:
                lane.close(deadline)
            except Exception as e:
                log.warning("closing event sink %s failed (%s: %s)", lane.name, type(e).__name__, e)

    def __enter__(self) -> EventBus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
