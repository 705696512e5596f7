"""Alembic's environment: the connection comes from `pipeline.catalog.db.migrate` (never a URL in a file)."""

from __future__ import annotations

from alembic import context

from pipeline.catalog.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
