"""The packaged program's rclone remote (WebDAV) and web pages, as each part lands in the bundle.

Like test_executable.py, every command runs dist/lockr-local itself with a clean environment in an
empty folder; the real server it talks to is the executable's own `serve`.
"""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import requests

from tests.packaging.conftest import ExeServer, run_exe

pytestmark = pytest.mark.exe


def add_user(executable: Path, home: Path, name: str = "alice") -> str:
    added = run_exe(executable, home, "user", "add", name, "--email", f"{name}@example.com",
                    "--data-dir", str(home / "store"))
    assert added.returncode == 0, added.stderr
    return added.stdout.strip()


def remote_files(server: ExeServer, token: str) -> dict[str, dict]:
    response = requests.get(f"{server.url}/api/v1/files", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert response.status_code == 200, response.text
    return {item["name"]: item for item in response.json()["files"]}


def test_rclone_config_prints_a_remote_that_parses_and_rclone_copies_with(
        executable: Path, exe_home: Path, exe_server: ExeServer) -> None:
    token = add_user(executable, exe_home)
    result = run_exe(executable, exe_home, "rclone-config", "--endpoint", exe_server.url, "--token", token)
    assert result.returncode == 0, result.stderr
    parser = configparser.ConfigParser()
    parser.read_string(result.stdout)
    assert parser["lockr"]["type"] == "webdav" and parser["lockr"]["vendor"] == "owncloud"
    assert parser["lockr"]["url"].startswith(exe_server.url)
    rclone = shutil.which("rclone")
    if rclone is None:
        pytest.skip("rclone is not installed")
    (exe_home / "rclone.conf").write_text(result.stdout)
    (exe_home / "photos").mkdir()
    (exe_home / "photos" / "cat.jpg").write_bytes(os.urandom(50_000))
    copied = subprocess.run([rclone, "--config", str(exe_home / "rclone.conf"), "copy", str(exe_home / "photos"),
                             "lockr:alice/photos"], capture_output=True, text=True, timeout=120)
    assert copied.returncode == 0, copied.stderr
    assert remote_files(exe_server, token)["photos/cat.jpg"]["size"] == 50_000


def test_web_pages_and_their_static_files_are_served(executable: Path, exe_home: Path, exe_server: ExeServer) -> None:
    uploaded = requests.post(f"{exe_server.url}/api/v1/upload", data=b"page test",
                             headers={"x-file-name": "report.txt", "Content-Type": "text/plain"}, timeout=30)
    assert uploaded.status_code == 201, uploaded.text
    page = requests.get(f"{exe_server.url}/download/{uploaded.json()['id']}", timeout=30)
    assert page.status_code == 200 and "report.txt" in page.text
    static = sorted((Path(__file__).resolve().parents[2] / "server" / "static").glob("*"))
    assert static, "the server has no static files to check"
    for path in static:
        response = requests.get(f"{exe_server.url}/static/{path.name}", timeout=30)
        assert response.status_code == 200 and response.content == path.read_bytes(), path.name
