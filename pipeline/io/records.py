"""`track.json`: the one on-disk form of a finished track.

Written by the tracks sink, read back by the report, `enhance-faces gallery` and `enhance-faces lab eval-video`. The field
names are a format other tools read (`frame`, `kps`, `box`, `matrix`, `confidence`, `observations`,
`track_id`, …): keep them. Reading is forgiving — a hand-edited or half-written file yields what it can,
and a tile file name that is not a plain name in the track's own folder is dropped, never followed.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core.text import iso_utc
from ..core.types import Face

PROVENANCE = ("*_enhanced.png (marked 'AI-enhanced / not a photograph'), *_enhanced_unmarked.png "
              "and the right half of best.png are AI-enhanced reconstructions, not photographs; "
              "*_original.png and *_lr.png are source pixels. Each tile's .json sidecar holds its provenance.")


def _round(v: Any, nd: int) -> list[float]:
    return [round(float(x), nd) for x in np.asarray(v, dtype=np.float64).ravel()]


def _num(v: Any, default: float = 0.0) -> float:
    try:
        f = float(v)
        return f if np.isfinite(f) else default
    except (TypeError, ValueError):
        return default


def _safe_name(name: Any) -> str | None:
    """A plain file name (no folders, no '..'), or None."""
    if not isinstance(name, str) or not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        return None
    return name


def _points(v: Any, rows: int, cols: int) -> list[list[float]] | None:
    try:
        return np.asarray(v, np.float64).reshape(rows, cols).tolist() if v is not None else None
    except (ValueError, TypeError):
        return None


@dataclass
class Observation:
    """One row of `observations`: where the face was in one frame and which tiles were saved of it."""

    frame: int
    time: float
    box: list[float]  # x1, y1, x2, y2 in source pixels
    kps: list[list[float]] | None  # 5 keypoints in source pixels
    score: float
    quality: float
    sharpness: float
    frontalness: float
    entry: int
    matrix: list[list[float]] | None  # source → 128 crop: the same crop can be cut again from another copy
    enhanced: bool
    confidence: float | None
    resolved: bool = False  # the camera resolves this face: shown as captured, never synthesized (align.resolved)
    files: dict[str, str] = field(default_factory=dict)  # tile kind → file name in the track's folder
    fused_frames: list[int] = field(default_factory=list)  # track fusion: the other frames this output rests on
    at: str | None = None  # live sources: when the frame was received, ISO 8601 UTC (`time` is the stream's clock)

    @property
    def size(self) -> float:
        return max(self.box[2] - self.box[0], self.box[3] - self.box[1]) if len(self.box) == 4 else 0.0

    @classmethod
    def of(cls, f: Face, enhanced: bool, files: dict[str, str]) -> Observation:
        return cls(
            frame=f.frame_index,
            time=round(float(f.time), 4),
            box=_round(f.box, 1),
            kps=[_round(p, 1) for p in np.asarray(f.kps).reshape(-1, 2)],
            score=round(float(f.score), 4),
            quality=round(float(f.quality), 4),
            sharpness=round(float(f.sharpness), 2),
            frontalness=round(float(f.frontalness), 4),
            entry=int(f.entry),
            matrix=[_round(r, 6) for r in f.matrix] if f.matrix is not None else None,
            enhanced=enhanced,
            confidence=f.confidence if enhanced else None,
            resolved=bool(f.resolved),
            files=files,
            fused_frames=[int(n.frame_index) for n in f.neighbours] if enhanced else [],
            at=iso_utc(f.captured) if f.captured is not None else None,
        )

    @classmethod
    def parse(cls, o: dict) -> Observation:
        listed = o.get("files")
        files = {str(k): n for k, n in (listed.items() if isinstance(listed, dict) else ()) if _safe_name(n)}
        conf = o.get("confidence")
        return cls(
            frame=int(_num(o.get("frame"), -1)),
            time=_num(o.get("time")),
            box=[_num(v) for v in (o.get("box") or [])][:4],
            kps=_points(o.get("kps"), 5, 2),
            score=_num(o.get("score")),
            quality=_num(o.get("quality")),
            sharpness=_num(o.get("sharpness")),
            frontalness=_num(o.get("frontalness")),
            entry=int(_num(o.get("entry"))),
            matrix=_points(o.get("matrix"), 2, 3),
            enhanced=bool(o.get("enhanced")),
            confidence=None if conf is None else _num(conf),
            resolved=bool(o.get("resolved")),
            files=files,
            fused_frames=[int(_num(v)) for v in (o.get("fused_frames") or []) if isinstance(v, (int, float))],
            at=o["at"] if isinstance(o.get("at"), str) else None,
        )


@dataclass
class TrackRecord:
    """A finished track as `tracks/<id>/track.json` holds it."""

    track_id: int
    source: str
    source_uri: str | None = None
    generator: dict | None = None  # {name, sha256[, trained]} of the generator that ran
    first_frame: int | None = None
    last_frame: int | None = None
    first_time: float | None = None
    last_time: float | None = None
    first_seen: str | None = None  # live sources: wall-clock of the first and last observation, ISO 8601 UTC
    last_seen: str | None = None
    n_observations: int = 0
    n_enhanced: int = 0
    provenance: str = PROVENANCE
    observations: list[Observation] = field(default_factory=list)

    @classmethod
    def of(cls, track_id: int, source: str, observations: list[Observation], n_enhanced: int,
           source_uri: str | None, generator: dict | None) -> TrackRecord:
        first = observations[0] if observations else None
        last = observations[-1] if observations else None
        return cls(track_id, source, source_uri, generator,
                   first_frame=first.frame if first else None, last_frame=last.frame if last else None,
                   first_time=first.time if first else None, last_time=last.time if last else None,
                   first_seen=first.at if first else None, last_seen=last.at if last else None,
                   n_observations=len(observations), n_enhanced=n_enhanced, observations=observations)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def parse(cls, doc: Any) -> TrackRecord:
        """From parsed JSON; KeyError/TypeError/ValueError when there is no usable track id."""
        rows = doc.get("observations") or []
        return cls(
            track_id=int(doc["track_id"]),
            source=str(doc.get("source", "")),
            source_uri=doc.get("source_uri"),
            generator=doc.get("generator") if isinstance(doc.get("generator"), dict) else None,
            first_frame=doc.get("first_frame"),
            last_frame=doc.get("last_frame"),
            first_time=_num(doc.get("first_time")),
            last_time=_num(doc.get("last_time")),
            first_seen=doc["first_seen"] if isinstance(doc.get("first_seen"), str) else None,
            last_seen=doc["last_seen"] if isinstance(doc.get("last_seen"), str) else None,
            n_observations=int(_num(doc.get("n_observations"))),
            n_enhanced=int(_num(doc.get("n_enhanced"))),
            provenance=str(doc.get("provenance", PROVENANCE)),
            observations=[Observation.parse(o) for o in rows if isinstance(o, dict)],
        )

    @classmethod
    def read(cls, path: Path) -> TrackRecord:
        """Read a track.json; OSError, ValueError, KeyError or TypeError when it is unreadable."""
        return cls.parse(json.loads(Path(path).read_text(encoding="utf-8")))

    def write(self, path: Path) -> Path:
        """Write atomically (a temporary file renamed into place)."""
        path = Path(path)
        tmp = path.with_suffix(".json.tmp")
        try:
            tmp.write_text(json.dumps(self.to_json(), indent=1))
            os.replace(tmp, path)
        except BaseException:  # e.g. a full disk: no half-written temporary is left behind
            tmp.unlink(missing_ok=True)
            raise
        return path
