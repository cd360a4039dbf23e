"""What the agent needs from a lockr endpoint (`RemoteStore`), and its adapter over `LockrClient`.

This is the boundary: LockrClient retries 429 (Retry-After), 5xx and dropped connections a few times;
what still fails comes out as a `LockrError` subclass (refused: this file only) or `RemoteUnavailable`
(the endpoint is down or overloaded: the agent shows "offline" and backs off between passes).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol

from lockr_local.errors import LockrError
from lockr_local.sync.engine import RemoteEntry
from lockr_local.transfer import READ_BLOCK

if TYPE_CHECKING:
    from lockr_local.client import LockrClient, RemoteFile

log = logging.getLogger("lockr.sync.remote")

PAGE_SIZE = 1000


class RemoteUnavailable(Exception):
    """The endpoint could not be reached (or kept failing with 5xx) after the retries."""


@dataclass(frozen=True)
class ResumeState:
    session_url: str
    offset: int


HealthListener = Callable[[bool, str], None]


class RemoteStore(Protocol):
    """Everything the agent asks of an endpoint; the agent uses nothing else (no probing for extras).

    Failures: `RemoteUnavailable` when the endpoint cannot be reached (the agent goes offline and backs
    off), a `LockrError` when it refuses (`Unauthorized`: the token; others: this file only).
    """

    def list_files(self) -> list[RemoteEntry]:
        """The whole listing; each entry's `download_url` is the share link as the endpoint gives it."""
        ...

    def upload(self, path: Path, name: str, size: int, *, resume: ResumeState | None = None,
               on_session: Callable[[ResumeState], None] = lambda state: None,
               progress: Callable[[int], None] = lambda done: None) -> RemoteEntry:
        """Stores the file as `name` (resuming `resume` when given), reporting each session it opens and
        the bytes sent; the entry's `download_url` is the endpoint's share link for it."""
        ...

    def delete(self, remote_id: str) -> None:
        """Deletes a file; one already gone counts as deleted."""
        ...

    def watch_health(self, listener: HealthListener) -> None:
        """`listener(ok, message)` is called whenever the endpoint goes from reachable to not, or back."""
        ...

    def cancel(self) -> None:
        """The agent is stopping: requests in flight and retry waits end now with `RemoteUnavailable`."""
        ...


class Throttle:
    """A token bucket shared by all upload threads: `limit` bytes per second, 0 = unlimited."""

    def __init__(self, limit: int = 0) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._allowance = float(limit)
        self._stamp = time.monotonic()

    def block_size(self) -> int:
        """Bytes to send between two takes: about 0.1 s worth, so a limited upload flows evenly instead of
        in 1 MiB bursts followed by long pauses (the pacing happens after each block is sent)."""
        if self.limit <= 0:
            return READ_BLOCK
        return max(16 * 1024, min(READ_BLOCK, self.limit // 10))

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


class ClientRemote(RemoteStore):
    """`RemoteStore` over `LockrClient` (lockr_local/client.py): its resumable sessions, retries and errors.

    A file below the client's `one_request_max` (small_file_max, at most one chunk) goes in one direct POST
    with an Idempotency-Key when the endpoint advertises that it keeps keys (Accept-Idempotency-Key): a
    retry after a lost answer then gets the first file back instead of storing a duplicate. Every other
    upload goes through a resumable session when the endpoint offers them, since a session PUT can be
    retried and resumed safely while a keyless direct POST whose answer was lost might have been stored
    already. Endpoints without sessions get direct POSTs.
    """

    def __init__(self, client: "LockrClient", *, region: str | None = None, throttle: Throttle | None = None) -> None:
        import dataclasses

        self.client = client
        self.region = region
        self.throttle = throttle or Throttle()
        self._cancelled = threading.Event()
        self._on_health: HealthListener | None = None
        self.bytes_sent = 0
        self.sessions_supported: bool | None = None
        self._sent_lock = threading.Lock()
        self._probe_lock = threading.Lock()
        self._healthy = True
        # Few quick retries inside the client: a long outage surfaces as RemoteUnavailable, and the agent
        # (showing "offline") backs off between passes instead of blocking in one request.
        client.retry = dataclasses.replace(client.retry, attempts=4, base_delay=0.25, max_delay=2.0,
                                           sleep=self._sleep)

    def watch_health(self, listener: HealthListener) -> None:
        self._on_health = listener

    def cancel(self) -> None:
        self._cancelled.set()

    def _sleep(self, seconds: float) -> None:
        if self._cancelled.wait(seconds):
            raise RemoteUnavailable("the agent is stopping")

    def _health(self, ok: bool, message: str = "") -> None:
        if ok != self._healthy:
            self._healthy = ok
            if self._on_health is not None:
                self._on_health(ok, message)

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Runs a client call, translating unreachable/overloaded endpoints into RemoteUnavailable."""
        from lockr_local.errors import ConnectionFailed, RateLimited

        try:
            result = fn(*args, **kwargs)
        except ConnectionFailed as exc:
            self._health(False, exc.message)
            raise RemoteUnavailable(exc.message) from exc
        except RateLimited as exc:
            raise RemoteUnavailable(f"{self.client.endpoint} keeps rate-limiting us ({exc.message})") from exc
        except LockrError as exc:
            if exc.status >= 500 and exc.status != 507:
                self._health(False, exc.message)
                raise RemoteUnavailable(exc.message) from exc
            self._health(True)
            raise
        self._health(True)
        return result

    def list_files(self) -> list[RemoteEntry]:
        files = self._call(self.client.list_files, page_size=PAGE_SIZE)
        return [_client_entry(f) for f in files]

    def delete(self, remote_id: str) -> None:
        from lockr_local.errors import NotFound

        try:
            self._call(self.client.delete, remote_id)
        except NotFound:
            pass  # already gone: what we wanted

    def upload(self, path: Path, name: str, size: int, *, resume: ResumeState | None = None,
               on_session: Callable[[ResumeState], None] = lambda state: None,
               progress: Callable[[int], None] = lambda done: None) -> RemoteEntry:
        from lockr_local.errors import Gone, MethodNotAllowed, NotFound

        # On a resume the client first reports the server's offset: bytes sent before, not by us.
        one_request = resume is None and self._in_one_request(size)
        state: dict[str, Any] = {"url": resume.session_url if resume else "", "sent": None if resume else 0,
                                 "recorded": 0}
        chunk = self.client.chunk_size
        self.client.read_block = self.throttle.block_size()

        def on_progress(done: int, total: int | None) -> None:
            if self._cancelled.is_set() and not one_request:
                # Aborts the request; the session stays. A small file's one request is left to finish: it is
                # over in a moment, and cut off after its last byte it could be stored without being recorded.
                raise RemoteUnavailable("the agent is stopping")
            if state["sent"] is None:
                state["sent"] = state["recorded"] = done
            delta = max(0, done - state["sent"])
            state["sent"] = done
            if delta:
                with self._sent_lock:
                    self.bytes_sent += delta
                self.throttle.take(delta)
            if state["url"] and done - state["recorded"] >= chunk:
                state["recorded"] = done - done % chunk
                on_session(ResumeState(str(state["url"]), int(state["recorded"])))
            progress(done)

        def session_opened(session: Any) -> None:
            state["url"] = session.upload_url
            on_session(ResumeState(session.upload_url, 0))

        if one_request:
            info = self._call(self.client.upload, path, name, region=self.region, progress=on_progress,
                              resumable=False)
            return _client_entry(info)
        if resume is not None:
            try:
                info = self._call(self.client.resume_upload, resume.session_url, path, progress=on_progress)
                return _client_entry(info)
            except (NotFound, Gone):
                log.info("the upload session of %s is gone; starting a new one", name)
                state.update(url="", sent=0, recorded=0)
        if self.sessions_supported is not False:
            try:
                info = self._call(self.client.upload, path, name, region=self.region, progress=on_progress,
                                  resumable=True, on_session=session_opened)
                self.sessions_supported = True
                return _client_entry(info)
            except (NotFound, MethodNotAllowed):
                if self.sessions_supported:
                    raise
                self.sessions_supported = False
        info = self._call(self.client.upload, path, name, region=self.region, progress=on_progress,
                          resumable=False)
        return _client_entry(info)

    def _in_one_request(self, size: int) -> bool:
        if not self.client.token or size >= self.client.one_request_max:
            return False
        with self._probe_lock:  # one probe, not one per upload thread
            return bool(self._call(self.client.keeps_idempotency_keys))


def _client_entry(info: "RemoteFile") -> RemoteEntry:
    return RemoteEntry(info.name, info.id, info.size, info.sha256 or "", info.share_url)


def make_remote(endpoint: str, token: str | None, *, region: str | None = None, throttle: Throttle | None = None,
                chunk_size: int | None = None, small_file_max: int | None = None,
                concurrency: int = 1) -> ClientRemote:
    """The agent's RemoteStore: LockrClient with its resumable sessions and one-request small files, keeping a
    connection alive for each of `concurrency` upload threads."""
    from lockr_local.client import LockrClient

    options: dict[str, Any] = {"pool_size": concurrency}
    if chunk_size:
        options["chunk_size"] = chunk_size
    if small_file_max is not None:
        options["small_file_max"] = small_file_max
    return ClientRemote(LockrClient(endpoint, token, **options), region=region, throttle=throttle)
