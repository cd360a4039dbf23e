"""What the agent needs from a lockr endpoint (`RemoteStore`), and the adapter that speaks the public HTTP API.

Retries live here, at the boundary: 429 waits for Retry-After, 5xx and dropped connections back off
exponentially; whatever still fails is raised as a `LockrError` subclass or `RemoteUnavailable`.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

import requests

from lockr_local.errors import LockrError, error_class_for
from lockr_local.sync.engine import RemoteEntry

log = logging.getLogger("lockr.sync.remote")

# GCS-compatible chunk size (a multiple of 256 KiB); each chunk is one durable step the agent records.
CHUNK_SIZE = 8 * 1024 * 1024
PAGE_SIZE = 1000


class RemoteUnavailable(Exception):
    """The endpoint could not be reached (or kept failing with 5xx) after the retries."""


@dataclass(frozen=True)
class ResumeState:
    session_url: str
    offset: int


class RemoteStore(Protocol):
    def list_files(self) -> list[RemoteEntry]: ...

    def upload(self, path: Path, name: str, size: int, *, resume: ResumeState | None = None,
               on_session: Callable[[ResumeState], None] = lambda state: None,
               progress: Callable[[int], None] = lambda done: None) -> RemoteEntry: ...

    def delete(self, remote_id: str) -> None: ...


class Throttle:
    """A token bucket shared by all upload threads: `limit` bytes per second, 0 = unlimited."""

    def __init__(self, limit: int = 0) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._allowance = float(limit)
        self._stamp = time.monotonic()

    def take(self, amount: int) -> None:
        if self.limit <= 0:
            return
        with self._lock:
            now = time.monotonic()
            self._allowance = min(float(self.limit), self._allowance + (now - self._stamp) * self.limit)
            self._stamp = now
            self._allowance -= amount
            debt = -self._allowance / self.limit if self._allowance < 0 else 0.0
        if debt > 0:
            time.sleep(debt)


class _FileBody:
    """A slice of a file as a request body with a known length, read in blocks, counted and throttled."""

    def __init__(self, path: Path, start: int, length: int, progress: Callable[[int], None],
                 throttle: Throttle) -> None:
        self._handle = path.open("rb")
        self._handle.seek(start)
        self._left = length
        self._length = length
        self._done = start
        self._progress = progress
        self._throttle = throttle

    def __len__(self) -> int:
        return self._length

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        size = self._left if size is None or size < 0 else min(size, self._left)
        size = min(size, 256 * 1024)
        self._throttle.take(size)
        data = self._handle.read(size)
        self._left -= len(data)
        self._done += len(data)
        self._progress(self._done)
        return data

    def close(self) -> None:
        self._handle.close()


def _entry(body: dict[str, Any]) -> RemoteEntry:
    return RemoteEntry(str(body["name"]), str(body["id"]), int(body["size"]), str(body.get("sha256") or ""),
                       str(body.get("downloadUrl") or ""))


class HttpRemote:
    """`RemoteStore` over the public lockr HTTP API with `requests` (resumable sessions when offered)."""

    def __init__(self, endpoint: str, token: str | None, *, region: str | None = None, throttle: Throttle | None = None,
                 retries: int = 8, max_backoff: float = 30.0, timeout: float = 60.0) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.token = token
        self.region = region
        self.throttle = throttle or Throttle()
        self.retries = retries
        self.max_backoff = max_backoff
        self.timeout = timeout
        self._local = threading.local()
        self.sessions_supported: bool | None = None
        self.stop_event = threading.Event()

    @property
    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            self._local.session = session
        return session

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        headers.update(extra or {})
        return headers

    def _request(self, method: str, url: str, *, body_factory: Callable[[], Any] | None = None,
                 ok: tuple[int, ...] = (200, 201, 204), **kwargs: Any) -> requests.Response:
        """One request with retries on 429 (Retry-After), 5xx and connection errors; `ok` statuses return."""
        delay = 0.25
        for attempt in range(self.retries + 1):
            body = body_factory() if body_factory is not None else None
            try:
                response = self._session.request(method, url, data=body, timeout=self.timeout, **kwargs)
            except (requests.ConnectionError, requests.Timeout) as exc:
                if attempt == self.retries:
                    raise RemoteUnavailable(f"{self.endpoint} is unreachable: {exc}") from exc
                log.info("%s %s failed (%s); retrying in %.1fs", method, url, exc.__class__.__name__, delay)
                self._wait(delay)
                delay = min(delay * 2, self.max_backoff)
                continue
            finally:
                if body is not None and hasattr(body, "close"):
                    body.close()
            if response.status_code in ok:
                return response
            if response.status_code == 429 and attempt < self.retries:
                wait = _retry_after(response, delay)
                log.info("rate limited by %s; waiting %.1fs", self.endpoint, wait)
                self._wait(wait)
                continue
            if response.status_code >= 500 and response.status_code != 507 and attempt < self.retries:
                log.info("%s %s answered %s; retrying in %.1fs", method, url, response.status_code, delay)
                self._wait(delay)
                delay = min(delay * 2, self.max_backoff)
                continue
            if response.status_code >= 500 and response.status_code != 507:
                raise RemoteUnavailable(f"{self.endpoint} keeps answering {response.status_code}")
            raise _error(response)
        raise AssertionError("unreachable")

    def _wait(self, seconds: float) -> None:
        if self.stop_event.wait(seconds):
            raise RemoteUnavailable("the agent is stopping")

    def list_files(self) -> list[RemoteEntry]:
        found: list[RemoteEntry] = []
        cursor: str | None = None
        while True:
            params = {"limit": str(PAGE_SIZE)}
            if cursor:
                params["cursor"] = cursor
            body = self._request("GET", f"{self.endpoint}/api/v1/files", params=params,
                                 headers=self._headers()).json()
            found.extend(_entry(item) for item in body.get("files", []))
            cursor = body.get("next")
            if not cursor:
                return found

    def delete(self, remote_id: str) -> None:
        self._request("DELETE", f"{self.endpoint}/api/v1/files/{remote_id}", ok=(200, 204, 404),
                      headers=self._headers())

    def upload(self, path: Path, name: str, size: int, *, resume: ResumeState | None = None,
               on_session: Callable[[ResumeState], None] = lambda state: None,
               progress: Callable[[int], None] = lambda done: None) -> RemoteEntry:
        if resume is not None:
            offset = self._session_offset(resume.session_url, size)
            if isinstance(offset, RemoteEntry):
                return offset
            if offset is not None:
                return self._send_chunks(path, resume.session_url, size, offset, on_session, progress)
        if self.sessions_supported is not False:
            session_url = self._open_session(name, size)
            if session_url is not None:
                on_session(ResumeState(session_url, 0))
                return self._send_chunks(path, session_url, size, 0, on_session, progress)
        headers = self._headers({"x-file-name": _quote_name(name), "Content-Type": "application/octet-stream"})
        if self.region:
            headers["x-upload-region"] = self.region
        response = self._request("POST", f"{self.endpoint}/api/v1/upload", headers=headers,
                                 body_factory=lambda: _FileBody(path, 0, size, progress, self.throttle))
        return _entry(response.json())

    def _open_session(self, name: str, size: int) -> str | None:
        payload: dict[str, Any] = {"name": name, "size": size, "type": "application/octet-stream"}
        if self.region:
            payload["region"] = self.region
        try:
            response = self._request("POST", f"{self.endpoint}/api/v1/upload/session", json=payload,
                                     headers=self._headers())
        except LockrError as exc:
            if exc.status in (404, 405):
                self.sessions_supported = False
                return None
            raise
        self.sessions_supported = True
        return str(response.json()["uploadUrl"])

    def _session_offset(self, session_url: str, size: int) -> int | RemoteEntry | None:
        """The persisted offset of a session, its file when complete, or None when it is gone."""
        try:
            response = self._request("PUT", session_url, ok=(200, 201, 308),
                                     headers={"Content-Range": f"bytes */{size}", "Content-Length": "0"})
        except LockrError as exc:
            if exc.status in (404, 410):
                return None
            raise
        if response.status_code in (200, 201):
            return _entry(response.json())
        return _range_end(response)

    def _send_chunks(self, path: Path, session_url: str, size: int, offset: int,
                     on_session: Callable[[ResumeState], None], progress: Callable[[int], None]) -> RemoteEntry:
        if size == 0:
            response = self._request("PUT", session_url, ok=(200, 201), headers={"Content-Length": "0"})
            return _entry(response.json())
        while True:
            length = min(CHUNK_SIZE, size - offset)
            last = offset + length - 1
            start = offset
            try:
                response = self._request(
                    "PUT", session_url, ok=(200, 201, 308),
                    headers={"Content-Range": f"bytes {start}-{last}/{size}", "Content-Type": "application/octet-stream"},
                    body_factory=lambda: _FileBody(path, start, length, progress, self.throttle))
            except (LockrError, RemoteUnavailable) as exc:
                # A chunk may have been partly stored before the failure: ask where the session stands.
                if isinstance(exc, LockrError) and exc.status not in (409,):
                    raise
                state = self._session_offset(session_url, size)
                if isinstance(state, RemoteEntry):
                    return state
                if state is None or isinstance(exc, RemoteUnavailable):
                    raise
                offset = state
                on_session(ResumeState(session_url, offset))
                continue
            if response.status_code in (200, 201):
                return _entry(response.json())
            offset = _range_end(response)
            on_session(ResumeState(session_url, offset))


def _range_end(response: requests.Response) -> int:
    header = response.headers.get("Range", "")
    if header.startswith("bytes=") and "-" in header:
        return int(header.split("-", 1)[1]) + 1
    return 0


def _retry_after(response: requests.Response, fallback: float) -> float:
    try:
        return max(0.05, float(response.headers.get("Retry-After", fallback)))
    except ValueError:
        return fallback


def _quote_name(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="/ ")


def _error(response: requests.Response) -> LockrError:
    try:
        error = response.json()["error"]
        code, message = str(error.get("code", "")), str(error.get("message", ""))
    except (ValueError, KeyError, TypeError, AttributeError):
        code, message = "", response.text[:200]
    cls = error_class_for(response.status_code, code)
    if cls.__name__ == "RateLimited":
        return LockrError(message or f"HTTP {response.status_code}")
    exc = cls.__new__(cls)
    LockrError.__init__(exc, message or None)
    return exc
