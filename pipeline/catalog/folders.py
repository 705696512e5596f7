"""Run folders on disk into the catalogue (`enhance-faces catalog add`): the run, every finished track
(`tracks/<id>/track.json`), the people grouping of its report, and the tracks it left open — a
`track_start` in its events.jsonl with no track.json, because the run died before the track ended.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..io.records import TrackRecord
from ..report.read import find_runs
from .ingest import Writer


@dataclass
class Added:
    """What `add_folder` did."""

    runs: int = 0
    tracks: int = 0
    known: int = 0  # already in the catalogue
    open: int = 0
    problems: list[str] = field(default_factory=list)


def _events(run_dir: Path) -> list[dict]:
    rows = []
    try:
        with open(run_dir / "events.jsonl", encoding="utf-8") as fh:
            for line in fh:
                try:
                    row = json.loads(line)
                except ValueError:
                    continue  # a line cut by a crash
                if isinstance(row, dict):
                    rows.append(row)
    except OSError:
        pass
    return rows


def people_of(run_dir: Path) -> dict[int, str]:
    """Track id → person ("P3") from the run's people.json, or its parent's (a folder of runs)."""
    for where, rel in ((run_dir, ""), (run_dir.parent, run_dir.name)):
        try:
            doc = json.loads((where / "people.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        found = {int(t["track"]): str(p["id"]) for p in doc.get("people", []) for t in p.get("tracks", [])
                 if isinstance(t, dict) and t.get("run", "") == rel and isinstance(t.get("track"), int)}
        if found or where == run_dir:
            return found
    return {}


def _track_dirs(run_dir: Path) -> list[Path]:
    return sorted((d for d in (run_dir / "tracks").glob("*") if d.is_dir() and d.name.isdigit()),
                  key=lambda d: int(d.name))


def add_run(writer: Writer, run_dir: Path, added: Added) -> None:
    """One run folder: its run row, every finished track, and the tracks it left open."""
    try:
        manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        manifest = {}
        added.problems.append(f"{run_dir}: no readable manifest.json")
    events = _events(run_dir)
    start = next((e for e in events if e.get("event") == "run_start"), {})
    dirs = _track_dirs(run_dir)
    source = str(start.get("source") or "")
    records: dict[Path, TrackRecord] = {}
    for d in dirs:
        try:
            records[d] = TrackRecord.read(d / "track.json")
        except FileNotFoundError:
            continue  # left open by a crash: found in events.jsonl below
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            added.problems.append(f"{d}/track.json unreadable: {e}")
    if not source:
        source = next((r.source for r in records.values() if r.source), "") or run_dir.name
    run = writer.run(run_dir, manifest, source, live=bool(start.get("live")))
    added.runs += 1
    people = people_of(run_dir)
    for d, record in records.items():
        if writer.track(run, d, people.get(record.track_id)):
            added.tracks += 1
        else:
            added.known += 1
    finished = {r.track_id for r in records.values()}
    ended = {e.get("track") for e in events if e.get("event") == "track_end"}
    for e in events:
        no = e.get("track")
        if e.get("event") != "track_start" or not isinstance(no, int) or no in finished or no in ended:
            continue
        if writer.open_track(run, no, float(e.get("time") or 0.0), e.get("at")):
            added.open += 1


def add_folder(writer: Writer, folder: Path, added: Added | None = None) -> Added:
    """Every run in `folder` (itself, or its direct subfolders: a folder of runs)."""
    added = added or Added()
    folder = Path(folder)
    if not folder.is_dir():
        added.problems.append(f"{folder}: not a folder")
        return added
    runs = find_runs(folder)
    if not runs:
        added.problems.append(f"{folder}: no run here (no manifest.json or tracks/)")
    for run_dir in runs:
        add_run(writer, run_dir, added)
    return added
