"""The catalogue's tables (SQLAlchemy Core): what every run saw, one row per thing.

cameras ← recordings ← runs ← tracks ← observations, tiles, embeddings; and the audit log of searches.
Times a person reads are UNIX seconds (`*_at`, floats: the same on SQLite and PostgreSQL, indexable, no
time-zone ambiguity); times within a stream (`first_time`, `time`) are the stream's own seconds. Deleting a
run or a track deletes what hangs off it (ON DELETE CASCADE; SQLite gets `PRAGMA foreign_keys=ON` from
`pipeline.catalog.db`). Alembic owns the schema's history (`pipeline/catalog/migrations`): a change here
needs a new revision there, and `tests/test_catalog.py` checks the two agree.
"""

from __future__ import annotations

from sqlalchemy import (
                        JSON,
                        BigInteger,
                        Boolean,
                        Column,
                        Float,
                        ForeignKey,
                        Index,
                        Integer,
                        LargeBinary,
                        MetaData,
                        String,
                        Table,
                        Text,
                        UniqueConstraint,
)

metadata = MetaData()

cameras = Table(
    "cameras", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(255), nullable=False, unique=True),  # the source's name (a camera's, a file's)
)

recordings = Table(
    "recordings", metadata,
    Column("id", Integer, primary_key=True),
    Column("camera_id", Integer, ForeignKey("cameras.id", ondelete="CASCADE"), nullable=False),
    Column("input", Text, nullable=False),  # path as given, or a camera URL with any password as ***
    Column("size", BigInteger, nullable=False, default=-1),  # bytes (-1: not a file, or not found)
    Column("mtime", Float, nullable=False, default=0.0),
    UniqueConstraint("input", "size", "mtime", name="uq_recording"),
)

runs = Table(
    "runs", metadata,
    Column("id", Integer, primary_key=True),
    Column("recording_id", Integer, ForeignKey("recordings.id", ondelete="CASCADE"), nullable=False),
    Column("folder", Text, nullable=False),  # the run's output folder (absolute): the root its files are under
    Column("started", String(40), nullable=False),  # manifest "started": with `folder`, which run this is
    Column("identity", String(64), nullable=False),  # sha256 of the run identity (input, settings, weights, version)
    Column("settings_sha256", String(64), nullable=False),
    Column("weights_sha256", String(64), nullable=False),  # the generator's ("" when nothing was enhanced)
    Column("version", String(40), nullable=False),
    Column("status", String(40), nullable=False),  # the manifest's: running, complete, crashed, …
    Column("started_at", Float, nullable=False),
    Column("added_at", Float, nullable=False),
    UniqueConstraint("folder", "started", name="uq_run"),
)
Index("ix_runs_identity", runs.c.identity)

tracks = Table(
    "tracks", metadata,
    Column("id", Integer, primary_key=True),
    Column("run_id", Integer, ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("camera_id", Integer, ForeignKey("cameras.id", ondelete="CASCADE"), nullable=False),
    Column("track_no", Integer, nullable=False),  # the run's own track id (tracks/<track_no>/)
    Column("first_frame", Integer), Column("last_frame", Integer),
    Column("first_time", Float), Column("last_time", Float),  # stream seconds
    Column("first_at", Float, nullable=False), Column("last_at", Float, nullable=False),  # UNIX seconds
    Column("n_observations", Integer, nullable=False, default=0),
    Column("n_enhanced", Integer, nullable=False, default=0),
    Column("best_tile", Text),  # relative to the run's folder
    Column("confidence", Float),  # the best enhanced observation's
    Column("person", String(64)),  # the run's people grouping (people.json), e.g. "P3"
    Column("open", Boolean, nullable=False, default=False),  # still open when its run died: no observations
    Column("embedding", LargeBinary),  # float32[128], unit length: quality-weighted mean of `embeddings`
    Column("embedded_px", Float),  # median face size (px) behind it
    UniqueConstraint("run_id", "track_no", name="uq_track"),
)
Index("ix_tracks_camera_time", tracks.c.camera_id, tracks.c.first_at)
Index("ix_tracks_time", tracks.c.first_at)
SPAN = tracks.c.last_at - tracks.c.first_at  # a track's span; its index makes the longest one a lookup
Index("ix_tracks_span", SPAN)

observations = Table(
    "observations", metadata,
    Column("id", Integer, primary_key=True),
    Column("track_id", Integer, ForeignKey("tracks.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("frame", Integer, nullable=False),
    Column("time", Float, nullable=False),
    Column("at", Float),  # live sources: when the frame was received (UNIX seconds)
    Column("box", JSON, nullable=False),  # x1, y1, x2, y2 in source pixels
    Column("kps", JSON),  # 5 keypoints in source pixels
    Column("matrix", JSON),  # source → 128 crop
    Column("score", Float, nullable=False),
    Column("quality", Float, nullable=False),
    Column("size", Float, nullable=False),  # the box's longer side, px
    Column("entry", Integer, nullable=False),
    Column("enhanced", Boolean, nullable=False),
    Column("confidence", Float),
    Column("resolved", Boolean, nullable=False, default=False),
)

tiles = Table(
    "tiles", metadata,
    Column("id", Integer, primary_key=True),
    Column("track_id", Integer, ForeignKey("tracks.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("observation_id", Integer, ForeignKey("observations.id", ondelete="CASCADE")),
    Column("kind", String(40), nullable=False),  # original, lr, enhanced, enhanced_unmarked, best
    Column("path", Text, nullable=False),  # relative to the run's folder
    Column("provenance", JSON),  # the tile's sidecar record, when it has one
)

embeddings = Table(
    "embeddings", metadata,
    Column("id", Integer, primary_key=True),
    Column("track_id", Integer, ForeignKey("tracks.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("observation_id", Integer, ForeignKey("observations.id", ondelete="CASCADE")),
    Column("vector", LargeBinary, nullable=False),  # float32[128] of the camera's own crop, unit length
    Column("model", String(64), nullable=False),  # the recogniser's sha256
)

audit = Table(
    "audit", metadata,
    Column("id", Integer, primary_key=True),
    Column("at", Float, nullable=False),
    Column("who", String(255), nullable=False),  # "cli:<user>" or "web:<address>"
    Column("kind", String(40), nullable=False),  # face, track
    Column("detail", JSON),  # filters and top N; never the probe's pixels
)
