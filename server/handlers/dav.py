"""WebDAV at /dav/ACCOUNT/...: each account's files as folders, for rclone and desktop file managers.

Thin: `webdav.py` parses and builds the protocol, `davstore.py` decides what exists and changes it,
and PUT (and the empty file a LOCK creates) is stored through the same pipeline as the API's uploads
(ingest.py): the same sinks, limits and quota checks (small bodies, up to `inline_max`, are stored
inside the database with their row, as there: inline.py).
"""

from __future__ import annotations

import functools
import mimetypes
import uuid
from typing import Awaitable, Callable

import tornado.web

from lockr_local.errors import (
    BadRequest, Forbidden, LockrError, NotFound, TooLarge, Unauthorized, UnsupportedMediaType,
)
from lockr_local.names import validate_content_type
from lockr_local.server import webdav
from lockr_local.server.blobstore import BlobLocation, Digests
from lockr_local.server.davstore import DavStore, checksum_mismatch
from lockr_local.server.handlers.base import UNLIMITED_BODY, ServerContext, declared_length
from lockr_local.server.filebytes import StoredAt
from lockr_local.server.handlers.downloads import DownloadHandler
from lockr_local.server.idempotency import ADVERTISE_HEADER, Fingerprint
from lockr_local.server.ingest import Committed, StreamedSink
from lockr_local.server.models import bound_database
from lockr_local.server.security import new_id
from lockr_local.server.service import FileInfo

METHODS = ("OPTIONS", "PROPFIND", "PROPPATCH", "GET", "HEAD", "PUT", "DELETE", "MKCOL", "MOVE", "COPY",
           "LOCK", "UNLOCK")
# Listings and metadata are cheap; a migration sends several per file, so they use less of the burst.
CHEAP_METHODS = {"PROPFIND", "PROPPATCH", "MKCOL", "HEAD", "LOCK", "UNLOCK"}
CHEAP_COST = 0.2
CHALLENGE = 'Basic realm="lockr", charset="UTF-8"'

Method = Callable[["DavHandler"], Awaitable[None]]


def unless_finished(method: Method) -> Method:
    """Tornado calls the verb method even when data_received already answered with an error."""

    @functools.wraps(method)
    async def wrapper(self: "DavHandler") -> None:
        if not self.answered:
            await method(self)

    return wrapper


@tornado.web.stream_request_body
class DavHandler(DownloadHandler):
    """One handler for every WebDAV method; inherits `send_file` (ranges, ETags) from the downloads."""

    SUPPORTED_METHODS = METHODS

    def initialize(self, ctx: ServerContext) -> None:
        super().initialize(ctx)
        self.dav = DavStore(ctx.service)
        self.sink: StreamedSink | None = None
        self.idempotency_key: str | None = None
        self.body = bytearray()

    # -- request set-up -----------------------------------------------------------------------

    async def prepare(self) -> None:
        method = self.request.method or ""
        if method == "PUT":
            self.http_connection.set_max_body_size(UNLIMITED_BODY)
        if method == "OPTIONS":
            return
        self.path = webdav.parse_path(self.request.path)
        try:
            principal = await self.authenticate(limit=False)
        except Unauthorized as exc:
            exc.headers.setdefault("WWW-Authenticate", CHALLENGE)
            raise
        # Before the guest refusal: requests without credentials spend the address's guest allowance too.
        self.ctx.auth.limit_request(principal, self.client_address, CHEAP_COST if method in CHEAP_METHODS else 1.0)
        if principal.is_guest:
            raise Unauthorized("Sign in with your username and password, or an API token.",
                               headers={"WWW-Authenticate": CHALLENGE})
        # A username is one identity whatever the case, so is its folder.
        if self.path.account is not None and self.path.account.lower() != (principal.username or "").lower():
            raise Forbidden(f"/dav/{self.path.account}/ is not your folder; yours is /dav/{principal.username}/.")
        if method == "PUT":
            await self._open_upload()

    @property
    def account_id(self) -> int:
        assert self.principal.account_id is not None
        return self.principal.account_id

    def _object_name(self) -> str:
        """The object name of the request path; the top folders are not files."""
        if self.path.account is None or not self.path.name:
            raise Forbidden("This is a folder of accounts or an account's own folder; name a file inside it.")
        return self.path.name

    async def data_received(self, chunk: bytes) -> None:
        if self.answered:
            return
        if self.sink is not None:
            try:
                await self.sink.feed(chunk)
            except LockrError as exc:
                self.sink.abort()
                self.send_error(exc.status, exc_info=(type(exc), exc, exc.__traceback__))
            return
        self.body.extend(chunk)
        if len(self.body) > webdav.MAX_XML_BODY:
            too_large = TooLarge("The request body is too large for a WebDAV request.")
            self.send_error(too_large.status, exc_info=(type(too_large), too_large, None))

    def on_connection_close(self) -> None:
        if self.sink is not None:
            self.sink.abort()
        super().on_connection_close()

    async def _delete_blobs(self, blobs: list[BlobLocation]) -> None:
        for location in blobs:
            await self.run_io(self.ctx.blobs.delete, location)

    def _send_xml(self, body: bytes, status: int = 207) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/xml; charset=utf-8")
        self.finish(body)

    def _accept_mtime(self, mtime: float | None) -> None:
        if mtime is not None:
            self.set_header("X-OC-Mtime", "accepted")

    # -- OPTIONS, PROPFIND, PROPPATCH ---------------------------------------------------------

    async def options(self) -> None:
        self.set_header("DAV", "1, 2")
        self.set_header("MS-Author-Via", "DAV")
        self.set_header("Allow", ", ".join(METHODS))
        self._advertise_idempotency()
        self.set_header("Content-Length", "0")
        self.finish()

    async def _resource(self) -> webdav.Resource:
        """The resource at the request path; /dav/ itself shows as a folder as new as the caller's own."""
        resource = await self.call(self.dav.stat, self.account_id, self.path.name if self.path.account else "")
        if resource is None:
            raise NotFound(f"Nothing exists at {self.path.name!r}.")
        return resource

    @unless_finished
    async def propfind(self) -> None:
        depth = webdav.parse_depth(self.request.headers.get("Depth"), "1")
        if depth == "infinity":
            raise Forbidden("Depth: infinity is not supported; list one folder at a time (Depth: 1).")
        request = webdav.parse_propfind(bytes(self.body))
        resource = await self._resource()
        quota = await self.call(self.dav.quota, self.account_id) if webdav.wants_quota(request) else None
        account = self.path.account
        responses = [webdav.response_xml(account, resource, request, quota)]
        if depth == "1" and resource.is_dir:
            if account is None:
                responses.append(webdav.response_xml(self.principal.username, resource, request, quota))
            else:
                for child in await self.call(self.dav.children, self.account_id, resource.name):
                    responses.append(webdav.response_xml(account, child, request, quota))
        self._send_xml(webdav.multistatus(responses))

    @unless_finished
    async def proppatch(self) -> None:
        changes = webdav.parse_proppatch(bytes(self.body))
        resource = await self._resource()
        for prop, value in changes:
            if prop in webdav.MTIME_PROPS and value and not resource.is_dir and self.path.account is not None:
                await self.call(self.dav.set_mtime, self.account_id, resource.name, webdav.parse_mtime(value))
        self._send_xml(webdav.proppatch_response(self.path.account, resource, changes))

    # -- GET, HEAD ----------------------------------------------------------------------------

    @unless_finished
    async def get(self) -> None:  # type: ignore[override]
        await self._get(send_body=True)

    @unless_finished
    async def head(self) -> None:  # type: ignore[override]
        await self._get(send_body=False)

    async def _get(self, send_body: bool) -> None:
        resource = await self._resource()
        if resource.is_dir:
            await self._folder_text(resource, send_body)
            return
        info = await self.call(self.dav.file, self.account_id, resource.name)
        self.set_header("Last-Modified", webdav.http_date(resource.mtime))
        await self.send_file(info, send_body)

    async def _folder_text(self, resource: webdav.Resource, send_body: bool) -> None:
        """A browser opening a folder gets its names as plain text (never HTML in our origin)."""
        if self.path.account is None:
            lines = [f"{self.principal.username}/"]
        else:
            children = await self.call(self.dav.children, self.account_id, resource.name)
            lines = [c.name.rpartition("/")[2] + ("/" if c.is_dir else "") for c in children]
        body = ("\n".join(lines) + "\n").encode("utf-8") if lines else b""
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.set_header("Content-Length", str(len(body)))
        self.finish(body if send_body else None)

    # -- PUT ----------------------------------------------------------------------------------

    async def _open_upload(self) -> None:
        """Everything that can refuse a PUT is checked here, in one database trip, before a byte of the
        body is read; then the ingest pipeline's sink for it."""
        name = self._object_name()
        if self.request.headers.get("Content-Range"):
            raise BadRequest("Partial PUT (Content-Range) is not supported; send the whole file.")
        size = declared_length(self.request.headers)
        headers = self.request.headers
        self.put_checksums = webdav.parse_oc_checksum(headers.get("OC-Checksum"))
        self.put_mtime = webdav.parse_mtime(headers.get("X-OC-Mtime"))
        try:
            self.put_type = validate_content_type(headers.get("Content-Type") or mimetypes.guess_type(name)[0])
        except BadRequest:
            self.put_type = "application/octet-stream"
        region = await self.call(self.dav.admit_put, self.principal, name, size)
        self.idempotency_key = self.claim_idempotency_key(f"account:{self.account_id}")
        limit = size if size is not None else self.ctx.service.max_object_size(self.principal)
        self.sink = self.ctx.ingest.begin(BlobLocation(region, new_id()), size, limit, self.body_too_large)

    @unless_finished
    async def put(self) -> None:
        assert self.sink is not None
        sink, self.sink = self.sink, None  # the body is in: a closed connection no longer aborts it (uploads.py)
        checksums = self.put_checksums

        def check(digests: Digests) -> None:
            mismatch = checksum_mismatch(checksums, digests)
            if mismatch is not None:
                raise mismatch

        info, replaced, old = await self.ctx.ingest.finish(sink, self._record_put, check)
        await self._delete_blobs(old)
        self.set_header("ETag", f'"{info.sha256}"')
        self.set_header("OC-ETag", f'"{info.sha256}"')
        self.set_header("OC-FileId", info.id)
        self._advertise_idempotency()
        self._accept_mtime(self.put_mtime)
        self.set_status(204 if replaced else 201)
        self.finish()

    def _record_put(self, committed: Committed) -> tuple[FileInfo, bool, list[BlobLocation]]:
        """On the database thread: the PUT's file listed under its name, replacing what was there, and in the
        same transaction its Idempotency-Key (a retry under a live key raises Replayed: idempotency.py)."""
        new = committed.new_file(self.path.name, self.put_type, mtime=self.put_mtime)
        if self.idempotency_key is None:
            return self.dav.commit_put(self.principal, new, committed.data)
        keys, key_hash = self.ctx.idempotency, self.idempotency_key
        fingerprint = Fingerprint("dav put", self.path.name, committed.size, committed.digests.sha256)
        with bound_database().atomic():
            # Before the PUT replaces anything: a retry's first file is the one it would replace.
            keys.check(self.account_id, key_hash, fingerprint, lambda first, status: (first, status == 204, []))
            info, replaced, old = self.dav.commit_put(self.principal, new, committed.data)
            keys.remember(self.account_id, key_hash, fingerprint, info.id, 204 if replaced else 201)
        return info, replaced, old

    def _advertise_idempotency(self) -> None:
        if self.ctx.idempotency.enabled:
            self.set_header(ADVERTISE_HEADER, self.ctx.idempotency.advertisement())

    # -- DELETE, MKCOL, MOVE, COPY ------------------------------------------------------------

    @unless_finished
    async def delete(self) -> None:
        blobs = await self.call(self.dav.delete, self.account_id, self._object_name())
        await self._delete_blobs(blobs)
        self.set_status(204)
        self.finish()

    @unless_finished
    async def mkcol(self) -> None:
        if self.body.strip():
            raise UnsupportedMediaType("MKCOL takes no body.")
        await self.call(self.dav.make_folder, self.account_id, self._object_name())
        self.set_status(201)
        self.finish()

    def _destination(self) -> str:
        target = webdav.parse_destination(self.request.headers.get("Destination"))
        if (target.account or "").lower() != (self.principal.username or "").lower():
            raise Forbidden("The destination must be inside your own folder /dav/"
                            f"{self.principal.username}/.")
        if not target.name:
            raise Forbidden("The account folder itself cannot be replaced.")
        return target.name

    @unless_finished
    async def move(self) -> None:
        source, target = self._object_name(), self._destination()
        overwrite = webdav.parse_overwrite(self.request.headers.get("Overwrite"))
        mtime = webdav.parse_mtime(self.request.headers.get("X-OC-Mtime"))
        replaced, blobs = await self.call(self.dav.move, self.account_id, source, target, overwrite, mtime)
        await self._delete_blobs(blobs)
        self._accept_mtime(mtime)
        self.set_status(204 if replaced else 201)
        self.finish()

    @unless_finished
    async def copy(self) -> None:
        """Copies share bytes (hard links) where the disk allows, so COPY costs no re-upload."""
        source, target = self._object_name(), self._destination()
        overwrite = webdav.parse_overwrite(self.request.headers.get("Overwrite"))
        depth = webdav.parse_depth(self.request.headers.get("Depth"), "infinity")
        mtime = webdav.parse_mtime(self.request.headers.get("X-OC-Mtime"))
        items, folders = await self.call(self.dav.plan_copy, self.account_id, source, target, depth)
        clones: list[StoredAt] = []
        try:
            for item in items:
                clones.append(await self.ctx.files.clone(item.source.stored, item.file_id))
            replaced, blobs = await self.call(self.dav.commit_copy, self.principal, source, target, overwrite,
                                              items, folders, mtime)
        except BaseException:
            for clone in clones:
                await self.ctx.files.delete(clone)
            raise
        await self._delete_blobs(blobs)
        self._accept_mtime(mtime)
        self.set_status(204 if replaced else 201)
        self.finish()

    # -- LOCK, UNLOCK -------------------------------------------------------------------------

    @unless_finished
    async def lock(self) -> None:
        """Advisory locks: answered so that Finder, Windows and davfs2 agree to write; never enforced."""
        owner = webdav.lock_owner(bytes(self.body))
        token = self.request.headers.get("If", "").strip("()<> ") or f"opaquelocktoken:{uuid.uuid4()}"
        created = False
        if self.path.account is not None and self.path.name:
            if await self.call(self.dav.stat, self.account_id, self.path.name) is None:
                await self._create_empty_file()
                created = True
        self.set_header("Lock-Token", f"<{token}>")
        self._send_xml(webdav.lock_response(token, owner, "Second-3600"), status=201 if created else 200)

    async def _create_empty_file(self) -> None:
        """RFC 4918 7.3: LOCK on an unmapped path makes an empty file, which clients then PUT over."""
        name = self.path.name
        region = await self.call(self.dav.admit_put, self.principal, name, 0)
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        sink = self.ctx.ingest.begin(BlobLocation(region, new_id()), 0, 0, self.body_too_large)
        await self.ctx.ingest.finish(sink, lambda committed: self.dav.commit_put(
            self.principal, committed.new_file(name, content_type), committed.data))

    @unless_finished
    async def unlock(self) -> None:
        self.set_status(204)
        self.finish()
