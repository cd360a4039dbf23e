"""`lockr-local serve` writes one access log line per HTTP request (not per body chunk), in Combined Log
Format or as JSON lines (setting access_log_format), with bytes in and out, duration and user agent, and
without query strings or whole capability ids."""

from __future__ import annotations

import hashlib
import json
import re
import signal
import threading
from pathlib import Path
from typing import Any, Callable

import pytest
import requests

from tests.helpers import ServerProcess, create_account, upload
from tests.server.session_tools import open_session

# Apache/nginx Combined, then bytes received and seconds taken.
COMBINED = re.compile(
    r'^(?P<remote>\S+) - (?P<user>\S+) \[(?P<time>\d{2}/\w{3}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4})\] '
    r'"(?P<method>[A-Z]+) (?P<path>\S+) (?P<protocol>HTTP/[\d.]+)" (?P<status>\d{3}) (?P<bytes_out>\d+|-) '
    r'"(?P<referer>[^"]*)" "(?P<user_agent>[^"]*)" (?P<bytes_in>\d+) (?P<duration>\d+\.\d{3})$')
AGENT = "lockr-test-agent/1.0 (access log)"
CHUNK = 256 * 1024


def parse_combined(line: str) -> dict[str, Any] | None:
    match = COMBINED.match(line)
    if not match:
        return None
    fields: dict[str, Any] = match.groupdict()
    fields["status"] = int(fields["status"])
    fields["bytes_out"] = 0 if fields["bytes_out"] == "-" else int(fields["bytes_out"])
    fields["bytes_in"] = int(fields["bytes_in"])
    fields["duration"] = float(fields["duration"])
    fields["referer"] = "" if fields["referer"] == "-" else fields["referer"]
    return fields


def parse_json(line: str) -> dict[str, Any] | None:
    if not line.startswith("{"):
        return None
    return dict(json.loads(line))


def run_traffic(tmp_path: Path, log_format: str) -> tuple[list[str], dict[str, Any]]:
    """Starts a real server, makes the requests the tests look for, stops it; returns its stderr lines."""
    server = ServerProcess(tmp_path / "data", env={"LOCKR_LOG_LEVEL": "info",
                                                  "LOCKR_ACCESS_LOG_FORMAT": log_format}).start()
    assert server.proc is not None and server.proc.stderr is not None
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(server.proc.stderr), daemon=True)  # type: ignore
    reader.start()
    seen: dict[str, Any] = {}
    try:
        account = create_account(server.url)
        seen["username"] = account.username
        headers = {"User-Agent": AGENT}
        big = b"b" * 3_000_000  # arrives in several body chunks, is one request
        key_hash = hashlib.sha256(b"phrase").hexdigest()
        stored = upload(server.url, big, "big.bin", {**headers, "x-key-hash": key_hash}, account).json()
        seen["file_id"] = stored["id"]
        download = requests.get(f"{stored['downloadUrl']}?keyHash={key_hash}",
                                headers={**headers, "Referer": f"{server.url}/download/{stored['id']}?k=1"})
        assert download.content == big
        session = open_session(server.url, 4 * CHUNK, "chunked.bin", account)
        seen["session_id"] = session["uploadUrl"].rsplit("/", 1)[1]
        for index in range(4):
            first, last = index * CHUNK, (index + 1) * CHUNK - 1
            answer = requests.put(session["uploadUrl"], data=b"c" * CHUNK, timeout=30, headers={
                **headers, "Content-Range": f"bytes {first}-{last}/{4 * CHUNK}"})
            assert answer.status_code in (200, 201, 308), answer.text
    finally:
        server.proc.send_signal(signal.SIGTERM)
        server.proc.wait(timeout=15)
        reader.join(timeout=15)
        server.stop()
    return [line.rstrip("\n") for line in lines], seen


@pytest.mark.parametrize("log_format, parse", [("combined", parse_combined), ("json", parse_json)])
def test_access_log_has_one_line_per_request_with_bytes_duration_and_agent(
        tmp_path: Path, log_format: str, parse: Callable[[str], dict[str, Any] | None]) -> None:
    lines, seen = run_traffic(tmp_path, log_format)
    entries = [entry for entry in map(parse, lines) if entry is not None]
    ours = [entry for entry in entries if entry["user_agent"] == AGENT]
    assert [(e["method"], e["path"].split("/")[3]) for e in ours] == [
        ("POST", "upload"), ("GET", "download"), *[("PUT", "upload")] * 4], ours

    direct, download, *chunks = ours
    assert direct["status"] == 201 and direct["bytes_in"] == 3_000_000 and direct["bytes_out"] > 0
    assert download["status"] == 200 and download["bytes_out"] == 3_000_000 and download["bytes_in"] == 0
    assert [chunk["bytes_in"] for chunk in chunks] == [CHUNK] * 4
    assert [chunk["status"] for chunk in chunks] == [308, 308, 308, 201]
    assert all(isinstance(e["duration"], float) and 0 <= e["duration"] < 30 for e in ours)
    assert {e["remote"] for e in ours} == {"127.0.0.1"}
    # The upload was signed in; the keyHash download and the session URLs carry no login.
    assert [e["user"] for e in ours] == [seen["username"]] + ["-"] * 5
    # No query string and no whole capability id, in the path or the referer.
    assert download["path"] == f"/api/v1/download/local/{seen['file_id'][:8]}.../big.bin"
    assert download["referer"].endswith(f"/download/{seen['file_id'][:8]}...")
    log = "\n".join(lines)
    for secret in ("keyHash", seen["file_id"], seen["session_id"], "?k=1"):
        assert secret not in log
    # Every line of the access log parses: nothing else is written in its format's place.
    assert len(entries) == len([line for line in lines if not line.startswith(("lockr-local:", "20"))])


def test_access_log_to_a_file_is_written_whatever_log_level_says(tmp_path: Path) -> None:
    log_file = tmp_path / "access.log"
    server = ServerProcess(tmp_path / "data", env={"LOCKR_LOG_LEVEL": "error",
                                                  "LOCKR_ACCESS_LOG": str(log_file)}).start()
    try:
        assert requests.get(f"{server.url}/healthz", headers={"User-Agent": AGENT}).status_code == 200
    finally:
        server.stop()
    entries = [parse_combined(line) for line in log_file.read_text().splitlines()]
    assert [(e["method"], e["path"], e["status"], e["user_agent"]) for e in entries if e] == [
        ("GET", "/healthz", 200, AGENT)]
