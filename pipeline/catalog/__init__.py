"""The catalogue: every track every run saw, in one database (SQLite by default, PostgreSQL for a fleet).

`db` opens it (URL, engine, migrations), `schema` holds its tables, `ingest` writes runs and tracks, `sink`
writes a running run's tracks as they finish, `query` answers stats and removes what must go, `search` ranks
tracks by face, `web` serves the page. Needs the `catalog` extra (SQLAlchemy, Alembic, psycopg).
"""
