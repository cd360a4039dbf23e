"""tus 1.0.0 (core + creation, termination, expiration, checksum) on the same sessions as uploadUrl.

POST /api/v1/tus/ creates a session (Upload-Length, Upload-Metadata filename/filetype -> name/type,
optional Authorization as everywhere); HEAD/PATCH/DELETE /api/v1/tus/<session id> read the offset,
append at it and terminate. https://tus.io/protocols/resumable-upload
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any, Callable

import tornado.web

from lockr_local.config import origin_of
from lockr_local.errors import (
    BadRequest, TusChecksumMismatch, ChunkTooLarge, LockrError, TusVersionUnsupported, UnsupportedMediaType,
)
from lockr_local.server.handlers.base import UNLIMITED_BODY, BaseHandler, ServerContext, declared_length
from lockr_local.server.handlers.sessions import ChunkReceiver, session_id_or_404
from lockr_local.server.numbers import parse_count
from lockr_local.server.resumable import Checksum
from lockr_local.server.service import FileInfo
from lockr_local.server.sessions import SessionInfo, parse_session_request, tus_metadata_without
from lockr_local.server.wire import http_date, session_json

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,termination,expiration,checksum"
CHECKSUM_ALGORITHMS: dict[str, Callable[[], Any]] = {
    "sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha512": hashlib.sha512, "md5": hashlib.md5,
}
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"
_TUS_HEADERS = ("Location, Upload-Offset, Upload-Length, Upload-Expires, Upload-Metadata, Tus-Resumable, "
                "Tus-Version, Tus-Extension, Tus-Max-Size, Tus-Checksum-Algorithm, Lockr-File-Id, Lockr-Download-Url, "
                "Lockr-Claim-Token")
_REQUEST_HEADERS = ("Authorization, Content-Type, Tus-Resumable, Upload-Length, Upload-Metadata, Upload-Offset, "
                    "Upload-Checksum, Upload-Defer-Length")


def parse_metadata(header: str | None) -> dict[str, str]:
    """`Upload-Metadata: filename d29ybGQ=,is_confidential` -> {"filename": "world", "is_confidential": ""}."""
    metadata: dict[str, str] = {}
    for pair in (header or "").split(","):
        pair = pair.strip()
        if not pair:
            continue
        key, _, encoded = pair.partition(" ")
        try:
            metadata[key] = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except ValueError as exc:  # binascii.Error, UnicodeDecodeError, and non-ASCII text in the header
            raise BadRequest(f"Upload-Metadata value of {key!r} is not base64 of UTF-8 text.",
                             field="Upload-Metadata") from exc
    return metadata


def parse_checksum(header: str | None) -> Checksum | None:
    """`Upload-Checksum: sha1 BASE64DIGEST` -> the algorithm's hasher and the expected digest."""
    if not header:
        return None
    algorithm, _, encoded = header.strip().partition(" ")
    algorithm = algorithm.lower()
    if algorithm not in CHECKSUM_ALGORITHMS:
        raise BadRequest(f"Upload-Checksum algorithm {algorithm!r} is not supported; use one of "
                         f"{', '.join(CHECKSUM_ALGORITHMS)}.", field="Upload-Checksum")
    try:
        expected = base64.b64decode(encoded.strip(), validate=True)
    except ValueError as exc:  # binascii.Error, and non-ASCII text in the header
        raise BadRequest("Upload-Checksum must be 'ALGORITHM BASE64DIGEST'.", field="Upload-Checksum") from exc
    return Checksum(algorithm, CHECKSUM_ALGORITHMS[algorithm](), expected)


class TusHandler(BaseHandler):
    """What every tus response carries: Tus-Resumable, and for pages of an allowed origin (the server's
    own, plus the `cors_origins` setting) the CORS grant that lets browser clients (Uppy) use it."""

    def initialize(self, ctx: ServerContext) -> None:
        super().initialize(ctx)
        self.set_cors_headers()

    def set_default_headers(self) -> None:
        super().set_default_headers()
        self.set_header("Tus-Resumable", TUS_VERSION)
        if hasattr(self, "ctx"):
            # clear() before an error answer resets the headers: the page may read the error too.
            self.set_cors_headers()

    def allowed_origin(self) -> str | None:
        """The request's Origin when it may use tus from a browser, else None.

        Only an origin in its canonical form (what browsers send) is echoed; any other page, including
        one on the LAN user's browser that targets a home server, gets no grant, so its browser neither
        sends the preflighted upload nor lets it read an answer."""
        origin = self.request.headers.get("Origin")
        if not origin or origin_of(origin) != origin:
            return None
        allowed = self.settings_.cors_origins
        if "*" in allowed or origin in allowed or origin == origin_of(self.base_url(), allow_path=True):
            return origin
        return None

    def set_cors_headers(self) -> None:
        self.set_header("Vary", "Origin")
        origin = self.allowed_origin()
        if origin is not None:
            self.set_header("Access-Control-Allow-Origin", origin)
            self.set_header("Access-Control-Expose-Headers", _TUS_HEADERS)

    def check_version(self) -> None:
        if self.request.method == "OPTIONS":
            return
        if self.request.headers.get("Tus-Resumable", "").strip() != TUS_VERSION:
            raise TusVersionUnsupported(headers={"Tus-Version": TUS_VERSION})

    def options(self, *_args: str) -> None:
        """Discovery: the versions, extensions, size limit and checksum algorithms this server speaks."""
        self.set_header("Tus-Version", TUS_VERSION)
        self.set_header("Tus-Extension", TUS_EXTENSIONS)
        self.set_header("Tus-Max-Size", str(self.settings_.account_max_object))
        self.set_header("Tus-Checksum-Algorithm", ",".join(CHECKSUM_ALGORITHMS))
        if self.allowed_origin() is not None:
            self.set_header("Access-Control-Allow-Methods", "POST, HEAD, PATCH, DELETE, OPTIONS")
            self.set_header("Access-Control-Allow-Headers", _REQUEST_HEADERS)
            self.set_header("Access-Control-Max-Age", "86400")
        self.set_status(204)
        self.finish()

    def set_session_headers(self, session: SessionInfo, offset: int) -> None:
        self.set_header("Upload-Offset", str(offset))
        self.set_header("Upload-Length", str(session.size))
        self.set_header("Upload-Expires", http_date(session.expires_at))
        self.set_header("Cache-Control", "no-store")


class TusCreationHandler(TusHandler):
    """POST /api/v1/tus/: the creation extension."""

    async def post(self) -> None:
        self.check_version()
        principal = await self.authenticate()
        if self.request.headers.get("Upload-Defer-Length") is not None:
            raise BadRequest("Send Upload-Length: this server needs the size up front to check quota.",
                             field="Upload-Length")
        length = parse_count(self.request.headers.get("Upload-Length"))
        if length is None:
            raise BadRequest("Upload-Length must be the file's size in bytes.", field="Upload-Length")
        raw_metadata = self.request.headers.get("Upload-Metadata", "")
        metadata = parse_metadata(raw_metadata)
        request = parse_session_request(
            metadata.get("filename") or metadata.get("name") or "upload", length,
            metadata.get("filetype") or metadata.get("type"), metadata.get("region"), metadata.get("keyHash"),
            metadata={"tus": tus_metadata_without(raw_metadata)} if raw_metadata else {})
        session = await self.ctx.sessions.create(principal, request)
        if session.size == 0:
            # An empty upload is complete as created (tus clients send no PATCH for it).
            await (await self.ctx.sessions.begin(session.session_id, 0, 0)).finish()
        base = self.base_url()
        self.set_header("Location", f"{base}/api/v1/tus/{session.session_id}")
        self.set_header("Upload-Expires", http_date(session.expires_at))
        self.set_header("Lockr-File-Id", session.file_id)
        self.set_header("Lockr-Download-Url", base + session.download_path())
        if session.claim_token:
            # A guest's upload: the secret that lets its uploader add it to an account later.
            self.set_header("Lockr-Claim-Token", session.claim_token)
        self.write_json(session_json(session, base), status=201)


@tornado.web.stream_request_body
class TusUploadHandler(TusHandler, ChunkReceiver):
    """HEAD (offset), PATCH (append at exactly that offset), DELETE (termination) on one upload."""

    async def prepare(self) -> None:
        self.http_connection.set_max_body_size(UNLIMITED_BODY)
        if self.request.method != "PATCH":
            return
        try:
            self.check_version()
            await self._plan(session_id_or_404(self.path_args[0]))
        except LockrError as exc:
            self.refuse_later_if_small(exc)

    async def _plan(self, session_id: str) -> None:
        content_type = self.request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type != OFFSET_CONTENT_TYPE:
            raise UnsupportedMediaType(f"Send PATCH bodies as {OFFSET_CONTENT_TYPE}.")
        offset = parse_count(self.request.headers.get("Upload-Offset"))
        if offset is None:
            raise BadRequest("Upload-Offset must be the byte offset this chunk starts at.", field="Upload-Offset")
        checksum = parse_checksum(self.request.headers.get("Upload-Checksum"))
        length = declared_length(self.request.headers)
        session = await self.ctx.sessions.session(session_id)
        if length is not None and offset + length > session.size:
            raise ChunkTooLarge(f"The chunk reaches past the {session.size} bytes declared in Upload-Length.",
                                size=session.size)
        self.start_writing(await self.ctx.sessions.begin(session_id, offset, length, exact=True,
                                                         checksum=checksum))

    async def patch(self, session_id: str) -> None:
        if self.answered:
            return
        if self.rejected is not None:
            raise self.rejected
        write_op = self.take_write_op()
        result = await write_op.finish()
        session = write_op.session
        if isinstance(result, FileInfo):
            self.set_header("Lockr-File-Id", result.id)
            self.set_header("Lockr-Download-Url", self.base_url() + result.download_path())
            offset = result.size
        else:
            offset = result
        self.set_header("Upload-Offset", str(offset))
        self.set_header("Upload-Expires", http_date(session.expires_at))
        self.set_status(204)
        self.finish()

    async def head(self, session_id: str) -> None:
        self.check_version()
        session = await self.ctx.sessions.settled_session(session_id_or_404(session_id))
        self.set_session_headers(session, session.size if session.completed else session.offset)
        if session.metadata.get("tus"):
            self.set_header("Upload-Metadata", str(session.metadata["tus"]))
        self.set_status(200)
        self.finish()

    async def delete(self, session_id: str) -> None:
        self.check_version()
        await self.ctx.sessions.terminate(session_id_or_404(session_id))
        self.set_status(204)
        self.finish()

    def send_error(self, status_code: int = 500, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, TusChecksumMismatch):
            kwargs["reason"] = "Checksum Mismatch"
        super().send_error(status_code, **kwargs)
