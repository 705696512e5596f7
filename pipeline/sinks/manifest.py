"""Manifest: what was run, on what, with which models, and every file it wrote.

`faces.csv` is appended and flushed as faces arrive, so memory stays flat on long videos and an
interrupted run keeps every row it had. `manifest.json` is replaced atomically on each write(), so
a reader never sees half a file, and it can be written again (e.g. "interrupted", then "complete").
"""

from __future__ import annotations

import csv
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ..types import Face

PROVENANCE = (
    "Enhanced face tiles (*_enhanced.png, the AI-enhanced halves of best.png and gallery.png, and the "
    "insets in the annotated video) are AI reconstructions synthesized by a generative model: plausible "
    "faces, not photographs and not evidence of identity. The original crops beside them are the camera's pixels."
)
RESERVED = {"provenance", "status", "started", "ended", "timings", "stats", "tracks", "files"}
FACES_COLUMNS = ["source", "frame", "time", "track_id", "x1", "y1", "x2", "y2", "score", "quality", "entry", "enhanced"]
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet runs a cell starting with these


def csv_text(value: object) -> str:
    """A text cell a spreadsheet will show, not run: a leading formula character gets a `'` before it."""
    text = str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _jsonable(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (set, tuple)):
        return list(o)
    return str(o)  # Path, Fraction, …


class Manifest:
    """Collects run info, track summaries and face rows; writes manifest.json and faces.csv."""

    def __init__(self, out_dir: Path, info: dict) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.info = dict(info)
        self.started = _now()
        self.tracks: list[dict] = []
        self.n_faces = 0
        self.path = self.out_dir / "manifest.json"
        self.faces_path = self.out_dir / "faces.csv"
        self._csv_file = open(self.faces_path, "w", newline="", encoding="utf-8")  # noqa: SIM115
        self._csv = csv.writer(self._csv_file)
        self._csv.writerow(FACES_COLUMNS)
        self._csv_file.flush()

    def add_track(self, summary: dict) -> None:
        self.tracks.append(summary)

    def add_faces(self, faces: list[Face]) -> None:
        """Append one row per face to faces.csv and flush (nothing is kept in memory)."""
        if self._csv_file.closed:
            self._csv_file = open(self.faces_path, "a", newline="", encoding="utf-8")  # noqa: SIM115
            self._csv = csv.writer(self._csv_file)
        for f in faces:
            x1, y1, x2, y2 = (round(float(v), 1) for v in f.box[:4])
            self._csv.writerow([
                csv_text(f.source), f.frame_index, f"{f.time:.4f}", f.track_id, x1, y1, x2, y2,
                f"{f.score:.4f}", f"{f.quality:.4f}", f.entry, int(f.enhanced is not None),
            ])
        self.n_faces += len(faces)
        self._csv_file.flush()

    def files(self) -> list[dict]:
        """Every file under out_dir (but the manifest itself and temporaries) with its size in bytes."""
        out = []
        for root, dirs, names in os.walk(self.out_dir):
            dirs.sort()
            for name in sorted(names):
                p = Path(root) / name
                if p == self.path or name.endswith(".tmp"):
                    continue
                try:
                    size = p.stat().st_size
                except OSError:  # vanished between walk and stat
                    continue
                out.append({"path": p.relative_to(self.out_dir).as_posix(), "bytes": size})
        return out

    def write(self, timings: dict, stats: dict, status: str = "complete") -> Path:
        """Write manifest.json atomically (tmp file + os.replace); safe to call repeatedly."""
        if not self._csv_file.closed:
            self._csv_file.flush()
            os.fsync(self._csv_file.fileno())
        doc = {
            "provenance": PROVENANCE,
            "status": status,
            "started": self.started,
            "ended": _now(),
        }
        # Run info (inputs, settings, models, generator, version) at the top level, never over ours.
        doc.update({k: v for k, v in self.info.items() if k not in RESERVED})
        doc |= {
            "timings": timings,
            "stats": {"faces": self.n_faces, "tracks": len(self.tracks), **stats},
            "tracks": sorted(self.tracks, key=lambda t: (str(t.get("source", "")), t.get("id", 0))),
            "files": self.files(),
        }
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=1, default=_jsonable)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        return self.path

    def close(self) -> None:
        """Close faces.csv (idempotent); a later add_faces reopens it for appending."""
        if not self._csv_file.closed:
            self._csv_file.close()
