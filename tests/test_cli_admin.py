"""`lockr-local user ...` and `token ...` administer the local store, also while the server runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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


def test_user_add_with_taken_name_fails_with_a_clear_message(tmp_path):
    data = tmp_path / "data"
    assert cli("user", "add", "eve", "--email", "eve@example.com", "--password-stdin", data_dir=data,
               stdin="a long password\n").returncode == 0
    again = cli("user", "add", "eve", "--email", "eve2@example.com", "--password-stdin", data_dir=data,
                stdin="a long password\n")
    assert again.returncode != 0
    assert "already registered" in again.stderr
    assert "Traceback" not in again.stderr


def test_unknown_user_gives_next_step(tmp_path):
    result = cli("user", "quota", "nobody", "1GB", data_dir=tmp_path / "data")
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
