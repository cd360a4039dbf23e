"""whoami, share, key, logout revoking on the server, --token-stdin, rm by name, and the messages a new CLI
user meets first (a folder to upload, a keyed download, an endpoint pasted from the browser)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import requests

from tests.client.conftest import Cli
from tests.client.test_cli import login
from tests.helpers import REPO, Account, ThreadedServer


def uploaded(cli: Cli, server: ThreadedServer, account: Account, path: Path, *extra: str) -> str:
    result = cli.run("upload", str(path), "-q", *extra, LOCKR_ENDPOINT=server.url, LOCKR_TOKEN=account.token)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def run(cli: Cli, server: ThreadedServer, account: Account, *args: str, **kwargs):
    return cli.run(*args, LOCKR_ENDPOINT=server.url, LOCKR_TOKEN=account.token, **kwargs)


def test_whoami_names_the_account_and_its_usage(cli: Cli, server: ThreadedServer, account: Account) -> None:
    plain = run(cli, server, account, "whoami")
    assert plain.returncode == 0
    assert plain.stdout.startswith(f"{account.username} <{account.email}> at {server.url}: 0 B of ")
    data = json.loads(run(cli, server, account, "whoami", "--json").stdout)
    assert data["username"] == account.username and data["endpoint"] == server.url and data["used"] == 0


def test_share_prints_a_signed_link_that_works_without_a_token(cli: Cli, server: ThreadedServer, account: Account,
                                                               tmp_path: Path) -> None:
    (tmp_path / "report.txt").write_text("quarterly numbers")
    uploaded(cli, server, account, tmp_path / "report.txt", "--key", "a phrase")
    shared = run(cli, server, account, "share", "report.txt", "--expires", "90m")
    assert shared.returncode == 0, shared.stderr
    assert "valid until" in shared.stderr
    body = requests.get(shared.stdout.strip(), timeout=30)
    assert body.status_code == 200 and body.text == "quarterly numbers"
    as_json = json.loads(run(cli, server, account, "share", "report.txt", "--json").stdout)
    assert set(as_json) == {"url", "expiresAt"}
    bad = run(cli, server, account, "share", "report.txt", "--expires", "soon")
    assert bad.returncode == 2 and "90m, 12h, 7d" in bad.stderr


def test_key_set_and_clear_and_a_keyed_download_says_to_use_key(cli: Cli, server: ThreadedServer, account: Account,
                                                                tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("for friends")
    link = uploaded(cli, server, account, tmp_path / "secret.txt")
    assert run(cli, server, account, "key", "secret.txt", "--set", "open sesame").returncode == 0

    guest = cli.run("download", link, "-o", str(tmp_path / "a.txt"), "-q", LOCKR_ENDPOINT=server.url)
    assert guest.returncode == 1
    assert guest.stderr.strip() == f"lockr-local: {link} is protected by a key: pass its key phrase with --key PHRASE."
    wrong = cli.run("download", link, "-o", str(tmp_path / "a.txt"), "-q", "--key", "nope", LOCKR_ENDPOINT=server.url)
    assert wrong.returncode == 1 and "not this file's key phrase" in wrong.stderr
    right = cli.run("download", link, "-o", str(tmp_path / "a.txt"), "-q", "--key", "open sesame",
                    LOCKR_ENDPOINT=server.url)
    assert right.returncode == 0 and (tmp_path / "a.txt").read_text() == "for friends"

    assert run(cli, server, account, "key", "secret.txt", "--clear").returncode == 0
    free = cli.run("download", link, "-o", str(tmp_path / "b.txt"), "-q", LOCKR_ENDPOINT=server.url)
    assert free.returncode == 0, free.stderr


def test_rm_takes_a_name_and_refuses_an_ambiguous_one(cli: Cli, server: ThreadedServer, account: Account,
                                                      tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a")
    (tmp_path / "twin.txt").write_text("1")
    uploaded(cli, server, account, tmp_path / "a.txt")
    uploaded(cli, server, account, tmp_path / "twin.txt")
    uploaded(cli, server, account, tmp_path / "twin.txt")
    removed = run(cli, server, account, "rm", "a.txt")
    assert removed.returncode == 0 and removed.stderr.startswith("Deleted a.txt (")
    ambiguous = run(cli, server, account, "rm", "twin.txt")
    assert ambiguous.returncode == 1 and "2 of your files are named 'twin.txt'" in ambiguous.stderr
    names = [f["name"] for f in json.loads(run(cli, server, account, "ls", "--json").stdout)]
    assert names == ["twin.txt", "twin.txt"]


def test_upload_of_a_folder_says_to_use_sync(cli: Cli, server: ThreadedServer, account: Account,
                                             tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    result = run(cli, server, account, "upload", str(tmp_path / "photos"))
    assert result.returncode == 1
    assert f"{tmp_path / 'photos'} is a folder" in result.stderr and "lockr-local sync" in result.stderr


def test_token_stdin_keeps_the_token_off_the_command_line(cli: Cli, server: ThreadedServer, account: Account) -> None:
    result = cli.run("whoami", "--token-stdin", "--endpoint", server.url, input=account.token + "\n")
    assert result.returncode == 0 and result.stdout.startswith(account.username)
    empty = cli.run("whoami", "--token-stdin", "--endpoint", server.url, input="")
    assert empty.returncode == 2 and "held no token" in empty.stderr


def test_logout_revokes_the_token_on_the_server(cli: Cli, server: ThreadedServer, account: Account) -> None:
    login(cli, server.url, account)
    token = next(iter(json.loads(cli.keyring_file.read_text()).values()))
    assert requests.get(f"{server.url}/api/v1/files", headers={"Authorization": f"Bearer {token}"}).ok
    out = cli.run("logout")
    assert out.returncode == 0 and "the server revoked the token" in out.stderr
    assert requests.get(f"{server.url}/api/v1/files", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_an_endpoint_pasted_from_the_browser_is_corrected_and_said(cli: Cli, server: ThreadedServer,
                                                                   account: Account) -> None:
    result = cli.run("whoami", "--endpoint", f"{server.url}/files", LOCKR_TOKEN=account.token)
    assert result.returncode == 0, result.stderr
    assert f"{server.url}/files is a web page of the server; using its endpoint {server.url}" in result.stderr


def test_no_arguments_and_no_display_prints_the_help(cli: Cli) -> None:
    env = {key: value for key, value in cli.env.items() if key not in ("DISPLAY", "WAYLAND_DISPLAY")}
    result = subprocess.run([sys.executable, "-m", "lockr_local"], capture_output=True, text=True, env=env,
                            timeout=30, cwd=REPO)
    assert result.returncode == 2
    assert "usage: lockr-local" in result.stdout and "No display here" in result.stderr
