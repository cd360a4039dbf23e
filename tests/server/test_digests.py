"""StreamDigests: the four digests of a stream, with MD5 one buffer behind on a side thread."""

from __future__ import annotations

import hashlib
import os
import zlib

from lockr_local.server.blobstore import StreamDigests


def expected(data: bytes) -> tuple[str, str, str, int]:
    return (hashlib.sha256(data).hexdigest(), hashlib.sha1(data).hexdigest(), hashlib.md5(data).hexdigest(),
            zlib.crc32(data))


def as_tuple(digests: StreamDigests) -> tuple[str, str, str, int | None]:
    result = digests.digests()
    return result.sha256, result.sha1, result.md5, result.crc32


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
