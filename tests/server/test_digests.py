"""StreamDigests: the digests and the CRC of a stream, with SHA-256 and MD5 one buffer behind on side threads."""

from __future__ import annotations

import hashlib
import os
import zlib

import google_crc32c

from lockr_local.server.blobstore import StreamDigests
from lockr_local.server.checks import RunningCheck, RunningCrc, StoredCheck


def expected(data: bytes) -> tuple[str, str, str, int]:
    return (hashlib.sha256(data).hexdigest(), hashlib.sha1(data).hexdigest(), hashlib.md5(data).hexdigest(),
            google_crc32c.value(data))


def as_tuple(digests: StreamDigests) -> tuple[str, str, str, int | None]:
    result = digests.digests()
    return result.sha256, result.sha1, result.md5, result.check.crc32c


def test_digests_match_hashlib_for_large_small_and_reused_buffers():
    pieces = [os.urandom(size) for size in (3 * 1024 * 1024, 10, 512 * 1024 + 1, 0, 2 * 1024 * 1024)]
    stream = StreamDigests()
    reused = bytearray(1024 * 1024)
    for index, piece in enumerate(pieces):
        if index % 2:
            stream.update(piece)
        else:
            # A caller that refills one buffer: its bytes must be hashed before update returns.
            for start in range(0, len(piece), len(reused)):
                part = piece[start:start + len(reused)]
                reused[:len(part)] = part
                stream.update(memoryview(reused)[:len(part)])
                reused[:] = bytes(len(reused))
    assert as_tuple(stream) == expected(b"".join(pieces))


def test_copy_mid_stream_continues_independently():
    first, second, third = os.urandom(2 * 1024 * 1024), os.urandom(1024 * 1024), os.urandom(300)
    stream = StreamDigests()
    stream.update(first)
    twin = stream.copy()
    stream.update(second)
    twin.update(third)
    assert as_tuple(stream) == expected(first + second)
    assert as_tuple(twin) == expected(first + third)


def test_without_rclone_digests_sha1_and_md5_are_left_for_the_backfill():
    data = os.urandom(1024 * 1024 + 7)
    stream = StreamDigests(rclone_digests=False)
    stream.update(data)
    result = stream.digests()
    assert (result.sha256, result.sha1, result.md5) == (hashlib.sha256(data).hexdigest(), "", "")
    assert result.check.crc32c == google_crc32c.value(data)


def test_without_the_crc32c_extension_new_files_get_zlib_crc32_and_both_verify():
    data = os.urandom(700_000)
    fallback = RunningCrc(use_crc32c=False)
    fallback.update(data[:1000])
    twin = fallback.copy()
    twin.update(data[1000:])
    assert twin.stored() == StoredCheck(crc32=zlib.crc32(data))
    for stored in (twin.stored(), StoredCheck(crc32c=google_crc32c.value(data)), StoredCheck()):
        good, bad = RunningCheck(hashlib.sha256(data).hexdigest(), stored), RunningCheck("", stored)
        good.update(data)
        bad.update(data[:-1] + bytes([data[-1] ^ 1]))
        assert good.ok() and not bad.ok(), stored
