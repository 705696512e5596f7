"""Track events folded into Frigate-style `before`/`after` snapshots, as MQTT and the webhook publish them."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .schema import Event, TrackEnded, TrackStarted, TrackUpdated

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


