"""LockrClient: the public lockr HTTP API as Python calls, for the CLI, the sync agent and the tray.

It speaks only the documented API, so it works against any lockr endpoint. Server errors come back
as the matching `lockr_local.errors` class; transient failures (network errors, 5xx, 429) are retried
with exponential backoff that honours Retry-After; bodies are streamed in both directions.
"""

from __future__ import annotations

import dataclasses
import email.utils
import html
import logging
import mimetypes
import os
import re
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator
from urllib.parse import quote, urljoin, urlsplit

import requests

from lockr_local import __version__
from lockr_local.errors import (ConnectionFailed, IdempotencyKeyInFlight, LockrError, MethodNotAllowed, NotFound,
                                RateLimited, SessionBusy, SessionOffsetMismatch, error_class_for)
from lockr_local.remote import AccountInfo, Download, NewAccount, RemoteFile, TrashedFile, UploadSession
from lockr_local.netfail import NetworkFailure, loggable_url, network_failure, origin_of, unreachable_message
from lockr_local.transfer import (DEFAULT_CHUNK_SIZE, READ_BLOCK, FileWindow, ProgressCallback, RetryPolicy,
                                  chunk_size_checked, hash_prefix, key_hash, persisted_offset, source_size)

DIRECT_UPLOAD_LIMIT = 16 * 1024 * 1024
# Files below this (and below one chunk) go in one POST with an Idempotency-Key where the endpoint keeps keys:
# the setting small_file_max. A file that fits in one chunk would take a single PUT of a session too, so the
# session would add only its creation (a request and a commit); a cut costs resending at most this much.
SMALL_FILE_MAX = DEFAULT_CHUNK_SIZE
IDEMPOTENCY_KEY = "Idempotency-Key"
# The server's answer that it keeps keys (on its upload answers and WebDAV's OPTIONS): "ttl=SECONDS".
ACCEPT_IDEMPOTENCY_KEY = "Accept-Idempotency-Key"
# requests hands over a block only once it is complete, so a cut loses the partial block: keep it small.
DOWNLOAD_BLOCK = 64 * 1024
TIMEOUT = (15.0, 120.0)  # (connect, between bytes); a chunk's fsync on a slow disk can take a while
# A fail-fast client's connect timeout until the server has answered once: it bounds the TLS handshake
# too, which an https request to a plain-HTTP port never finishes (the server waits for a request line).
FIRST_CONTACT_TIMEOUT = 5.0
log = logging.getLogger("lockr.client")
_DOWNLOAD_PATH = re.compile(r"/api/v1/download/[^/?#]+/([0-9a-fA-F]{32,64})")
_PAGE_PATH = re.compile(r"/download/([0-9a-fA-F]{32,64})/?$")
_ID = re.compile(r"[0-9a-fA-F]{32,64}")

def file_id_of(text: str) -> str | None:
    """The file id in a share link (/download/ID), a download URL (/api/v1/download/REGION/ID/...) or bare."""
    text = text.strip()
    if _ID.fullmatch(text):
        return text.lower()
    path = urlsplit(text).path
    match = _DOWNLOAD_PATH.search(path) or _PAGE_PATH.search(path)
    return match.group(1).lower() if match else None


def with_claim(file: RemoteFile, claim_token: str | None) -> RemoteFile:
    """A session's file as its uploader should see it: with the claim token its creation gave (the
    completing answer cannot carry it, since the server keeps only its hash)."""
    return dataclasses.replace(file, claim_token=claim_token) if claim_token and not file.claim_token else file


__all__ = ["AccountInfo", "Download", "LockrClient", "NewAccount", "RemoteFile", "UploadSession"]


class LockrClient:
    """One lockr endpoint, with or without a token (without one, the caller is a guest)."""

    def __init__(self, endpoint: str, token: str | None = None, *, retry: RetryPolicy | None = None,
                 direct_limit: int = DIRECT_UPLOAD_LIMIT, chunk_size: int = DEFAULT_CHUNK_SIZE,
                 timeout: tuple[float, float] = TIMEOUT, small_file_max: int = SMALL_FILE_MAX,
                 pool_size: int = 10) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.token = token
        self.retry = retry or RetryPolicy()
        # Without Idempotency-Key support: files below this go in one POST (retried: a lost answer may
        # leave a duplicate), larger ones through sessions.
        self.direct_limit = direct_limit
        self.small_file_max = small_file_max
        # Whether the endpoint keeps Idempotency-Keys: None until an answer (or the probe) has told.
        self.accepts_idempotency_key: bool | None = None
        self.chunk_size = chunk_size_checked(chunk_size)
        self.read_block = READ_BLOCK  # bytes handed to the socket between progress callbacks
        self.timeout = timeout
        self.http = requests.Session()
        # One kept-alive connection per thread that uploads at once (the sync agent's sync_concurrency);
        # requests' default pool of 10 would close the connections of any further threads after each use.
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=max(10, pool_size))
        self.http.mount("http://", adapter)
        self.http.mount("https://", adapter)
        self.http.headers["User-Agent"] = f"lockr-local/{__version__}"
        # Settings like REQUESTS_CA_BUNDLE still apply; a netrc must not add credentials behind our back.
        self.http.trust_env = True
        self.http.hooks["response"].append(self._on_response)
        self.reached = False  # whether the server has answered this client yet

    def _on_response(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self.reached = True
        if ACCEPT_IDEMPOTENCY_KEY in response.headers:
            self.accepts_idempotency_key = True
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s -> %d %s (%.2f s)", response.request.method, loggable_url(response.request.url or ""),
                      response.status_code, response.reason, response.elapsed.total_seconds())

    def _timeouts(self) -> tuple[float, float]:
        if self.retry.fail_fast and not self.reached:
            return min(self.timeout[0], FIRST_CONTACT_TIMEOUT), self.timeout[1]
        return self.timeout

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> "LockrClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- accounts ---------------------------------------------------------------------------------

    def create_account(self, username: str, email: str, password: str) -> NewAccount:
        data = self._json("POST", "/api/v1/account", expect=(201,), idempotent=False,
                          json={"username": username, "email": email, "password": password})
        self.token = str(data["token"])
        return NewAccount(str(data["username"]), str(data["email"]), int(data["quota"]), self.token)

    def login(self, identifier: str, password: str) -> str:
        """Exchanges username-or-email + password for a new API token, which this client then uses."""
        data = self._json("POST", "/api/v1/login", idempotent=False, authenticate=False,
                          json={"identifier": identifier, "password": password, "tokenName": "lockr-local cli"})
        self.token = str(data["token"])
        return self.token

    def account(self) -> AccountInfo:
        data = self._json("GET", "/api/v1/account")
        return AccountInfo(str(data["username"]), str(data["email"]), int(data["quota"]), int(data.get("used", 0)),
                           int(data.get("reserved", 0)), data.get("defaultRegion"),
                           tuple(data.get("regions") or ()))

    # -- files ------------------------------------------------------------------------------------

    def _pages(self, path: str, page_size: int | None) -> Iterator[dict[str, Any]]:
        """The `files` of every page of a listing that pages with `limit` and a `next` cursor."""
        params: dict[str, Any] = {"limit": page_size} if page_size else {}
        while True:
            data = self._json("GET", path, params=params)
            yield from data.get("files", [])
            if not data.get("next"):
                return
            params["cursor"] = data["next"]

    def iter_files(self, page_size: int | None = None) -> Iterator[RemoteFile]:
        """Every file of the account, fetched a page at a time."""
        return map(RemoteFile.from_json, self._pages("/api/v1/files", page_size))

    def list_files(self, page_size: int | None = None) -> list[RemoteFile]:
        return list(self.iter_files(page_size))

    def file(self, file_id: str) -> RemoteFile:
        return RemoteFile.from_json(self._json("GET", f"/api/v1/files/{quote(file_id, safe='')}"))

    def register(self, file_id: str, claim_token: str | None = None) -> RemoteFile:
        """Attaches a guest upload to this account; `claim_token` is what its upload's answer carried."""
        body = {"id": file_id, **({"claimToken": claim_token} if claim_token else {})}
        return RemoteFile.from_json(self._json("POST", "/api/v1/files/register", json=body))

    def set_key(self, file_id: str, phrase: str) -> RemoteFile:
        return RemoteFile.from_json(self._json("POST", f"/api/v1/files/{quote(file_id, safe='')}/key",
                                               json={"key": phrase}))

    def clear_key(self, file_id: str) -> RemoteFile:
        return RemoteFile.from_json(self._json("POST", f"/api/v1/files/{quote(file_id, safe='')}/key",
                                               json={"key": None}))

    def share_link(self, file_id: str, expires_in: int) -> dict[str, Any]:
        """A signed download link that works without a token for `expires_in` seconds: {url, expiresAt}."""
        return self._json("POST", f"/api/v1/files/{quote(file_id, safe='')}/link", expect=(201, 200),
                          json={"expiresIn": expires_in})

    def tokens(self) -> list[dict[str, Any]]:
        """The account's API tokens: id, prefix, name, createdAt, lastUsedAt, revoked (never the secret)."""
        return list(self._json("GET", "/api/v1/tokens").get("tokens", []))

    def revoke_token_id(self, token_id: int) -> None:
        self._request("DELETE", self._url(f"/api/v1/tokens/{int(token_id)}"), expect=(204, 200))

    def delete(self, file_id: str) -> None:
        """Deletes a file (on lockr-local: into the trash, restorable until trash_retention)."""
        self._request("DELETE", self._url(f"/api/v1/files/{quote(file_id, safe='')}"), expect=(204, 200))

    # -- the trash (lockr-local's; a server without one answers 404) --------------------------------

    def iter_trash(self, page_size: int | None = None) -> Iterator[TrashedFile]:
        """Every file in the account's trash, a page at a time."""
        return map(TrashedFile.from_json, self._pages("/api/v1/trash", page_size))

    def restore(self, file_id: str) -> RemoteFile:
        """Brings a file back from the trash with its id; its name may come back with " (restored)"."""
        return RemoteFile.from_json(self._json("POST", f"/api/v1/trash/{quote(file_id, safe='')}/restore",
                                               idempotent=False))

    def delete_forever(self, file_id: str) -> None:
        self._request("DELETE", self._url(f"/api/v1/trash/{quote(file_id, safe='')}"), expect=(204, 200))

    def empty_trash(self) -> tuple[int, int]:
        """Deletes everything in the trash for good: (files, bytes)."""
        data = self._json("DELETE", "/api/v1/trash")
        return int(data.get("deleted", 0)), int(data.get("bytes", 0))

    # -- uploads ----------------------------------------------------------------------------------

    def upload(self, source: str | os.PathLike[str] | BinaryIO, name: str | None = None, *,
               content_type: str | None = None, region: str | None = None, key_phrase: str | None = None,
               progress: ProgressCallback | None = None, resumable: bool | None = None,
               on_session: Callable[[UploadSession], None] | None = None) -> RemoteFile:
        """Uploads a file: one direct POST when `sends_in_one_request(size)`, else a resumable session in chunks.

        `on_session` hears about a new session before its first byte is sent, so a caller can keep the
        uploadUrl and finish the upload after a crash with `resume_upload`.
        """
        stack = ExitStack()
        try:
            handle, name = self._open_source(source, name, stack)
            size = source_size(handle)
            content_type = content_type or mimetypes.guess_type(name)[0] or "application/octet-stream"
            hashed_key = key_hash(key_phrase) if key_phrase else None
            chosen = resumable
            if chosen is None:
                chosen = not self.sends_in_one_request(size)
            if not chosen or size is None:
                return self._direct_upload(handle, size, name, content_type, region, hashed_key, progress)
            try:
                session = self.create_session(name, size, content_type, region=region, key_hash=hashed_key)
            except (NotFound, MethodNotAllowed):
                if resumable:
                    raise
                # An endpoint without resumable sessions still takes the file in one streamed POST.
                return self._direct_upload(handle, size, name, content_type, region, hashed_key, progress)
            if on_session is not None:
                on_session(session)
            return with_claim(self._send_chunks(session.upload_url, handle, size, 0, progress), session.claim_token)
        finally:
            stack.close()

    @property
    def one_request_max(self) -> int:
        """Files below this many bytes go in one keyed POST (at most one chunk: a user who chose small chunks
        for a proxy's body limit gets small requests)."""
        return min(self.small_file_max, self.chunk_size)

    def sends_in_one_request(self, size: int | None) -> bool:
        """Whether `upload` sends a file of `size` bytes in one direct POST rather than a session: below
        `one_request_max` (the POST carries an Idempotency-Key, so a retry after a lost answer is safe where
        the endpoint keeps keys); larger files through sessions where it does; where it does not (or for a
        guest, who cannot use keys), below `direct_limit` as before. A stream of unknown size: always."""
        if size is None:
            return True
        if self.token and size < self.one_request_max:
            return True
        if self.token and self.keeps_idempotency_keys():
            return False
        return size < self.direct_limit

    def keeps_idempotency_keys(self) -> bool:
        """Whether the endpoint advertises Accept-Idempotency-Key: known from its answers, else asked once
        with WebDAV's OPTIONS (no credentials, no body; the README names it as the advertisement's place).
        False when the probe goes unanswered (asked again next time)."""
        if self.accepts_idempotency_key is None:
            try:
                response = self.http.request("OPTIONS", self._url("/dav/"), timeout=self._timeouts(),
                                             allow_redirects=False)
            except requests.RequestException:
                return False
            self.accepts_idempotency_key = ACCEPT_IDEMPOTENCY_KEY in response.headers
        return self.accepts_idempotency_key

    def create_session(self, name: str, size: int, content_type: str = "application/octet-stream", *,
                       region: str | None = None, key_hash: str | None = None) -> UploadSession:
        body: dict[str, Any] = {"name": name, "size": size, "type": content_type}
        if region:
            body["region"] = region
        if key_hash:
            body["keyHash"] = key_hash
        # Retried after a network error although a lost answer may leave an unused session behind: the
        # server reaps it (and its reservation) at expiry, and giving up on a cut would be worse.
        data = self._json("POST", "/api/v1/upload/session", expect=(201, 200), json=body)
        return UploadSession(str(data["id"]), urljoin(self.endpoint + "/", str(data["uploadUrl"])),
                             str(data.get("downloadUrl", "")), str(data.get("expiresAt", "")),
                             data.get("claimToken"))

    def upload_status(self, session_url: str, size: int) -> int | RemoteFile:
        """Asks a session how far it got: the persisted byte count, or the file when it is complete."""
        return self._query_session(session_url, size)

    def resume_upload(self, session_url: str, source: str | os.PathLike[str] | BinaryIO, *,
                      progress: ProgressCallback | None = None, claim_token: str | None = None) -> RemoteFile:
        """Finishes an interrupted session from the offset the server reports (NotFound/Gone if it is gone).
        `claim_token`, the one the session's creation gave (a guest's), is put on the file it returns."""
        stack = ExitStack()
        try:
            handle, _ = self._open_source(source, "resumed", stack)
            size = source_size(handle)
            if size is None:
                raise ValueError("resuming an upload needs a seekable file")
            status = self._query_session(session_url, size)
            if isinstance(status, RemoteFile):
                if progress is not None:
                    progress(size, size)
                return with_claim(status, claim_token)
            return with_claim(self._send_chunks(session_url, handle, size, status, progress), claim_token)
        finally:
            stack.close()

    def _direct_upload(self, handle: BinaryIO, size: int | None, name: str, content_type: str,
                       region: str | None, hashed_key: str | None,
                       progress: ProgressCallback | None) -> RemoteFile:
        headers = {"x-file-name": quote(name, safe=" "), "Content-Type": content_type}
        if region:
            headers["x-upload-region"] = region
        if hashed_key:
            headers["x-key-hash"] = hashed_key
        if self.token and size is not None:
            # A fresh key per upload, the same on each retry of it: where the endpoint keeps keys, a retry
            # after a lost answer gets the first file back instead of storing a second copy. Harmless where it
            # does not (the header is ignored); guests cannot use keys.
            headers[IDEMPOTENCY_KEY] = f'"{uuid.uuid4()}"'
        start = handle.tell() if size is not None else 0

        def body() -> Any:
            if size is None:  # a pipe: streamed chunked, and not retryable
                return iter(lambda: handle.read(READ_BLOCK), b"")
            return FileWindow(handle, 0, size, size, progress, base=start, block=self.read_block)

        response = self._request("POST", self._url("/api/v1/upload"), expect=(201, 200), headers=headers,
                                 body=body, idempotent=size is not None)
        if IDEMPOTENCY_KEY in headers:
            # The upload answer is the advertisement's own place: its absence means no keys are kept.
            self.accepts_idempotency_key = ACCEPT_IDEMPOTENCY_KEY in response.headers
        info = RemoteFile.from_json(response.json())
        if progress is not None:
            progress(info.size, info.size)
        return info

    def _send_chunks(self, session_url: str, handle: BinaryIO, size: int, offset: int,
                     progress: ProgressCallback | None) -> RemoteFile:
        """The GCS resumable protocol: chunks from the persisted offset; on trouble ask where it stopped."""
        base = handle.tell()  # a file object may start anywhere; its bytes from here are the upload
        failures = 0
        if progress is not None:
            progress(offset, size)
        while True:
            if size == 0:
                length, headers = 0, {}  # an empty file: a whole (empty) body completes the session
            elif offset >= size:
                # Everything is stored yet the session is not complete: ask again, patiently.
                failures = self._backoff(failures, LockrError("The session has every byte but is not complete."))
                status = self._query_session(session_url, size)
                if isinstance(status, RemoteFile):
                    return status
                offset = status
                continue
            else:
                length = min(self.chunk_size, size - offset)
                headers = {"Content-Range": f"bytes {offset}-{offset + length - 1}/{size}"}
            try:
                body = FileWindow(handle, offset, length, size, progress, base=base, block=self.read_block)
                response = self.http.put(session_url, data=body, headers=headers, timeout=self._timeouts(),
                                         allow_redirects=False)
            except requests.RequestException as exc:
                failures = self._backoff(failures, exc)
                status = self._query_session(session_url, size)
                if isinstance(status, RemoteFile):
                    return status
                offset = status
                if progress is not None:
                    progress(offset, size)
                continue
            if response.status_code in (200, 201):
                return RemoteFile.from_json(response.json())
            if response.status_code == 308:
                new_offset = persisted_offset(response.headers.get("Range"))
                if new_offset > offset:
                    failures = 0
                else:  # nothing was kept: do not spin, back off as for any failure
                    failures = self._backoff(failures, LockrError("The server stored none of the chunk."))
                offset = new_offset
                continue
            error = self._error(response)
            if isinstance(error, SessionOffsetMismatch):
                # The session is elsewhere than we thought (an earlier run moved it): go on from there.
                failures = self._backoff(failures, error)
                offset = persisted_offset(response.headers.get("Range"))
            elif isinstance(error, (SessionBusy, RateLimited)) or response.status_code >= 500:
                # Busy: a request of ours cut off a moment ago may still be finishing on the server.
                failures = self._backoff(failures, error)
                status = self._query_session(session_url, size)
                if isinstance(status, RemoteFile):
                    return status
                offset = status
            else:
                raise error
            if progress is not None:
                progress(offset, size)

    def _query_session(self, session_url: str, size: int) -> int | RemoteFile:
        response = self._request("PUT", session_url, expect=(200, 201, 308), authenticate=False,
                                 headers={"Content-Range": f"bytes */{size}", "Content-Length": "0"}, data=b"")
        if response.status_code == 308:
            return persisted_offset(response.headers.get("Range"))
        return RemoteFile.from_json(response.json())

    # -- downloads --------------------------------------------------------------------------------

    def resolve(self, id_or_url: str) -> tuple[str, RemoteFile | None]:
        """A download URL for an id, a page link or a download link, plus the file object when we own it."""
        text = id_or_url.strip()
        match = _DOWNLOAD_PATH.search(urlsplit(text).path) if "://" in text else None
        if match:
            known = self._owned_file(match.group(1))
            return text, known
        page = _PAGE_PATH.search(urlsplit(text).path) if "://" in text else None
        file_id = page.group(1) if page else (text if _ID.fullmatch(text) else None)
        if file_id is None:
            raise NotFound(f"{id_or_url!r} is neither a file id nor a lockr download link.")
        known = self._owned_file(file_id)
        if known is not None:
            return known.download_url, known
        shared = self._download_url_from_page(text if page else f"{self.endpoint}/download/{file_id}")
        if shared is not None:
            return shared, None
        raise NotFound(f"No file {file_id} is in your account or shared at {self.endpoint}; check the id, or "
                       "use the full download link (the downloadUrl, /api/v1/download/...).")

    def _download_url_from_page(self, page_url: str) -> str | None:
        """Someone else's file: its download page names the downloadUrl (data-download-url)."""
        try:
            response = self.http.get(page_url, headers=self._auth_headers(page_url), timeout=self._timeouts())
        except requests.RequestException as exc:
            failure = network_failure(exc)
            if self.retry.fail_fast and not failure.clears_by_waiting(self.reached):
                raise self._unreachable(page_url, failure) from exc
            return None
        if response.status_code != 200 or "html" not in response.headers.get("Content-Type", ""):
            return None
        match = re.search(r'data-download-url="([^"]+)"', response.text)
        return urljoin(page_url, html.unescape(match.group(1))) if match else None

    def _owned_file(self, file_id: str) -> RemoteFile | None:
        if not self.token:
            return None
        try:
            return self.file(file_id)
        except LockrError as exc:
            if exc.status in (401, 403, 404, 405):
                return None
            raise

    def download(self, id_or_url: str, dest: str | os.PathLike[str] = ".", *, resume: bool = True,
                 key_phrase: str | None = None, progress: ProgressCallback | None = None,
                 overwrite: bool = False) -> Download:
        """Downloads to `dest` (a folder or a file path) through `DEST.part`, resuming it with Range.

        An existing file is not replaced unless `overwrite` (FileExistsError). The bytes are checked
        against the sha256 of the file object (or the server's ETag) before the part file is renamed
        into place; a mismatch raises and removes the part file.
        """
        url, known = self.resolve(id_or_url)
        params = {"keyHash": key_hash(key_phrase)} if key_phrase else None
        head = self._head(url, params)
        size = int(head.headers.get("Content-Length", "0"))
        etag = head.headers.get("ETag", "").strip('"')
        expected = (known.sha256 if known else None) or (etag if re.fullmatch(r"[0-9a-f]{64}", etag) else None)
        target = Path(dest)
        if target.is_dir():
            target = target / safe_local_name(known.name if known else filename_from(head, url))
        if target.exists() and not overwrite:
            raise FileExistsError(f"{target} already exists")
        part = target.with_name(target.name + ".part")
        have = part.stat().st_size if resume and part.exists() else 0
        if have > size:
            have = 0
        resumed_from = have
        digest = hash_prefix(part, have)
        failures = 0
        if size == 0:
            part.touch()
        while have < size:
            headers = {"Range": f"bytes={have}-"} if have else {}
            if have and etag:
                headers["If-Range"] = f'"{etag}"'
            try:
                with self._request("GET", url, params=params, headers=headers, stream=True, expect=(200, 206),
                                   allow_redirects=True) as response:
                    if response.status_code == 200:
                        have, digest = 0, hash_prefix(part, 0)
                    with open(part, "r+b" if have else "wb") as out:
                        out.seek(have)
                        out.truncate()
                        for block in response.iter_content(DOWNLOAD_BLOCK):
                            out.write(block)
                            digest.update(block)
                            have += len(block)
                            if progress is not None:
                                progress(have, size)
                        out.flush()
                        os.fsync(out.fileno())
                break
            except (requests.RequestException, ConnectionFailed) as exc:
                failures = self._backoff(failures, exc)
                have = part.stat().st_size if part.exists() else 0
                digest = hash_prefix(part, have)
        actual = digest.hexdigest()
        if expected and actual != expected:
            part.unlink(missing_ok=True)
            raise LockrError(f"The downloaded bytes do not match the file's sha256 ({actual} != {expected}); "
                             "the partial file was removed, try again.")
        os.replace(part, target)
        return Download(target, have, actual, resumed_from)

    def _head(self, url: str, params: dict[str, str] | None) -> requests.Response:
        """HEAD for size, name and ETag; an error has no body there, so GET fetches its JSON message."""
        try:
            return self._request("HEAD", url, params=params, allow_redirects=True)
        except LockrError as exc:
            if not 400 <= exc.status < 500:
                raise
            with self._request("GET", url, params=params, stream=True, allow_redirects=True,
                               headers={"Range": "bytes=0-0"}, expect=()):
                raise exc

    # -- plumbing ---------------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return self.endpoint + path

    def _open_source(self, source: str | os.PathLike[str] | BinaryIO, name: str | None,
                     stack: ExitStack) -> tuple[BinaryIO, str]:
        if isinstance(source, (str, os.PathLike)):
            handle: BinaryIO = stack.enter_context(open(source, "rb"))
            return handle, name or os.path.basename(os.fspath(source))
        guessed = getattr(source, "name", None)
        if name is None and isinstance(guessed, str):
            name = os.path.basename(guessed)
        if not name:
            raise ValueError("name the upload: a file object without a name needs name=...")
        return source, name

    def _json(self, method: str, path: str, *, expect: tuple[int, ...] = (200,), **kwargs: Any) -> dict[str, Any]:
        response = self._request(method, self._url(path), expect=expect, **kwargs)
        try:
            data = response.json()
        except ValueError as exc:
            raise LockrError(f"{self.endpoint} answered {method} {path} with something that is not JSON; "
                             "is that URL a lockr server?") from exc
        if not isinstance(data, dict):
            raise LockrError(f"{self.endpoint} answered {method} {path} with unexpected JSON.")
        return data

    def _auth_headers(self, url: str) -> dict[str, str]:
        """The token goes only to our own endpoint, never to a link on another host."""
        if not self.token:
            return {}
        ours, theirs = urlsplit(self.endpoint), urlsplit(url)
        if (ours.scheme, ours.netloc) != (theirs.scheme, theirs.netloc):
            return {}
        return {"Authorization": f"Bearer {self.token}"}

    def _request(self, method: str, url: str, *, expect: tuple[int, ...] = (200,), authenticate: bool = True,
                 idempotent: bool = True, headers: dict[str, str] | None = None,
                 body: Callable[[], Any] | None = None, allow_redirects: bool = False,
                 **kwargs: Any) -> requests.Response:
        """One API call with retries: 429 always (the server did nothing), network errors and 5xx when
        `idempotent`. `body` builds a fresh streamed body for each attempt."""
        all_headers = dict(headers or {})
        if authenticate:
            all_headers.update(self._auth_headers(url))
        failures = 0
        while True:
            if body is not None:
                kwargs["data"] = body()
            try:
                response = self.http.request(method, url, headers=all_headers, timeout=self._timeouts(),
                                             allow_redirects=allow_redirects, **kwargs)
            except requests.RequestException as exc:
                log.debug("%s %s -> %s", method, loggable_url(url), network_failure(exc).reason)
                if not idempotent:
                    failure = network_failure(exc)
                    if self.retry.fail_fast and not failure.clears_by_waiting(self.reached):
                        raise self._unreachable(url, failure) from exc
                    if failure.kind != "dropped":  # never reached the server, so nothing was carried out
                        raise ConnectionFailed(unreachable_message(origin_of(url), failure, self._timeouts()[0])
                                               ) from exc
                    raise ConnectionFailed(f"Lost the connection to {origin_of(url)} ({failure.reason}) before its "
                                           f"answer to {method}; check whether it was carried out, then retry."
                                           ) from exc
                failures = self._backoff(failures, exc, url)
                continue
            if response.status_code in expect:
                return response
            error = self._error(response)
            if (isinstance(error, (RateLimited, IdempotencyKeyInFlight))
                    or (idempotent and response.status_code >= 500)):
                # In flight: an earlier attempt under this Idempotency-Key is still being stored; its answer is
                # what the retry gets once it is done.
                failures = self._backoff(failures, error)
                continue
            raise error

    def _backoff(self, failures: int, cause: BaseException, url: str | None = None) -> int:
        """Sleeps before the next attempt (saying so to `retry.on_retry`), or raises: when the attempts
        are used up, and at once (with `retry.fail_fast`) for what waiting cannot clear."""
        failures += 1
        where = origin_of(url) if url else self.endpoint
        if isinstance(cause, ConnectionFailed) and not cause.details.get("retryable", True):
            raise cause
        if isinstance(cause, RateLimited):
            if failures > self.retry.attempts or cause.retry_after > self.retry.max_retry_after:
                raise cause
            self._tell(f"{where} is rate-limiting (429): waiting {cause.retry_after} s as it asks "
                       f"(retry {failures} of {self.retry.attempts})")
            self.retry.sleep(cause.retry_after)
            return failures
        failure = network_failure(cause) if isinstance(cause, requests.RequestException) else None
        if failure is not None and self.retry.fail_fast and not failure.clears_by_waiting(self.reached):
            raise self._unreachable(url or self.endpoint, failure) from cause
        if failures > self.retry.attempts:
            if isinstance(cause, LockrError):
                raise cause
            reason = failure.reason if failure else str(cause)
            raise ConnectionFailed(f"Gave up on {where} after {self.retry.attempts} retries ({reason}): check that "
                                   "the server is up and your connection works, then run the command again."
                                   ) from cause
        delay = self.retry.delay(failures)
        what = failure.reason if failure is not None else (getattr(cause, "message", None) or str(cause)).rstrip(".")
        self._tell(f"{'' if what.startswith(where) else where + ': '}{what}; "
                   f"retry {failures} of {self.retry.attempts} in {delay:.1f} s")
        self.retry.sleep(delay)
        return failures

    def _tell(self, message: str) -> None:
        log.debug("%s", message)
        if self.retry.on_retry is not None:
            self.retry.on_retry(message)

    def _unreachable(self, url: str, failure: NetworkFailure) -> ConnectionFailed:
        where = self.endpoint if url.startswith(self.endpoint) else origin_of(url)
        return ConnectionFailed(unreachable_message(where, failure, self._timeouts()[0]), retryable=False)

    def _error(self, response: requests.Response) -> LockrError:
        """The server's JSON error as its exception class (RateLimited with its Retry-After)."""
        code, message = "", ""
        try:
            error = response.json().get("error", {})
            code, message = str(error.get("code", "")), str(error.get("message", ""))
        except (ValueError, AttributeError):
            message = f"{response.url} answered HTTP {response.status_code} {response.reason}."
        cls = error_class_for(response.status_code, code)
        if cls is RateLimited or response.status_code == 429:
            return RateLimited(retry_after_seconds(response.headers.get("Retry-After")), message or None)
        return cls(message or None)


def retry_after_seconds(value: str | None) -> float:
    """Retry-After as seconds: a number, or an HTTP date; 1 second when absent or unreadable."""
    if not value:
        return 1.0
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return 1.0
    return max(0.0, when.timestamp() - time.time())


def filename_from(response: requests.Response, url: str) -> str:
    """The name from Content-Disposition (filename* first), else the URL's last segment."""
    disposition = response.headers.get("Content-Disposition", "")
    star = re.search(r"filename\*=UTF-8''([^;]+)", disposition, re.IGNORECASE)
    if star:
        from urllib.parse import unquote

        return unquote(star.group(1).strip())
    plain = re.search(r'filename="([^"]*)"', disposition)
    if plain and plain.group(1):
        return plain.group(1)
    return urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1] or "download"


def safe_local_name(name: str) -> str:
    """A remote name as a single local file name: folders flattened, nothing that climbs out."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    if base in ("", ".", ".."):
        return "download"
    return base
