"""A private PostgreSQL cluster for the tests: Debian's server binaries, a cluster made by initdb in a
temporary folder, listening on a free loopback port, run as an unprivileged user when the tests run as
root (the server refuses to run as root), and a fresh database for each test that asks for one."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import threading
from itertools import count
from pathlib import Path
from typing import Any

from tests.helpers import wait_for
from tests.nginx import free_port

# The role the tests connect as (trust authentication on loopback only: the cluster is private).
ROLE = "lockr"


def postgres_bin_dir() -> Path | None:
    """Debian's versioned server binaries (initdb is not on PATH there), the newest; None when absent."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parent.parent.name))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class PostgresCluster:
    """initdb + postgres in a temporary folder; `create_database()` gives a fresh database's URL. `durable`
    keeps PostgreSQL's own durability settings (fsync, synchronous commits) on, as on a real server (the
    benchmarks); the tests turn them off."""

    def __init__(self, bin_dir: Path, durable: bool = False) -> None:
        self.bin_dir = bin_dir
        self.durable = durable
        # Not under pytest's tmp_path: that is 0700 to root, and the server's user must reach its folder.
        self.folder = Path(tempfile.mkdtemp(prefix="lockr-pg-"))
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._names = count(1)
        self._lock = threading.RLock()
        self._admin: Any = None
        self._template: str | None = None
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            os.chown(self.folder, nobody.pw_uid, nobody.pw_gid)
            self._as_user = ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups", "--"]

    def _run(self, *args: str) -> None:
        result = subprocess.run([*self._as_user, *args], capture_output=True, text=True, cwd=self.folder)
        assert result.returncode == 0, f"{args[0]} failed: {result.stdout}{result.stderr}"

    def start(self) -> "PostgresCluster":
        data = self.folder / "data"
        self._run(str(self.bin_dir / "initdb"), "-D", str(data), "-U", ROLE, "--auth=trust", "--encoding=UTF8",
                  "--locale=C.UTF-8", "--no-sync")
        # fsync off (unless durable): a test cluster is thrown away, and CREATE DATABASE per test must be quick.
        fast = [] if self.durable else ["-c", "fsync=off", "-c", "full_page_writes=off", "-c", "synchronous_commit=off"]
        self.proc = subprocess.Popen(
            [*self._as_user, str(self.bin_dir / "postgres"), "-D", str(data), "-p", str(self.port),
             "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.folder}", *fast,
             "-c", "max_connections=200", "-c", "shared_buffers=32MB", "-c", "log_min_messages=fatal"],
            stdout=subprocess.DEVNULL, stderr=open(self.folder / "server.log", "wb"), cwd=self.folder)
        wait_for(lambda: self._ready() or self.proc.poll() is not None, timeout=60, interval=0.1,
                 message="PostgreSQL to accept connections")
        assert self.proc.poll() is None, f"postgres did not start: {(self.folder / 'server.log').read_text()}"
        return self

    def _ready(self) -> bool:
        """Accepting connections (pg_isready: listening alone is not enough while it starts up)."""
        return subprocess.run([str(self.bin_dir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)],
                              capture_output=True).returncode == 0

    def url(self, name: str) -> str:
        return f"postgresql://{ROLE}@127.0.0.1:{self.port}/{name}"

    def sql(self, statement: str) -> None:
        """Runs one statement on the `postgres` database, outside any transaction (as CREATE DATABASE
        needs), on one connection kept for the run (a psql per statement cost more than the statement)."""
        import psycopg

        with self._lock:
            if self._admin is None:
                self._admin = psycopg.connect(self.url("postgres"), autocommit=True)
            self._admin.execute(statement)

    def create_database(self, *, empty: bool = False) -> str:
        """A new database; its collation is ICU's English, not byte order, as on most servers (so a query
        that relies on byte-wise string order fails here too). Unless `empty`, a copy of a template that
        the server has already given its tables (open_database, once per run), which is quicker than
        making them again for every test; the server then checks and opens that schema as at any start."""
        name = f"lockr_test_{os.getpid()}_{next(self._names)}"
        if empty:
            self.sql(f"CREATE DATABASE {name} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' "
                     "LOCALE 'C.UTF-8'")
            return name
        with self._lock:
            if self._template is None:
                template = self.create_database(empty=True)
                from lockr_local.server.models import open_database

                open_database(self.url(template)).close()
                self._template = template
        self.sql(f"CREATE DATABASE {name} TEMPLATE {self._template}")
        return name

    def drop_database(self, name: str) -> None:
        self.sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def stop(self) -> None:
        if self._admin is not None:
            self._admin.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown: SIGTERM's smart one waits for every client
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.folder, ignore_errors=True)
