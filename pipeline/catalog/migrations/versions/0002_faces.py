"""Face embeddings of the camera's crops (per crop, and a track's mean), and the audit log of searches."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tracks") as t:
        t.add_column(sa.Column("embedding", sa.LargeBinary))
        t.add_column(sa.Column("embedded_px", sa.Float))
    op.create_table("embeddings",
                    sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("track_id", sa.Integer, sa.ForeignKey("tracks.id", ondelete="CASCADE"), nullable=False),
                    sa.Column("observation_id", sa.Integer, sa.ForeignKey("observations.id", ondelete="CASCADE")),
                    sa.Column("vector", sa.LargeBinary, nullable=False),
                    sa.Column("model", sa.String(64), nullable=False))
    op.create_index("ix_embeddings_track_id", "embeddings", ["track_id"])
    op.create_table("audit",
                    sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("at", sa.Float, nullable=False),
                    sa.Column("who", sa.String(255), nullable=False),
                    sa.Column("kind", sa.String(40), nullable=False),
                    sa.Column("detail", sa.JSON))


def downgrade() -> None:
    op.drop_table("audit")
    op.drop_table("embeddings")
    with op.batch_alter_table("tracks") as t:
        t.drop_column("embedded_px")
        t.drop_column("embedding")
