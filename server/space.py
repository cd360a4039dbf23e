"""Free space of each storage region, for /healthz and /metrics (blocking: call it off the IOLoop)."""

from __future__ import annotations

import shutil

from lockr_local.server.blobstore import BlobStore


def region_free_bytes(blobs: BlobStore) -> dict[str, int | None]:
    """Bytes free (to the server's user) on each region's disk; None where the store cannot tell (an object
    store has no free space to report)."""
    from lockr_local.server.filestore import FileBlobStore

    free: dict[str, int | None] = {}
    for region in blobs.regions():
        if isinstance(blobs, FileBlobStore):
            try:
                free[region] = shutil.disk_usage(blobs.root(region)).free
            except OSError:
                free[region] = 0  # a region whose disk is gone can store nothing
        else:
            free[region] = None
    return free
