"""nginx as a real reverse proxy in front of a test server: the caller's `server { }` blocks, wrapped in a
config that keeps every path (pid, logs, temp files) in one folder, run in the foreground."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from tests.helpers import wait_for


def nginx_binary() -> str:
    """The nginx program; skips the test where it is not installed (LOCKR_REQUIRE_ALL=1 fails it instead)."""
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if nginx is None:
        pytest.skip("nginx is not installed")
    return nginx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@contextmanager
def running_nginx(folder: Path, server_blocks: str, port: int) -> Iterator[None]:
    """nginx serving `server_blocks` from `folder` (its nginx.conf, error.log, client_body/ ...) until the
    block ends; `port` is one it listens on, waited for before the block runs."""
    nginx = nginx_binary()
    folder.mkdir(exist_ok=True)
    temp_paths = "\n".join(f"    {kind}_temp_path {folder / kind};" for kind in
                           ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    (folder / "nginx.conf").write_text(f"""
{'user root;' if os.geteuid() == 0 else ''}
worker_processes 1;
daemon off;
pid {folder / 'nginx.pid'};
error_log {folder / 'error.log'} info;
events {{ worker_connections 64; }}
http {{
    access_log {folder / 'access.log'};
{temp_paths}
{server_blocks}
}}
""")
    proc = subprocess.Popen([nginx, "-c", str(folder / "nginx.conf"), "-p", str(folder)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: accepts_connections(port) or proc.poll() is not None, timeout=15,
                 message="nginx to listen")
        assert proc.poll() is None, f"nginx did not start: {proc.stderr.read() if proc.stderr else ''}"
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        if proc.stderr:
            proc.stderr.close()
