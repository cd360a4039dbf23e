"""Free space of each storage region, for /healthz and /metrics (blocking: call it off the IOLoop)."""

from __future__ import annotations

from lockr_local.server.blobstore import BlobStore


def region_free_bytes(blobs: BlobStore) -> dict[str, int | None]:
    """Bytes free (to the server's user) on each region's disk; None where the store cannot tell (an object
    store has no free space to report)."""
    return {region: blobs.free_bytes(region) for region in blobs.regions()}
