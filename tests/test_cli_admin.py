"""`lockr-local user ...` and `token ...` administer the local store, also while the server runs."""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.helpers import REPO, ServerProcess, clean_env


def cli(*args: str, data_dir: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lockr_local", *args, "--data-dir", str(data_dir)], input=stdin,
                          capture_output=True, text=True, env=clean_env(), cwd=REPO, timeout=60)


def test_user_add_prints_a_token_that_the_running_server_accepts(tmp_path):
    data = tmp_path / "data"
    server = ServerProcess(data).start()
    try:
        added = cli("user", "add", "dora", "--email", "dora@example.com", "--password-stdin", "--quota", "2GB",
                    data_dir=data, stdin="a long password\n")
        assert added.returncode == 0, added.stderr
        token = added.stdout.strip()
        assert token.startswith("lkr_") and "\n" not in token
        account = requests.get(f"{server.url}/api/v1/account", headers={"Authorization": f"Bearer {token}"}).json()
        assert account["quota"] == 2 * 10**9
        login = requests.post(f"{server.url}/api/v1/login", json={"identifier": "dora", "password": "a long password"})
        assert login.status_code == 200

        listed = cli("user", "list", data_dir=data)
        assert "dora" in listed.stdout and "2.0 GB" in listed.stdout

        assert cli("user", "quota", "dora", "5GB", data_dir=data).returncode == 0
        assert requests.get(f"{server.url}/api/v1/account",
                            headers={"Authorization": f"Bearer {token}"}).json()["quota"] == 5 * 10**9

        second = cli("token", "create", "dora", data_dir=data).stdout.strip()
        assert requests.get(f"{server.url}/api/v1/files", headers={"Authorization": f"Bearer {second}"}).ok
        assert cli("token", "revoke", second, data_dir=data).returncode == 0
        assert requests.get(f"{server.url}/api/v1/files",
                            headers={"Authorization": f"Bearer {second}"}).status_code == 401

        assert cli("user", "passwd", "dora", "--password-stdin", data_dir=data, stdin="another password\n"
                   ).returncode == 0
        relogin = requests.post(f"{server.url}/api/v1/login", json={"identifier": "dora", "password": "another password"})
        assert relogin.status_code == 200

        deleted = cli("user", "delete", "dora", "--yes", data_dir=data)
        assert deleted.returncode == 0
        assert requests.get(f"{server.url}/api/v1/files", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    finally:
        server.stop()


def new_store(data: Path) -> Path:
    """A store as `serve` makes it (the only command that makes one)."""
    ServerProcess(data).start().stop()
    return data


def test_user_add_with_taken_name_fails_with_a_clear_message(tmp_path):
    data = new_store(tmp_path / "data")
    assert cli("user", "add", "eve", "--email", "eve@example.com", "--password-stdin", data_dir=data,
               stdin="a long password\n").returncode == 0
    again = cli("user", "add", "eve", "--email", "eve2@example.com", "--password-stdin", data_dir=data,
                stdin="a long password\n")
    assert again.returncode != 0
    assert "already registered" in again.stderr
    assert "Traceback" not in again.stderr


def test_unknown_user_gives_next_step(tmp_path):
    result = cli("user", "quota", "nobody", "1GB", data_dir=new_store(tmp_path / "data"))
    assert result.returncode != 0
    assert "lockr-local user list" in result.stderr


def test_help_lists_every_command():
    result = subprocess.run([sys.executable, "-m", "lockr_local", "--help"], capture_output=True, text=True,
                            env=clean_env(), cwd=REPO)
    assert result.returncode == 0
    for command in ("serve", "user", "token"):
        assert command in result.stdout


def test_serve_stops_cleanly_on_sigterm(tmp_path):
    server = ServerProcess(tmp_path / "data").start()
    assert requests.get(f"{server.url}/healthz").ok
    assert server.stop() == 0


def test_serve_on_a_port_in_use_says_so_in_one_line_and_creates_nothing(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "lockr_local", "serve", "--port", str(port),
                                 "--data-dir", str(tmp_path / "data")], capture_output=True, text=True,
                                env=clean_env(), cwd=REPO, timeout=30)
    assert result.returncode == 1
    assert result.stderr.strip() == (f"lockr-local: port 127.0.0.1:{port} is in use (another lockr-local or another "
                                     "program); stop it, or pick a free port with --port (0 picks one).")
    assert not (tmp_path / "data").exists()


ADMIN_COMMANDS = [["user", "list"], ["user", "add", "ann", "--email", "ann@example.com", "--password-stdin"],
                  ["user", "passwd", "ann", "--password-stdin"], ["user", "quota", "ann", "1GB"],
                  ["user", "rename", "ann", "anna"], ["user", "delete", "ann", "--yes"], ["token", "create", "ann"],
                  ["token", "revoke", "lkr_x"], ["fsck"], ["fsck", "--repair"], ["backup", "{tmp}/backup"],
                  ["migrate", "--to-database-url", "postgresql://lockr@127.0.0.1:9/lockr", "--to-region",
                   "local=s3://lockr-blobs/local"]]


@pytest.mark.parametrize("command", ADMIN_COMMANDS, ids=" ".join)
@pytest.mark.parametrize("where", ["mistyped --data-dir", "no --data-dir"])
def test_admin_commands_refuse_a_missing_store_and_create_none(tmp_path, command, where):
    home = tmp_path / "home"
    args = [part.replace("{tmp}", str(tmp_path)) for part in command]
    if where == "mistyped --data-dir":
        new_store(tmp_path / "data")
        args += ["--data-dir", str(tmp_path / "dta")]
    before = sorted(tmp_path.rglob("*"))
    result = subprocess.run([sys.executable, "-m", "lockr_local", *args], input="a long password\n",
                            capture_output=True, text=True, cwd=REPO, timeout=60,
                            env=clean_env(HOME=str(home), XDG_DATA_HOME=str(home / "share")))
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("lockr-local: No lockr-local store in "), result.stderr
    assert "'lockr-local serve'" in result.stderr and "Traceback" not in result.stderr
    assert sorted(tmp_path.rglob("*")) == before


def test_admin_commands_say_which_store_they_use(tmp_path):
    data = new_store(tmp_path / "data")
    listed = cli("user", "list", data_dir=data)
    assert listed.returncode == 0
    assert listed.stderr.splitlines()[0] == f"lockr-local: store in {data} (from --data-dir)"
    config = tmp_path / "lockr.toml"
    config.write_text(f'data_dir = "{data}"\n')
    from_config = subprocess.run([sys.executable, "-m", "lockr_local", "user", "list"], capture_output=True,
                                 text=True, env=clean_env(LOCKR_CONFIG=str(config)), cwd=REPO, timeout=60)
    assert from_config.stderr.splitlines()[0] == f"lockr-local: store in {data} (from config {config})"


def test_the_packaged_config_file_is_read_when_nothing_names_a_store(tmp_path, monkeypatch):
    from lockr_local.commands import server_cmds

    packaged = tmp_path / "config.toml"
    packaged.write_text(f'data_dir = "{tmp_path / "packaged"}"\n')
    monkeypatch.setattr(server_cmds, "DEFAULT_CONFIG_FILE", packaged)
    for name in ("LOCKR_CONFIG", "LOCKR_DATA_DIR", "LOCKR_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    bare = argparse.Namespace(config=None, data_dir=None)
    assert server_cmds.settings_from_args(bare).data_dir == str(tmp_path / "packaged")
    assert server_cmds.store_origin(server_cmds.settings_from_args(bare)) == f"config {packaged}"
    flagged = argparse.Namespace(config=None, data_dir=str(tmp_path / "mine"))
    assert server_cmds.settings_from_args(flagged).data_dir == str(tmp_path / "mine")
    monkeypatch.setenv("LOCKR_DATA_DIR", str(tmp_path / "env"))
    assert server_cmds.settings_from_args(bare).data_dir == str(tmp_path / "env")


def test_token_list_shows_prefixes_and_last_use_and_revoke_takes_an_id_or_prefix(tmp_path):
    data = tmp_path / "data"
    server = ServerProcess(data).start()
    try:
        first = cli("user", "add", "tess", "--email", "tess@example.com", "--password-stdin", data_dir=data,
                    stdin="a long password\n").stdout.strip()
        second = cli("token", "create", "tess", "--label", "laptop", data_dir=data).stdout.strip()
        assert requests.get(f"{server.url}/api/v1/files", headers={"Authorization": f"Bearer {first}"}).ok
        listed = cli("token", "list", "tess", data_dir=data)
        assert listed.returncode == 0
        lines = listed.stdout.splitlines()
        assert lines[0].split() == ["ID", "PREFIX", "NAME", "CREATED", "LAST", "USED", "EXPIRES", "STATE"]
        # The last two columns: EXPIRES ("never" for a token that lasts until revoked) and STATE.
        used = [line.rsplit(None, 2)[0] for line in lines[1:3]]
        assert [line.split()[-2:] for line in lines[1:3]] == [["never", "active"]] * 2
        assert first[:10] in used[0] and "never" not in used[0] and second[:10] in used[1] and "never" in used[1]
        assert first not in listed.stdout and second not in listed.stdout
        tokens = json.loads(cli("token", "list", "tess", "--json", data_dir=data).stdout)
        assert [t["name"] for t in tokens][1] == "laptop"

        assert cli("token", "revoke", second[:10], data_dir=data).returncode == 0
        assert cli("token", "revoke", str(tokens[0]["id"]), data_dir=data).returncode == 0
        for token in (first, second):
            assert requests.get(f"{server.url}/api/v1/files",
                                headers={"Authorization": f"Bearer {token}"}).status_code == 401
        again = cli("token", "revoke", second[:10], data_dir=data)
        assert again.returncode == 1 and "No such active token" in again.stderr
    finally:
        server.stop()


def test_token_create_expires_makes_a_token_that_token_list_shows_expiring(tmp_path):
    data = tmp_path / "data"
    server = ServerProcess(data).start()
    try:
        cli("user", "add", "uma", "--email", "uma@example.com", "--password-stdin", data_dir=data,
            stdin="a long password\n")
        made = cli("token", "create", "uma", "--label", "ci", "--expires", "30d", data_dir=data)
        assert made.returncode == 0, made.stderr
        token = made.stdout.strip()
        assert token.startswith("lkr_") and "\n" not in token
        assert "works until" in made.stderr and "token_expired" in made.stderr
        assert requests.get(f"{server.url}/api/v1/files", headers={"Authorization": f"Bearer {token}"}).ok
        tokens = json.loads(cli("token", "list", "uma", "--json", data_dir=data).stdout)
        ci = [t for t in tokens if t["name"] == "ci"][0]
        first = [t for t in tokens if t["name"] != "ci"][0]
        assert ci["expiresAt"] is not None and ci["expired"] is False and first["expiresAt"] is None
        lines = cli("token", "list", "uma", data_dir=data).stdout.splitlines()
        ci_line = [line for line in lines if token[:10] in line][0]
        assert ci["expiresAt"][:10] in ci_line and ci_line.split()[-1] == "active"
    finally:
        server.stop()


@pytest.mark.parametrize("expires,message", [
    ("-5", "use a duration such as"), ("soon", "use a duration such as"), ("0", "use a duration such as"),
    ("1.5d", "use a duration such as"), ("3651d", "at most 3650d"), ("9" * 30, "at most 3650d"),
])
def test_token_create_with_a_bad_expires_makes_no_token(tmp_path, expires, message):
    data = tmp_path / "data"
    ServerProcess(data).start().stop()
    cli("user", "add", "vic", "--email", "vic@example.com", "--password-stdin", data_dir=data,
        stdin="a long password\n")
    made = cli("token", "create", "vic", f"--expires={expires}", data_dir=data)
    assert made.returncode == 2 and message in made.stderr and "Traceback" not in made.stderr
    assert made.stdout == ""
    assert len(json.loads(cli("token", "list", "vic", "--json", data_dir=data).stdout)) == 1


# Runs lockr-local as if psycopg were not installed (a PyPI install without the `postgres` extra).
WITHOUT_PSYCOPG = ("import sys, runpy\n"
                   "for name in ('psycopg', 'psycopg2', 'psycopg2cffi'):\n"
                   "    sys.modules[name] = None\n"
                   "sys.argv = ['lockr-local'] + sys.argv[1:]\n"
                   "runpy.run_module('lockr_local', run_name='__main__')\n")


def test_serve_on_postgresql_without_its_driver_says_what_to_install(tmp_path):
    result = subprocess.run([sys.executable, "-c", WITHOUT_PSYCOPG, "serve", "--port", "0", "--data-dir",
                             str(tmp_path / "data")], capture_output=True, text=True, timeout=60,
                            env=clean_env(LOCKR_DATABASE_URL="postgresql://lockr@127.0.0.1:9/lockr"))
    assert result.returncode != 0
    assert "pip install 'lockr-local[postgres]'" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
