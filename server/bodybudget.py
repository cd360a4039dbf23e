"""BodyBudget: the memory that the large request bodies streaming in at once share, for their socket reads
and for the writes each queues for the disk."""

from __future__ import annotations

# Every large body holds a few buffers of its share at a time: the read it is handed (Tornado copies each
# recv twice on the way), the write it waits to queue and up to two writes queued for its I/O thread, one
# of them still hashed on a side thread. So the bodies streaming at once hold about four times the budget
# between them, not four buffers of 1 MiB each: 20 concurrent uploads peaked 40-60 MiB above the idle
# server with 1 MiB buffers each, 8-9 MiB with 128 KiB.
# 16 MiB: the most that still costs no throughput with 16-20 uploads at once (2026-12-07, 2 cores, paired
# runs: 20 x 50 MiB at 632-655 MB/s, as with 1 MiB each, peak 80-83 MiB against 110; 8 MiB: 577-584 MB/s,
# 59-65 MiB; 4 MiB: 452-481 MB/s, 50-52 MiB).
BODY_BUDGET = 16 * 1024 * 1024
# One body alone reads and writes 1 MiB at a time: smaller reads cost a large upload more CPU per byte
# (64 KiB reads: 40% more for a 1 GiB upload), larger ones buy nothing measurable.
MAX_SHARE = 1024 * 1024
# Shares are whole multiples of this, and never smaller: below it the per-chunk cost of the upload path
# (a trip to an I/O thread per write) dominates.
SHARE_QUANTUM = 64 * 1024


class BodyBudget:
    """How many large bodies are streaming in, and the share of `budget` each may read and queue at once.

    Counted on the IOLoop thread only (httpserver.BudgetedBody), read there (UploadSink.feed): no lock."""

    def __init__(self, budget: int = BODY_BUDGET) -> None:
        self.budget = budget
        self.streaming = 0

    def share(self) -> int:
        """Bytes one streaming body may read from its socket at once, and write at once: the budget split
        between the bodies streaming now, between SHARE_QUANTUM and MAX_SHARE."""
        share = self.budget // max(self.streaming, 1)
        return max(SHARE_QUANTUM, min(MAX_SHARE, share - share % SHARE_QUANTUM))

    def started(self) -> None:
        self.streaming += 1

    def ended(self) -> None:
        self.streaming -= 1
