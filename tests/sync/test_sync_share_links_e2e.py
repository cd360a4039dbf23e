"""Share links come from the endpoint: behind a reverse proxy under a path prefix, the links the agent
offers (recent uploads, the tray's Copy link) are the endpoint's own, not lockr-local's URL layout.

A real `lockr-local serve` whose public_url is nginx's `/lockr/` prefix; the agent talks to the server
directly, as a machine on the same network would, and the links it reports must work through nginx.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
import requests

from tests.helpers import ServerProcess, create_account, wait_for
from tests.nginx import free_port, nginx_binary, running_nginx
from tests.sync.support import Agents, remote_files, write

PREFIX = "/lockr"


@pytest.fixture
def prefixed(tmp_path: Path) -> Iterator[tuple[ServerProcess, str]]:
    """(the server, its public base URL): nginx serves it under PREFIX, and public_url says so."""
    nginx_binary()
    port = free_port()
    public = f"http://127.0.0.1:{port}{PREFIX}"
    server = ServerProcess(tmp_path / "data", env={"LOCKR_PUBLIC_URL": public}).start()
    block = f"""
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 0;
        location {PREFIX}/ {{
            proxy_pass http://127.0.0.1:{server.port}/;
            proxy_http_version 1.1;
            proxy_request_buffering off;
            proxy_set_header Host $host;
        }}
    }}"""
    try:
        with running_nginx(tmp_path / "nginx", block, port):
            yield server, public
    finally:
        server.stop()


def test_recent_uploads_offer_the_endpoints_own_share_links(prefixed: tuple[ServerProcess, str], folder: Path,
                                                            agents: Agents) -> None:
    server, public = prefixed
    account = create_account(server.url)
    write(folder / "report.txt", "quarterly numbers\n")
    agent = agents.start(folder, server.url, account)
    wait_for(lambda: agent.status().recent_uploads, message="the upload to be reported")
    recent = agent.status().recent_uploads[0]
    (listed,) = remote_files(server.url, account)
    assert recent.path == "report.txt" and recent.remote_id == listed["id"]
    assert recent.share_url == listed["pageUrl"] == f"{public}/download/{listed['id']}"
    page = requests.get(recent.share_url, timeout=30)  # the link works for whoever it is handed to
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "report.txt" in page.text
