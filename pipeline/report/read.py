"""Reading a finished run back from its files: the manifest and every `tracks/<id>/track.json`.

An output folder holding several runs (`process a.mp4 b.mp4 --out X` writes X/a/, X/b/) is read as
one: the runs are its direct subfolders. A file that cannot be read is reported, not fatal. With a
`cache` (a dict kept between calls, as a live run's report refreshes keep one), a track whose
track.json has not changed is not read again: a refresh reads only the tracks that ended since the last.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from ..core.text import clean
from ..io.records import Observation, TrackRecord


@dataclass
class Run:
    rel: str  # folder relative to the report ("" = the report's own folder)
    manifest: dict
    video: str | None  # annotated.mp4 relative to the report, if it exists

    @property
    def label(self) -> str:
        inputs = self.manifest.get("inputs") or []
        return clean(str(inputs[0])) if inputs else (self.rel or ".")  # one line, whatever the file is called


def seen_span(first: str | None, last: str | None) -> str:
    """ISO 8601 UTC times as "YYYY-MM-DD 14:03:22–14:03:25 UTC" (the date again when it changed); "" without."""
    if not first:
        return ""
    a, b = first[:19].replace("T", " "), (last or first)[:19].replace("T", " ")
    return f"{a}–{b[11:] if b[:10] == a[:10] else b} UTC"


@dataclass
class ReportTrack:
    """A track as the report uses it: its record, where its files are, and what the analysis found."""

    run: Run
    record: TrackRecord
    tiles: list[Observation]  # observations with saved pixels; `files` relative to the report's folder
    best_png: str | None
    embedding: np.ndarray | None = None
    n_embedded: int = 0
    embedded_px: float = 0.0  # median face size (px) of the crops behind `embedding`
    chosen: list[Observation] = field(default_factory=list)
    dupes: list[Observation] = field(default_factory=list)
    analysed: bool = False  # chosen, dupes and embedding are filled in (kept in a cache between reports)

    @property
    def id(self) -> int:
        return self.record.track_id

    @property
    def source(self) -> str:
        return self.record.source

    @property
    def first_time(self) -> float:
        return self.record.first_time or 0.0

    @property
    def last_time(self) -> float:
        return self.record.last_time or 0.0

    @property
    def seen(self) -> str:
        """When a live camera saw it (wall clock), or "" for a recording."""
        return seen_span(self.record.first_seen, self.record.last_seen)

    @property
    def frames(self) -> set[int]:
        return {o.frame for o in self.record.observations}

    @property
    def key(self) -> tuple[str, int]:
        return (self.run.rel, self.id)

    @property
    def anchor(self) -> str:
        return "track-" + "".join(c if c.isalnum() else "_" for c in self.run.rel) + f"-{self.id}"

    @property
    def label(self) -> str:
        return f"#{self.id}" if not self.run.rel else f"{self.run.rel} #{self.id}"


def find_runs(out_dir: Path) -> list[Path]:
    """Folders under out_dir (itself, or its direct subfolders) that hold a run's tracks/ or manifest.json.

    A folder with runs in its subfolders and no tracks/ of its own is a folder of runs, even with a
    manifest.json: that one describes the job that made them (`process --engine ray`)."""
    def is_run(d: Path) -> bool:
        return (d / "tracks").is_dir() or (d / "manifest.json").is_file()

    subs = sorted(d for d in out_dir.iterdir() if d.is_dir() and is_run(d))
    if (out_dir / "tracks").is_dir() or (is_run(out_dir) and not subs):
        return [out_dir]
    return subs


def load_run(out_dir: Path, run_dir: Path, problems: list[str],
             cache: dict | None = None) -> tuple[Run, list[ReportTrack]]:
    rel = run_dir.relative_to(out_dir).as_posix()
    rel = "" if rel == "." else rel
    prefix = f"{rel}/" if rel else ""
    manifest: dict = {}
    mp = run_dir / "manifest.json"
    if mp.is_file():
        try:
            manifest = json.loads(mp.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            problems.append(f"{prefix}manifest.json unreadable: {e}")
    run = Run(rel, manifest if isinstance(manifest, dict) else {},
              f"{prefix}annotated.mp4" if (run_dir / "annotated.mp4").is_file() else None)
    tracks: list[ReportTrack] = []
    tdirs = sorted((d for d in (run_dir / "tracks").glob("*") if d.is_dir()),
                   key=lambda d: (not d.name.isdigit(), int(d.name) if d.name.isdigit() else 0, d.name))
    cache = {} if cache is None else cache
    for tdir in tdirs:
        path = tdir / "track.json"
        try:
            st = path.stat()
            stamp = (str(path.resolve()), st.st_mtime_ns, st.st_size)
            if stamp in cache:
                tracks.append(replace(cache[stamp], run=run))
                continue
            record = TrackRecord.read(path)
        except FileNotFoundError:
            if run.manifest.get("status") != "running":  # a running run is writing it right now
                problems.append(f"{prefix}tracks/{tdir.name}/ has no track.json: the run ended while writing it")
            continue
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            problems.append(f"{prefix}tracks/{tdir.name}/track.json unreadable: {e}")
            continue
        base = f"{prefix}tracks/{tdir.name}/"
        tiles = []
        for o in record.observations:
            files = {kind: base + name for kind, name in o.files.items() if (tdir / name).is_file()}
            if files:
                tiles.append(replace(o, files=files))
        best = base + "best.png" if (tdir / "best.png").is_file() else None
        cache[stamp] = ReportTrack(run, record, tiles, best)
        tracks.append(cache[stamp])
    return run, tracks


def read_image(out_dir: Path, rel: str | None) -> np.ndarray | None:
    """A tile as BGR pixels, or None."""
    if not rel:
        return None
    return cv2.imread(str(out_dir / rel), cv2.IMREAD_COLOR)
