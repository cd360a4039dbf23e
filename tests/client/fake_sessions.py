"""A stand-in resumable-session endpoint (GCS semantics, as contract.md lists them) for client tests.

Used only while the server under test has no POST /api/v1/upload/session: the `session_endpoint`
fixture prefers the real server whenever it answers that route. Bytes live in files under a folder;
a chunk cut off mid-way keeps what arrived, as the real server keeps what is durable.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

_CONTENT_RANGE = re.compile(r"bytes (?:(\d+)-(\d+)|\*)/(\d+|\*)")


class FakeSessions:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.sessions: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                if self.path != "/api/v1/upload/session":
                    return self.reply(404, {"error": {"code": "not_found", "message": "no route"}})
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
                session_id = secrets.token_hex(16)
                with fake.lock:
                    fake.sessions[session_id] = {"name": body["name"], "size": int(body["size"]), "offset": 0,
                                                 "done": False}
                (fake.folder / session_id).write_bytes(b"")
                base = f"http://{self.headers['Host']}"
                self.reply(201, {"id": session_id, "uploadUrl": f"{base}/upload/{session_id}",
                                 "downloadUrl": f"{base}/api/v1/download/local/{session_id}/x",
                                 "expiresAt": "2099-01-01T00:00:00Z"})

            def do_PUT(self) -> None:
                session_id = self.path.rsplit("/", 1)[-1]
                session = fake.sessions.get(session_id)
                length = int(self.headers.get("Content-Length", "0"))
                if session is None:
                    self.rfile.read(length)
                    return self.reply(404, {"error": {"code": "not_found", "message": "no session"}})
                match = _CONTENT_RANGE.fullmatch(self.headers.get("Content-Range", f"bytes 0-{length - 1}/{length}"))
                assert match, self.headers.get("Content-Range")
                first = int(match.group(1)) if match.group(1) else None
                if first is None or session["done"]:
                    self.rfile.read(length)
                    return self.status(session_id, session)
                if first > session["offset"]:
                    self.rfile.read(length)
                    return self.reply(409, {"error": {"code": "offset_mismatch", "message": "gap"}},
                                      {"Range": f"bytes=0-{session['offset'] - 1}"} if session["offset"] else {})
                skip = session["offset"] - first
                with open(fake.folder / session_id, "ab") as out:
                    remaining = length
                    while remaining:
                        data = self.rfile.read(min(65536, remaining))
                        if not data:
                            return  # cut off: keep what arrived
                        remaining -= len(data)
                        if skip >= len(data):
                            skip -= len(data)
                            continue
                        data, skip = data[skip:], 0
                        out.write(data)
                        out.flush()
                        session["offset"] += len(data)
                if session["offset"] >= session["size"]:
                    session["done"] = True
                self.status(session_id, session)

            def status(self, session_id: str, session: dict[str, Any]) -> None:
                if session["done"]:
                    data = (fake.folder / session_id).read_bytes()
                    base = f"http://{self.headers['Host']}"
                    return self.reply(201, {"id": session_id, "name": session["name"], "size": len(data),
                                            "type": "application/octet-stream", "region": "local",
                                            "sha256": hashlib.sha256(data).hexdigest(), "hasKey": False,
                                            "createdAt": "2026-01-01T00:00:00Z",
                                            "downloadUrl": f"{base}/api/v1/download/local/{session_id}/x"})
                headers = {"Range": f"bytes=0-{session['offset'] - 1}"} if session["offset"] else {}
                self.reply(308, None, headers)

            def reply(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
                payload = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                return  # connections cut on purpose by the tests' proxy are not news

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.httpd.serve_forever, name="fake-sessions", daemon=True).start()

    def stored(self, session_id: str) -> bytes:
        return (self.folder / session_id).read_bytes()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
