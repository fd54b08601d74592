"""A real PostgreSQL (the Debian package's binaries) on loopback, in a throw-away data directory.

PostgreSQL refuses to run as root, so as root the server runs as the ``postgres`` user. Durability
is switched off (fsync, synchronous commit): these databases live for one test session.
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg

from tests.procs import Process, free_port, wait_until


def postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    return Path(found[-1]).parent if found else None


class PostgresServer:
    def __init__(self, bindir: Path):
        self.bindir = bindir
        self.dir = Path(tempfile.mkdtemp(prefix="llmwatch-pg-"))
        self.port = free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chmod(self.dir, 0o755)
            os.chown(self.dir, user.pw_uid, user.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        data = self.dir / "data"
        subprocess.run([*self.as_user, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
                        "--no-sync", "-E", "UTF8"], check=True, capture_output=True)
        log = self.dir / "postgres.log"  # written by this process, whoever runs the server
        self.process = Process([*self.as_user, str(bindir / "postgres"), "-D", str(data), "-p", str(self.port),
                                "-k", str(self.dir), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
                                "-c", "synchronous_commit=off", "-c", "full_page_writes=off"], log)
        wait_until(lambda: self._ready(), 60, "PostgreSQL accepting connections")

    def _ready(self) -> bool:
        if self.process.proc.poll() is not None:
            raise AssertionError(f"postgres exited:\n{self.process.log()}")
        try:
            psycopg.connect(self.dsn("postgres"), connect_timeout=2).close()
            return True
        except psycopg.OperationalError:
            return False

    def dsn(self, database: str, user: str = "postgres") -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.dsn(name)

    def stop(self) -> None:
        self.process.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


_shared: PostgresServer | None = None


def shared() -> PostgresServer:
    """One server per test session (starting one takes seconds), stopped when Python exits."""
    global _shared
    if _shared is None:
        bindir = postgres_bin()
        if bindir is None:
            raise RuntimeError("postgresql is not installed (scripts/test installs it as root with apt-get)")
        _shared = PostgresServer(bindir)
        atexit.register(_shared.stop)
    return _shared
