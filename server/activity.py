"""TransferClock: when bytes last moved for a client, so that background work can yield to transfers.

One per process (`TRANSFERS`): upload sinks and download loops mark it as bytes pass, and the
SHA-1/MD5 backfill slows to a trickle while anything was marked in the last half second. It holds a
timestamp and nothing else, so sharing it costs no coordination.
"""

from __future__ import annotations

import time

BUSY_WINDOW = 0.5


class TransferClock:
    def __init__(self) -> None:
        self._last = float("-inf")

    def mark(self) -> None:
        """Bytes of a client's upload or download just moved."""
        self._last = time.monotonic()

    def busy(self) -> bool:
        """Whether a transfer moved bytes within the last BUSY_WINDOW seconds."""
        return time.monotonic() - self._last < BUSY_WINDOW


TRANSFERS = TransferClock()
