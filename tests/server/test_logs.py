"""No log line of `lockr-local serve`, at any level, carries a keyHash, a link signature, an API token,
credentials or a whole capability id (download, session or tus id), whatever error the request provokes."""

from __future__ import annotations

import base64
import hashlib
import signal
import socket
import threading
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from lockr_local.server.logsafe import loggable_path, redact
from tests.helpers import ServerProcess, create_account, upload


def send_raw(url: str, request: bytes) -> None:
    host, port = url.split("//")[1].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        while sock.recv(65536):
            pass


def test_secrets_in_queries_paths_headers_and_cookies_reach_no_log_line(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = ServerProcess(data_dir, env={"LOCKR_LOG_LEVEL": "debug"}).start()
    assert server.proc is not None and server.proc.stderr is not None
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(server.proc.stderr), daemon=True)  # type: ignore
    reader.start()
    try:
        account = create_account(server.url)
        key_hash = hashlib.sha256(b"the key phrase").hexdigest()
        keyed = upload(server.url, b"k" * 200_000, "keyed.bin", {"x-key-hash": key_hash}, account).json()
        plain = upload(server.url, b"p" * 200_000, "plain.bin", account=account).json()
        link = requests.post(f"{server.url}/api/v1/files/{plain['id']}/link", json={"expiresIn": 600},
                             headers=account.auth).json()["url"]
        signature = parse_qs(urlsplit(link).query)["sig"][0]
        session = requests.post(f"{server.url}/api/v1/upload/session", json={"name": "s.bin", "size": 10},
                                headers=account.auth).json()
        session_id = session["uploadUrl"].rsplit("/", 1)[1]
        basic = base64.b64encode(f"{account.username}:{account.password}".encode()).decode()

        # A real storage failure (the bytes' file replaced by a folder): a 500, logged with its traceback.
        blob = next(p for p in (data_dir / "blobs").rglob(f"*{keyed['id']}*") if p.is_file())
        blob.unlink()
        blob.mkdir()
        broken = requests.get(f"{keyed['downloadUrl']}?keyHash={key_hash}", headers=account.auth)
        assert broken.status_code == 500
        # Tornado's own warnings (a form post without its _xsrf field) print the request summary.
        assert requests.post(f"{server.url}/account/login?keyHash={key_hash}&sig={signature}",
                             data={"identifier": "x"}).status_code == 403
        assert requests.get(link).status_code == 200
        assert requests.get(f"{link}x").status_code == 403
        assert requests.put(session["uploadUrl"], data=b"01234", headers={"Content-Range": "bytes 0-4/10"}
                            ).status_code == 308
        # A signed cookie that fails its check is printed by Tornado; it holds a web session's token.
        forged = base64.b64encode(account.token.encode()).decode()
        requests.get(f"{server.url}/account", cookies={"lockr_session": f"2|1:0|10:1600000000|13:lockr_session|"
                                                                        f"{len(forged)}:{forged}|00"})
        # Headers the HTTP parser refuses are quoted in its log line.
        send_raw(server.url, b"GET /api/v1/files HTTP/1.1\r\nHost: x\r\nAuthorization: Basic "
                 + basic.encode() + b"\x01\r\n\r\n")
        send_raw(server.url, b"GET /api/v1/files HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                 + account.token.encode() + b"\x01\r\n\r\n")
    finally:
        server.proc.send_signal(signal.SIGTERM)
        server.proc.wait(timeout=15)
        reader.join(timeout=15)
        server.stop()
    log = "".join(lines)
    assert "storage_error" in log or "could not read" in log, log[-2000:]
    assert "_xsrf" in log  # the warning was logged, without the query
    for secret in (key_hash, signature, account.token, basic, forged, keyed["id"], plain["id"], session_id):
        assert secret not in log, (secret, [line for line in log.splitlines() if secret in line])


@pytest.mark.parametrize("text, expected", [
    ("/api/v1/download/local/0123456789abcdef0123456789abcdef/a.txt",
     "/api/v1/download/local/01234567.../a.txt"),
    ("/api/v1/upload/session/fedcba9876543210fedcba9876543210", "/api/v1/upload/session/fedcba98..."),
    ("/dav/alice/" + "a" * 64, "/dav/alice/" + "a" * 64),  # a sha256 is not an id
])
def test_loggable_path_cuts_capability_ids_short(text: str, expected: str) -> None:
    assert loggable_path(text) == expected


@pytest.mark.parametrize("text, secret", [
    ("POST /x?keyHash=" + "ab" * 32 + "&a=1", "ab" * 32),
    ("GET /x?expires=1&sig=c2lnbmF0dXJl", "c2lnbmF0dXJl"),
    ("Invalid header value 'Bearer lkr_0123456789abcdef\\x01'", "lkr_0123456789abcdef"),
    ("Invalid header value 'Basic dXNlcjpwYXNzd29yZA=='", "dXNlcjpwYXNzd29yZA=="),
])
def test_redact_blanks_secrets(text: str, secret: str) -> None:
    assert secret not in redact(text)
