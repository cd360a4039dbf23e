"""Helpers for session tests: open a session, read the stored range, and a small resuming chunk uploader."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import requests

from tests.helpers import Account, wait_for


def open_session(base_url: str, size: int, name: str = "big.bin", account: Account | None = None,
                 **fields: Any) -> dict[str, Any]:
    body = {"name": name, "size": size, "type": "application/octet-stream", **fields}
    response = requests.post(f"{base_url}/api/v1/upload/session", json=body,
                             headers=account.auth if account else {}, timeout=30)
    assert response.status_code == 201, response.text
    return dict(response.json())


def stored_offset(response: requests.Response) -> int:
    """The byte count a 308/409 says is stored: `Range: bytes=0-N` -> N+1; no Range -> 0."""
    header = response.headers.get("Range")
    if header is None:
        return 0
    assert header.startswith("bytes=0-"), header
    return int(header.split("-", 1)[1]) + 1


def status(upload_url: str, total: int | None = None) -> requests.Response:
    content_range = f"bytes */{'*' if total is None else total}"
    return requests.put(upload_url, headers={"Content-Range": content_range}, timeout=30)


def put_chunk(upload_url: str, data: bytes, first: int, total: int, **kwargs: Any) -> requests.Response:
    last = first + len(data) - 1
    headers = {"Content-Range": f"bytes {first}-{last}/{total}", **kwargs.pop("headers", {})}
    return requests.put(upload_url, data=data, headers=headers, timeout=kwargs.pop("timeout", 30), **kwargs)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def download(file: dict[str, Any], account: Account | None = None) -> bytes:
    response = requests.get(file["downloadUrl"], headers=account.auth if account else {}, timeout=60)
    assert response.status_code == 200, response.text
    return response.content


@dataclass
class ChunkUploader:
    """What a careful client does: sends chunks; after a network error or a 409 asks for the status and
    resumes from the stored offset. `sent` counts every body byte put on the wire, re-sends included."""

    upload_url: str
    data: bytes | Path  # a Path is read chunk by chunk, for files too big to hold
    chunk_size: int
    timeout: tuple[float, float] = (5.0, 30.0)
    sent: int = 0
    attempts: int = 0
    interruptions: int = 0
    offsets_after_interruption: list[int] = field(default_factory=list)
    before_recover: Callable[[], Any] | None = None
    offset: int = 0

    @property
    def total(self) -> int:
        return self.data.stat().st_size if isinstance(self.data, Path) else len(self.data)

    def _slice(self, start: int, end: int) -> bytes:
        if isinstance(self.data, Path):
            with self.data.open("rb") as handle:
                handle.seek(start)
                return handle.read(end - start)
        return self.data[start:end]

    def run(self, max_attempts: int = 1000) -> dict[str, Any]:
        total = self.total
        for _ in range(max_attempts):
            if self.offset == total and total:
                done = status(self.upload_url, total)
                assert done.status_code == 201, done.text
                return dict(done.json())
            end = min(self.offset + self.chunk_size, total)
            try:
                self.attempts += 1
                self.sent += end - self.offset
                response = put_chunk(self.upload_url, self._slice(self.offset, end), self.offset, total,
                                     timeout=self.timeout)
            except requests.RequestException:
                self.interruptions += 1
                if self.before_recover is not None:
                    self.before_recover()
                self.offset = self.recover()
                self.offsets_after_interruption.append(self.offset)
                continue
            if response.status_code == 201:
                self.offset = total
                return dict(response.json())
            if response.status_code == 308:
                self.offset = stored_offset(response)
            elif response.status_code == 409:
                if response.json()["error"]["code"] == "session_busy":
                    time.sleep(0.05)  # client backoff: a cut request still holds the session
                self.offset = self.recover()
            else:
                raise AssertionError(f"unexpected {response.status_code}: {response.text}")
        raise AssertionError("upload did not finish")

    def recover(self) -> int:
        """Asks for the stored range (retrying while the server cannot be reached)."""
        response = wait_for(self._status_or_none, timeout=60, message="the session's stored range")
        assert response.status_code in (308, 201), response.text
        return self.total if response.status_code == 201 else stored_offset(response)

    def _status_or_none(self) -> requests.Response | None:
        try:
            return status(self.upload_url, self.total)
        except requests.RequestException:
            return None

    @property
    def resent(self) -> int:
        return self.sent - self.total
