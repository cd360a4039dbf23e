"""Direct uploads (POST /api/v1/upload): the protocol of the API's one-request upload, stored through
the ingest pipeline (server/ingest.py): streamed, hashed and made durable before the 201.

Bodies that declare at most `inline_max` bytes are buffered and stored inside the database with their
row, in one commit (server/inline.py); the others stream into a blob file.
"""

from __future__ import annotations

import hashlib

import tornado.web

from lockr_local.errors import BadRequest, LockrError
from lockr_local.names import decode_header_name, validate_content_type, validate_key_hash
from lockr_local.server.blobstore import BlobLocation, rclone_digests_inline
from lockr_local.server.handlers.base import UNLIMITED_BODY, BaseHandler, declared_length
from lockr_local.server.idempotency import ADVERTISE_HEADER, Fingerprint
from lockr_local.server.ingest import Committed, StreamedSink
from lockr_local.server.models import bound_database
from lockr_local.server.security import new_id
from lockr_local.server.service import FileInfo, Principal
from lockr_local.server.wire import file_json


@tornado.web.stream_request_body
class DirectUploadHandler(BaseHandler):
    """Authenticates and checks limits in prepare(), before a byte of the body is read."""

    sink: StreamedSink | None = None

    async def prepare(self) -> None:
        self.http_connection.set_max_body_size(UNLIMITED_BODY)
        if self.request.method != "POST":
            return
        try:
            self.name, self.content_type, self.key_hash, size = self.upload_headers()
        except LockrError:
            await self.authenticate()  # wrong credentials answer 401 before any complaint about headers
            raise
        ingest = self.ctx.ingest
        self.admission = admission = await self.ctx.auth.admit_upload(
            self.request.headers.get("Authorization"), self.client_address, self.request.headers.get("x-upload-region"),
            size, self.key_hash, defer=ingest.stores_inline(size))
        if admission.principal is not None:
            self.principal = admission.principal
        self.idempotency_key = self._idempotency_key(admission.principal)
        limit = size if size is not None else self.ctx.service.max_object_size(self.principal)
        self.sink = ingest.begin(BlobLocation(admission.region or "", new_id()), size, limit, self.body_too_large,
                                 rclone_digests_inline(size))
        self.body_watchdog = self.watch_body(self.sink.abort)

    def _idempotency_key(self, principal: Principal | None) -> str | None:
        """The Idempotency-Key's hash, claimed for the account (a deferred token: for that token, whose account
        is known only at the record; another node's or credential's retry meets the row there instead)."""
        if principal is not None and principal.is_guest:
            if self.request.headers.get("Idempotency-Key") is not None and self.ctx.idempotency.enabled:
                # A replay would hand the first answer's claimToken to whoever shares the address.
                raise BadRequest("Idempotency-Key needs an account: guest uploads cannot be retried by key.",
                                 field="Idempotency-Key")
            return None
        if principal is not None:
            return self.claim_idempotency_key(f"account:{principal.account_id}")
        token = self.admission.deferred_token or ""
        return self.claim_idempotency_key("token:" + hashlib.sha256(token.encode()).hexdigest())

    def upload_headers(self) -> tuple[str, str, str | None, int | None]:
        """Name, type, key hash and declared size from the headers; 400 for any that is wrong."""
        raw_name = self.request.headers.get("x-file-name")
        if raw_name is None:
            raise BadRequest("Name the file with the x-file-name header.", field="x-file-name")
        name = decode_header_name(raw_name)
        content_type = validate_content_type(self.request.headers.get("Content-Type"))
        key_header = self.request.headers.get("x-key-hash")
        key_hash = validate_key_hash(key_header) if key_header else None
        return name, content_type, key_hash, declared_length(self.request.headers)

    async def data_received(self, chunk: bytes) -> None:
        if self.sink is None or self.answered:
            return
        self.body_watchdog.received(len(chunk))
        try:
            await self.sink.feed(chunk)
        except LockrError as exc:
            self.sink.abort()
            self.send_error(exc.status, exc_info=(type(exc), exc, exc.__traceback__))

    async def post(self) -> None:
        if self.answered or self.sink is None:
            return
        # The body is all in: from here the pipeline finishes or undoes the upload whatever happens to the
        # connection (a client that left before the answer retries with its Idempotency-Key), so a close
        # must not abort the sink under the commit.
        sink, self.sink = self.sink, None
        info = await self.ctx.ingest.finish(sink, self.record)
        if self.ctx.idempotency.enabled:
            self.set_header(ADVERTISE_HEADER, self.ctx.idempotency.advertisement())
        self.write_json(file_json(info, self.base_url()), status=201)

    def record(self, committed: Committed) -> FileInfo:
        """On the database thread: the file's row (and inline bytes) and, in the same transaction, its
        Idempotency-Key; a retry under a live key raises Replayed with the first file (idempotency.py)."""
        if self.idempotency_key is None:
            return self._record_file(committed)
        with bound_database().atomic():
            info = self._record_file(committed)
            assert self.principal.account_id is not None  # guests were refused a key in prepare()
            fingerprint = Fingerprint("upload", self.name, committed.size, committed.digests.sha256)
            self.ctx.idempotency.record(self.principal.account_id, self.idempotency_key, fingerprint, info.id, 201,
                                        lambda first, status: first)
        return info

    def _record_file(self, committed: Committed) -> FileInfo:
        """The file's row (and inline bytes), checking a deferred token first."""
        new = committed.new_file(self.name, self.content_type, self.key_hash)
        if self.admission.deferred_token is not None:
            self.principal, info = self.ctx.auth.record_deferred_upload(self.admission, self.client_address, new,
                                                                        committed.data)
            return info
        return self.ctx.service.record_file(self.principal, new, data=committed.data)

    def on_connection_close(self) -> None:
        if self.sink is not None:
            self.sink.abort()
        super().on_connection_close()


