"""`faces.csv` and `detections.jsonl`: one row per detected face, in the shapes supervision users read.

The first seven CSV columns are supervision's `CSVSink` header (`x_min, y_min, x_max, y_max, class_id,
confidence, tracker_id`), so `pd.read_csv("faces.csv")` lines up with a supervision notebook's own files;
ours follow. `detections.jsonl` holds the same objects, one per line, with keypoints as a real list.

A tracked face's row is written when its track ends: only then is it known which observations were
enhanced and which tile file holds each (`enhanced_file`, relative to the run folder; on a tile sheet,
`tiles_enhanced_NN.png#xywh=x,y,w,h`, the W3C media-fragment form of its cell). A face no track has
confirmed is written at once. Both files are flushed after every batch of rows, so a stopped or crashed
run keeps every row of every track that had ended.

A text cell starting with `=`, `+`, `-`, `@`, tab or CR gets a leading `'`, so a spreadsheet shows it
instead of running it; numbers (a negative coordinate too) stay numbers.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

from ...core.errors import write_error
from ...core.types import Face

SUPERVISION_COLUMNS = ["x_min", "y_min", "x_max", "y_max", "class_id", "confidence", "tracker_id"]
COLUMNS = [*SUPERVISION_COLUMNS, "time", "frame", "keypoints", "quality", "entry", "enhanced", "enhanced_file",
           "source"]
FACE_CLASS = 0  # class_id: every detection is a face
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet runs a cell starting with these
CSV_NAME, JSONL_NAME = "faces.csv", "detections.jsonl"


def csv_text(value: object) -> str:
    """A text cell a spreadsheet will show, not run: a leading formula character gets a `'` before it."""
    text = str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def row(face: Face, enhanced: bool | None = None, enhanced_file: str = "") -> dict[str, Any]:
    """One face as a row (plain numbers and strings; keypoints as [[x, y] × 5])."""
    x1, y1, x2, y2 = (round(float(v), 1) for v in face.box[:4])
    kps = [[round(float(x), 1), round(float(y), 1)] for x, y in face.kps.reshape(-1, 2)] if face.kps is not None else []
    return {
        "x_min": x1, "y_min": y1, "x_max": x2, "y_max": y2, "class_id": FACE_CLASS,
        "confidence": round(float(face.score), 4), "tracker_id": int(face.track_id),
        "time": round(float(face.time), 4), "frame": int(face.frame_index), "keypoints": kps,
        "quality": round(float(face.quality), 4), "entry": int(face.entry),
        "enhanced": int(face.enhanced is not None if enhanced is None else enhanced),
        "enhanced_file": enhanced_file, "source": face.source,
    }


def _cell(value: Any) -> Any:
    if isinstance(value, list):
        return json.dumps(value, separators=(",", ":"))
    return csv_text(value) if isinstance(value, str) else value


class DetectionRows:
    """Appends rows to `faces.csv` (and, with `jsonl`, `detections.jsonl`), flushing after each batch."""

    def __init__(self, out_dir: Path, jsonl: bool = True) -> None:
        self.csv_path = Path(out_dir) / CSV_NAME
        self.jsonl_path = Path(out_dir) / JSONL_NAME if jsonl else None
        self.count = 0
        self._csv_file = self._open(self.csv_path, "w")
        self._csv = csv.writer(self._csv_file)
        self._jsonl = self._open(self.jsonl_path, "w") if self.jsonl_path else None
        self._guard(self.csv_path, lambda: (self._csv.writerow(COLUMNS), self._csv_file.flush()))

    @staticmethod
    def _open(path: Path, mode: str):  # noqa: ANN205 - a text file
        try:
            return open(path, mode, newline="" if path.suffix == ".csv" else None, encoding="utf-8")  # noqa: SIM115
        except OSError as e:
            raise write_error(path, e) from None

    @staticmethod
    def _guard(path: Path, step) -> None:  # noqa: ANN001
        try:
            step()
        except OSError as e:
            raise write_error(path, e) from None

    def _reopen(self) -> None:
        """After `close`, a late row (a track ended by a second signal's cleanup) is appended, not lost."""
        if self._csv_file.closed:
            self._csv_file = self._open(self.csv_path, "a")
            self._csv = csv.writer(self._csv_file)
        if self._jsonl is not None and self._jsonl.closed:
            self._jsonl = self._open(self.jsonl_path, "a")

    def add(self, rows: list[dict[str, Any]]) -> None:
        """Append `rows` (from `row`) to both files and flush them."""
        if not rows:
            return
        self._reopen()

        def csv_rows() -> None:
            self._csv.writerows([[_cell(r[c]) for c in COLUMNS] for r in rows])
            self._csv_file.flush()

        self._guard(self.csv_path, csv_rows)
        if self._jsonl is not None:
            lines = "".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n" for r in rows)
            self._guard(self.jsonl_path, lambda: (self._jsonl.write(lines), self._jsonl.flush()))
        self.count += len(rows)

    def sync(self) -> None:
        """Flush and fsync both files (before a manifest lists their sizes)."""
        for f in (self._csv_file, self._jsonl):
            if f is not None and not f.closed:
                f.flush()
                os.fsync(f.fileno())

    def close(self) -> None:
        for f in (self._csv_file, self._jsonl):
            if f is not None and not f.closed:
                try:
                    f.close()
                except OSError:  # the buffer could not be flushed (disk full): what was flushed stays
                    pass
