"""Transfer plumbing for the client: retry policy, streamed file windows, Content-Range and hash helpers."""

from __future__ import annotations

import hashlib
import os
import random
import re
import time
from dataclasses import dataclass, field
from typing import BinaryIO, Callable, Iterator

# GCS requires every chunk but the last to be a multiple of 256 KiB; lockr-local accepts any size,
# but keeping to the rule makes the client work against both.
CHUNK_QUANTUM = 256 * 1024
DEFAULT_CHUNK_SIZE = 8 * 1024 * 1024
READ_BLOCK = 1024 * 1024

ProgressCallback = Callable[[int, int], None]
"""progress(bytes_done, bytes_total): called as bytes go out or come in; bytes_done may go back on a retry."""

_RANGE = re.compile(r"bytes=(\d+)-(\d+)")


@dataclass
class RetryPolicy:
    """How often and how patiently transient failures (network errors, 5xx, 429) are retried.

    `attempts` counts consecutive failures without progress; an upload that keeps advancing never
    runs out of attempts. The delay doubles from `base_delay` up to `max_delay`, with jitter, and a
    429's Retry-After is honoured (up to `max_retry_after`, beyond which the 429 is raised).
    """

    attempts: int = 8
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_retry_after: float = 600.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    # Fail at once on what waiting cannot clear: a host name that does not resolve, a TLS mismatch, and
    # a refused or unanswered connection to an endpoint this client has never reached. The CLI wants
    # that (a person is waiting); the sync agent leaves it off and keeps trying in the background.
    fail_fast: bool = False
    # Hears a sentence before each retry (the CLI prints it on stderr), so waiting is never silent.
    on_retry: Callable[[str], None] | None = field(default=None, repr=False)

    def delay(self, failures: int) -> float:
        """Exponential backoff with +-20% jitter, so many clients do not retry in lockstep."""
        raw = min(self.max_delay, self.base_delay * (2 ** max(0, failures - 1)))
        return raw * random.uniform(0.8, 1.2)


class FileWindow:
    """A streamed request body: `length` bytes of `source` starting at `start`, read `block` bytes at a time.

    requests sends an iterable with a known `len()` with a Content-Length header, so memory stays
    flat whatever the size. `progress` hears about every block handed to the socket (a bandwidth
    limit paces the upload there, so it asks for smaller blocks).
    """

    def __init__(self, source: BinaryIO, start: int, length: int, total: int,
                 progress: ProgressCallback | None = None, base: int = 0, block: int = READ_BLOCK) -> None:
        self.source = source
        self.block = block
        self.start = start  # offset within the upload; the file position is base + start
        self.length = length
        self.total = total
        self.progress = progress
        self.base = base

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[bytes]:
        self.source.seek(self.base + self.start)
        remaining = self.length
        done = self.start
        while remaining > 0:
            block = self.source.read(min(self.block, remaining))
            if not block:
                raise OSError(f"the file shrank while it was being uploaded (at byte {done})")
            remaining -= len(block)
            done += len(block)
            yield block
            if self.progress is not None:
                self.progress(done, self.total)


def source_size(source: BinaryIO) -> int | None:
    """The size of a file object: fstat for real files, seek to the end for other seekable streams."""
    try:
        return os.fstat(source.fileno()).st_size - source.tell()
    except (AttributeError, OSError, ValueError):
        pass
    try:
        if not source.seekable():
            return None
        here = source.tell()
        end = source.seek(0, os.SEEK_END)
        source.seek(here)
        return end - here
    except (AttributeError, OSError, ValueError):
        return None


def persisted_offset(range_header: str | None) -> int:
    """The next byte to send after a 308/409: 'bytes=0-N' means N+1 bytes are stored; no header, none."""
    if not range_header:
        return 0
    match = _RANGE.fullmatch(range_header.strip())
    if match is None:
        raise ValueError(f"the server sent an unreadable Range header: {range_header!r}")
    return int(match.group(2)) + 1


def chunk_size_checked(chunk_size: int) -> int:
    if chunk_size <= 0 or chunk_size % CHUNK_QUANTUM:
        raise ValueError(f"chunk_size must be a positive multiple of {CHUNK_QUANTUM} bytes (256 KiB)")
    return chunk_size


def key_hash(phrase: str) -> str:
    """keyHash as the API defines it: lowercase hex SHA-256 of the UTF-8 phrase (never sent itself)."""
    return hashlib.sha256(phrase.encode("utf-8")).hexdigest()


def hash_prefix(path: str | os.PathLike[str], length: int) -> "hashlib._Hash":
    """A sha256 fed with the first `length` bytes of a file, to continue hashing a resumed download."""
    digest = hashlib.sha256()
    if length <= 0:
        return digest
    with open(path, "rb") as handle:
        remaining = length
        while remaining > 0:
            block = handle.read(min(READ_BLOCK, remaining))
            if not block:
                break
            digest.update(block)
            remaining -= len(block)
    return digest

