"""A throw-away PostgreSQL cluster on 127.0.0.1 (Debian package `postgresql`), for the catalogue's tests.

    with Postgres() as pg:          # initdb + pg_ctl start on a free port, password authentication
        url = pg.url()              # postgresql://enhance:${ENHANCE_TEST_PGPASS}@127.0.0.1:PORT/postgres
    # stopped and removed

PostgreSQL refuses to run as root: the cluster then runs as the `postgres` user (runuser), in a folder of its
own under /tmp. `available()` says whether it can run here; tests skip with its reason.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

from .rtsp import free_port

BIN = Path("/usr/lib/postgresql")
PASSWORD_VAR = "ENHANCE_TEST_PGPASS"


def _bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(BIN.glob(f"*/bin/{name}"))
    return str(versions[-1]) if versions else None


@lru_cache(maxsize=1)
def available() -> tuple[bool, str]:
    if not _bin("initdb") or not _bin("pg_ctl"):
        return False, "PostgreSQL's initdb/pg_ctl not found (apt-get install -y postgresql)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return False, "running as root and there is no `postgres` user to run the server as"
    return True, ""


class Postgres:
    """`durable=False` (tests): no fsync, so throw-away data costs no disk flushes; benchmarks pass True."""

    def __init__(self, durable: bool = False) -> None:
        self.durable = durable
        self.password = secrets.token_hex(12)
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="enhance-pg-"))
        self.data = self.dir / "data"

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        cmd = list(args)
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True)

    def __enter__(self) -> "Postgres":
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.dir, user.pw_uid, user.pw_gid)
        self.dir.chmod(0o700)
        pwfile = self.dir / "pw"
        pwfile.write_text(self.password + "\n")
        if os.geteuid() == 0:
            os.chown(pwfile, pwd.getpwnam("postgres").pw_uid, -1)
        self._run(_bin("initdb"), "-D", str(self.data), "-U", "enhance", "--pwfile", str(pwfile),
                  "-A", "scram-sha-256", "-E", "UTF8", "--no-sync")
        pwfile.unlink()
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1" + ("" if self.durable else " -c fsync=off")
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "log"), "-o", opts, "-w", "start")
        os.environ[PASSWORD_VAR] = self.password
        return self

    def url(self) -> str:
        """The catalogue URL, its password a placeholder filled from the environment."""
        return f"postgresql://enhance:${{{PASSWORD_VAR}}}@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        try:
            self._run(_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            pass

    def __exit__(self, *exc: object) -> None:
        self.stop()
        os.environ.pop(PASSWORD_VAR, None)
        shutil.rmtree(self.dir, ignore_errors=True)
