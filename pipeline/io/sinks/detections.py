"""`faces.csv` and `detections.jsonl`: one row per detected face, in the shapes supervision users read.

The first seven CSV columns are supervision's `CSVSink` header (`x_min, y_min, x_max, y_max, class_id,
confidence, tracker_id`), so `pd.read_csv("faces.csv")` lines up with a supervision notebook's own files;
then `class_name` ("face", as `sv.Detections.data["class_name"]`), then ours. `detections.jsonl` holds the
same objects, one per line, with keypoints as a real list.

A tracked face's row is written when its track ends: only then is it known which observations were
enhanced and which tile file holds each (`enhanced_file`, relative to the run folder; on a tile sheet,
`tiles_enhanced_NN.png#xywh=x,y,w,h`, the W3C media-fragment form of its cell). A face no track has
confirmed is written at once. Both files are flushed after every batch of rows, so a stopped or crashed
run keeps every row of every track that had ended. When the run ends (`close`) both files are put in
frame order (then tracker id; an external merge sort in chunks of `SORT_CHUNK` rows, so memory stays
bounded however long the run): only a crashed run's files keep the order in which tracks ended.

A text cell starting with `=`, `+`, `-`, `@`, tab or CR gets a leading `'`, so a spreadsheet shows it
instead of running it; numbers (a negative coordinate too) stay numbers.
"""

from __future__ import annotations

import csv
import heapq
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

from ...core.errors import write_error
from ..records import Observation

SUPERVISION_COLUMNS = ["x_min", "y_min", "x_max", "y_max", "class_id", "confidence", "tracker_id"]
COLUMNS = [*SUPERVISION_COLUMNS, "class_name", "time", "frame", "keypoints", "quality", "entry", "enhanced",
           "enhanced_file", "source"]
FACE_CLASS = 0  # class_id: every detection is a face
FACE_NAME = "face"  # its class_name
SORT_CHUNK = 200_000  # rows sorted in memory at once when the files are put in frame order
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet runs a cell starting with these
CSV_NAME, JSONL_NAME = "faces.csv", "detections.jsonl"


def csv_text(value: object) -> str:
    """A text cell a spreadsheet will show, not run: a leading formula character gets a `'` before it."""
    text = str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def row(obs: Observation, enhanced_file: str = "") -> dict[str, Any]:
    """One observation as a row: its faces.csv projection (`records.FIELDS`), in `COLUMNS` order."""
    p = obs.project("faces.csv")
    p.update(class_id=FACE_CLASS, class_name=FACE_NAME, keypoints=p["keypoints"] or [],
             enhanced=int(p["enhanced"]), enhanced_file=enhanced_file)
    return {c: p[c] for c in COLUMNS}


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
        """Close both files, then put them in frame order (a write error leaves them as they were)."""
        open_before = [f for f in (self._csv_file, self._jsonl) if f is not None and not f.closed]
        for f in open_before:
            try:
                f.close()
            except OSError:  # the buffer could not be flushed (disk full): what was flushed stays
                return
        if not open_before:
            return
        self._guard(self.csv_path, lambda: _sort_csv(self.csv_path))
        if self.jsonl_path is not None:
            self._guard(self.jsonl_path, lambda: _sort_lines(self.jsonl_path))


FRAME, TRACK = COLUMNS.index("frame"), COLUMNS.index("tracker_id")


def _csv_key(cells: list[str]) -> tuple[int, int]:
    try:
        return int(cells[FRAME]), int(cells[TRACK])
    except (IndexError, ValueError):  # a row of an older layout: last
        return 2**62, 0


def _jsonl_key(line: str) -> tuple[int, int]:
    try:
        d = json.loads(line)
        return int(d["frame"]), int(d["tracker_id"])
    except (ValueError, KeyError, TypeError):
        return 2**62, 0


def _sort_csv(path: Path) -> None:
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            return

        def write(rows: Iterable[list[str]], target: Path) -> None:
            with open(target, "w", newline="", encoding="utf-8") as out:
                w = csv.writer(out)
                if target == tmp:
                    w.writerow(header)
                w.writerows(rows)

        def read(source: Path) -> Iterator[list[str]]:
            with open(source, newline="", encoding="utf-8") as src:
                yield from csv.reader(src)

        tmp = path.with_name(path.name + ".tmp")
        _external_sort(reader, _csv_key, write, read, tmp, path.parent)
    os.replace(tmp, path)


def _sort_lines(path: Path) -> None:
    def write(lines: Iterable[str], target: Path) -> None:
        with open(target, "w", encoding="utf-8") as out:
            out.writelines(lines)

    def read(source: Path) -> Iterator[str]:
        with open(source, encoding="utf-8") as src:
            yield from src

    tmp = path.with_name(path.name + ".tmp")
    with open(path, encoding="utf-8") as fh:
        _external_sort(fh, _jsonl_key, write, read, tmp, path.parent)
    os.replace(tmp, path)


def _external_sort(items: Iterator, key: Callable, write: Callable, read: Callable, target: Path,
                   folder: Path) -> None:
    """Write `items` to `target` sorted by `key` (stable), holding at most `SORT_CHUNK` of them at once:
    sorted chunks go to temporary files in `folder`, then are merged."""
    chunks: list[Path] = []
    try:
        while True:
            chunk = list(islice(items, SORT_CHUNK))
            if not chunk and chunks:
                break
            chunk.sort(key=key)
            if not chunks and len(chunk) < SORT_CHUNK:  # everything fitted in one chunk
                write(chunk, target)
                return
            fd, name = tempfile.mkstemp(prefix=".sort-", suffix=".part", dir=folder)
            os.close(fd)
            chunks.append(Path(name))
            write(chunk, chunks[-1])
        write(heapq.merge(*(read(c) for c in chunks), key=key), target)
    finally:
        for c in chunks:
            c.unlink(missing_ok=True)
