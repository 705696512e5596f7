"""What each page shows, read from the catalogue as plain values for the templates."""

from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa

from .. import schema as s
from ..query import Filters


def iso(t: float | None) -> str:
    return "" if t is None else datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def cameras(eng: sa.Engine) -> list[dict]:
    """Every camera with its recordings, runs and tracks counted."""
    with eng.connect() as conn:
        recs = dict(conn.execute(sa.select(s.recordings.c.camera_id, sa.func.count()).group_by(s.recordings.c.camera_id)).all())
        rows = conn.execute(
            sa.select(s.cameras.c.id, s.cameras.c.name, sa.func.count(s.tracks.c.id), sa.func.min(s.tracks.c.first_at),
                      sa.func.max(s.tracks.c.last_at))
            .select_from(s.cameras.outerjoin(s.tracks, s.tracks.c.camera_id == s.cameras.c.id))
            .group_by(s.cameras.c.id, s.cameras.c.name).order_by(s.cameras.c.name)).all()
    return [{"id": i, "name": n, "recordings": recs.get(i, 0), "tracks": c, "first": iso(a), "last": iso(b)}
            for i, n, c, a, b in rows]


def recordings(eng: sa.Engine) -> list[dict]:
    with eng.connect() as conn:
        rows = conn.execute(
            sa.select(s.recordings.c.input, s.cameras.c.name, sa.func.count(sa.distinct(s.runs.c.id)),
                      sa.func.count(s.tracks.c.id))
            .select_from(s.recordings.join(s.cameras, s.cameras.c.id == s.recordings.c.camera_id)
                         .outerjoin(s.runs, s.runs.c.recording_id == s.recordings.c.id)
                         .outerjoin(s.tracks, s.tracks.c.run_id == s.runs.c.id))
            .group_by(s.recordings.c.id, s.recordings.c.input, s.cameras.c.name).order_by(s.recordings.c.input)).all()
    return [{"input": i, "camera": c, "runs": r, "tracks": t} for i, c, r, t in rows]


def camera_tracks(eng: sa.Engine, camera_id: int, filters: Filters, limit: int = 500) -> tuple[dict | None, list[dict]]:
    """A camera and its tracks (newest first), with where each sits on the span shown (a timeline)."""
    with eng.connect() as conn:
        cam = conn.execute(sa.select(s.cameras.c.id, s.cameras.c.name).where(s.cameras.c.id == camera_id)).first()
        if cam is None:
            return None, []
        q = filters.where(sa.select(s.tracks.c.id, s.tracks.c.track_no, s.tracks.c.first_at, s.tracks.c.last_at,
                                    s.tracks.c.n_observations, s.tracks.c.n_enhanced, s.tracks.c.person,
                                    s.tracks.c.open, s.tracks.c.confidence)
                          .select_from(s.tracks.join(s.cameras, s.cameras.c.id == s.tracks.c.camera_id))
                          .where(s.tracks.c.camera_id == camera_id), conn).order_by(s.tracks.c.first_at.desc()).limit(limit)
        rows = conn.execute(q).mappings().all()
    lo = min((r["first_at"] for r in rows), default=0.0)
    hi = max((r["last_at"] for r in rows), default=1.0)
    span = max(hi - lo, 1e-6)
    tracks = [{**r, "first": iso(r["first_at"]), "last": iso(r["last_at"]),
               "left": round(100 * (r["first_at"] - lo) / span, 2),
               "width": round(max(100 * (r["last_at"] - r["first_at"]) / span, 0.5), 2)} for r in rows]
    return {"id": cam[0], "name": cam[1]}, tracks


def track(eng: sa.Engine, track_id: int) -> dict | None:
    """A track with its run, its tiles paired per observation (camera crop beside the enhanced one)."""
    with eng.connect() as conn:
        row = conn.execute(
            sa.select(s.tracks, s.cameras.c.name.label("camera"), s.runs.c.folder, s.runs.c.status,
                      s.runs.c.identity, s.runs.c.weights_sha256, s.runs.c.version, s.recordings.c.input)
            .select_from(s.tracks.join(s.cameras, s.cameras.c.id == s.tracks.c.camera_id)
                         .join(s.runs, s.runs.c.id == s.tracks.c.run_id)
                         .join(s.recordings, s.recordings.c.id == s.runs.c.recording_id))
            .where(s.tracks.c.id == track_id)).mappings().first()
        if row is None:
            return None
        tiles = conn.execute(
            sa.select(s.tiles.c.id, s.tiles.c.kind, s.tiles.c.path, s.tiles.c.provenance, s.observations.c.frame,
                      s.observations.c.time, s.observations.c.confidence, s.observations.c.size)
            .select_from(s.tiles.outerjoin(s.observations, s.observations.c.id == s.tiles.c.observation_id))
            .where(s.tiles.c.track_id == track_id).order_by(s.tiles.c.id)).mappings().all()
    pairs: dict[int, dict] = {}
    best = None
    for t in tiles:
        if t["kind"] == "best":
            best = t["id"]
            continue
        if t["frame"] is None:
            continue
        p = pairs.setdefault(t["frame"], {"frame": t["frame"], "time": t["time"], "confidence": t["confidence"],
                                          "size": t["size"], "tiles": {}, "provenance": None})
        p["tiles"][t["kind"]] = t["id"]
        if t["kind"] == "enhanced" and isinstance(t["provenance"], dict):
            prov = t["provenance"]
            gen = prov.get("generator") if isinstance(prov.get("generator"), dict) else {}
            p["provenance"] = {"description": str(prov.get("description", "")), "software": str(prov.get("software", "")),
                               "generator": f"{gen.get('name', '?')} (sha256 {str(gen.get('sha256', ''))[:16]}…)"}
    return {**dict(row), "first": iso(row["first_at"]), "last": iso(row["last_at"]),
            "pairs": sorted(pairs.values(), key=lambda p: p["frame"]), "best": best}


def tile(eng: sa.Engine, tile_id: int) -> tuple[str, str] | None:
    """(the run's folder, the tile's path within it)."""
    with eng.connect() as conn:
        return conn.execute(sa.select(s.runs.c.folder, s.tiles.c.path)
                            .select_from(s.tiles.join(s.tracks, s.tracks.c.id == s.tiles.c.track_id)
                                         .join(s.runs, s.runs.c.id == s.tracks.c.run_id))
                            .where(s.tiles.c.id == tile_id)).first()


def run_folder(eng: sa.Engine, run_id: int) -> str | None:
    with eng.connect() as conn:
        return conn.execute(sa.select(s.runs.c.folder).where(s.runs.c.id == run_id)).scalar()
