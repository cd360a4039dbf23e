"""`lockr-local doctor` as a subprocess (backends, paths, endpoint reachability), `tray --help`, and
copying a share link to a real X clipboard."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lockr_local.tray import clipboard
from tests.helpers import REPO, ServerProcess, clean_env, wait_for
from tests.tray.desktop import Desktop


def run_cli(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = clean_env(HOME=str(home), XDG_CONFIG_HOME=str(home / "config"), XDG_STATE_HOME=str(home / "state"),
                     XDG_DATA_HOME=str(home / "data"), PYTHONPATH=str(REPO),
                     PYTHON_KEYRING_BACKEND="tests.file_keyring.FileKeyring", TEST_KEYRING_FILE=str(home / "k.json"))
    base.pop("DISPLAY", None)
    base.pop("PYSTRAY_BACKEND", None)
    return subprocess.run([sys.executable, "-m", "lockr_local", *args], capture_output=True, text=True, timeout=60,
                          env={**base, **env}, cwd=REPO)


def fields(output: str) -> dict[str, str]:
    return {line.split(":", 1)[0].strip(): line.split(":", 1)[1].strip() for line in output.splitlines()
            if ":" in line and not line.startswith(" ")}


def test_doctor_reports_backends_paths_and_a_reachable_endpoint(tmp_path: Path, lockr_server: ServerProcess) -> None:
    result = run_cli(tmp_path, "doctor", "--endpoint", lockr_server.url)
    assert result.returncode == 0, result.stderr
    info = fields(result.stdout)
    assert info["tray"].startswith("none - no system tray available")  # no DISPLAY in this environment
    assert info["keyring"] == "tests.file_keyring.FileKeyring"
    assert info["config folder"] == str(tmp_path / "config" / "lockr-local")
    assert info["state folder"] == str(tmp_path / "state" / "lockr-local")
    assert info["endpoint"] == lockr_server.url
    assert info["token"].startswith("none stored")
    assert info["reachable"].startswith("yes - GET /healthz 200")


def test_doctor_fails_for_an_unreachable_endpoint_and_names_the_keyring_fallbacks(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "doctor", "--endpoint", "http://127.0.0.1:9",
                     PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring")
    assert result.returncode == 1
    info = fields(result.stdout)
    assert info["reachable"].startswith("NO - ")
    assert "NOT usable" in info["keyring"]
    assert "LOCKR_TOKEN" in result.stdout and "0600" in result.stdout


def test_doctor_names_the_xorg_backend_on_an_x_display(tmp_path: Path, desktop: Desktop) -> None:
    result = run_cli(tmp_path, "doctor", DISPLAY=desktop.display, PYSTRAY_BACKEND="xorg")
    assert result.returncode == 0, result.stderr
    assert fields(result.stdout)["tray"] == ("xorg (PYSTRAY_BACKEND) (menu: no, default action: yes, "
                                             "notifications: no)")


def test_tray_is_a_documented_command() -> None:
    result = subprocess.run([sys.executable, "-m", "lockr_local", "tray", "--help"], capture_output=True, text=True,
                            timeout=60, cwd=REPO)
    assert result.returncode == 0
    assert "FOLDER" in result.stdout and "--endpoint" in result.stdout


def read_clipboard(display: str) -> str:
    script = "import tkinter; r = tkinter.Tk(); r.withdraw(); print(r.selection_get(selection='CLIPBOARD'), end='')"
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30,
                          env={**clean_env(), "DISPLAY": display}).stdout


def test_copy_link_puts_it_on_the_x_clipboard(desktop: Desktop, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("tkinter", reason="the clipboard fallback needs Tk")
    monkeypatch.setenv("DISPLAY", desktop.display)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    link = "http://127.0.0.1:8080/download/0123456789abcdef0123456789abcdef"
    tool = clipboard.copy_text(link)
    assert tool in ("xclip", "xsel", "tk")
    assert wait_for(lambda: read_clipboard(desktop.display) == link, timeout=10, message="the link on the clipboard")
    # The next copy replaces it (and a Tk helper holding the old one exits once it lost the clipboard).
    clipboard.copy_text(link + "?2")
    assert wait_for(lambda: read_clipboard(desktop.display) == link + "?2", timeout=10, message="the second link")

