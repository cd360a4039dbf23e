"""Shared test helpers: polling waits, a server subprocess, an in-process server thread, API calls."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import requests

REPO = Path(__file__).resolve().parent.parent

# Settings that keep tests fast and free of rate limits unless a test asks for them.
TEST_ENV = {
    # OWASP's minimum argon2id cost (the lowest the settings accept), not the default's 64 MiB and 3 passes.
    "LOCKR_PASSWORD_KDF_MEMORY": "19MiB",
    "LOCKR_PASSWORD_KDF_TIME": "2",
    "LOCKR_RATE_GUEST": "10000",
    "LOCKR_RATE_GUEST_BURST": "100000",
    "LOCKR_RATE_ACCOUNT": "10000",
    "LOCKR_RATE_ACCOUNT_BURST": "100000",
    "LOCKR_RATE_LOGIN": "1000",
    "LOCKR_RATE_LOGIN_BURST": "10000",
    "LOCKR_LOG_LEVEL": "warning",
}


def wait_for(condition: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02,
             message: str = "condition") -> Any:
    """Polls until condition() is truthy and returns its value; fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for a subprocess: no LOCKR_* leaking in from the developer's shell."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKR_")}
    env.update(TEST_ENV)
    env.update(extra)
    return env


class ServerProcess:
    """`lockr-local serve` as a real subprocess on a free loopback port; with `log_file`, its log (stderr) is
    appended there, where a long run's lines cannot fill an unread pipe."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None, args: list[str] | None = None,
                 log_file: Path | None = None) -> None:
        self.data_dir = data_dir
        self.env = clean_env(**(env or {}))
        self.args = args or []
        self.log_file = log_file
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.port = 0

    def start(self, port: int = 0) -> "ServerProcess":
        cmd = [sys.executable, "-m", "lockr_local", "serve", "--data-dir", str(self.data_dir),
               "--port", str(port or self.port or 0), *self.args]
        if self.log_file is None:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                         env=self.env, cwd=REPO)
        else:
            with open(self.log_file, "ab") as log:
                self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True, env=self.env,
                                             cwd=REPO)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        match = re.search(r"listening on (http://\S+)", line)
        if not match:
            self.proc.kill()
            log_text = self.log_file.read_text() if self.log_file else self.proc.stderr.read() if self.proc.stderr else ""
            raise AssertionError(f"server did not start: {line!r} {log_text}")
        self.url = match.group(1).replace("127.0.0.1", "127.0.0.1")
        self.port = int(self.url.rsplit(":", 1)[1])
        return self

    def stop(self) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        code = self.proc.returncode
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream:
                stream.close()
        self.proc = None
        return code

    def kill(self) -> None:
        """SIGKILL: the crash a power cut or OOM killer would cause."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            for stream in (self.proc.stdout, self.proc.stderr):
                if stream:
                    stream.close()
            self.proc = None

    def restart(self) -> "ServerProcess":
        self.stop()
        return self.start(self.port)


class ThreadedServer:
    """The real app on a loopback port, served by an IOLoop in a background thread (for sync clients)."""

    def __init__(self, settings: Any) -> None:
        self.settings = settings
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="test-server", daemon=True)
        self.ctx: Any = None
        self._stop: asyncio.Event | None = None

    def start(self) -> "ThreadedServer":
        self._thread.start()
        assert self._ready.wait(15), "threaded server did not start"
        return self

    def _run(self) -> None:
        from lockr_local.server.app import Server

        server = Server(self.settings)
        self.ctx = server.ctx

        async def main() -> None:
            port = server.listen(0, "127.0.0.1")
            server.start()
            self.url = f"http://127.0.0.1:{port}"
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self._ready.set()
            await self._stop.wait()
            await server.stop(timeout=15)

        try:
            asyncio.run(main())
        finally:
            server.close()

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(15)


@dataclass
class Account:
    username: str
    email: str
    password: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


_counter = iter(range(1, 10**9))


def create_account(base_url: str, username: str | None = None, password: str = "correct horse") -> Account:
    """Signs up through the public API."""
    username = username or f"user{next(_counter)}"
    email = f"{username}@example.com"
    response = requests.post(f"{base_url}/api/v1/account",
                             json={"username": username, "email": email, "password": password}, timeout=30)
    assert response.status_code == 201, response.text
    return Account(username, email, password, response.json()["token"])


def upload(base_url: str, data: bytes, name: str = "file.bin", headers: dict[str, str] | None = None,
           account: Account | None = None, session: requests.Session | None = None) -> requests.Response:
    """A direct upload; with `session`, on that session's keep-alive connection."""
    all_headers = {"x-file-name": name, "Content-Type": "application/octet-stream"}
    if account is not None:
        all_headers.update(account.auth)
    all_headers.update(headers or {})
    return (session or requests).post(f"{base_url}/api/v1/upload", data=data, headers=all_headers, timeout=60)


def error_code(response: requests.Response) -> str:
    body = response.json()
    assert set(body) == {"error"}, body
    return str(body["error"]["code"])


def dump(value: Any) -> str:
    return json.dumps(value, indent=1)


def stored_offset(session_url: str, size: int) -> int:
    """What the server has durably stored of a session (the GCS status query)."""
    response = requests.put(session_url, headers={"Content-Range": f"bytes */{size}"}, data=b"", timeout=10)
    if response.status_code in (200, 201):
        return size
    assert response.status_code == 308, response.text
    match = re.fullmatch(r"bytes=0-(\d+)", response.headers.get("Range", ""))
    return int(match.group(1)) + 1 if match else 0
