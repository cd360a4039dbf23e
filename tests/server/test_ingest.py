"""The upload pipeline (server/ingest.py): the one path every route stores bytes through, and its clean-up."""

from __future__ import annotations

import ast
import asyncio
import hashlib
from pathlib import Path
from typing import Any

import pytest

from lockr_local.errors import QuotaExceeded, TooLarge
from lockr_local.server.blobstore import BlobLocation
from lockr_local.server.ingest import Committed

REPO = Path(__file__).resolve().parents[2]
SMALL, BIG = b"s" * 1000, b"b" * (200 * 1024)  # the default inline_max is 64 KiB


def store(ctx: Any, data: bytes, record: Any) -> tuple[BlobLocation, Any]:
    """Streams `data` through the pipeline in 64 KiB chunks and returns (location, what record returned)."""

    async def run() -> tuple[BlobLocation, Any]:
        location = BlobLocation(ctx.settings.default_region, "ab" + hashlib.sha256(data).hexdigest()[:30])
        sink = ctx.ingest.begin(location, len(data), len(data), lambda received: TooLarge())
        for start in range(0, len(data), 64 * 1024):
            await sink.feed(data[start:start + 64 * 1024])
        return location, await ctx.ingest.finish(sink, record)

    return asyncio.run(run())


def test_small_bodies_are_kept_for_their_row_and_big_ones_become_a_blob(ctx):
    location, small = store(ctx, SMALL, lambda committed: committed)
    assert small.data == SMALL and small.digests.sha256 == hashlib.sha256(SMALL).hexdigest() and small.digests.md5
    assert ctx.blobs.size(location) is None
    location, big = store(ctx, BIG, lambda committed: committed)
    assert big.data is None and big.size == len(BIG) and big.digests.sha256 == hashlib.sha256(BIG).hexdigest()
    assert ctx.blobs.size(location) == len(BIG)


@pytest.mark.parametrize("data", [SMALL, BIG], ids=["inline", "blob"])
def test_a_record_that_fails_leaves_no_bytes_behind(ctx, data):
    def refuse(committed: Committed) -> None:
        raise QuotaExceeded()

    with pytest.raises(QuotaExceeded):
        store(ctx, data, refuse)
    region = ctx.settings.default_region
    assert list(ctx.blobs.iter_objects(region)) == [] and ctx.blobs.temp_leftovers(region) == 0


def calls_of(path: Path, names: set[str]) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [f"{path.relative_to(REPO)}:{node.lineno} {node.func.attr if isinstance(node.func, ast.Attribute) else ''}"
            f"{node.func.id if isinstance(node.func, ast.Name) else ''}"
            for node in ast.walk(tree) if isinstance(node, ast.Call)
            and ((isinstance(node.func, ast.Attribute) and node.func.attr in names)
                 or (isinstance(node.func, ast.Name) and node.func.id in names))]


def test_only_the_pipeline_opens_new_blobs_or_buffers_small_bodies():
    # Every upload route (direct, WebDAV PUT and LOCK, session completion, tus) goes through ingest.py:
    # no other module picks a sink by size or writes a new blob.
    # (The blob store's own modules implement new_writer; they are the seam, not a route. `lockr-local
    # migrate` copies stored files, checked against their rows, into another store: not an upload either.)
    modules = sorted({*(REPO / "server").rglob("*.py")} - {REPO / "server" / name for name in
                                                          ("ingest.py", "blobstore.py", "filestore.py", "migrate.py")})
    assert calls_of(REPO / "server" / "ingest.py", {"new_writer", "InlineSink"})
    assert [call for path in modules for call in calls_of(path, {"new_writer", "InlineSink"})] == []
