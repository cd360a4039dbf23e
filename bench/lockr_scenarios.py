"""Scenarios only lockr-local runs: the resumable-session upload, listing at 1,000-100,000 files, and the
optional 4 GiB flat-memory run."""

from __future__ import annotations

import hashlib
import json
import secrets
import shutil
import statistics
import time
from pathlib import Path

from bench.harness import (
    LockrServer, PeakRss, Row, Table, copy_range, curl, make_file, median_of, rss_bytes, settle_disk,
)
from bench.scenarios import MB, scenario_big_download, scenario_big_upload, size_label
from bench.targets import LockrTarget

SESSION_CHUNK = 8 * 2**20
LISTING_COUNTS = (1_000, 10_000, 100_000)
# The largest ?limit= the server allows (max_page_size): the page size of the walk through all pages.
LISTING_WALK_PAGE = 1000
BIG_SIZE = 4 * 2**30


# -- session upload ------------------------------------------------------------------------------

def split_into_chunks(source: Path, size: int, folder: Path) -> list[tuple[Path, int, int]]:
    """The source cut into SESSION_CHUNK files: curl sends whole files, and reading them is what it
    does for the direct upload too. Returns (path, first byte, last byte) per chunk."""
    folder.mkdir(exist_ok=True)
    chunks = []
    for index, first in enumerate(range(0, size, SESSION_CHUNK)):
        length = min(SESSION_CHUNK, size - first)
        chunks.append((copy_range(source, folder / f"chunk-{index:05d}", first, length), first, first + length - 1))
    return chunks


def session_upload(target: LockrTarget, name: str, chunks: list[tuple[Path, int, int]], size: int,
                   answer: Path) -> tuple[float, str]:
    """Opens a session (not timed), then PUTs every chunk with its Content-Range in ONE curl invocation
    (`--next`: one keep-alive connection, no process start per chunk). The time is that invocation's, from
    the first byte of the first chunk to the final 201. Returns (seconds, file id)."""
    server = target.server
    _, out = curl([f"{server.url}/api/v1/upload/session", *target.auth_headers(), "-H",
                   "Content-Type: application/json",
                   "-d", json.dumps({"name": name, "size": size, "type": "application/octet-stream"})])
    upload_url = json.loads(out)["uploadUrl"]
    args: list[str] = []
    for index, (path, first, last) in enumerate(chunks):
        if index:
            args.append("--next")
        final = index == len(chunks) - 1
        # No `Expect: 100-continue` (curl's default above 1 MB), as lockr-local's own client (requests) and
        # Google's resumable-media send none: with it every chunk waits a round trip through the server's
        # prepare() before its first byte, which is curl's habit, not the session protocol's cost.
        args += [upload_url, "-T", str(path), "-H", "Expect:", "-H", f"Content-Range: bytes {first}-{last}/{size}",
                 "-o", str(answer) if final else "/dev/null", "-w", "%{http_code}\\n"]
    elapsed, codes = curl(args)
    expected = ["308"] * (len(chunks) - 1) + ["201"]
    if codes.split() != expected:
        raise RuntimeError(f"session upload answered {codes.split()[-5:]}, expected ...308 and a final 201")
    return elapsed, json.loads(answer.read_text())["id"]


def scenario_session_upload(target: LockrTarget, work: Path, source: Path, size: int, runs: int,
                            table: Table) -> None:
    """The same file through a resumable session in 8 MiB chunks. Each run pairs a direct upload with a
    session upload, one after the other on a settled disk, both deleted after: the ratio column is
    session / direct of these pairs, so both face the same server state (files kept, page cache) and
    the ratio does not depend on what the upload row left behind."""
    chunks = split_into_chunks(source, size, work / "chunks")
    counter = iter(range(1000))
    direct_speeds: list[float] = []

    def delete(file_id: str) -> None:
        curl([f"{target.server.url}/api/v1/files/{file_id}", "-X", "DELETE", *target.auth_headers()])

    def once() -> float:
        run = next(counter)
        elapsed, out = curl(target.upload_args(f"paired-direct-{run}.bin", source))
        direct_speeds.append(size / MB / elapsed)
        delete(json.loads(out)["id"])
        settle_disk(warm=[path for path, _, _ in chunks])
        elapsed, file_id = session_upload(target, f"session-{run}.bin", chunks, size, work / "answer.json")
        delete(file_id)
        return size / MB / elapsed

    try:
        with PeakRss(target.pid) as rss:
            value = median_of(runs, once, warm=[source])
    finally:
        shutil.rmtree(work / "chunks", ignore_errors=True)
    direct = statistics.median(direct_speeds)
    table.add(Row(f"upload {size_label(size)}, session PUT 8 MiB chunks", target.name, value, "MB/s", rss.peak,
                  f"one curl, --next per chunk; paired direct uploads {direct:.0f} MB/s",
                  paired_ratio=value / direct, paired_label="this / direct uploads paired with it"))


# -- listing at scale ----------------------------------------------------------------------------

def seed_files(data_dir: Path, username: str, region: str, first: int, count: int) -> None:
    """Inserts `count` file rows for `username` straight into the stopped server's database, in batches
    (100,000 uploads over HTTP would take the run's whole budget). Rows only: listing reads rows and
    never the bytes, so no blobs are written (a `fsck` of this store would report them missing)."""
    from lockr_local.server.models import Account, StoredFile, open_database

    database = open_database(f"sqlite:///{data_dir / 'lockr.db'}")
    try:
        account = Account.get(Account.username == username)
        now = time.time()
        rows = [{"file_id": secrets.token_hex(16), "owner": account.id, "name": f"seeded/file-{index:06d}.txt",
                 "size": 1024, "content_type": "text/plain", "region": region,
                 "sha256": hashlib.sha256(str(index).encode()).hexdigest(), "created_at": now + index * 1e-3}
                for index in range(first, first + count)]
        with database.atomic():
            for start in range(0, len(rows), 500):
                StoredFile.insert_many(rows[start:start + 500]).execute()
            Account.update(used_bytes=Account.used_bytes + 1024 * count).where(Account.id == account.id).execute()
    finally:
        database.close()


def timed_get(url: str, headers: list[str]) -> tuple[float, str]:
    """One GET by curl; returns (curl's own time_total in seconds, body): no process start-up in the figure."""
    _, out = curl([url, *headers, "-w", "\n%{time_total}"])
    body, _, seconds = out.rpartition("\n")
    return float(seconds), body


def walk_listing(target: LockrTarget, count: int) -> tuple[float, str | None, int]:
    """Every page of the listing, LISTING_WALK_PAGE files each (fewer for small counts so that there is a
    middle); returns (seconds, the cursor of the page at the middle, files seen)."""
    page = min(LISTING_WALK_PAGE, max(count // 2, 1))
    base = f"{target.server.url}/api/v1/files?limit={page}"
    cursor: str | None = None
    middle: str | None = None
    seen = 0
    total = 0.0
    while True:
        seconds, body = timed_get(base + (f"&cursor={cursor}" if cursor else ""), target.auth_headers())
        total += seconds
        answer = json.loads(body)
        seen += len(answer["files"])
        cursor = answer["next"]
        if middle is None and seen >= count // 2 and cursor:
            middle = cursor
        if not cursor:
            return total, middle, seen


def scenario_listing(work: Path, counts: tuple[int, ...], runs: int, table: Table) -> None:
    """GET /api/v1/files at each file count: first page and a page in the middle (cursor), median of
    `runs` (at least 9) requests each, a walk through all pages, and the server's RSS. The server is
    restarted for each count so that its memory reflects that count alone."""
    data = work / "listing-data"
    server = LockrServer(data)
    token = server.token
    try:
        target = LockrTarget(server)
        tiny = make_file(work / "tiny.bin", 1024)
        _, out = curl(target.upload_args("real-file.bin", tiny))
        region = json.loads(out)["region"]
    finally:
        server.stop()
    stored = 1
    requests = max(runs, 9)
    try:
        for count in counts:
            if count > stored:
                started = time.perf_counter()
                seed_files(data, "bench", region, stored, count - stored)
                print(f"  (seeded {count - stored:,} file rows in {time.perf_counter() - started:.1f} s)", flush=True)
                stored = count
            server = LockrServer(data, token=token)
            try:
                target = LockrTarget(server)
                at_start = rss_bytes(server.pid)
                files_url = f"{server.url}/api/v1/files"
                with PeakRss(server.pid) as rss:
                    first = statistics.median(timed_get(files_url, target.auth_headers())[0]
                                              for _ in range(requests))
                    walk_seconds, middle, seen = walk_listing(target, count)
                    mid = statistics.median(timed_get(f"{files_url}?cursor={middle}", target.auth_headers())[0]
                                            for _ in range(requests)) if middle else 0.0
                if seen != count:
                    raise RuntimeError(f"the listing walked {seen} files of the {count} stored")
                note = f"RSS at start {at_start / 2**20:.0f} MiB"
                label = f"listing, {count:,} files"
                table.add(Row(f"{label}: first page", "lockr-local", first * 1000, "ms", rss.peak, note))
                table.add(Row(f"{label}: middle page (cursor)", "lockr-local", mid * 1000, "ms", rss.peak))
                page = min(LISTING_WALK_PAGE, max(count // 2, 1))
                table.add(Row(f"{label}: all pages of {page}", "lockr-local", seen / walk_seconds, "files/s",
                              rss.peak))
            finally:
                server.stop()
    finally:
        shutil.rmtree(data, ignore_errors=True)


# -- 4 GiB flat memory ---------------------------------------------------------------------------

def scenario_big(work: Path, size: int, table: Table) -> None:
    """One upload and one download of a `size` file (4 GiB by default): peak RSS must stay what it is at
    1 GiB. The source and the stored copy are deleted as soon as they are measured."""
    folder = work / "big"
    folder.mkdir()
    try:
        print(f"  (writing a {size_label(size)} source file for --big)", flush=True)
        source = make_file(folder / "source.bin", size)
        server = LockrServer(folder / "lockr-data")
        try:
            target = LockrTarget(server)
            scenario_big_upload(target, source, size, 1, table)
            source.unlink()
            settle_disk()
            scenario_big_download(target, size, 1, table)
        finally:
            server.stop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
