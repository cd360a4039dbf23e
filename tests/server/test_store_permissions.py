"""The store is its owner's alone whatever the umask: the data folder 0700, the database (with its -wal and
-shm), the secret, the lock and every blob 0600; `fsck` reports and repairs a looser store, `doctor`
explains it."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from tests.helpers import REPO, ServerProcess, clean_env, create_account, upload


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_0022() -> Iterator[None]:
    """The usual login umask (files 0644, folders 0755 by default); subprocesses inherit it."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lockr_local", *args], capture_output=True, text=True,
                          env=clean_env(**env), cwd=REPO, timeout=120)


def make_store(tmp_path: Path, **env: str) -> tuple[Path, list[str]]:
    """A store written by `lockr-local serve` under umask 0022: a small file (bytes in the database, so in
    the -wal) and a large one (a blob file); the server is stopped after."""
    data = tmp_path / "data"
    server = ServerProcess(data, env=env).start()
    try:
        account = create_account(server.url)
        ids = [upload(server.url, b"hello lockr", "small.txt", account=account).json()["id"],
               upload(server.url, os.urandom(300_000), "large.bin", account=account).json()["id"]]
        # While it runs, the -wal and -shm files exist: check them here, before a clean stop folds them in.
        for suffix in ("-wal", "-shm"):
            assert mode(data / f"lockr.db{suffix}") == 0o600, suffix
    finally:
        server.stop()
    return data, ids


def test_a_store_made_under_umask_0022_is_private(tmp_path: Path, umask_0022: None) -> None:
    data, ids = make_store(tmp_path)
    assert mode(data) == 0o700
    assert mode(data / "blobs") == 0o700
    files = [p for p in data.rglob("*") if p.is_file()]
    assert {"lockr.db", "secret.key", "lockr.lock"} <= {p.name for p in files}
    assert any(p.name == ids[1] for p in files)  # the large file's blob
    assert {p.relative_to(data).as_posix(): oct(mode(p)) for p in files if mode(p) != 0o600} == {}
    assert run_cli("fsck", "--data-dir", str(data)).returncode == 0


def test_a_region_outside_the_data_folder_is_made_private_too(tmp_path: Path, umask_0022: None) -> None:
    region = tmp_path / "elsewhere" / "region"
    data, ids = make_store(tmp_path, LOCKR_REGIONS=f"local={region}")
    assert mode(region) == 0o700
    blob = next(p for p in region.rglob(ids[1]))
    assert mode(blob) == 0o600


@pytest.mark.parametrize("loosen", ["data folder", "database", "blob", "secret"])
def test_fsck_reports_a_store_others_can_read_and_the_command_that_fixes_it(tmp_path: Path, umask_0022: None,
                                                                           loosen: str) -> None:
    data, ids = make_store(tmp_path)
    target = {"data folder": data, "database": data / "lockr.db", "secret": data / "secret.key",
              "blob": next(p for p in data.rglob(ids[1]))}[loosen]
    target.chmod(0o755 if target.is_dir() else 0o644)

    report = run_cli("fsck", "--data-dir", str(data))
    assert report.returncode == 1
    expected = f"folder {target} is 0755, should be 0700" if target.is_dir() else f"file {target} is 0644, should be 0600"
    assert f"PERMISSIONS {expected}: other local users can read it" in report.stdout, report.stdout
    fix = f"chmod -R go-rwx '{data}'"
    assert fix in report.stdout

    subprocess.run(fix, shell=True, check=True)
    assert run_cli("fsck", "--data-dir", str(data)).returncode == 0


def test_fsck_repair_makes_the_store_private(tmp_path: Path, umask_0022: None) -> None:
    data, _ids = make_store(tmp_path)
    data.chmod(0o755)
    (data / "lockr.db").chmod(0o644)
    repaired = run_cli("fsck", "--repair", "--data-dir", str(data))
    # The folder, the database, and the -wal/-shm files SQLite gave the database's mode when fsck opened it.
    assert "repaired: made 4 folders and files private (0700/0600)" in repaired.stdout, repaired.stdout
    assert mode(data) == 0o700
    assert {p.name: oct(mode(p)) for p in data.rglob("*") if p.is_file() and mode(p) != 0o600} == {}
    assert run_cli("fsck", "--data-dir", str(data)).returncode == 0


def test_doctor_explains_a_store_others_can_read(tmp_path: Path, umask_0022: None) -> None:
    data, _ids = make_store(tmp_path)
    home = {"HOME": str(tmp_path / "home"), "XDG_CONFIG_HOME": str(tmp_path / "home" / "config"),
            "XDG_STATE_HOME": str(tmp_path / "home" / "state"), "LOCKR_DATA_DIR": str(data),
            "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
    private = run_cli("doctor", **home)
    assert "store access:" in private.stdout and "private (owner only)" in private.stdout, private.stdout

    (data / "lockr.db").chmod(0o644)
    data.chmod(0o755)
    opened = run_cli("doctor", **home)
    assert "OPEN to other local users" in opened.stdout, opened.stdout
    assert f"file {data / 'lockr.db'} is 0644, should be 0600" in opened.stdout
    assert f"chmod -R go-rwx '{data}'" in opened.stdout
