"""Zero-copy downloads: os.sendfile from a blob's file to the client's socket, verified alongside.

Tornado's own write path copies every byte through Python buffers, which caps a download at about the
speed of one core moving memory. Here the kernel moves the bytes (sendfile), a pool thread issues each
burst so a cold page cache never blocks the IOLoop, and the IOLoop only waits for the socket to drain.
For whole-file downloads a second thread checksums the file while it is being sent and the last bytes
are held back until the stored CRC (checks.py) matches: a flipped bit is cut off, never served as good.
"""

from __future__ import annotations

import asyncio
import os
import select
import threading
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from tornado.http1connection import HTTP1Connection
from tornado.iostream import IOStream, SSLIOStream

from lockr_local.errors import IntegrityError
from lockr_local.server import tornado_internals
from lockr_local.server.activity import TRANSFERS
from lockr_local.server.checks import RunningCheck, StoredCheck

BURST = 8 * 1024 * 1024
HASH_BLOCK = 1024 * 1024
LINGER_MS = 20
# What stays unsent until the whole-file hash is checked. Small enough to cost nothing, and a client
# that misses it cannot mistake the download for complete (Content-Length tells it the real size).
HELD_BACK = 64 * 1024


class ClientStalled(Exception):
    """The client stopped reading for longer than the idle timeout; the connection is dropped."""


def socket_for_sendfile(connection: Any) -> int | None:
    """A duplicate of the connection's socket descriptor when the body can go out by sendfile.

    The duplicate keeps the socket alive and its number ours even if Tornado closes its own descriptor
    meanwhile (client gone), so a burst can never land on another connection that reused the number.
    Plain HTTP/1 only: TLS sockets and other transports keep the buffered path.
    """
    stream = getattr(connection, "stream", None)
    if not isinstance(connection, HTTP1Connection) or not isinstance(stream, IOStream):
        return None
    if isinstance(stream, SSLIOStream) or stream.closed() or not tornado_internals.counts_sent_body(connection):
        return None
    return os.dup(stream.socket.fileno())


def body_sent_by_sendfile(connection: HTTP1Connection, length: int) -> None:
    """Tells Tornado's HTTP/1 connection that the Content-Length it framed has gone out.

    Tornado counts body bytes only through its own write(); it has no public hook for bytes written
    to the socket directly (tornado_internals.py).
    """
    tornado_internals.body_sent_outside(connection, length)


def file_descriptor(handle: Any) -> int | None:
    """The OS descriptor of a blob handle, or None for stores whose handles are not plain files."""
    try:
        return int(handle.fileno())
    except (AttributeError, OSError, ValueError):
        return None


@dataclass(frozen=True)
class Expected:
    """What a whole file must hash to: its stored CRC (checks.py) when recorded, else its SHA-256."""

    sha256: str
    stored: StoredCheck = StoredCheck()

    def running(self) -> RunningCheck:
        return RunningCheck(self.sha256, self.stored)

    def matches(self, fd: int, first: int, length: int, stop: threading.Event) -> bool:
        """Reads the range with pread (sharing no file offset) and compares; `stop` ends it early
        (the download failed), so a dropped 100 GB download does not hash on."""
        check = self.running()
        offset, end = first, first + length
        while offset < end and not stop.is_set():
            # A fresh bytes object per block: the CRC-32C extension takes bytes only, and pread makes one
            # with the same single copy that reading into a reused buffer would.
            block = os.pread(fd, min(HASH_BLOCK, end - offset), offset)
            if not block:
                return False
            check.update(block)
            offset += len(block)
        return check.ok()


def send_burst(sock: int, fd: int, offset: int, end: int) -> int:
    """Sends from `offset` towards `end`; returns the new offset once done or the client falls behind.

    A client that keeps up drains the socket buffer within milliseconds, so the thread waits for it
    briefly (LINGER) instead of handing back to the IOLoop after every buffer-full; a slow client
    sends the thread back at once, so slow downloads never pin the I/O pool.
    """
    waiter = select.poll()
    waiter.register(sock, select.POLLOUT)
    while offset < end:
        try:
            sent = os.sendfile(sock, fd, offset, min(BURST, end - offset))
        except BlockingIOError:
            if not waiter.poll(LINGER_MS):
                break
            continue
        if sent == 0:
            raise IntegrityError("The file's bytes are shorter than recorded.")
        offset += sent
    return offset


async def wait_writable(sock: int, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def writable() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_writer(sock, writable)
    try:
        await asyncio.wait_for(ready, timeout)
    except asyncio.TimeoutError:
        raise ClientStalled() from None
    finally:
        loop.remove_writer(sock)


async def sendfile_range(sock: int, fd: int, first: int, length: int, io: Executor, idle_timeout: float,
                         expected: Expected | None) -> None:
    """Sends bytes [first, first+length) of `fd` on the non-blocking socket `sock`.

    Raises IntegrityError when the whole-file check fails (the tail is then never sent), ClientStalled
    when the client stops reading, and OSError when the connection breaks.
    """
    loop = asyncio.get_running_loop()
    end = first + length
    stop = threading.Event()
    check = loop.run_in_executor(io, expected.matches, fd, first, length, stop) if expected else None
    try:
        offset = await _send_until(loop, sock, fd, first, end - min(HELD_BACK, length) if check else end,
                                   io, idle_timeout)
        if check is not None:
            if not await check:
                raise IntegrityError()
            await _send_until(loop, sock, fd, offset, end, io, idle_timeout)
    finally:
        if check is not None:
            stop.set()
            # The hashing thread reads `fd`: it must be done before the caller closes the file.
            await asyncio.gather(check, return_exceptions=True)


async def _send_until(loop: asyncio.AbstractEventLoop, sock: int, fd: int, offset: int, limit: int,
                      io: Executor, idle_timeout: float) -> int:
    while offset < limit:
        TRANSFERS.mark()
        offset = await loop.run_in_executor(io, send_burst, sock, fd, offset, limit)
        if offset < limit:
            await wait_writable(sock, idle_timeout)
    return offset
