"""Cameras, recordings, runs, tracks, observations and tiles."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("cameras",
                    sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("name", sa.String(255), nullable=False, unique=True))
    op.create_table("recordings",
                    sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("camera_id", sa.Integer, sa.ForeignKey("cameras.id", ondelete="CASCADE"), nullable=False),
                    sa.Column("input", sa.Text, nullable=False),
                    sa.Column("size", sa.BigInteger, nullable=False),
                    sa.Column("mtime", sa.Float, nullable=False),
                    sa.UniqueConstraint("input", "size", "mtime", name="uq_recording"))
    op.create_table("runs",
                    sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("recording_id", sa.Integer, sa.ForeignKey("recordings.id", ondelete="CASCADE"),
                              nullable=False),
                    sa.Column("folder", sa.Text, nullable=False),
                    sa.Column("started", sa.String(40), nullable=False),
                    sa.Column("identity", sa.String(64), nullable=False),
                    sa.Column("settings_sha256", sa.String(64), nullable=False),
                    sa.Column("weights_sha256", sa.String(64), nullable=False),
                    sa.Column("version", sa.String(40), nullable=False),
                    sa.Column("status", sa.String(40), nullable=False),
                    sa.Column("started_at", sa.Float, nullable=False),
                    sa.Column("added_at", sa.Float, nullable=False),
                    sa.UniqueConstraint("folder", "started", name="uq_run"))
    op.create_index("ix_runs_identity", "runs", ["identity"])
    op.create_table("tracks",
                    sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
                    sa.Column("camera_id", sa.Integer, sa.ForeignKey("cameras.id", ondelete="CASCADE"), nullable=False),
                    sa.Column("track_no", sa.Integer, nullable=False),
                    sa.Column("first_frame", sa.Integer), sa.Column("last_frame", sa.Integer),
                    sa.Column("first_time", sa.Float), sa.Column("last_time", sa.Float),
                    sa.Column("first_at", sa.Float, nullable=False), sa.Column("last_at", sa.Float, nullable=False),
                    sa.Column("n_observations", sa.Integer, nullable=False),
                    sa.Column("n_enhanced", sa.Integer, nullable=False),
                    sa.Column("best_tile", sa.Text),
                    sa.Column("confidence", sa.Float),
                    sa.Column("person", sa.String(64)),
                    sa.Column("open", sa.Boolean, nullable=False),
                    sa.UniqueConstraint("run_id", "track_no", name="uq_track"))
    op.create_index("ix_tracks_camera_time", "tracks", ["camera_id", "first_at"])
    op.create_index("ix_tracks_time", "tracks", ["first_at"])
    op.create_table("observations",
                    sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("track_id", sa.Integer, sa.ForeignKey("tracks.id", ondelete="CASCADE"), nullable=False),
                    sa.Column("frame", sa.Integer, nullable=False),
                    sa.Column("time", sa.Float, nullable=False),
                    sa.Column("at", sa.Float),
                    sa.Column("box", sa.JSON, nullable=False),
                    sa.Column("kps", sa.JSON),
                    sa.Column("matrix", sa.JSON),
                    sa.Column("score", sa.Float, nullable=False),
                    sa.Column("quality", sa.Float, nullable=False),
                    sa.Column("size", sa.Float, nullable=False),
                    sa.Column("entry", sa.Integer, nullable=False),
                    sa.Column("enhanced", sa.Boolean, nullable=False),
                    sa.Column("confidence", sa.Float),
                    sa.Column("resolved", sa.Boolean, nullable=False))
    op.create_index("ix_observations_track_id", "observations", ["track_id"])
    op.create_table("tiles",
                    sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("track_id", sa.Integer, sa.ForeignKey("tracks.id", ondelete="CASCADE"), nullable=False),
                    sa.Column("observation_id", sa.Integer, sa.ForeignKey("observations.id", ondelete="CASCADE")),
                    sa.Column("kind", sa.String(40), nullable=False),
                    sa.Column("path", sa.Text, nullable=False),
                    sa.Column("provenance", sa.JSON))
    op.create_index("ix_tiles_track_id", "tiles", ["track_id"])


def downgrade() -> None:
    for table in ("tiles", "observations", "tracks", "runs", "recordings", "cameras"):
        op.drop_table(table)
