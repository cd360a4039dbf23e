"""Resumable sessions with Google Cloud Storage semantics: POST /api/v1/upload/session, PUT/DELETE uploadUrl."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import Any

import tornado.web
from tornado.ioloop import IOLoop

from lockr_local.errors import (
    BadRequest, ChunkTooLarge, InvalidContentRange, LockrError, NotFound, SizeMismatch,
)
from lockr_local.names import is_file_id
from lockr_local.server.handlers.base import UNLIMITED_BODY, BaseHandler, declared_length
from lockr_local.server.numbers import parse_count, saturating_count
from lockr_local.server.resumable import ChunkWrite, stored_range_headers
from lockr_local.server.service import FileInfo
from lockr_local.server.sessions import SessionInfo, parse_session_request
from lockr_local.server.wire import file_json, session_json

log = logging.getLogger("lockr.sessions")

# A request refused before its body was read still has its body read (and dropped) when it is at most
# this big, so that the client reads our answer instead of a reset connection; bigger bodies get the
# answer at once and the connection is closed.
DISCARD_LIMIT = 16 * 1024 * 1024

_CONTENT_RANGE = re.compile(r"bytes\s+(?:([0-9]+)-([0-9]+)|(\*))/([0-9]+|\*)")


@dataclass(frozen=True)
class ContentRange:
    """`bytes FIRST-LAST/TOTAL` (a chunk) or `bytes */TOTAL` (a status query); TOTAL may be `*`."""

    first: int | None
    last: int | None
    total: int | None

    @property
    def is_status_query(self) -> bool:
        return self.first is None


def parse_content_range(header: str | None) -> ContentRange | None:
    if header is None:
        return None
    match = _CONTENT_RANGE.fullmatch(header.strip())
    if not match:
        raise InvalidContentRange(f"Content-Range {header!r} is not 'bytes FIRST-LAST/TOTAL', "
                                  f"'bytes FIRST-LAST/*' or 'bytes */TOTAL'.")
    first_text, last_text, _star, total_text = match.groups()
    # Past 64 bits a number is larger than any session, which the size checks then refuse.
    total = None if total_text == "*" else saturating_count(total_text)
    if first_text is None:
        return ContentRange(None, None, total)
    first, last = saturating_count(first_text), saturating_count(last_text)
    if last < first:
        raise InvalidContentRange(f"Content-Range {header!r} ends before it starts.")
    return ContentRange(first, last, total)


def session_id_or_404(session_id: str) -> str:
    if not is_file_id(session_id):
        raise NotFound("No upload session has that URL.")
    return session_id


class CreateSessionHandler(BaseHandler):
    """POST /api/v1/upload/session {"name","size","type", optional "region","keyHash"}: 201 with the uploadUrl.

    `X-Upload-Content-Length` / `X-Upload-Content-Type` (what GCS clients send) stand in for a missing
    size or type, so Google's resumable-upload client can open sessions here too.
    """

    async def post(self) -> None:
        principal = await self.authenticate()
        body = self.json_body()
        size: Any = body.get("size")
        header_size = self.request.headers.get("X-Upload-Content-Length")
        if size is None and header_size is not None:
            size = parse_count(header_size)
            if size is None:
                raise BadRequest("X-Upload-Content-Length must be a whole number of bytes.", field="size")
        content_type = body.get("type") or self.request.headers.get("X-Upload-Content-Type")
        request = parse_session_request(body.get("name"), size, content_type, body.get("region"),
                                        body.get("keyHash"))
        session = await self.ctx.sessions.create(principal, request)
        payload = session_json(session, self.base_url())
        self.set_header("Location", payload["uploadUrl"])
        self.write_json(payload, status=201)


class ChunkReceiver(BaseHandler):
    """Feeds a request body to a ChunkWrite (PUT uploadUrl, tus PATCH). A body that is cut, or that
    stalls or trickles (BodyWatchdog: `body_idle_timeout`, `min_body_rate`), keeps its durable prefix
    and frees the session for the client's next attempt."""

    write_op: ChunkWrite | None = None
    rejected: LockrError | None = None

    def refuse_later_if_small(self, exc: LockrError) -> None:
        """Answers a refused request after reading its (small) body, else at once (closing the connection)."""
        length = parse_count(self.request.headers.get("Content-Length"))
        expects_continue = self.request.headers.get("Expect", "").lower() == "100-continue"
        if expects_continue or length is None or length > DISCARD_LIMIT:
            raise exc
        self.rejected = exc

    def start_writing(self, write_op: ChunkWrite) -> None:
        self.write_op = write_op
        self.watch_body(self._stalled)

    def _stalled(self) -> None:
        # A link that died without FIN or RST (Wi-Fi gone, laptop asleep) would hold the session
        # forever; the watchdog closes the connection right after this.
        if self.write_op is not None:
            log.info("dropping a stalled upload to a session; its stored bytes are kept")
            IOLoop.current().spawn_callback(self.take_write_op().interrupted)

    def take_write_op(self) -> ChunkWrite:
        """Hands the write over to whoever ends it (finish, cut or watchdog); exactly one of them gets it."""
        write_op, self.write_op = self.write_op, None
        assert write_op is not None
        if self._watchdog is not None:
            self._watchdog.stop()
        return write_op

    async def data_received(self, chunk: bytes) -> None:
        if self.write_op is None or self.answered:
            return
        if self._watchdog is not None:
            self._watchdog.received(len(chunk))
        try:
            await self.write_op.feed(chunk)
        except LockrError as exc:
            if self.write_op is not None:
                await self.take_write_op().discard()
            self.send_error(exc.status, exc_info=(type(exc), exc, exc.__traceback__))

    def on_connection_close(self) -> None:
        if self.write_op is not None:
            # Keep the durable prefix of the cut body; the session stays claimed until that is recorded.
            IOLoop.current().spawn_callback(self.take_write_op().interrupted)
        super().on_connection_close()

    def on_finish(self) -> None:
        if self.write_op is not None:
            IOLoop.current().spawn_callback(self.take_write_op().discard)
        super().on_finish()


@tornado.web.stream_request_body
class SessionUploadHandler(ChunkReceiver):
    """PUT uploadUrl: the whole body, a chunk (`Content-Range: bytes F-L/T`) or a status query (`bytes */T`).

    No Authorization: the 128-bit session id in the URL is the capability.
    """

    status_session: SessionInfo | None = None
    whole_body = False

    async def prepare(self) -> None:
        self.http_connection.set_max_body_size(UNLIMITED_BODY)
        if self.request.method != "PUT":
            return
        try:
            await self._plan(session_id_or_404(self.path_args[0]))
        except LockrError as exc:
            self.refuse_later_if_small(exc)

    async def _plan(self, session_id: str) -> None:
        """Validates the request against the session and claims it for writing when there are bytes."""
        uploads = self.ctx.sessions
        try:
            content_range = parse_content_range(self.request.headers.get("Content-Range"))
        except InvalidContentRange:
            await uploads.session(session_id)  # an unknown or expired session is said first: 404 or 410
            raise
        length = declared_length(self.request.headers)
        if content_range is not None and content_range.is_status_query:
            session = await uploads.settled_session(session_id)
        else:
            session = await uploads.session(session_id)
        if content_range is not None and content_range.total is not None and content_range.total != session.size:
            raise SizeMismatch(f"The Content-Range says the file has {content_range.total} bytes, but the session "
                               f"was opened for {session.size}; start a new session for a different size.",
                               size=session.size, headers=stored_range_headers(session.offset))
        if content_range is not None and content_range.is_status_query:
            if length:
                raise InvalidContentRange("A status query ('bytes */TOTAL') must have an empty body.")
            self.status_session = session
            if session.offset == session.size and not session.completed:
                # Everything is stored but the file was never recorded (a crash, a full quota): finish now.
                self.start_writing(await uploads.begin(session_id, session.size, 0))
            return
        if session.completed:
            self.status_session = session
            return
        if content_range is None:
            if length is not None and length != session.size:
                raise SizeMismatch(f"The body has {length} bytes but the session was opened for {session.size}; "
                                   f"send chunks with Content-Range or start a new session.",
                                   size=session.size, headers=stored_range_headers(session.offset))
            self.whole_body = True
            first, expected = 0, length if length is not None else session.size
        else:
            assert content_range.first is not None and content_range.last is not None
            first = content_range.first
            if content_range.last >= session.size:
                raise ChunkTooLarge(f"The chunk ends at byte {content_range.last}, past the {session.size} bytes "
                                    f"declared for this upload; nothing from it was stored.", size=session.size,
                                    headers=stored_range_headers(session.offset))
            expected = content_range.last - first + 1
            if length is not None and length != expected:
                raise InvalidContentRange(f"Content-Length is {length} but the Content-Range covers {expected} "
                                          f"bytes.")
        self.start_writing(await uploads.begin(session_id, first, expected))

    async def put(self, session_id: str) -> None:
        if self.answered:
            return
        if self.rejected is not None:
            raise self.rejected
        if self.write_op is not None:
            write_op = self.take_write_op()
            result = await write_op.finish()
            if isinstance(result, FileInfo):
                self.write_json(file_json(result, self.base_url()), status=201)
                return
            if self.whole_body:
                raise SizeMismatch(f"The body ended after {result} of the {write_op.session.size} declared bytes; "
                                   f"those are stored, resume from byte {result}.",
                                   size=write_op.session.size, headers=stored_range_headers(result))
            self._incomplete(result, write_op.session.size)
            return
        session = self.status_session
        assert session is not None
        if session.completed:
            info = await self.ctx.sessions.completed_file(session)
            self.write_json(file_json(info, self.base_url()), status=201)
            return
        self._incomplete(session.offset, session.size)

    def _incomplete(self, offset: int, size: int) -> None:
        """308 Resume Incomplete, as GCS answers: `Range: bytes=0-LAST`, no Range when nothing is stored."""
        for name, value in stored_range_headers(offset).items():
            self.set_header(name, value)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.set_status(308, reason="Resume Incomplete")
        self.finish(json.dumps({"offset": offset, "size": size}))

    async def delete(self, session_id: str) -> None:
        """Cancels the upload: partial bytes deleted, reservation released."""
        await self.ctx.sessions.terminate(session_id_or_404(session_id))
        self.set_status(204)
        self.finish()
