"""A store made by a newer version is refused by every command; an older one is saved before it is upgraded."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from lockr_local.server.models import SCHEMA_VERSION
from tests.helpers import REPO, ServerProcess, clean_env, create_account

NEWER = SCHEMA_VERSION + 4


def lockr(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lockr_local", *args], capture_output=True, text=True, input=stdin,
                          env=clean_env(), cwd=REPO, timeout=60)


def set_schema_version(data: Path, version: int) -> None:
    with sqlite3.connect(data / "lockr.db") as raw:
        raw.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version),))


def schema_version(database: Path) -> int:
    with sqlite3.connect(database) as raw:
        return int(raw.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])


@pytest.fixture(scope="module")
def newer_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("newer") / "data"
    server = ServerProcess(data).start()
    create_account(server.url, "nadia")
    server.stop()
    set_schema_version(data, NEWER)
    return data


@pytest.mark.parametrize("command", [
    ["serve", "--port", "0"],
    ["user", "list"],
    ["user", "add", "olga", "--email", "olga@example.com", "--password-stdin"],
    ["token", "create", "nadia"],
    ["fsck"],
    ["backup", "{tmp}/backup"],
    ["migrate", "--to-database-url", "postgresql://lockr@127.0.0.1:9/lockr", "--to-region", "local=s3://lockr-b/x"],
], ids=lambda command: " ".join(command[:2]))
def test_store_of_a_newer_version_is_refused_with_the_versions(newer_store, tmp_path, command):
    args = [part.replace("{tmp}", str(tmp_path)) for part in command]
    result = lockr(*args, "--data-dir", str(newer_store), stdin="a long password\n")
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"schema version {NEWER}, made by a newer lockr-local" in result.stderr
    assert f"knows schema {SCHEMA_VERSION}" in result.stderr and "Traceback" not in result.stderr
    assert "listening" not in result.stdout
    assert schema_version(newer_store / "lockr.db") == NEWER
    assert not (tmp_path / "backup" / "backup.json").exists()


def test_older_store_is_saved_before_serve_upgrades_it(tmp_path):
    data = tmp_path / "data"
    server = ServerProcess(data).start()
    create_account(server.url, "oscar")
    server.stop()
    set_schema_version(data, SCHEMA_VERSION - 1)

    server = ServerProcess(data).start()
    assert server.proc is not None
    server.proc.send_signal(signal.SIGTERM)
    _, stderr = server.proc.communicate(timeout=30)
    server.proc = None

    saved = list((data / "backups").glob(f"lockr-schema-{SCHEMA_VERSION - 1}-*.db"))
    assert len(saved) == 1, list(data.iterdir())
    assert str(saved[0]) in stderr and "copy it over" in stderr
    assert schema_version(saved[0]) == SCHEMA_VERSION - 1
    with sqlite3.connect(saved[0]) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert raw.execute("SELECT username FROM account").fetchall() == [("oscar",)]
    assert saved[0].stat().st_mode & 0o077 == 0
    assert schema_version(data / "lockr.db") == SCHEMA_VERSION

    lockr("user", "list", "--data-dir", str(data))  # a current store: no second copy
    assert len(list((data / "backups").iterdir())) == 1
