"""What the catalogue holds (`stats`), tracks by filter (`tracks`), and what an operator removes: runs older
than a retention period (`prune`) and single tracks (`forget`: erasure). Removing rows removes what hangs off
them (observations, tiles, embeddings); the run folders on disk are the operator's own, never touched here,
except that `forget` can delete the forgotten track's own folder of tiles when asked.
"""

from __future__ import annotations

import re
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import sqlalchemy as sa

from ..core.errors import ConfigError
from . import schema as s
from .db import drop_vector_cache

_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def age_seconds(text: str) -> float:
    """'30d', '12h', '90m', '2w', '45s' as seconds; ConfigError naming the value otherwise."""
    m = _AGE.match(text or "")
    if not m:
        raise ConfigError(f"--older-than: expected a number and a unit (s, m, h, d, w), e.g. 30d; got {text!r}")
    return float(m.group(1)) * _UNIT[m.group(2)]


def when(text: str | None) -> float | None:
    """--since/--until: an ISO 8601 date or time (naive = UTC) or UNIX seconds, as UNIX seconds."""
    if text is None or text == "":
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"expected an ISO 8601 time (YYYY-MM-DDTHH:MM) or UNIX seconds, got {text!r}") from None
    return (t if t.tzinfo else t.replace(tzinfo=timezone.utc)).timestamp()


@dataclass
class Filters:
    """Which tracks: a camera (its name), a time span (UNIX seconds), with an embedding only."""

    camera: str | None = None
    since: float | None = None
    until: float | None = None
    embedded: bool = False

    def where(self, q: sa.Select, conn: sa.Connection | None = None) -> sa.Select:
        """`q` narrowed to these tracks. With `conn`, a `since` also bounds `first_at` from below by the
        longest track's span (`longest`), so the time index reads only the window's tracks, not every
        track that started before `until`."""
        if self.camera:
            q = q.where(s.cameras.c.name == self.camera)
        if self.since is not None:
            q = q.where(s.tracks.c.last_at >= self.since)
            span = longest(conn) if conn is not None else None
            if span is not None:
                q = q.where(s.tracks.c.first_at >= self.since - span)
        if self.until is not None:
            q = q.where(s.tracks.c.first_at <= self.until)
        if self.embedded:
            q = q.where(s.tracks.c.embedding.is_not(None))
        return q


def longest(conn: sa.Connection) -> float | None:
    """The longest track's span in seconds (None: no tracks), read from the span index (`ix_tracks_span`)."""
    return conn.execute(sa.select(sa.func.max(s.SPAN))).scalar()


def stats(eng: sa.Engine) -> dict:
    """Counts of everything, the span of time, and per camera its tracks."""
    with eng.connect() as conn:
        count = {t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                 for t in (s.cameras, s.recordings, s.runs, s.tracks, s.observations, s.tiles, s.embeddings)}
        open_ = conn.execute(sa.select(sa.func.count()).where(s.tracks.c.open.is_(True))).scalar_one()
        span = conn.execute(sa.select(sa.func.min(s.tracks.c.first_at), sa.func.max(s.tracks.c.last_at))).one()
        per = conn.execute(
            sa.select(s.cameras.c.name, sa.func.count(s.tracks.c.id), sa.func.min(s.tracks.c.first_at),
                      sa.func.max(s.tracks.c.last_at))
            .select_from(s.cameras.outerjoin(s.tracks, s.tracks.c.camera_id == s.cameras.c.id))
            .group_by(s.cameras.c.name).order_by(s.cameras.c.name)).all()
        searches = conn.execute(sa.select(sa.func.count()).select_from(s.audit)).scalar_one()
    return {"counts": {**count, "open_tracks": open_, "searches": searches},
            "first_at": span[0], "last_at": span[1],
            "cameras": [{"name": n, "tracks": c, "first_at": a, "last_at": b} for n, c, a, b in per]}


def prune(eng: sa.Engine, older_than_s: float, now: float | None = None) -> dict:
    """Remove runs whose every track ended before now - `older_than_s` (and runs with no track added that
    long ago), then recordings and cameras nothing refers to any more. Returns what was removed."""
    cutoff = (time.time() if now is None else now) - older_than_s
    with eng.begin() as conn:
        newest = sa.select(s.tracks.c.run_id, sa.func.max(s.tracks.c.last_at).label("last")).group_by(
            s.tracks.c.run_id).subquery()
        old = conn.execute(sa.select(s.runs.c.id).select_from(s.runs.outerjoin(newest, newest.c.run_id == s.runs.c.id))
                           .where(sa.func.coalesce(newest.c.last, s.runs.c.added_at) < cutoff)).scalars().all()
        n_tracks = conn.execute(sa.select(sa.func.count()).where(s.tracks.c.run_id.in_(old))).scalar_one() if old else 0
        if old:
            _delete_runs(conn, old)
        recs = conn.execute(sa.delete(s.recordings).where(
            ~sa.exists().where(s.runs.c.recording_id == s.recordings.c.id))).rowcount
        cams = conn.execute(sa.delete(s.cameras).where(
            ~sa.exists().where(s.recordings.c.camera_id == s.cameras.c.id),
            ~sa.exists().where(s.tracks.c.camera_id == s.cameras.c.id))).rowcount
    if old:
        drop_vector_cache(eng)  # erased rows leave no copy of their embeddings behind
    return {"runs": len(old), "tracks": n_tracks, "recordings": recs, "cameras": cams, "cutoff": cutoff}


def _delete_runs(conn, ids: list[int]) -> None:
    """Children first, so that no database's foreign-key settings matter."""
    tracks = sa.select(s.tracks.c.id).where(s.tracks.c.run_id.in_(ids))
    for child in (s.embeddings, s.tiles, s.observations):
        conn.execute(sa.delete(child).where(child.c.track_id.in_(tracks)))
    conn.execute(sa.delete(s.tracks).where(s.tracks.c.run_id.in_(ids)))
    conn.execute(sa.delete(s.runs).where(s.runs.c.id.in_(ids)))


def track_folder(eng: sa.Engine, track_id: int) -> Path | None:
    """The track's own folder of tiles (run folder / tracks / N), or None when the catalogue lacks it."""
    with eng.connect() as conn:
        row = conn.execute(sa.select(s.runs.c.folder, s.tracks.c.track_no)
                           .select_from(s.tracks.join(s.runs, s.runs.c.id == s.tracks.c.run_id))
                           .where(s.tracks.c.id == track_id)).first()
    return None if row is None else Path(row[0]) / "tracks" / str(int(row[1]))


def forget(eng: sa.Engine, track_id: int, delete_files: bool = False) -> bool:
    """Remove one track (and its observations, tiles, embeddings); with `delete_files` also its folder of
    tiles on disk. False when the catalogue has no such track."""
    folder = track_folder(eng, track_id)
    if folder is None:
        return False
    with eng.begin() as conn:
        for child in (s.embeddings, s.tiles, s.observations):
            conn.execute(sa.delete(child).where(child.c.track_id == track_id))
        conn.execute(sa.delete(s.tracks).where(s.tracks.c.id == track_id))
    drop_vector_cache(eng)
    if delete_files and folder.is_dir():
        shutil.rmtree(folder)
    return True
