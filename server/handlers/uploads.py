"""Direct uploads (POST /api/v1/upload): streamed, hashed and made durable before the 201.

Bodies that declare at most `inline_max` bytes are buffered and stored inside the database with their
row, in one commit (server/inline.py); the others stream into a blob file.
"""

from __future__ import annotations

from typing import Any

import tornado.web

from lockr_local.errors import BadRequest, LockrError, QuotaExceeded, TooLarge
from lockr_local.names import decode_header_name, validate_content_type, validate_key_hash
from lockr_local.server.auth import bearer_token
from lockr_local.server.blobstore import BlobLocation, rclone_digests_inline
from lockr_local.server.handlers.base import BaseHandler
from lockr_local.server.inline import InlineSink, digests_of, stores_inline
from lockr_local.server.numbers import MAX_INT64, parse_count
from lockr_local.server.security import new_id
from lockr_local.server.service import NewFile
from lockr_local.server.streaming import UploadSink

# Tornado's own body limit is replaced by ours (the plan's object size), which answers with JSON.
UNLIMITED_BODY = 2**62


def declared_length(handler: tornado.web.RequestHandler) -> int | None:
    """The Content-Length, or None for a chunked body; 400 for nonsense."""
    value = handler.request.headers.get("Content-Length")
    if value is None:
        return None
    length = parse_count(value)
    if length is None:
        if parse_count(value, maximum=MAX_INT64 + 1) is not None:  # digits, past 64 bits
            raise TooLarge("The Content-Length is larger than any file this server can store.")
        raise BadRequest("Content-Length must be a whole number of bytes.")
    return length


@tornado.web.stream_request_body
class DirectUploadHandler(BaseHandler):
    """Authenticates and checks limits in prepare(), before a byte of the body is read."""

    sink: UploadSink | InlineSink | None = None
    deferred_token: str | None = None

    async def prepare(self) -> None:
        self.request.connection.set_max_body_size(UNLIMITED_BODY)
        if self.request.method != "POST":
            return
        token = bearer_token(self.request.headers.get("Authorization"))
        principal = await self.authenticate() if token is None else None
        try:
            name, content_type, key_hash, size = self.upload_headers()
        except LockrError:
            if principal is None:
                await self.authenticate()  # a bad token answers 401 before any complaint about headers
            raise
        service = self.ctx.service
        asked_region = self.request.headers.get("x-upload-region")
        self.file_id = new_id()
        if principal is None and size is not None and stores_inline(size, self.settings_.inline_max):
            # A small body under a Bearer token: its token is checked, the upload admitted and recorded in the
            # one database trip after the body (record_inline). Reading at most `inline_max` bytes before
            # a refusal costs less than a second trip, which is a tenth of a small upload's time.
            self.deferred_token = token
            self.upload = {"name": name, "type": content_type, "region": asked_region, "key_hash": key_hash}
            self.sink = InlineSink(size, self.body_too_large)
            self.body_watchdog = self.watch_body(self.sink.abort)
            return
        if principal is None:
            # A Bearer token (the common case) is checked and the upload admitted in one trip to the
            # database thread: small uploads are mostly such round trips.
            principal, region = await self.ctx.auth.admit_bearer_upload(token, self.client_address, asked_region,
                                                                        size, key_hash)
            self.principal = principal
        else:
            region = await self.call(service.admit_upload, principal, asked_region, size, key_hash)
        self.upload: dict[str, Any] = {"name": name, "type": content_type, "region": region, "key_hash": key_hash}
        if size is not None and stores_inline(size, self.settings_.inline_max):
            self.sink = InlineSink(size, self.body_too_large)
        else:
            writer = self.ctx.blobs.new_writer(BlobLocation(region, self.file_id), rclone_digests_inline(size))
            limit = service.max_object_size(principal) if size is None else size
            self.sink = UploadSink(writer, self.ctx.io, limit, self.body_too_large)
        self.body_watchdog = self.watch_body(self.sink.abort)

    def upload_headers(self) -> tuple[str, str, str | None, int | None]:
        """Name, type, key hash and declared size from the headers; 400 for any that is wrong."""
        raw_name = self.request.headers.get("x-file-name")
        if raw_name is None:
            raise BadRequest("Name the file with the x-file-name header.", field="x-file-name")
        name = decode_header_name(raw_name)
        content_type = validate_content_type(self.request.headers.get("Content-Type"))
        key_header = self.request.headers.get("x-key-hash")
        key_hash = validate_key_hash(key_header) if key_header else None
        return name, content_type, key_hash, declared_length(self)

    async def data_received(self, chunk: bytes) -> None:
        if self.sink is None or self._finished:
            return
        self.body_watchdog.received(len(chunk))
        try:
            await self.sink.feed(chunk)
        except LockrError as exc:
            self.sink.abort()
            self.send_error(exc.status, exc_info=(type(exc), exc, exc.__traceback__))

    async def post(self) -> None:
        if self._finished or self.sink is None:
            return
        sink = self.sink
        if isinstance(sink, InlineSink):
            await self.record_inline(sink)
            return
        try:
            sha256 = await sink.commit()
        except BaseException:
            sink.abort()
            raise
        digests = sink.writer.digests()
        new = NewFile(self.file_id, self.upload["name"], sink.received, self.upload["type"],
                      self.upload["region"], sha256, self.upload["key_hash"], sha1=digests.sha1, md5=digests.md5,
                      check=digests.check)
        self.ctx.faults.hit("after_blob_commit")
        try:
            info = await self.call(self.ctx.service.record_file, self.principal, new)
        except QuotaExceeded:
            await self.run_io(self.ctx.blobs.delete, new_location(new))
            raise
        self.ctx.faults.hit("after_db_commit")
        self.ctx.backfill.enqueue_if_missing(new.file_id, new.region, digests)
        self.write_json(info.to_json(self.base_url()), status=201)

    async def record_inline(self, sink: InlineSink) -> None:
        """A small body: hashed, then its row and bytes committed together, in one database trip."""
        data = sink.data()
        new = NewFile(self.file_id, self.upload["name"], sink.received, self.upload["type"],
                      self.upload["region"] or "", "", self.upload["key_hash"]).with_digests(
            await digests_of(data, self.ctx.io))
        if self.deferred_token is None:
            info = await self.call(self.ctx.service.record_file, self.principal, new, data=data)
        else:
            self.principal, info = await self.ctx.auth.record_bearer_inline(
                self.deferred_token, self.client_address, self.upload["region"], new, data)
        self.ctx.faults.hit("after_db_commit")
        self.write_json(info.to_json(self.base_url()), status=201)

    def on_connection_close(self) -> None:
        if self.sink is not None:
            self.sink.abort()
        super().on_connection_close()


def new_location(new: NewFile) -> BlobLocation:
    return BlobLocation(new.region, new.file_id)
