"""Writing runs and their tracks into the catalogue. Tracks go in batches (`Writer.write_batch`), each batch one
transaction, so a process killed at any moment leaves every track either whole or absent, and a busy writer
pays the commit once for many tracks. A track that has started is an `open` row with no observations until
it ends; the finished track fills in that row, so a track still open when its run died stays marked open.
Idempotent: a track already there (same run folder, same run start, same track id) is not added again, so
`catalog add` may be repeated and may follow a run whose sink already wrote as it went.
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
class Finished:
    """A finished track as the catalogue stores it: its record, crop embeddings, tiles ((frame, kind, path
    relative to the run folder, provenance)), best tile and person."""

    record: TrackRecord
    faces: TrackFaces | None
    tiles: list[tuple[int, str, str, dict | None]]
    best_tile: str | None = None
    person: str | None = None


@dataclass
class Opened:
    """A track that has started and not ended: `first_time` in stream seconds, `at` its wall time (live)."""

    track_no: int
    first_time: float
    at: str | None = None


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

    def _existing(self, conn, run: RunRef, track_nos: list[int]) -> dict[int, tuple[int, bool]]:
        """The run's rows among `track_nos`: track_no → (row id, open)."""
        if not track_nos:
            return {}
        rows = conn.execute(sa.select(s.tracks.c.track_no, s.tracks.c.id, s.tracks.c.open).where(
            s.tracks.c.run_id == run.id, s.tracks.c.track_no.in_(sorted(set(track_nos))))).all()
        return {no: (tid, bool(is_open)) for no, tid, is_open in rows}

    def has(self, run: RunRef, track_no: int) -> bool:
        with self.eng.connect() as conn:
            found = self._existing(conn, run, [track_no]).get(track_no)
        return found is not None and not found[1]

    def finished(self, track_dir: Path, person: str | None = None, record: TrackRecord | None = None) -> Finished:
        """The finished track in `track_dir` (its track.json, or `record` already read from it; tiles and
        sidecars; its crops embedded), ready for `write_batch`. Reading and embedding happen here, outside
        any transaction."""
        record = record or TrackRecord.read(track_dir / "track.json")
        faces = self.embedder.track(track_dir, record) if self.embedder is not None else None
        rel = f"tracks/{track_dir.name}"
        tiles = [(o.frame, kind, f"{rel}/{name}", _sidecar(track_dir / name))
                 for o in record.observations for kind, name in o.files.items()]
        best = f"{rel}/best.png" if (track_dir / "best.png").is_file() else None
        return Finished(record, faces, tiles, best, person)

    def track(self, run: RunRef, track_dir: Path, person: str | None = None) -> bool:
        """Add the finished track in `track_dir` (its track.json) in one transaction; False if it was there
        (checked first, so that a known track's crops are not embedded again)."""
        record = TrackRecord.read(track_dir / "track.json")
        if self.has(run, record.track_id):
            return False
        return self.write_batch(run, [self.finished(track_dir, person, record)]) == 1

    def open_track(self, run: RunRef, track_no: int, first_time: float, at: str | None) -> bool:
        """A track that started and has not ended (or never will: its run died): a row with `open` set and no
        observations; False if the run has the track already."""
        return self.write_batch(run, [Opened(track_no, first_time, at)]) == 1

    def write_batch(self, run: RunRef, items: list[Finished | Opened]) -> int:
        """Tracks of one run, finished ones whole and started ones as `open` rows, in ONE transaction: each is
        whole or absent whatever happens to the process, and the round trips and the commit are paid once
        per batch, not per track. A finished track fills in its open row (keeping its id, so a page showing
        the open track keeps its link); a track the run already has (finished, or open when an `Opened`
        comes) is skipped. Returns how many tracks were added or finished."""
        with self._tx() as conn:
            have = self._existing(conn, run, [it.record.track_id if isinstance(it, Finished) else it.track_no
                                              for it in items])
            ends: dict[int, Finished] = {}
            starts: dict[int, Opened] = {}
            for it in items:
                if isinstance(it, Finished):
                    no = it.record.track_id
                    if no not in ends and not (no in have and not have[no][1]):
                        ends[no] = it
                elif it.track_no not in have and it.track_no not in starts:
                    starts[it.track_no] = it
            for no in ends:
                starts.pop(no, None)  # started and ended within the batch: only the whole track is written
            done = [(have[no][0], it) for no, it in ends.items() if no in have]  # open rows, finished in place
            if done:
                conn.execute(sa.update(s.tracks).where(s.tracks.c.id == sa.bindparam("row_id")),
                             [{"row_id": tid, **self._track_row(run, it)} for tid, it in done])
            new = [it for no, it in ends.items() if no not in have]
            rows = [self._track_row(run, it) for it in new] + [self._open_row(run, it) for it in starts.values()]
            tids = conn.execute(sa.insert(s.tracks).returning(s.tracks.c.id, sort_by_parameter_order=True),
                                rows).scalars().all() if rows else []
            self._children(conn, done + list(zip(tids, new)))
        return len(done) + len(rows)

    def _track_row(self, run: RunRef, it: Finished) -> dict:
        record, obs = it.record, it.record.observations
        best = max((o for o in obs if o.enhanced), key=lambda o: o.quality, default=None)
        live = record.first_seen is not None
        first_at = epoch(record.first_seen) if live else run.started_at + (record.first_time or 0.0)
        last_at = epoch(record.last_seen, first_at) if live else run.started_at + (record.last_time or 0.0)
        return dict(run_id=run.id, camera_id=run.camera_id, track_no=record.track_id,
                    first_frame=record.first_frame, last_frame=record.last_frame,
                    first_time=record.first_time, last_time=record.last_time, first_at=first_at, last_at=last_at,
                    n_observations=len(obs), n_enhanced=record.n_enhanced, best_tile=it.best_tile,
                    confidence=None if best is None else best.confidence, person=it.person, open=False,
                    embedding=None if it.faces is None or it.faces.mean is None else to_bytes(it.faces.mean),
                    embedded_px=None if it.faces is None else it.faces.px)

    @staticmethod
    def _open_row(run: RunRef, it: Opened) -> dict:
        first_at = epoch(it.at, run.started_at + it.first_time) if run.live else run.started_at + it.first_time
        return dict(run_id=run.id, camera_id=run.camera_id, track_no=it.track_no, first_frame=None,
                    last_frame=None, first_time=it.first_time, last_time=it.first_time, first_at=first_at,
                    last_at=first_at, n_observations=0, n_enhanced=0, best_tile=None, confidence=None,
                    person=None, open=True, embedding=None, embedded_px=None)

    def _children(self, conn, tracks: list[tuple[int, Finished]]) -> None:
        """Observations, tiles and embeddings of the finished tracks just inserted (row id, track)."""
        obs_rows = [dict(track_id=tid, frame=o.frame, time=o.time, at=epoch(o.at) if o.at else None, box=o.box,
                         kps=o.kps, matrix=o.matrix, score=o.score, quality=o.quality, size=o.size, entry=o.entry,
                         enhanced=o.enhanced, confidence=o.confidence, resolved=o.resolved)
                    for tid, it in tracks for o in it.record.observations]
        ids: dict[tuple[int, int], int] = {}
        if obs_rows:  # a plain executemany, then the ids read back: cheaper than RETURNING from a long INSERT
            conn.execute(sa.insert(s.observations), obs_rows)
            got = conn.execute(sa.select(s.observations.c.id, s.observations.c.track_id, s.observations.c.frame)
                               .where(s.observations.c.track_id.in_([tid for tid, _ in tracks]))).all()
            ids = {(tid, frame): oid for oid, tid, frame in got}
        tile_rows = [dict(track_id=tid, observation_id=ids.get((tid, frame)), kind=kind, path=path, provenance=prov)
                     for tid, it in tracks for frame, kind, path, prov in it.tiles]
        tile_rows += [dict(track_id=tid, observation_id=None, kind="best", path=it.best_tile, provenance=None)
                      for tid, it in tracks if it.best_tile]
        if tile_rows:
            conn.execute(sa.insert(s.tiles), tile_rows)
        model = self.embedder.model if self.embedder is not None else ""
        emb_rows = [dict(track_id=tid, observation_id=ids.get((tid, f)), vector=to_bytes(v), model=model)
                    for tid, it in tracks if it.faces is not None for f, v in zip(it.faces.frames, it.faces.vectors)]
        if emb_rows:
            conn.execute(sa.insert(s.embeddings), emb_rows)


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
