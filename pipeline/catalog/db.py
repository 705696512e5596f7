"""Where the catalogue is and how it is opened: the URL, the engine, the schema brought up to date.

`--catalog` takes a SQLite file path (or `sqlite:///…`) or a `postgresql://…` URL. Without one: $ENHANCE_CATALOG,
else `catalog.sqlite` in the user's data folder (platformdirs: ~/.local/share/enhance-faces/ on Linux).
`${VAR}` placeholders are filled from the environment (a password belongs there) and every URL shown to a
person has its password as *** (`shown`). SQLite runs in WAL mode (readers never block the writer; a process
killed mid-transaction leaves the last committed state) with foreign keys on; PostgreSQL goes through
psycopg 3. Opening migrates the schema to the newest revision (Alembic), under a lock so that several
writers starting at once migrate it once.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from pathlib import Path
from typing import Iterator

from ..core.errors import ConfigError, EnhanceError
from ..core.text import expand_env, shown_url

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")
HEAD = "0003"  # the newest schema revision (migrations/versions)
PG_LOCK = 0x656E6863  # advisory lock key held while PostgreSQL's schema is migrated


class CatalogError(EnhanceError):
    """The catalogue cannot be opened, read or written."""


def default_url() -> str:
    """$ENHANCE_CATALOG, else catalog.sqlite in the user's data folder."""
    env = os.environ.get("ENHANCE_CATALOG")
    if env:
        return env
    from platformdirs import user_data_path

    return str(user_data_path("enhance-faces") / "catalog.sqlite")


def resolve(url: str | None) -> tuple[str, list[str]]:
    """The SQLAlchemy URL for a `--catalog` value (a path, sqlite:///…, postgresql://…) and the secrets in it."""
    text, secrets = expand_env((url or default_url()).strip(), "the catalog URL")
    if "://" not in text:
        path = Path(text).expanduser()
        return f"sqlite:///{path.resolve()}", secrets
    scheme, _, rest = text.partition("://")
    if scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        return f"postgresql+psycopg://{rest}", secrets
    if scheme == "sqlite":
        return text, secrets
    raise ConfigError(f"catalog URL: unknown scheme {scheme!r} (a file path, sqlite:///FILE or postgresql://…)")


def shown(url: str | None) -> str:
    """A catalogue URL fit to print: any password written into it is ***."""
    return shown_url(url or default_url())


def _sqlite_path(url: str) -> Path | None:
    return Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None


def engine(url: str | None):
    """An engine on the catalogue, its schema migrated to HEAD; CatalogError (password hidden) when it fails."""
    import sqlalchemy as sa
    from sqlalchemy import event

    real, secrets = resolve(url)
    path = _sqlite_path(real)
    try:
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            eng = sa.create_engine(real, connect_args={"timeout": 60})

            @event.listens_for(eng, "connect")
            def _pragmas(dbapi, _record) -> None:  # every connection: WAL, foreign keys, wait for the lock
                cur = dbapi.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA foreign_keys=ON")
                cur.execute("PRAGMA synchronous=NORMAL")
                cur.execute("PRAGMA busy_timeout=60000")
                cur.close()
        else:
            eng = sa.create_engine(real, pool_pre_ping=True)
        migrate(eng, path)
    except (sa.exc.SQLAlchemyError, OSError) as e:
        text = str(getattr(e, "orig", None) or e).splitlines()[0]
        for s in secrets:
            text = text.replace(s, "***")
        raise CatalogError(f"cannot open the catalog {shown(url)}: {text}") from None
    return eng


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with open(path.with_name(path.name + ".lock"), "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def vector_cache(eng) -> Path:
    """Where a one-shot process (`enhance-faces search`) keeps this catalogue's track embeddings between calls
    (`search.Index`): the user's cache folder, one file per catalogue, named by a hash of its URL (password
    hidden). Erasure (`query.forget`, `query.prune`) removes it with the rows."""
    import hashlib

    from platformdirs import user_cache_path

    key = hashlib.sha256(eng.url.render_as_string(hide_password=True).encode()).hexdigest()[:16]
    return user_cache_path("enhance-faces") / f"vectors-{key}.npz"


def drop_vector_cache(eng) -> None:
    with contextlib.suppress(OSError):
        vector_cache(eng).unlink(missing_ok=True)


def write_lock(eng) -> contextlib.AbstractContextManager:
    """Around a write transaction: on SQLite an exclusive lock on `<file>.lock`, so that writers in several
    processes queue in the kernel and each is woken the moment the last one commits, instead of polling
    SQLite's own lock with growing sleeps; elsewhere nothing (PostgreSQL has row locks)."""
    path = _sqlite_path(str(eng.url)) if eng.dialect.name == "sqlite" else None
    return _file_lock(path) if path is not None else contextlib.nullcontext()


def revision(eng) -> str | None:
    """The schema revision the catalogue is at (None: empty)."""
    from alembic.runtime.migration import MigrationContext

    with eng.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def migrate(eng, sqlite_file: Path | None = None, to: str = "head") -> None:
    """Bring the schema to revision `to` (Alembic); nothing to do when it is there already."""
    if to == "head" and revision(eng) == HEAD:
        return
    from alembic import command
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    lock = _file_lock(sqlite_file) if sqlite_file is not None else contextlib.nullcontext()
    with lock, eng.begin() as conn:
        if eng.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({PG_LOCK})")
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, to)
    log.debug("catalog schema at %s", to)
