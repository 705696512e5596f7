"""Search by face: tracks ranked by cosine similarity between a probe embedding and each track's embedding.

A track's embedding is the quality-weighted mean of its crops' unit embeddings, normalised (`embed`): the mean
over up to 16 crops is steadier than any one 16 px crop, and it is what the people grouping compares. The
filters (camera, time) run in SQL; the scoring runs in numpy over the candidates' stored vectors (pgvector is
not packaged here, and a matrix product over 100 k × 128 floats takes milliseconds). Only the top N are
then read in full. Every search is written to the audit log (who, when, what kind, the filters — never the
probe's pixels).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import sqlalchemy as sa

from ..core.errors import InputError
from . import schema as s
from .db import vector_cache
from .embed import DIM, from_bytes
from .query import Filters

SLACK = 32  # unfiltered searches on an index read this many more than asked, in case some were removed


@dataclass
class Hit:
    """One ranked track."""

    track: int  # the catalogue's track id
    similarity: float
    camera: str
    track_no: int  # the run's own track id
    folder: str  # the run's folder
    first_at: float
    last_at: float
    n_observations: int
    best_tile: str | None
    person: str | None
    face_px: float | None  # median face size behind its embedding
    confidence: float | None

    def as_dict(self) -> dict:
        return asdict(self)


def _vectors(rows: list) -> tuple[np.ndarray, np.ndarray]:
    ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
    vecs = np.frombuffer(b"".join(r[1] for r in rows), np.float32).reshape(len(rows), DIM) if rows else \
        np.zeros((0, DIM), np.float32)
    return ids, vecs


class Index:
    """Every track's embedding held in memory (`serve`, or `rank_cached` between calls of the command line),
    brought up to date before each search by reading only the tracks that are new (id above the last one
    read) or that gained crop embeddings since (`embeddings.id` only grows; an open track that finishes
    keeps its id). The filters still run in SQL and return ids only; a track removed since (prune, forget)
    is no longer among them, so its stale vector is never used."""

    def __init__(self) -> None:
        self.ids = np.zeros(0, np.int64)
        self.vecs = np.zeros((0, DIM), np.float32)
        self.marks = (0, 0)  # the last tracks.id and embeddings.id read
        self.changed = False

    @classmethod
    def load(cls, path: Path, conn) -> Index:
        """The index saved at `path` if it still belongs to this catalogue (its newest track read is still
        there with the same embedding), else an empty one."""
        index = cls()
        try:
            with np.load(path) as doc:
                ids, vecs, marks = doc["ids"].astype(np.int64, copy=False), doc["vecs"].astype(np.float32, copy=False), doc["marks"]
        except (OSError, ValueError, KeyError):
            return index
        if not len(ids) or vecs.shape != (len(ids), DIM):
            return index
        row = conn.execute(sa.select(s.tracks.c.embedding).where(s.tracks.c.id == int(ids[-1]))).scalar()
        if row is not None and np.array_equal(from_bytes(row), vecs[-1]):
            index.ids, index.vecs, index.marks = ids, vecs, (int(marks[0]), int(marks[1]))
        return index

    def save(self, path: Path) -> None:
        """Write the index to `path` (atomically); a folder that cannot be written is no error."""
        tmp = path.with_name(path.name + ".tmp.npz")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(tmp, ids=self.ids, vecs=self.vecs, marks=np.array(self.marks, np.int64))
            os.replace(tmp, path)
        except OSError:
            tmp.unlink(missing_ok=True)

    def refresh(self, conn) -> None:
        marks = (conn.execute(sa.select(sa.func.max(s.tracks.c.id))).scalar() or 0,
                 conn.execute(sa.select(sa.func.max(s.embeddings.c.id))).scalar() or 0)
        if marks[0] <= self.marks[0] and marks[1] <= self.marks[1]:
            return
        fresh = sa.or_(s.tracks.c.id > self.marks[0], s.tracks.c.id.in_(
            sa.select(s.embeddings.c.track_id).where(s.embeddings.c.id > self.marks[1])))
        ids, vecs = _vectors(conn.execute(sa.select(s.tracks.c.id, s.tracks.c.embedding).where(
            s.tracks.c.embedding.is_not(None), fresh)).all())
        keep = ~np.isin(self.ids, ids)
        ids, vecs = np.concatenate([self.ids[keep], ids]), np.concatenate([self.vecs[keep], vecs])
        order = np.argsort(ids, kind="stable")
        self.ids, self.vecs, self.marks, self.changed = ids[order], vecs[order], marks, True

    def take(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The vectors of `ids` (those the index holds), in their order."""
        if not len(self.ids):
            return ids[:0], self.vecs[:0]
        at = np.minimum(np.searchsorted(self.ids, ids), len(self.ids) - 1)
        ok = self.ids[at] == ids
        return ids[ok], self.vecs[at[ok]]


def _candidates(conn, filters: Filters, exclude: int | None, index: Index | None) -> tuple[np.ndarray, np.ndarray]:
    cols = [s.tracks.c.id] if index is not None else [s.tracks.c.id, s.tracks.c.embedding]
    q = sa.select(*cols).where(s.tracks.c.embedding.is_not(None))
    if filters.camera:
        q = q.select_from(s.tracks.join(s.cameras, s.cameras.c.id == s.tracks.c.camera_id))
    q = filters.where(q, conn)
    if exclude is not None:
        q = q.where(s.tracks.c.id != exclude)
    if index is None:
        return _vectors(conn.execute(q).all())
    index.refresh(conn)
    return index.take(np.fromiter(conn.execute(q).scalars(), np.int64))


def _top(conn, ids: np.ndarray, vecs: np.ndarray, probe: np.ndarray, k: int) -> list[Hit]:
    """The `k` best of the candidates, read in full (those still in the catalogue), best first."""
    if not len(ids):
        return []
    sims = vecs @ np.asarray(probe, np.float32)
    k = min(k, len(ids))
    best = np.argpartition(-sims, k - 1)[:k]
    chosen = {int(ids[i]): float(sims[i]) for i in best}
    rows = conn.execute(
        sa.select(s.tracks.c.id, s.cameras.c.name, s.tracks.c.track_no, s.runs.c.folder, s.tracks.c.first_at,
                  s.tracks.c.last_at, s.tracks.c.n_observations, s.tracks.c.best_tile, s.tracks.c.person,
                  s.tracks.c.embedded_px, s.tracks.c.confidence)
        .select_from(s.tracks.join(s.cameras, s.cameras.c.id == s.tracks.c.camera_id)
                     .join(s.runs, s.runs.c.id == s.tracks.c.run_id))
        .where(s.tracks.c.id.in_(list(chosen)))).all()
    return sorted((Hit(r[0], round(chosen[r[0]], 4), *r[1:]) for r in rows), key=lambda h: -h.similarity)


def rank(eng: sa.Engine, probe: np.ndarray, filters: Filters | None = None, top: int = 10,
         exclude: int | None = None, index: Index | None = None) -> list[Hit]:
    """The `top` tracks most like `probe` (a unit 128-D embedding), best first; `index` keeps the vectors in
    memory between searches. Unfiltered with an index, no candidate query runs at all: the best `top` + SLACK
    of the index are read, a track removed since simply is not found, and only when more than SLACK of them
    are gone does the search fall back to the candidate query."""
    filters = filters or Filters()
    with eng.connect() as conn:
        if index is not None and filters == Filters():
            index.refresh(conn)
            keep = index.ids != (exclude if exclude is not None else -1)
            hits = _top(conn, index.ids[keep], index.vecs[keep], probe, top + SLACK)
            if len(hits) >= top or top + SLACK >= int(keep.sum()):
                return hits[:top]
        ids, vecs = _candidates(conn, filters, exclude, index)
        return _top(conn, ids, vecs, probe, top)


def rank_cached(eng: sa.Engine, probe: np.ndarray, filters: Filters | None = None, top: int = 10,
                exclude: int | None = None) -> list[Hit]:
    """`rank` for a one-shot process: the index is read from the user's cache folder (`db.vector_cache`),
    brought up to date with what was added since, used, and saved again, so a search reads the catalogue's
    new embeddings only, not every one."""
    path = vector_cache(eng)
    with eng.connect() as conn:
        index = Index.load(path, conn)
    hits = rank(eng, probe, filters, top, exclude, index)
    if index.changed:
        index.save(path)
    return hits


def track_embedding(eng: sa.Engine, track_id: int) -> np.ndarray:
    """A catalogued track's embedding ("more like this"); InputError when it has none."""
    with eng.connect() as conn:
        row = conn.execute(sa.select(s.tracks.c.embedding).where(s.tracks.c.id == track_id)).first()
    if row is None:
        raise InputError(f"no track {track_id} in the catalog")
    if row[0] is None:
        raise InputError(f"track {track_id} has no face embedding (no saved crop of the camera's pixels)")
    return from_bytes(row[0])


def audit(eng: sa.Engine, who: str, kind: str, detail: dict) -> None:
    """One line of the audit log: a search happened (who, when, what kind, its filters)."""
    with eng.begin() as conn:
        conn.execute(sa.insert(s.audit).values(at=time.time(), who=who[:255], kind=kind, detail=detail))
