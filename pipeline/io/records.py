"""One observation of a face, built once, and every format that writes it: a projection through one table.

`Observation.of(face)` is the record of one face in one frame. track.json (`TrackRecord`), faces.csv and
detections.jsonl (`sinks.detections.row`), each tile's provenance (`provenance.tile_record`: PNG text,
XMP, sidecar) and the API's `sv.Detections` (`api.to_detections`) are projections of it: `FIELDS` names
each field in each format, and `rounded` is the one rounding rule (`PLACES`) for all of them.

track.json is the on-disk form of a finished track, read back by the report, `enhance-faces gallery` and
`enhance-faces lab eval-video`. The field names of every format are what other tools read: the table
keeps them. Reading is forgiving — a hand-edited or half-written file yields what it can, and a tile
file name that is not a plain name in the track's own folder is dropped, never followed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from ..core.text import iso_utc
from ..core.types import Face

PROVENANCE = ("*_enhanced.png (marked 'AI-enhanced / not a photograph'), *_enhanced_unmarked.png "
              "and the right half of best.png are AI-enhanced reconstructions, not photographs; "
              "*_original.png and *_lr.png are source pixels. Each tile's .json sidecar holds its provenance.")

# The one rounding rule: decimal places per field, whichever format writes it.
PLACES: dict[str, int] = {
    "time": 4, "box": 1, "kps": 1, "score": 4, "quality": 4, "sharpness": 2, "frontalness": 4, "matrix": 6,
    "confidence": 4, "consistency": 3,
}

# The one table of names: each Observation field's name in each format (None: that format leaves it out).
# faces.csv and detections.jsonl split `box` into supervision's x_min, y_min, x_max, y_max.
FORMATS = ("track.json", "faces.csv", "tile", "sv.Detections")
FIELDS: dict[str, tuple[str | None, str | None, str | None, str | None]] = {
    #  field          track.json      faces.csv        tile (PNG, XMP, sidecar)  sv.Detections
    "box":          ("box",         "x_min,y_min,x_max,y_max", "box",     "xyxy"),
    "score":        ("score",       "confidence",    None,             "confidence"),
    "track":        (None,          "tracker_id",    "track",          "tracker_id"),
    "time":         ("time",        "time",          "time",           "time"),
    "frame":        ("frame",       "frame",         "frame",          "frame"),
    "kps":          ("kps",         "keypoints",     "kps",            "keypoints"),
    "quality":      ("quality",     "quality",       None,             "quality"),
    "sharpness":    ("sharpness",   None,            None,             None),
    "frontalness":  ("frontalness", None,            None,             None),
    "entry":        ("entry",       "entry",         "entry",          "entry"),
    "matrix":       ("matrix",      None,            "crop_matrix",    None),
    "enhanced":     ("enhanced",    "enhanced",      None,             "enhanced"),
    "confidence":   ("confidence",  None,            "confidence",     "enhanced_confidence"),
    "consistency":  (None,          None,            "input_mismatch", None),
    "resolved":     ("resolved",    None,            None,             None),
    "files":        ("files",       None,            None,             None),
    "fused_frames": ("fused_frames", None,           None,             None),
    "at":           ("at",          None,            None,             None),
    "source":       (None,          "source",        None,             "source"),
}


def name_in(fmt: str, name: str) -> str | None:
    """`name`'s key in format `fmt` (one of `FORMATS`), None when that format leaves it out."""
    return FIELDS[name][FORMATS.index(fmt)]


def rounded(name: str, value: Any) -> Any:
    """`value` (a number or an array) rounded by the rule for field `name`: a float, or nested lists."""
    if value is None:
        return None
    a = np.asarray(value, dtype=np.float64)
    nd = PLACES[name]
    if a.ndim == 0:
        return round(float(a), nd)
    return _nested(a, nd)


def _nested(a: np.ndarray, nd: int) -> list:
    return [round(float(x), nd) for x in a] if a.ndim == 1 else [_nested(r, nd) for r in a]


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


_NOT_IN_TRACK_JSON = {"track_json": False}  # known to the record, written by other formats only


@dataclass
class Observation:
    """One face in one frame: where it was, how good, what was done with it and which tiles were saved
    of it. track.json's `observations` hold it (but for the fields marked not to), every other format a
    projection of it (`FIELDS`)."""

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
    track: int = field(default=-1, metadata=_NOT_IN_TRACK_JSON)  # the tracker's id, -1 while unconfirmed
    source: str = field(default="", metadata=_NOT_IN_TRACK_JSON)  # the source's display name
    consistency: float | None = field(default=None, metadata=_NOT_IN_TRACK_JSON)  # enhanced vs its input, 0–255
    fused_times: list[float] = field(default_factory=list, metadata=_NOT_IN_TRACK_JSON)  # of `fused_frames`

    @property
    def size(self) -> float:
        return max(self.box[2] - self.box[0], self.box[3] - self.box[1]) if len(self.box) == 4 else 0.0

    @classmethod
    def of(cls, f: Face, enhanced: bool | None = None, files: dict[str, str] | None = None) -> Observation:
        """The record of `f`. `enhanced`: whether its enhanced tile is kept (None: whether it has one)."""
        enhanced = f.enhanced is not None if enhanced is None else enhanced
        return cls(
            frame=int(f.frame_index),
            time=rounded("time", f.time),
            box=rounded("box", np.asarray(f.box)[:4]),
            kps=rounded("kps", np.asarray(f.kps).reshape(-1, 2)) if f.kps is not None else None,
            score=rounded("score", f.score),
            quality=rounded("quality", f.quality),
            sharpness=rounded("sharpness", f.sharpness),
            frontalness=rounded("frontalness", f.frontalness),
            entry=int(f.entry),
            matrix=rounded("matrix", np.asarray(f.matrix).reshape(2, 3)) if f.matrix is not None else None,
            enhanced=bool(enhanced),
            confidence=rounded("confidence", f.confidence) if enhanced else None,
            resolved=bool(f.resolved),
            files=dict(files or {}),
            fused_frames=[int(n.frame_index) for n in f.neighbours] if enhanced else [],
            at=iso_utc(f.captured) if f.captured is not None else None,
            track=int(f.track_id),
            source=str(f.source),
            consistency=rounded("consistency", f.consistency) if enhanced else None,
            fused_times=[rounded("time", n.time) for n in f.neighbours] if enhanced else [],
        )

    def to_json(self) -> dict[str, Any]:
        """Its track.json object."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.metadata.get("track_json", True)}

    def project(self, fmt: str) -> dict[str, Any]:
        """Its fields under format `fmt`'s names (`FIELDS`), in the table's order; `box` split where the
        format splits it."""
        out: dict[str, Any] = {}
        for name in FIELDS:
            key = name_in(fmt, name)
            if key is None:
                continue
            value = getattr(self, name)
            if "," in key:
                out.update(zip(key.split(","), value))
            else:
                out[key] = value
        return out

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
        doc = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "observations"}
        return doc | {"observations": [o.to_json() for o in self.observations]}

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
