"""Downloads: GET/HEAD on a file's downloadUrl, streamed from disk (small files: from the database) with
ranges and ETags."""

from __future__ import annotations

import logging
import os
import re
from typing import BinaryIO
from urllib.parse import quote

from tornado.iostream import StreamClosedError

from lockr_local.errors import IntegrityError, NotFound, RangeNotSatisfiable
from lockr_local.names import validate_key_hash
from lockr_local.server.activity import TRANSFERS
from lockr_local.server.handlers.base import BaseHandler
from lockr_local.server.handlers.files import checked_file_id
from lockr_local.server.links import check_download, link_to_missing_file
from lockr_local.server.numbers import saturating_count
from lockr_local.server.service import FileInfo
from lockr_local.server.zerocopy import (ClientStalled, Expected, body_sent_by_sendfile, file_descriptor, sendfile_range,
                                         socket_for_sendfile)

log = logging.getLogger("lockr.server")
READ_CHUNK = 1024 * 1024
_RANGE = re.compile(r"bytes=([0-9]*)-([0-9]*)")


def content_disposition(name: str) -> str:
    """RFC 6266: an ASCII fallback plus the exact UTF-8 name in filename*."""
    base = name.rsplit("/", 1)[-1]
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\;%' else "_" for c in base) or "download"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(base, safe='')}"


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """One 'bytes=a-b' range as (first, last) inclusive; None = the whole file; 416 when unsatisfiable.

    Several ranges or a malformed header are ignored (the whole file is sent), as RFC 9110 allows.
    """
    if not header:
        return None
    match = _RANGE.fullmatch(header.strip())
    if not match or (not match.group(1) and not match.group(2)):
        return None
    first_text, last_text = match.groups()
    if first_text:
        first = saturating_count(first_text)
        last = min(saturating_count(last_text), size - 1) if last_text else size - 1
        if last_text and saturating_count(last_text) < first:
            return None
        if first >= size:
            raise RangeNotSatisfiable(headers={"Content-Range": f"bytes */{size}"})
        return first, last
    suffix = saturating_count(last_text)
    if suffix == 0 or size == 0:
        # An empty file has no last N bytes to send (a 206 would claim 'bytes 0--1/0').
        raise RangeNotSatisfiable(headers={"Content-Range": f"bytes */{size}"})
    return max(0, size - suffix), size - 1


def corrupt_message(info: FileInfo) -> str:
    return (f"file {info.id} does not match its recorded checksum; its download was cut off. "
            "Run 'lockr-local fsck --verify'.")


class DownloadHandler(BaseHandler):
    """/api/v1/download/REGION/ID/NAME: the bytes, as an attachment, never rendered in our origin.

    `?expires=&sig=` makes it a signed link (server/links.py). A bucket region with presigned_downloads
    answers an authorised GET with 302 to a short-lived presigned URL of the object store; otherwise (and
    always for folders, which cannot sign URLs of their own) the bytes are streamed from here.
    """

    async def head(self, region: str, file_id: str) -> None:
        await self.get(region, file_id, send_body=False)

    async def get(self, region: str, file_id: str, send_body: bool = True) -> None:
        principal = await self.authenticate()
        signature = self.get_query_argument("sig", None)
        try:
            info: FileInfo = await self.call(self.ctx.service.file, checked_file_id(file_id))
            if info.region != region:
                raise NotFound("No file has that id; it may have been deleted.")
        except NotFound as exc:
            if signature is not None:
                raise link_to_missing_file() from exc
            raise
        if signature is not None:
            # A signed link is its own capability: it stands in for credentials and for the key.
            check_download(self.ctx.signer, info, self.get_query_argument("expires", None), signature)
        else:
            key_hash = self.get_query_argument("keyHash", None)
            await self.call(self.ctx.service.check_download_key, principal,
                            info, validate_key_hash(key_hash) if key_hash else None)
        if send_body and "If-None-Match" not in self.request.headers:
            # Authorised: a bucket with presigned downloads serves the bytes itself (a GET-only URL, so
            # HEAD and conditional requests are answered here).
            url = await self.ctx.files.download_url(info.stored, content_disposition(info.name), info.type)
            if url is not None:
                self.set_header("Cache-Control", "no-store")
                self.redirect(url, status=302)
                return
        await self.send_file(info, send_body)

    async def send_file(self, info: FileInfo, send_body: bool) -> None:
        """Writes headers and, for GET, streams the (ranged) bytes in flat memory."""
        etag = f'"{info.sha256}"'
        self.set_header("ETag", etag)
        self.set_header("Accept-Ranges", "bytes")
        self.set_header("Content-Type", info.type)
        self.set_header("Content-Disposition", content_disposition(info.name))
        self.set_header("Content-Security-Policy", "sandbox; default-src 'none'")
        self.set_header("Cache-Control", "private, no-cache")
        if self.request.headers.get("If-None-Match", "") in (etag, "*"):
            self.set_status(304)
            self.finish()
            return
        range_header = self.request.headers.get("Range")
        if_range = self.request.headers.get("If-Range")
        if if_range is not None and if_range != etag:
            range_header = None
        byte_range = parse_range(range_header, info.size)
        first, last = byte_range if byte_range else (0, info.size - 1)
        if byte_range:
            self.set_status(206)
            self.set_header("Content-Range", f"bytes {first}-{last}/{info.size}")
        length = max(0, last - first + 1)
        self.set_header("Content-Length", str(length))
        if not send_body or length == 0:
            self.finish()
            return
        handle = await self.ctx.files.open_async(info.stored)
        verify = Expected(info.sha256, info.check) if byte_range is None else None
        fd = file_descriptor(handle)
        sock = socket_for_sendfile(self.request.connection) if fd is not None else None
        if fd is None or sock is None:
            await self.stream_body(info, BlobReader(handle, first, length, verify))
            return
        try:
            await self.flush()  # the headers: after this the socket carries only the body
            await sendfile_range(sock, fd, first, length, self.ctx.io, self.settings_.body_idle_timeout, verify)
        except IntegrityError:
            self.cut_off(corrupt_message(info), logging.ERROR)
            return
        except (ClientStalled, OSError, StreamClosedError) as error:
            self.cut_off(f"download of {info.id} ended early: {type(error).__name__} {error}", logging.INFO)
            return
        finally:
            os.close(sock)
            handle.close()
        body_sent_by_sendfile(self.http_connection, length)
        self.finish()

    def cut_off(self, message: str, level: int) -> None:
        """Ends a response whose headers are out: closing the connection is the only honest signal left."""
        log.log(level, message)
        self.http_connection.stream.close()

    async def stream_body(self, info: FileInfo, reader: BlobReader) -> None:
        """The buffered path, for stores whose handles are not plain files and for TLS connections."""
        try:
            while not reader.done:
                data = await self.run_io(reader.read_chunk)
                self.write(data)
                await self.flush()
        except IntegrityError:
            log.error(corrupt_message(info))
            raise
        finally:
            reader.close()
        self.finish()


class BlobReader:
    """Reads a byte range in chunks on an I/O thread; for whole-file reads it checksums along the way and
    refuses to hand out the last chunk if the bytes do not match the stored CRC (or SHA-256), so a
    flipped bit is never served as good (the client sees a cut-off download instead)."""

    def __init__(self, handle: BinaryIO, first: int, length: int, expected: Expected | None) -> None:
        self._handle = handle
        self._handle.seek(first)
        self._remaining = length
        self._check = expected.running() if expected is not None else None

    @property
    def done(self) -> bool:
        return self._remaining <= 0

    def read_chunk(self) -> bytes:
        TRANSFERS.mark()
        data = self._handle.read(min(READ_CHUNK, self._remaining))
        if not data:
            raise IntegrityError("The file's bytes are shorter than recorded.")
        self._remaining -= len(data)
        if self._check is not None:
            self._check.update(data)
            if self._remaining <= 0 and not self._check.ok():
                raise IntegrityError()
        return data

    def close(self) -> None:
        self._handle.close()
