"""The peers lockr-local is measured against, started on loopback with temp folders: nginx (DAV PUT,
static GET with sendfile), copyparty (anonymous write volume), `rclone serve webdav`, and a naive Tornado
file server (the framework's own cost, for reference)."""

from __future__ import annotations

import importlib.util
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout}s")


class Peer:
    """A server under test: `upload_url(name)` takes a PUT, `download_url(name)` serves it back."""

    name = "peer"
    upload_method = "PUT"

    def __init__(self, work: Path) -> None:
        self.work = work
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.root: Path | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def upload_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def download_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def upload_headers(self, name: str) -> list[str]:
        return []

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.proc = None

    def remove_data(self) -> None:
        """Deletes what the peer stored (the next server's run needs the disk space more)."""
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)


class NginxPeer(Peer):
    """nginx with the DAV module for PUT and sendfile for GET; /discard reads and drops a body."""

    name = "nginx"

    @staticmethod
    def available() -> bool:
        return shutil.which("nginx") is not None

    def start(self) -> "NginxPeer":
        root = self.root = self.work / "nginx"
        for sub in ("www", "tmp", "logs"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        conf = root / "nginx.conf"
        conf.write_text(f"""
user root;
worker_processes auto;
pid {root}/nginx.pid;
error_log {root}/logs/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    client_max_body_size 0;
    client_body_temp_path {root}/tmp;
    server {{
        listen 127.0.0.1:{self.port};
        root {root}/www;
        location / {{
            dav_methods PUT DELETE;
            create_full_put_path on;
        }}
        location = /discard {{ return 204; }}
    }}
}}
""")
        self.proc = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(root), "-g", "daemon off;"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_listening(self.port)
        return self


class CopypartyPeer(Peer):
    """copyparty from PyPI with one anonymous read-write volume."""

    name = "copyparty"

    @staticmethod
    def available() -> bool:
        return importlib.util.find_spec("copyparty") is not None

    def start(self) -> "CopypartyPeer":
        root = self.root = self.work / "copyparty"
        root.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen([sys.executable, "-m", "copyparty", "-i", "127.0.0.1", "-p", str(self.port),
                                      "-v", f"{root}::rw", "-q", "--no-crt"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_listening(self.port, timeout=60)
        return self


class RcloneWebdavPeer(Peer):
    """`rclone serve webdav` of a local folder."""

    name = "rclone serve webdav"

    @staticmethod
    def available() -> bool:
        return shutil.which("rclone") is not None

    def start(self) -> "RcloneWebdavPeer":
        root = self.root = self.work / "rclone"
        root.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(["rclone", "serve", "webdav", str(root), "--addr", f"127.0.0.1:{self.port}",
                                      "--config", "/dev/null"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_listening(self.port)
        return self


class NaiveTornadoPeer(Peer):
    """bench/naive_tornado.py: the framework's cost alone (no hashing, no fsync, no database)."""

    name = "naive Tornado (no fsync)"

    @staticmethod
    def available() -> bool:
        return True

    def start(self) -> "NaiveTornadoPeer":
        root = self.root = self.work / "naive-tornado"
        root.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.naive_tornado", str(self.port), str(root)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     cwd=Path(__file__).resolve().parent.parent)
        wait_listening(self.port)
        return self


ALL_PEERS: tuple[type[Peer], ...] = (NginxPeer, CopypartyPeer, RcloneWebdavPeer, NaiveTornadoPeer)
