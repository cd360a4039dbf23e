"""An interrupted `lockr-local upload BIGFILE` continues where the server stopped when run again."""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path
from typing import Iterator

import pytest
import requests

from tests.client.conftest import Cli, SessionEndpoint, random_file
from tests.cutproxy import CutProxy
from tests.helpers import stored_offset, wait_for

MiB = 1024 * 1024


@pytest.fixture
def proxy(session_endpoint: SessionEndpoint) -> Iterator[CutProxy]:
    cut = CutProxy(int(session_endpoint.url.rsplit(":", 1)[1]))
    yield cut
    cut.close()


def pending_sessions(cli: Cli) -> list[str]:
    if not cli.state_file.exists():
        return []
    return [entry["session_url"] for entry in json.loads(cli.state_file.read_text()).values()]


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGINT])
def test_interrupted_upload_resumes_on_the_next_run(cli: Cli, session_endpoint: SessionEndpoint, proxy: CutProxy,
                                                    tmp_path: Path, stop: signal.Signals) -> None:
    source = random_file(tmp_path / "video.mkv", 20 * MiB)
    size = source.stat().st_size
    args = ("upload", str(source), "--chunk-size", "1M", "--endpoint", proxy.url,
            "--token", session_endpoint.token or "")
    proxy.upload_rate = 8 * MiB  # slow enough to interrupt mid-way, fast enough for a quick test
    first = cli.popen(*args)
    session_url = wait_for(lambda: (pending_sessions(cli) or [None])[0], timeout=30, message="the saved session")
    wait_for(lambda: stored_offset(session_url, size) >= 3 * MiB, timeout=30, message="3 MiB on the server")
    first.send_signal(stop)
    first.wait(timeout=30)
    assert first.returncode != 0
    if stop == signal.SIGINT:
        assert "run the same command again to resume" in first.stderr.read()
    # Bytes the dead client left in socket buffers drain before the second run is measured.
    proxy.upload_rate = None
    wait_for(lambda: proxy.open_connections == 0, message="the first run's connections to close")
    offset = stored_offset(session_url, size)
    assert 3 * MiB <= offset < size

    before = proxy.sent_upstream
    second = cli.run(*args)
    assert second.returncode == 0, second.stderr
    resumed_at = int(re.search(r"Resuming video.mkv at byte (\d+) of", second.stderr).group(1))
    assert resumed_at >= offset
    sent = proxy.sent_upstream - before
    assert sent <= size - resumed_at + 64 * 1024, (sent, size, resumed_at)
    assert pending_sessions(cli) == []
    link = second.stdout.strip()
    assert link.startswith(proxy.url)
    files = requests.get(f"{session_endpoint.url}/api/v1/files",
                         headers={"Authorization": f"Bearer {session_endpoint.token}"}, timeout=10).json()["files"]
    [stored] = [f for f in files if f["name"] == "video.mkv"]
    assert stored["id"] in link
    downloaded = requests.get(stored["downloadUrl"], headers={"Authorization": f"Bearer {session_endpoint.token}"},
                              timeout=60).content
    assert downloaded == source.read_bytes()
