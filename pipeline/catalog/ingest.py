"""Writing runs and their finished tracks into the catalogue: one transaction per track, so a process killed at
any moment leaves every track either whole or absent. Idempotent: a track already there (same run folder,
same run start, same track id) is not added again, so `catalog add` may be repeated and may follow a run
whose sink already wrote as it went. A track still open when its run died is a row with `open` set and no
observations (`open_track`); should the finished track arrive later, it replaces that row.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import sqlalchemy as sa

from ..io.records import TrackRecord
from . import schema as s
from .db import write_lock
from .embed import FaceEmbedder, TrackFaces, to_bytes
from .identity import epoch, identity


@dataclass
class RunRef:
    """A run as the catalogue knows it."""

    id: int
    camera_id: int
    folder: Path
    started_at: float
    live: bool


def _get_or_create(conn, table: sa.Table, where: dict, values: dict | None = None) -> int:
    cond = sa.and_(*(table.c[k] == v for k, v in where.items()))
    found = conn.execute(sa.select(table.c.id).where(cond)).scalar()
    if found is not None:
        return found
    try:
        with conn.begin_nested():  # another writer may insert the same row at the same time
            return conn.execute(sa.insert(table).values(**where, **(values or {})).returning(table.c.id)).scalar_one()
    except sa.exc.IntegrityError:
        return conn.execute(sa.select(table.c.id).where(cond)).scalar_one()


class Writer:
    """Writes runs and tracks into the catalogue on `eng`; embeds the camera's crops with `embedder`
    (None: tracks are stored without embeddings and cannot be found by face)."""

    def __init__(self, eng: sa.Engine, embedder: FaceEmbedder | None) -> None:
        self.eng, self.embedder = eng, embedder

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sa.Connection]:
        """One write transaction (behind SQLite's writers' queue, `db.write_lock`)."""
        with write_lock(self.eng), self.eng.begin() as conn:
            yield conn

    def run(self, folder: Path, manifest: dict, source: str, live: bool = False) -> RunRef:
        """The run's row (created, or its status brought up to date)."""
        folder = Path(folder).resolve()
        ident = identity(manifest)
        started = str(manifest.get("started") or "")
        started_at = epoch(started, time.time())
        status = str(manifest.get("status") or "unknown")
        with self._tx() as conn:
            camera = _get_or_create(conn, s.cameras, {"name": source})
            recording = _get_or_create(conn, s.recordings, {"input": ident.input, "size": ident.size,
                                                            "mtime": ident.mtime}, {"camera_id": camera})
            run_id = _get_or_create(conn, s.runs, {"folder": str(folder), "started": started}, {
                "recording_id": recording, "identity": ident.key, "settings_sha256": ident.settings_sha256,
                "weights_sha256": ident.weights_sha256, "version": ident.version, "status": status,
                "started_at": started_at, "added_at": time.time()})
            conn.execute(sa.update(s.runs).where(s.runs.c.id == run_id).values(status=status))
        return RunRef(run_id, camera, folder, started_at, live)

    def set_status(self, run: RunRef, status: str) -> None:
        with self._tx() as conn:
            conn.execute(sa.update(s.runs).where(s.runs.c.id == run.id).values(status=status))

    def set_people(self, run: RunRef, people: dict[int, str]) -> None:
        """Each track's person from the run's people grouping (known once its report is written)."""
        if not people:
            return
        with self._tx() as conn:
            for no, person in people.items():
                conn.execute(sa.update(s.tracks).where(s.tracks.c.run_id == run.id, s.tracks.c.track_no == no)
                             .values(person=person))

    def _existing(self, conn, run: RunRef, track_no: int) -> tuple[int, bool] | None:
        row = conn.execute(sa.select(s.tracks.c.id, s.tracks.c.open).where(
            s.tracks.c.run_id == run.id, s.tracks.c.track_no == track_no)).first()
        return None if row is None else (row[0], bool(row[1]))

    def has(self, run: RunRef, track_no: int) -> bool:
        with self.eng.connect() as conn:
            found = self._existing(conn, run, track_no)
        return found is not None and not found[1]

    def track(self, run: RunRef, track_dir: Path, person: str | None = None) -> bool:
        """Add the finished track in `track_dir` (its track.json) in one transaction; False if it was there."""
        record = TrackRecord.read(track_dir / "track.json")
        if self.has(run, record.track_id):
            return False
        faces = self.embedder.track(track_dir, record) if self.embedder is not None else None
        rel = f"tracks/{track_dir.name}"
        tiles = [(o.frame, kind, f"{rel}/{name}", _sidecar(track_dir / name))
                 for o in record.observations for kind, name in o.files.items()]
        best = f"{rel}/best.png" if (track_dir / "best.png").is_file() else None
        return self.write(run, record, faces, tiles, best, person)

    def write(self, run: RunRef, record: TrackRecord, faces: TrackFaces | None,
              tiles: list[tuple[int, str, str, dict | None]], best_tile: str | None, person: str | None) -> bool:
        """One track, its observations, tiles ((frame, kind, path, provenance)) and embeddings, in one
        transaction; False when the run already has it (an `open` row of it is replaced)."""
        obs = record.observations
        enhanced = [o for o in obs if o.enhanced]
        best = max(enhanced, key=lambda o: o.quality, default=None)
        live = record.first_seen is not None
        first_at = epoch(record.first_seen) if live else run.started_at + (record.first_time or 0.0)
        last_at = epoch(record.last_seen, first_at) if live else run.started_at + (record.last_time or 0.0)
        with self._tx() as conn:
            found = self._existing(conn, run, record.track_id)
            if found is not None:
                if not found[1]:
                    return False  # another writer added it meanwhile
                conn.execute(sa.delete(s.tracks).where(s.tracks.c.id == found[0]))  # the open row it replaces
            tid = conn.execute(sa.insert(s.tracks).values(
                run_id=run.id, camera_id=run.camera_id, track_no=record.track_id,
                first_frame=record.first_frame, last_frame=record.last_frame,
                first_time=record.first_time, last_time=record.last_time, first_at=first_at, last_at=last_at,
                n_observations=len(obs), n_enhanced=record.n_enhanced, best_tile=best_tile,
                confidence=None if best is None else best.confidence, person=person, open=False,
                embedding=None if faces is None or faces.mean is None else to_bytes(faces.mean),
                embedded_px=None if faces is None else faces.px,
            ).returning(s.tracks.c.id)).scalar_one()
            ids: dict[int, int] = {}
            if obs:
                rows = [dict(track_id=tid, frame=o.frame, time=o.time, at=epoch(o.at) if o.at else None,
                             box=o.box, kps=o.kps, matrix=o.matrix, score=o.score, quality=o.quality, size=o.size,
                             entry=o.entry, enhanced=o.enhanced, confidence=o.confidence, resolved=o.resolved)
                        for o in obs]
                got = conn.execute(sa.insert(s.observations).returning(
                    s.observations.c.id, s.observations.c.frame, sort_by_parameter_order=True), rows).all()
                ids = {frame: oid for oid, frame in got}
            rows = [dict(track_id=tid, observation_id=ids.get(frame), kind=kind, path=path, provenance=prov)
                    for frame, kind, path, prov in tiles]
            if best_tile:
                rows.append(dict(track_id=tid, observation_id=None, kind="best", path=best_tile, provenance=None))
            if rows:
                conn.execute(sa.insert(s.tiles), rows)
            if faces is not None and len(faces.frames):
                model = self.embedder.model if self.embedder is not None else ""
                conn.execute(sa.insert(s.embeddings), [
                    dict(track_id=tid, observation_id=ids.get(f), vector=to_bytes(v), model=model)
                    for f, v in zip(faces.frames, faces.vectors)])
        return True

    def open_track(self, run: RunRef, track_no: int, first_time: float, at: str | None) -> bool:
        """A track that started and never ended (its run died): a row with `open` set; False if known."""
        first_at = epoch(at, run.started_at + first_time) if run.live else run.started_at + first_time
        with self._tx() as conn:
            if self._existing(conn, run, track_no) is not None:
                return False
            conn.execute(sa.insert(s.tracks).values(
                run_id=run.id, camera_id=run.camera_id, track_no=track_no, first_time=first_time,
                last_time=first_time, first_at=first_at, last_at=first_at, n_observations=0, n_enhanced=0,
                open=True))
        return True


def _sidecar(tile: Path) -> dict | None:
    """A tile's provenance record: its `.json` sidecar, when it has one."""
    side = tile.with_suffix(".json")
    if tile.suffix != ".png" or not side.is_file():
        return None
    try:
        doc = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None
