"""The issue's acceptance run: `lockr-local upload BIGFILE` cut three times by a proxy and once by kill -9.

The default run uses 24 MiB in 1 MiB chunks; LOCKR_BIG_UPLOAD_MB=1024 gives the 1 GB figures (8 MiB
chunks) and prints them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from pathlib import Path

import pytest
import requests

from tests.client.conftest import Cli, random_file
from tests.cutproxy import CutProxy
from tests.helpers import ServerProcess, create_account, wait_for

MiB = 1024 * 1024


def server_offset(session_url: str, size: int) -> int:
    response = requests.put(session_url, headers={"Content-Range": f"bytes */{size}"}, data=b"", timeout=10)
    if response.status_code in (200, 201):
        return size
    match = re.fullmatch(r"bytes=0-(\d+)", response.headers.get("Range", ""))
    return int(match.group(1)) + 1 if match else 0


def test_cli_upload_survives_three_cuts_and_a_server_kill(cli: Cli, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    megabytes = int(os.environ.get("LOCKR_BIG_UPLOAD_MB", "24"))
    chunk = 8 * MiB if megabytes >= 512 else MiB
    server = ServerProcess(tmp_path / "data").start()
    proxy = CutProxy(server.port)
    try:
        account = create_account(server.url)
        source = random_file(tmp_path / "big.bin", megabytes * MiB + 12_345)
        size = source.stat().st_size
        proxy.cut_at([size * 2 // 10, size * 4 // 10, size * 6 // 10])
        proxy.upload_rate = 60 * MiB  # keeps the 80% mark observable on a fast loopback
        started = time.monotonic()
        upload = cli.popen("upload", str(source), "--chunk-size", f"{chunk // MiB}M", "--endpoint", proxy.url,
                           "--token", account.token)

        def session_url() -> str | None:
            if not cli.state_file.exists():
                return None
            entries = list(json.loads(cli.state_file.read_text()).values())
            return entries[0]["session_url"].replace(proxy.url, server.url) if entries else None

        direct_url = wait_for(session_url, timeout=60, message="the CLI to open a session")
        wait_for(lambda: proxy.cuts_done == 3 and server_offset(direct_url, size) >= size * 8 // 10,
                 timeout=600, interval=0.005, message="three cuts and 80% on the server")
        server.kill()
        server.start(server.port)
        out, err = upload.communicate(timeout=900)
        elapsed = time.monotonic() - started
        assert upload.returncode == 0, err
        assert proxy.cuts_done == 3
        link = out.strip()
        listing = requests.get(f"{server.url}/api/v1/files", headers=account.auth, timeout=30).json()["files"]
        [stored] = [f for f in listing if f["name"] == "big.bin"]
        expected = hashlib.sha256()
        with open(source, "rb") as handle:
            for block in iter(lambda: handle.read(MiB), b""):
                expected.update(block)
        downloaded = hashlib.sha256()
        with requests.get(stored["downloadUrl"], headers=account.auth, stream=True, timeout=60) as response:
            for block in response.iter_content(MiB):
                downloaded.update(block)
        assert stored["sha256"] == downloaded.hexdigest() == expected.hexdigest()
        assert link.endswith(stored["id"]) or stored["id"] in link
        interruptions = 4
        resent = proxy.sent_upstream - size
        # At most one chunk per interruption, plus request headers (well under 1 KiB per request).
        requests_made = size // chunk + 2 * interruptions + 4
        assert resent <= interruptions * chunk + requests_made * 2048, resent
        with capsys.disabled():
            print(f"\nCLI upload of {size / MiB:.0f} MiB in {elapsed:.1f}s through 3 cuts and a kill -9: "
                  f"re-sent {resent / MiB:.2f} MiB in all ({resent / interruptions / MiB:.2f} MiB per "
                  f"interruption, chunk {chunk // MiB} MiB)")
    finally:
        proxy.close()
        server.stop()
