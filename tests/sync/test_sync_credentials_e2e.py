"""`lockr-local sync` with what `lockr-local login` saved: the keyring's token, the saved endpoint, and
its state kept outside the synced folder by default.

A real server (the app in a thread), real `lockr-local login` / `sync` subprocesses with a temporary
HOME and XDG folders and a file-backed test keyring (tests/file_keyring.py), no LOCKR_* variables.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO, Account, ThreadedServer, clean_env, create_account
from tests.sync.support import assert_mirrored, local_tree, remote_tree, write


class Desktop:
    """A user's session: HOME, the XDG folders and a keyring, and the CLI run in it."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.keyring_file = home / "keyring.json"
        self.env = clean_env(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"),
                             XDG_STATE_HOME=str(home / ".local" / "state"), XDG_DATA_HOME=str(home / ".local" / "share"),
                             PYTHONPATH=str(REPO), PYTHON_KEYRING_BACKEND="tests.file_keyring.FileKeyring",
                             TEST_KEYRING_FILE=str(self.keyring_file))

    def run(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "lockr_local", *args], capture_output=True, text=True,
                              input=input, env=self.env, cwd=REPO, timeout=120)

    def login(self, url: str, account: Account) -> None:
        done = self.run("login", "--endpoint", url, "--identifier", account.username, "--password-stdin",
                        input=account.password + "\n")
        assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("where", ["beside-home", "home-itself"])
def test_sync_uses_the_login_token_from_the_keyring_and_keeps_its_state_outside_the_folder(
        server: ThreadedServer, tmp_path: Path, where: str) -> None:
    """No LOCKR_TOKEN, no --endpoint, no LOCKR_SYNC_STATE_DIR: the endpoint saved by login and the token it
    put in the keyring are used, and the state database goes to the user's state folder, never into the
    synced tree, even when the synced folder is HOME itself (which contains that state folder)."""
    home = tmp_path / "home"
    home.mkdir()
    desktop = Desktop(home)
    account = create_account(server.url)
    desktop.login(server.url, account)
    assert any(server.url in key for key in json.loads(desktop.keyring_file.read_text()))
    folder = home if where == "home-itself" else tmp_path / "documents"
    write(folder / "report.txt", "quarterly numbers")
    write(folder / "photos" / "cat.jpg", b"\xff\xd8 not really a jpeg")

    first = desktop.run("sync", str(folder), "--once")
    assert first.returncode == 0, first.stderr
    state_dir = home / ".local" / "state" / "lockr-local" / "sync"
    assert list(state_dir.glob("*.db")), "no state database in the user's state folder"
    state = ".local/state/lockr-local/"
    synced = set(remote_tree(server.url, account, under=folder.name))
    assert synced == {path for path in local_tree(folder) if not path.startswith(state)}
    assert {"report.txt", "photos/cat.jpg"} <= synced and not any(path.startswith(state) for path in synced)
    # A second run finds nothing to do (the agent's own database changed meanwhile: it is not synced).
    second = desktop.run("sync", str(folder), "--once")
    assert second.returncode == 0, second.stderr
    assert set(remote_tree(server.url, account, under=folder.name)) == synced
    if where == "beside-home":
        assert_mirrored(server.url, account, folder, under=folder.name)
        assert synced == {"report.txt", "photos/cat.jpg"}  # no state file inside FOLDER
