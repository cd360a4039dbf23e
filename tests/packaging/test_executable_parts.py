"""The packaged program's client with the OS keyring, sync agent, rclone remote, web pages, doctor and tray.

Like test_executable.py, every command runs dist/lockr-local itself with a clean environment in an
empty folder; the real server it talks to is the executable's own `serve`.
"""

from __future__ import annotations

import configparser
import hashlib
import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
import requests

from tests.helpers import wait_for
from tests.packaging.conftest import ExeServer, exe_env, run_exe

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
    repo = Path(__file__).resolve().parents[2]
    served = {"/static/": repo / "server" / "static", "/assets/": repo / "lockr_local" / "web" / "static"}
    for prefix, folder in served.items():
        static = sorted(folder.glob("*"))
        assert static, f"no static files to check in {folder}"
        for path in static:
            response = requests.get(f"{exe_server.url}{prefix}{path.name}", timeout=30)
            assert response.status_code == 200 and response.content == path.read_bytes(), path.name
    assert "/assets/lockr.css?v=" in page.text  # the page links the shared stylesheet


def test_login_keeps_the_token_in_the_os_keyring_and_upload_ls_download_use_it(
        executable: Path, exe_home: Path, exe_server: ExeServer) -> None:
    tools = [tool for tool in ("dbus-run-session", "gnome-keyring-daemon") if shutil.which(tool) is None]
    if tools:
        pytest.skip(f"needs {', '.join(tools)} (apt-get install dbus gnome-keyring) for a real Secret Service")
    signup = requests.post(f"{exe_server.url}/api/v1/account", timeout=30,
                           json={"username": "ann", "email": "ann@example.com", "password": "correct horse"})
    assert signup.status_code == 201, signup.text
    payload = os.urandom(700_000)
    (exe_home / "notes.bin").write_bytes(payload)
    (exe_home / ".run").mkdir(mode=0o700)
    # One D-Bus session with an unlocked GNOME keyring (the Secret Service a Linux desktop has); the
    # executable finds it through keyring's entry points, secretstorage and jeepney, all bundled.
    script = f"""set -e
printf 'keyring password' | gnome-keyring-daemon --unlock --components=secrets >/dev/null
exe={executable}
$exe doctor > doctor.txt
printf 'correct horse\\n' | $exe login --endpoint {exe_server.url} --identifier ann@example.com --password-stdin
$exe upload -q --endpoint {exe_server.url} notes.bin > links.txt
$exe ls --json --endpoint {exe_server.url} > listing.json
$exe download --endpoint {exe_server.url} -q -o back.bin "$(head -n 1 links.txt)"
"""
    result = subprocess.run(["dbus-run-session", "--", "sh", "-c", script], cwd=exe_home, env=exe_env(exe_home),
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "keyring.backends.SecretService.Keyring" in (exe_home / "doctor.txt").read_text()
    listing = json.loads((exe_home / "listing.json").read_text())
    assert [(item["name"], item["size"]) for item in listing] == [("notes.bin", len(payload))]
    assert (exe_home / "back.bin").read_bytes() == payload
    client_files = [p for p in exe_home.rglob("*") if p.is_file() and "store" not in p.relative_to(exe_home).parts]
    leaked = [p for p in client_files if "lkr_" in p.read_text(errors="ignore")]
    assert not leaked, f"the token was written to a file instead of the keyring: {leaked}"


def test_sync_once_mirrors_a_small_folder(executable: Path, exe_home: Path, exe_server: ExeServer) -> None:
    token = add_user(executable, exe_home)
    folder = exe_home / "Documents"
    (folder / "taxes").mkdir(parents=True)
    contents = {"readme.txt": b"hello from the packaged sync agent\n", "taxes/2025.pdf": os.urandom(300_000),
                "empty.txt": b""}
    for name, data in contents.items():
        (folder / name).write_bytes(data)
    result = run_exe(executable, exe_home, "sync", str(folder), "--once", "--endpoint", exe_server.url,
                     "--token", token, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    remote = remote_files(exe_server, token)
    assert {name: item["sha256"] for name, item in remote.items()} == {  # under the folder's name by default
        f"Documents/{name}": hashlib.sha256(data).hexdigest() for name, data in contents.items()}


def test_doctor_reports_the_tray_and_keyring_backends(executable: Path, exe_home: Path) -> None:
    result = run_exe(executable, exe_home, "doctor")
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(":", 1) for line in result.stdout.splitlines() if ":" in line and not line.startswith(" "))
    assert {"tray", "keyring", "checksums"} <= {key.strip() for key in lines}, result.stdout
    assert "keyring.backends." in lines["keyring"]
    assert "CRC-32C (google-crc32c, compiled)" in lines["checksums"]  # the compiled module was packaged


def test_started_without_arguments_the_tray_icon_docks_in_the_panel(executable: Path, exe_home: Path) -> None:
    from tests.tray.desktop import Desktop, missing_tools

    if missing_tools():
        pytest.skip(f"needs {', '.join(missing_tools())} (xvfb, trayer, x11-utils, imagemagick)")
    desktop = Desktop(exe_home)
    recorder = exe_home / "record-url"
    opened = exe_home / "opened-urls.txt"
    recorder.write_text(f"#!/bin/sh\necho \"$1\" >> {opened}\n")
    recorder.chmod(0o755)
    log = (exe_home / "tray.log").open("w")
    # No PYSTRAY_BACKEND: the executable must find a working backend (xorg) on its own.
    tray = subprocess.Popen([str(executable)], cwd=exe_home, stdout=log, stderr=subprocess.STDOUT,
                            env=exe_env(exe_home, DISPLAY=desktop.display, BROWSER=str(recorder)))
    try:
        window = desktop.wait_for_docked_icon("not set up", timeout=60)
        assert "panel" in desktop.parents(window.id), "the icon is not embedded in trayer's panel"
        setup_url = wait_for(lambda: opened.exists() and opened.read_text().split(), timeout=30,
                             message="the setup page to be opened")[0]
        assert requests.get(setup_url, timeout=30).status_code == 200
        doctor = run_exe(executable, exe_home, "doctor", env=exe_env(exe_home, DISPLAY=desktop.display))
        assert "xorg" in doctor.stdout.lower(), doctor.stdout
    finally:
        if tray.poll() is None:
            tray.send_signal(signal.SIGTERM)
        try:
            code = tray.wait(30)
        except subprocess.TimeoutExpired:
            tray.kill()
            code = tray.wait()
        log.close()
        desktop.stop()
    assert code == 0, (exe_home / "tray.log").read_text()
