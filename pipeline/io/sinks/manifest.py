"""Manifest: what was run, on what, with which models, and every file it wrote.

`faces.csv` and `detections.jsonl` (`sinks.detections`) are appended and flushed as the run goes, so
memory stays flat on long videos and an interrupted run keeps every row it had. `manifest.json` is
written when a run starts (status "running"), again as it goes and at its end; each write replaces it
atomically (its own temporary file, fsync, rename), from whichever thread, so a reader — or a run killed
at any moment — always finds a whole manifest listing what was on disk when it was written. A reserve file keeps room on the disk for the
last write: when the disk fills, `release_reserve()` frees it before the final manifest is written.
"""

from __future__ import annotations

import json
import os
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ...core.errors import write_error
from ...core.types import Face
from ..records import Observation
from .detections import DetectionRows, row

PROVENANCE = (
    "Enhanced face tiles (*_enhanced.png, the AI-enhanced halves of best.png and gallery.png, and the "
    "insets in the annotated video) are AI reconstructions synthesized by a generative model: plausible "
    "faces, not photographs and not evidence of identity. The original crops beside them are the camera's pixels."
)
RESERVE = ".enhance-reserve"  # disk space held back for the last manifest
RESERVE_BYTES = 256 * 1024  # at least; grown to twice the manifest's size as it grows
RESERVED = {"provenance", "status", "started", "ended", "timings", "stats", "tracks", "files"}

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


def list_files(out_dir: Path) -> list[dict]:
    """Every file under `out_dir` but manifest.json and temporaries (*.tmp), with its size in bytes, sorted."""
    out = []
    for root, dirs, names in os.walk(out_dir):
        dirs.sort()
        for name in sorted(names):
            p = Path(root) / name
            if name.endswith(".tmp") or (name == "manifest.json" and Path(root) == Path(out_dir)):
                continue
            try:
                size = p.stat().st_size
            except OSError:  # vanished between walk and stat
                continue
            out.append({"path": p.relative_to(out_dir).as_posix(), "bytes": size})
    return out


def write_json(path: Path, doc: dict) -> None:
    """Replace a JSON file atomically: its own temporary file, fsync, rename."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=1, default=_jsonable)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class Manifest:
    """Collects run info, track summaries and face rows; writes manifest.json, faces.csv and detections.jsonl."""

    def __init__(self, out_dir: Path, info: dict, jsonl: bool = True) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.info = dict(info)
        self.started = _now()
        self.tracks: list[dict] = []
        self.path = self.out_dir / "manifest.json"
        self._lock = threading.RLock()  # re-entrant: a signal handler may write while its thread was writing
        self._sealed = False
        self._reserve = self.out_dir / RESERVE
        self._reserved = 0
        self._hold(RESERVE_BYTES)
        self.rows = DetectionRows(self.out_dir, jsonl)

    def add_track(self, summary: dict) -> None:
        self.tracks.append(summary)

    @property
    def n_faces(self) -> int:
        return self.rows.count

    def add_faces(self, faces: list[Face]) -> None:
        """Append one row per face to faces.csv and detections.jsonl and flush (nothing is kept in memory)."""
        self.rows.add([row(Observation.of(f)) for f in faces])

    def add_rows(self, rows: list[dict]) -> None:
        """Append rows made by `sinks.detections.row` (a finished track's, with their tile files)."""
        self.rows.add(rows)

    def files(self) -> list[dict]:
        """Every file under out_dir (but the manifest itself and temporaries) with its size in bytes."""
        return list_files(self.out_dir)

    def write(self, timings: dict, stats: dict, status: str = "complete", error: str | None = None) -> Path:
        """Write manifest.json atomically (own tmp file + fsync + os.replace); safe to call repeatedly and
        from any thread. After `seal()` it changes nothing. `error`: why the run failed, if it did."""
        with self._lock:
            if self._sealed:
                return self.path
            try:
                self._write(timings, stats, status, error)
            except OSError as e:
                raise write_error(self.path, e) from None
        return self.path

    def _write(self, timings: dict, stats: dict, status: str, error: str | None) -> None:
        self.rows.sync()
        doc = {
            "provenance": PROVENANCE,
            "status": status,
            "started": self.started,
            "ended": _now(),
        }
        if error:
            doc["error"] = error
        # Run info (inputs, settings, models, generator, version) at the top level, never over ours.
        doc.update({k: v for k, v in self.info.items() if k not in RESERVED})
        doc |= {
            "timings": timings,
            "stats": {"faces": self.n_faces, "tracks": len(self.tracks), **stats},
            "tracks": sorted(self.tracks, key=lambda t: (str(t.get("source", "")), t.get("id", 0))),
            "files": self.files(),
        }
        write_json(self.path, doc)
        self._hold(2 * self.path.stat().st_size)

    def _hold(self, size: int) -> None:
        """Keep `size` bytes of disk reserved for the manifest (while the reserve exists; best effort)."""
        if size <= self._reserved or (self._reserved and not self._reserve.exists()):
            return
        try:
            with open(self._reserve, "ab") as fh:
                os.posix_fallocate(fh.fileno(), 0, size)
            self._reserved = size
        except OSError:
            pass  # the disk is already that full: the next write will say so

    def release_reserve(self) -> None:
        """Free the reserved space for the final manifest (which then no longer lists the reserve)."""
        self._reserve.unlink(missing_ok=True)

    def seal(self) -> None:
        """No later write: the manifest now written is the run's last word (after a second signal)."""
        with self._lock:
            self._sealed = True

    def close(self) -> None:
        """Close faces.csv/detections.jsonl and free the reserve (idempotent); later rows are appended."""
        self.rows.close()
        self.release_reserve()
