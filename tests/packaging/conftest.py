"""Fixtures for the packaged program: build dist/lockr-local once per session, run only it."""

from __future__ import annotations

import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from tests.helpers import REPO, TEST_ENV

SOURCES = ("lockr_local", "server", "sync", "tray", "packaging", "pyproject.toml")
BUILD_TIMEOUT = 900


def executable_path() -> Path:
    return REPO / "dist" / ("lockr-local.exe" if sys.platform == "win32" else "lockr-local")


def newest_source_mtime() -> float:
    """The newest modification time among the files the executable is built from."""
    newest = 0.0
    for name in SOURCES:
        root = REPO / name
        paths = [root] if root.is_file() else (p for p in root.rglob("*") if p.is_file())
        for path in paths:
            if "__pycache__" not in path.parts and path.suffix != ".pyc":
                newest = max(newest, path.stat().st_mtime)
    return newest


@pytest.fixture(scope="session")
def executable() -> Path:
    """dist/lockr-local, rebuilt with `packaging/build.sh` unless it is newer than every source file."""
    path = executable_path()
    if not path.exists() or path.stat().st_mtime < newest_source_mtime():
        started = time.monotonic()
        result = subprocess.run(["bash", str(REPO / "packaging" / "build.sh")], cwd=REPO, capture_output=True,
                                text=True, timeout=BUILD_TIMEOUT)
        assert result.returncode == 0, f"make exe failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        print(f"\nbuilt {path} in {time.monotonic() - started:.0f}s ({path.stat().st_size / 1e6:.1f} MB)")
    assert path.exists()
    return path


@pytest.fixture
def exe_home(tmp_path: Path) -> Path:
    """An empty home folder (and working directory) for the executable: no config, no keyring, no source."""
    home = tmp_path / "home"
    home.mkdir()
    return home


def exe_env(home: Path, **extra: str) -> dict[str, str]:
    """A clean environment: system PATH only (for the tools a user has), no PYTHON*, no LOCKR_* leaking in."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8",
           "XDG_RUNTIME_DIR": str(home / ".run"), "TMPDIR": os.environ.get("TMPDIR", "/tmp")}
    if sys.platform == "win32":  # Windows needs these to start a process at all
        env.update({k: os.environ[k] for k in ("SYSTEMROOT", "USERPROFILE", "APPDATA", "LOCALAPPDATA")
                    if k in os.environ})
    env.update(TEST_ENV)
    env.update(extra)
    return env


def run_exe(executable: Path, home: Path, *args: str, input: str | None = None, timeout: float = 60,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(executable), *args], cwd=home, env=env or exe_env(home), input=input,
                          capture_output=True, text=True, timeout=timeout)


class ExeServer:
    """`dist/lockr-local serve` on a free loopback port; stopped with SIGTERM like a service manager does."""

    def __init__(self, executable: Path, home: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.executable = executable
        self.home = home
        self.args = args
        self.env = env or exe_env(home)
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def start(self, timeout: float = 60, port_hint: str = "") -> "ExeServer":
        """Starts on a free port, or on the port of `port_hint` (a URL) so links handed out earlier still work."""
        port = re.search(r":(\d+)/", port_hint).group(1) if port_hint else "0"
        self.proc = subprocess.Popen([str(self.executable), "serve", "--port", port, *self.args], cwd=self.home,
                                     env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        match = re.search(r"listening on (http://\S+)", line)
        if not match:
            self.proc.kill()
            _, err = self.proc.communicate(timeout=10)
            raise AssertionError(f"the executable's server did not start: {line!r}\n{err}")
        self.url = match.group(1)
        return self

    def stop(self) -> tuple[int, str]:
        """SIGTERM, then the exit status and everything the server wrote to stderr."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            _, err = self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return self.proc.returncode, err


@pytest.fixture
def exe_server(executable: Path, exe_home: Path) -> Iterator[ExeServer]:
    server = ExeServer(executable, exe_home, "--data-dir", str(exe_home / "store")).start()
    yield server
    if server.proc is not None and server.proc.poll() is None:
        server.stop()


@pytest.fixture(scope="session")
def curl() -> str:
    path = shutil.which("curl")
    if path is None:
        pytest.skip("curl is not installed")
    return path
