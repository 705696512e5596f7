"""An index on each track's span (last_at - first_at): the longest span bounds a time search's window."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_tracks_span", "tracks", [sa.text("(last_at - first_at)")])


def downgrade() -> None:
    op.drop_index("ix_tracks_span", "tracks")
