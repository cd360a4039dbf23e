"""Every command that prints data takes --json and then prints exactly one JSON document on stdout (messages
stay on stderr). The commands come from the parser itself: a new command must be put in one of the tables
below, as printing data (with how to run it) or as printing none (with why)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import requests

from lockr_local.cli import build_parser
from lockr_local.commands.completion_cmds import walk
from tests.helpers import REPO, Account, ServerProcess, clean_env, create_account, upload


@dataclass
class World:
    """A running server on a store, an account with a file, a synced folder and a backup of the store."""

    data: Path
    server: ServerProcess
    account: Account
    file_id: str
    folder: Path
    backup: Path
    home: Path
    names: Iterator[int]

    def env(self) -> dict[str, str]:
        return clean_env(HOME=str(self.home), XDG_CONFIG_HOME=str(self.home / "config"),
                         XDG_STATE_HOME=str(self.home / "state"), XDG_DATA_HOME=str(self.home / "data"),
                         PYTHONPATH=str(REPO), PYTHON_KEYRING_BACKEND="tests.file_keyring.FileKeyring",
                         TEST_KEYRING_FILE=str(self.home / "keyring.json"), LOCKR_ENDPOINT=self.server.url,
                         LOCKR_TOKEN=self.account.token, LOCKR_SYNC_STATE_DIR=str(self.home / "sync-state"))

    def run(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "lockr_local", *args], input=stdin, capture_output=True,
                              text=True, timeout=120, env=self.env(), cwd=REPO)

    def fresh_file(self) -> str:
        return str(upload(self.server.url, b"to delete", f"fresh{next(self.names)}.txt", account=self.account)
                   .json()["id"])

    def guest_upload(self) -> dict[str, Any]:
        return dict(upload(self.server.url, b"from a guest", f"guest{next(self.names)}.txt").json())


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("json-commands")
    data = root / "data"
    server = ServerProcess(data).start()
    try:
        account = create_account(server.url, "jason")
        file_id = upload(server.url, b"kept", "kept.txt", account=account).json()["id"]
        upload(server.url, b"a guest's", "left.txt")  # a guest upload nobody registers, for guest list
        folder = root / "folder"
        (folder / "docs").mkdir(parents=True)
        (folder / "docs" / "b.txt").write_text("synced")
        home = root / "home"
        home.mkdir()
        made = World(data, server, account, file_id, folder, root / "backup", home, count())
        synced = made.run("sync", str(folder), "--once")
        assert synced.returncode == 0, synced.stderr
        backup = made.run("backup", str(made.backup), "--data-dir", str(data))
        assert backup.returncode == 0, backup.stderr
        yield made
    finally:
        server.stop()


Args = Callable[[World, Path], list[str]]

# (what the case shows, the command path as the parser names it, its arguments, the JSON type printed).
DATA_COMMANDS: list[tuple[str, str, Args, type]] = [
    ("ls", "ls", lambda w, tmp: ["ls"], list),
    ("upload", "upload", lambda w, tmp: ["upload", str(w.folder / "docs" / "b.txt"), "-q"], list),
    ("download", "download", lambda w, tmp: ["download", w.file_id, "-o", str(tmp), "-q"], dict),
    ("rm", "rm", lambda w, tmp: ["rm", w.fresh_file()], list),
    ("register", "register", lambda w, tmp: ["register", (g := w.guest_upload())["id"], "--claim", g["claimToken"]],
     dict),
    ("whoami", "whoami", lambda w, tmp: ["whoami"], dict),
    ("share", "share", lambda w, tmp: ["share", w.file_id], dict),
    ("sync --once", "sync", lambda w, tmp: ["sync", str(w.folder), "--once"], dict),
    ("sync --status", "sync", lambda w, tmp: ["sync", str(w.folder), "--status"], dict),
    ("doctor", "doctor", lambda w, tmp: ["doctor"], dict),
    ("user add", "user add", lambda w, tmp: ["user", "add", f"json{next(w.names)}", "--email",
                                             f"json{next(w.names)}@example.com", "--password-stdin",
                                             "--data-dir", str(w.data)], dict),
    ("user list", "user list", lambda w, tmp: ["user", "list", "--data-dir", str(w.data)], list),
    ("token create", "token create", lambda w, tmp: ["token", "create", "jason", "--expires", "7d",
                                                     "--data-dir", str(w.data)], dict),
    ("token list", "token list", lambda w, tmp: ["token", "list", "jason", "--data-dir", str(w.data)], list),
    ("fsck", "fsck", lambda w, tmp: ["fsck", "--data-dir", str(w.data)], dict),
    ("guest list", "guest list", lambda w, tmp: ["guest", "list", "--data-dir", str(w.data)], list),
    ("trash list", "trash list", lambda w, tmp: ["trash", "list"], list),
    ("restore", "restore", lambda w, tmp: ["restore", str(w.backup), "--data-dir", str(tmp / "restored")], dict),
]

# Commands that print no data to parse, and why.
NO_DATA_COMMANDS = {
    "serve": "runs the server; prints only the URL it listens on",
    "tray": "the desktop app",
    "completion": "prints a shell script for the shell to read",
    "rclone-config": "prints an rclone remote section, the format rclone reads",
    "backup": "copies the store; its messages go to stderr",
    "login": "messages only (the token goes to the keyring)",
    "logout": "messages only",
    "key": "messages only",
    "user passwd": "messages only",
    "user quota": "messages only",
    "user rename": "messages only",
    "user delete": "messages only",
    "token revoke": "messages only",
    "guest rm": "messages only",
    "trash restore": "messages only",
    "trash rm": "messages only",
    "trash empty": "messages only",
    # Its --json (the rows and blobs copied and the target's check) needs PostgreSQL: tests/test_migrate.py.
    "migrate": "tested with PostgreSQL in tests/test_migrate.py",
}


def leaf_commands() -> dict[str, list[str]]:
    """Every runnable command path of the parser, with its option flags."""
    return {node.path: [flag for option in node.options for flag in option.flags]
            for node in walk(build_parser()) if node.path and not node.subcommands}


def test_every_command_is_in_one_of_the_tables() -> None:
    data = {path for _, path, _, _ in DATA_COMMANDS}
    assert not data & set(NO_DATA_COMMANDS)
    assert set(leaf_commands()) == data | set(NO_DATA_COMMANDS)


@pytest.mark.parametrize("path", sorted({path for _, path, _, _ in DATA_COMMANDS}))
def test_each_data_command_accepts_json(path: str) -> None:
    assert "--json" in leaf_commands()[path]


@pytest.mark.parametrize("args,kind", [(args, kind) for _, _, args, kind in DATA_COMMANDS],
                         ids=[name for name, *_ in DATA_COMMANDS])
def test_each_data_command_prints_one_json_document(world: World, tmp_path: Path, args: Args, kind: type) -> None:
    result = world.run(*args(world, tmp_path), "--json", stdin="a long password\n")
    assert result.returncode == 0, result.stdout + result.stderr
    document = json.loads(result.stdout)  # the whole of stdout: one document, nothing before or after
    assert isinstance(document, kind), document
    assert document, "an empty answer shows nothing"


def test_rm_json_lists_the_deleted_files_even_when_another_target_fails(world: World) -> None:
    file_id = world.fresh_file()
    result = world.run("rm", file_id, "no-such-name.txt", "--json")
    assert result.returncode == 1
    assert json.loads(result.stdout) == [{"target": file_id, "id": file_id}]
    assert "no-such-name.txt" in result.stderr
    files = requests.get(f"{world.server.url}/api/v1/files", headers=world.account.auth, timeout=30).json()["files"]
    assert file_id not in {f["id"] for f in files}


def test_sync_json_without_status_or_once_is_refused(world: World) -> None:
    result = world.run("sync", str(world.folder), "--json")
    assert result.returncode == 2 and "--status or --once" in result.stderr and result.stdout == ""
