"""Track events: built from a `Track` (one place says what each carries), and folded into Frigate-style
`before`/`after` snapshots, as MQTT and the webhook publish them."""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...core.types import Face, Track
from .schema import Event, TrackEnded, TrackEvent, TrackStarted, TrackUpdated, camera_slug

# ---------------------------------------------------------------------------------------------- building


def _box(face: Face) -> tuple[float, float, float, float]:
    return tuple(round(float(v), 1) for v in face.box[:4])  # type: ignore[return-value]


def _snapshot(track: Track, face: Face | None = None) -> np.ndarray | None:
    """The best observation's aligned crop as captured (camera pixels, never generated ones)."""
    if face is not None and face.crop is not None:
        return face.crop
    held = [f for f in track.candidates if f.crop is not None]
    return max(held, key=lambda f: f.quality).crop if held else None


def _common(track: Track, face: Face, frame_size: tuple[int, int] | None) -> dict[str, Any]:
    best = track.enhanced[0] if track.enhanced else None
    return {
        "source": track.source or face.source, "track": track.id, "time": face.time,
        "observations": len(track.faces), "enhanced": len(track.enhanced),
        "score": round(float(face.score), 4),
        "top_score": round(max(float(f.score) for f in track.faces), 4) if track.faces else None,
        "box": _box(face), "frame_size": None if frame_size is None else (int(frame_size[0]), int(frame_size[1])),
        "enhance_confidence": None if best is None or best.confidence is None else round(float(best.confidence), 4),
    }


def track_started(track: Track, frame_size: tuple[int, int] | None = None) -> TrackStarted:
    """The `new` event of a track whose first observation is `track.faces[0]`."""
    first = track.faces[0]
    return TrackStarted(frame=first.frame_index, snapshot=_snapshot(track), **_common(track, first, frame_size))


def track_updated(track: Track, face: Face, frame_size: tuple[int, int] | None = None) -> TrackUpdated:
    """The `update` event: `face` was enhanced and is now the track's best."""
    return TrackUpdated(frame=face.frame_index, quality=round(float(face.quality), 4),
                        snapshot=_snapshot(track, face), **_common(track, face, frame_size))


def track_ended(track: Track, reason: str, frame_size: tuple[int, int] | None = None,
                best_tile: str | None = None, root: Path | str | None = None) -> TrackEnded:
    """The `end` event; `best_tile` is relative to `root`, the run folder."""
    last = track.faces[-1]
    return TrackEnded(reason=reason, first_time=round(track.faces[0].time, 3), best_tile=best_tile,
                      root=None if root is None else os.path.abspath(root), snapshot=_snapshot(track),
                      **_common(track, last, frame_size))


# ---------------------------------------------------------------------------------------------- snapshots


@dataclass(frozen=True, kw_only=True)
class TrackSnapshot:
    """A track as MQTT and the webhook show it at one moment: the `before`/`after` of a message.

    Field names follow Frigate's `frigate/events` objects where the meaning is the same (`id`, `camera`,
    `label`, `sub_label`, `score`, `top_score`, `box`, `area`, `start_time`, `end_time` (null while the
    track is open), `frame_time`, `has_snapshot`; wall-clock epoch seconds), plus what Enhance knows:
    stream times, counts, the frame size, the best tile and the enhancement's confidence.
    """

    camera: str  # the slug (`camera_slug`)
    track: int
    start_time: float  # wall clock when the track started
    frame_time: float  # wall clock of the latest event about it
    first_time: float | None = None  # stream seconds of the first observation
    last_time: float | None = None  # stream seconds of the latest observation we heard of
    end_time: float | None = None
    end_reason: str | None = None
    observations: int = 1
    enhanced: int = 0
    score: float | None = None
    top_score: float | None = None
    box: tuple[float, float, float, float] | None = None
    area: float | None = None
    frame_size: tuple[int, int] | None = None
    has_snapshot: bool = False
    best_tile: str | None = None  # absolute path (relative to the run folder when an event did not say it)
    enhance_confidence: float | None = None
    person: int | str | None = None

    @property
    def id(self) -> str:
        """Unique across cameras and tracker restarts, safe in topics and file names (no `/`, `+`, `#`):
        "<start epoch>-<camera slug>-<track>", like Frigate's "<epoch>-<random>"."""
        return f"{self.start_time:.3f}-{self.camera}-{self.track}"

    def payload(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "camera": self.camera,
            "track": self.track,
            "label": "face",
            "sub_label": None if self.person is None else str(self.person),
            "person": self.person,
            "score": self.score,
            "top_score": self.top_score,
            "box": None if self.box is None else list(self.box),
            "area": self.area,
            "frame_size": None if self.frame_size is None else list(self.frame_size),
            "start_time": self.start_time,
            "end_time": self.end_time,
            "frame_time": self.frame_time,
            "first_time": self.first_time,
            "last_time": self.last_time,
            "end_reason": self.end_reason,
            "observations": self.observations,
            "enhanced": self.enhanced,
            # the best tile of an enhanced track is a generated reconstruction: say so wherever it is shown
            "ai_enhanced": self.enhanced > 0,
            "enhance_confidence": self.enhance_confidence,
            "has_snapshot": self.has_snapshot,
            "best_tile": self.best_tile,
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
        if kind is None or not isinstance(event, TrackEvent):
            return None
        key = (event.camera, int(event.track))
        changes: dict[str, Any] = {
            "frame_time": event.at, "observations": event.observations, "enhanced": event.enhanced,
            "area": event.area, "has_snapshot": event.snapshot is not None}
        for name in ("score", "top_score", "box", "frame_size", "enhance_confidence", "person"):
            value = getattr(event, name)
            if value is not None:
                changes[name] = value
        if event.time is not None:
            changes["last_time"] = event.time
        if event.best_tile is not None:  # absolute when the run folder is known
            changes["best_tile"] = event.best_tile if event.root is None else os.path.join(event.root, event.best_tile)
        if isinstance(event, TrackEnded):
            changes.update(end_time=event.at, end_reason=event.reason)
            if event.first_time is not None:
                changes["first_time"] = event.first_time
        with self._lock:
            before = None if isinstance(event, TrackStarted) else self._open.get(key)
            base = before or TrackSnapshot(camera=event.camera, track=event.track, start_time=event.at,
                                           frame_time=event.at, first_time=event.time)
            if before is not None and not changes["has_snapshot"]:
                changes["has_snapshot"] = before.has_snapshot
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
        return {"type": event.kind, "camera": event.camera, "event": event.row()}
    kind, before, after = folded
    return {"type": kind, "camera": event.camera, "event": event.row(),
            "before": None if before is None else before.payload(), "after": after.payload()}


__all__ = ["TrackBook", "TrackSnapshot", "camera_slug", "envelope", "track_ended", "track_started", "track_updated"]
