"""The commands that loop over items (`upload FILE...`, `rm ID...`) report a failed item and go on, but stop at
the first failure every next item would meet too (no connection, credentials refused): one helper decides."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import requests

from lockr_local.cli import ExitStatus
from lockr_local.commands.client_cmds import BatchStopped, item_failed
from lockr_local.errors import ConnectionFailed, LockrError, NotFound, QuotaExceeded, TokenExpired, Unauthorized
from tests.client.conftest import Cli
from tests.helpers import Account, ThreadedServer, upload


@pytest.mark.parametrize("exc,stops_with,said", [
    (NotFound("No such file."), None, "lockr-local: a.txt: No such file."),
    (QuotaExceeded("Quota full."), None, "lockr-local: a.txt: Quota full."),
    (LockrError("Server trouble."), None, "lockr-local: a.txt: Server trouble."),
    (Unauthorized("Bad token."), ExitStatus.AUTH, "lockr-local: a.txt: Bad token."),
    (TokenExpired(), ExitStatus.AUTH, "lockr-local: a.txt: That API token has expired"),
    (ConnectionFailed("Could not reach http://x."), ExitStatus.ERROR, "lockr-local: Could not reach http://x."),
])
def test_item_failed_says_why_and_stops_only_when_the_next_items_would_fail_too(capsys, exc, stops_with, said):
    if stops_with is None:
        assert item_failed("a.txt", exc) == ExitStatus.ERROR
    else:
        with pytest.raises(BatchStopped) as stopped:
            item_failed("a.txt", exc)
        assert stopped.value.status == stops_with
    assert capsys.readouterr().err.startswith(said)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def two_files(tmp_path: Path) -> list[str]:
    for name in ("one.txt", "two.txt"):
        (tmp_path / name).write_text(name)
    return [str(tmp_path / "one.txt"), str(tmp_path / "two.txt")]


def test_upload_reports_each_refused_file_and_goes_on(cli: Cli, server: ThreadedServer, account: Account,
                                                      tmp_path: Path) -> None:
    result = cli.run("upload", *two_files(tmp_path), "--region", "nowhere", "-q",
                     LOCKR_ENDPOINT=server.url, LOCKR_TOKEN=account.token)
    assert result.returncode == ExitStatus.ERROR
    assert "one.txt: " in result.stderr and "two.txt: " in result.stderr and "nowhere" in result.stderr


def test_rm_reports_each_unknown_target_and_goes_on(cli: Cli, server: ThreadedServer, account: Account) -> None:
    kept = upload(server.url, b"x", "kept.txt", account=account).json()["id"]
    result = cli.run("rm", "ghost-one.txt", kept, "ghost-two.txt", LOCKR_ENDPOINT=server.url,
                     LOCKR_TOKEN=account.token)
    assert result.returncode == ExitStatus.ERROR
    assert "ghost-one.txt" in result.stderr and "ghost-two.txt" in result.stderr and f"Deleted {kept}" in result.stderr


@pytest.mark.parametrize("command", ["upload", "rm"])
def test_a_refused_token_stops_the_loop_at_the_first_item_with_exit_4(cli: Cli, server: ThreadedServer,
                                                                     account: Account, tmp_path: Path,
                                                                     command: str) -> None:
    ids = [upload(server.url, b"x", f"f{i}.txt", account=account).json()["id"] for i in range(2)]
    items = two_files(tmp_path) if command == "upload" else ids
    result = cli.run(command, *items, LOCKR_ENDPOINT=server.url, LOCKR_TOKEN="lkr_" + "x" * 40)
    assert result.returncode == ExitStatus.AUTH, result.stderr
    assert result.stderr.count("lockr-local:") == 1, result.stderr
    files = requests.get(f"{server.url}/api/v1/files", headers=account.auth, timeout=30).json()["files"]
    assert sorted(f["id"] for f in files) == sorted(ids)


@pytest.mark.parametrize("command", ["upload", "rm"])
def test_no_connection_stops_the_loop_with_one_line(cli: Cli, tmp_path: Path, command: str) -> None:
    items = two_files(tmp_path) if command == "upload" else ["a" * 32, "b" * 32]
    result = cli.run(command, *items, "--endpoint", f"http://127.0.0.1:{free_port()}", LOCKR_TOKEN="lkr_x")
    assert result.returncode == ExitStatus.ERROR
    lines = [line for line in result.stderr.splitlines() if line.startswith("lockr-local:")]
    assert len(lines) == 1 and "127.0.0.1" in lines[0], result.stderr
