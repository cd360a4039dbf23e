"""The scenarios every server runs (lockr-local and the peers alike), measured with curl."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

from bench.harness import PeakRss, Row, Table, curl, make_file, median_of, settle_disk
from bench.peers import NginxPeer
from bench.targets import Target, upload
from lockr_local.server import writeback

MB = 1_000_000
# The concurrency points of the upload-scaling rows, and the most bytes one point moves in all.
SCALING_CLIENTS = (1, 4, 16)
SCALING_TOTAL_MAX = 512 * 2**20


def size_label(size: int) -> str:
    if size < 2**20:  # the smoke test's tiny sizes
        return f"{size / 2**10:.0f} KiB"
    return f"{size / 2**30:.1f} GiB" if size >= 2**30 else f"{size / 2**20:.0f} MiB"


def big_upload_scenario(size: int) -> str:
    return f"upload {size_label(size)}"


def scenario_big_upload(target: Target, source: Path, size: int, runs: int, table: Table) -> None:
    counter = iter(range(1000))
    with PeakRss(target.pid) as rss:
        value = median_of(runs, lambda: size / MB / upload(target, f"big-{next(counter)}.bin", source), warm=[source])
    table.add(Row(big_upload_scenario(size), target.name, value, "MB/s", rss.peak))


def scenario_big_download(target: Target, size: int, runs: int, table: Table) -> None:
    url = target.download_url("big-0.bin")
    headers = target.download_headers()
    with PeakRss(target.pid) as rss:
        value = median_of(runs, lambda: size / MB / curl([url, *headers, "-o", "/dev/null"])[0])
    table.add(Row(f"download {size_label(size)}", target.name, value, "MB/s", rss.peak))


# Connections of the concurrent small-file row (several agents or upload threads at once).
SMALL_CONNECTIONS = 8


def small_upload_args(target: Target, small: Path, names: list[str]) -> list[str]:
    """One curl invocation that uploads `small` once per name over one keep-alive connection (`--next`)."""
    args: list[str] = []
    for index, name in enumerate(names):
        if index:
            args.append("--next")
        args += [*target.upload_args(name, small), "-o", "/dev/null"]
    return args


def ceiling_note(ceiling: float | None) -> str:
    """The machine's durable-commit ceiling (durable_row_commits_per_second), printed beside small-file rows."""
    return f"durable-commit ceiling {ceiling:,.0f}/s" if ceiling else ""


def scenario_small_files(target: Target, small: Path, count: int, runs: int, table: Table,
                         ceiling: float | None = None) -> None:
    round_counter = iter(range(1000))

    def once() -> float:
        batch = next(round_counter)
        elapsed, _ = curl(small_upload_args(target, small, [f"small-{batch}-{i}.bin" for i in range(count)]))
        return count / elapsed

    with PeakRss(target.pid) as rss:
        value = median_of(runs, once)
    table.add(Row(f"{count} x 10 KiB uploads, keep-alive", target.name, value, "files/s", rss.peak,
                  ceiling_note(ceiling)))


def small_concurrent_scenario(count: int, connections: int = SMALL_CONNECTIONS) -> str:
    return f"{count} x 10 KiB uploads, {connections} connections"


def scenario_small_concurrent(target: Target, small: Path, count: int, runs: int, table: Table,
                              ceiling: float | None = None, connections: int = SMALL_CONNECTIONS) -> None:
    """`count` uploads of 10 KiB spread over `connections` curl processes at once, each on one keep-alive
    connection: what concurrent small uploads (group commit's case) get through, start to last answer."""
    round_counter = iter(range(1000))
    per = max(1, count // connections)

    def once() -> float:
        batch = next(round_counter)
        started = time.perf_counter()
        procs = [subprocess.Popen(["curl", "-s", "-S", "--fail-with-body", *small_upload_args(
            target, small, [f"conc-small-{batch}-{c}-{i}.bin" for i in range(per)])],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for c in range(connections)]
        failures = [proc.stderr.read() for proc in procs if proc.wait() != 0]  # type: ignore[union-attr]
        elapsed = time.perf_counter() - started
        for proc in procs:
            proc.stderr.close()  # type: ignore[union-attr]
        if failures:
            raise RuntimeError(f"{len(failures)} of {connections} curl uploaders failed: {failures[0][:300]!r}")
        return per * connections / elapsed

    with PeakRss(target.pid) as rss:
        value = median_of(runs, once)
    table.add(Row(small_concurrent_scenario(per * connections, connections), target.name, value, "files/s",
                  rss.peak, ceiling_note(ceiling)))


def concurrent_uploads(target: Target, path: Path, clients: int, prefix: str) -> tuple[float, int, int]:
    """`clients` curl processes upload `path` at once; returns (seconds until the last one ended, peak RSS,
    failures)."""
    settle_disk(warm=[path])
    started = time.perf_counter()
    with PeakRss(target.pid) as rss:
        procs = [subprocess.Popen(["curl", "-s", "-S", "--fail", *target.upload_args(f"{prefix}-{i}.bin", path),
                                   "-o", "/dev/null"]) for i in range(clients)]
        codes = [proc.wait() for proc in procs]
    return time.perf_counter() - started, rss.peak, sum(1 for code in codes if code)


def scenario_concurrent(target: Target, medium: Path, clients: int, table: Table) -> None:
    size = medium.stat().st_size
    elapsed, peak, failed = concurrent_uploads(target, medium, clients, "conc")
    table.add(Row(f"{clients} concurrent {size / 2**20:.0f} MiB uploads", target.name,
                  clients * size / MB / elapsed, "MB/s", peak, f"{failed} failed" if failed else ""))


def scaling_sizes(size: int) -> dict[int, int]:
    """Bytes per client at each concurrency point: the same total (at most 512 MiB) split N ways."""
    total = min(size, SCALING_TOTAL_MAX)
    return {clients: max(total // clients, 1) for clients in SCALING_CLIENTS}


def scenario_upload_scaling(target: Target, work: Path, size: int, table: Table) -> None:
    """Aggregate upload throughput with 1, 4 and 16 curl clients at once, the same total bytes at each
    point, one run per point; the server's peak RSS beside each."""
    for clients, each in scaling_sizes(size).items():
        path = make_file(work / f"scaling-{each}.bin", each)
        elapsed, peak, failed = concurrent_uploads(target, path, clients, f"scale{clients}")
        table.add(Row(f"scaling: {clients} client{'s' if clients > 1 else ''} upload "
                      f"{size_label(each * clients)} in all", target.name, clients * each / MB / elapsed, "MB/s",
                      peak, f"{failed} failed" if failed else ""))


def durable_write_seconds(source: Path, target: Path) -> float:
    """Copies `source` in 1 MiB writes, starting the writeback of the written pages every 4 MiB as
    lockr-local's uploads do (server/writeback.py), then fsyncs: the fastest durable write here."""
    started = time.perf_counter()
    with open(source, "rb") as src:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            pushed = written = 0
            while block := src.read(2**20):
                os.write(fd, block)
                written += len(block)
                if written - pushed >= writeback.FLUSH_EVERY:
                    writeback.start_writeback(fd)
                    pushed = written
            os.fsync(fd)
        finally:
            os.close(fd)
    return time.perf_counter() - started


def durable_row_commits_per_second(folder: Path, count: int = 1000, size: int = 10 * 1024) -> float:
    """SQLite in WAL mode with synchronous=FULL, as lockr-local runs it: `count` inserts of a `size`-byte
    row, each its own commit (one WAL fsync). The ceiling of any upload that is durable before its answer
    and keeps small files in the database; no server or HTTP involved."""
    path = folder / "commits.db"
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=wal")
        connection.execute("PRAGMA synchronous=full")
        connection.execute("CREATE TABLE files (id TEXT PRIMARY KEY, data BLOB)")
        data = os.urandom(size)
        started = time.perf_counter()
        for index in range(count):
            connection.execute("BEGIN")
            connection.execute("INSERT INTO files VALUES (?, ?)", (f"file-{index}", data))
            connection.execute("COMMIT")
        return count / (time.perf_counter() - started)
    finally:
        connection.close()
        for leftover in folder.glob("commits.db*"):
            leftover.unlink()


def bench_raw_limits(work: Path, source: Path, size: int, table: Table) -> None:
    """The frame: what copying, hashing and a body-discarding server cost on this machine."""
    settle_disk()
    started = time.perf_counter()
    target = work / "copy.bin"
    shutil.copyfile(source, target)
    with open(target, "rb+") as handle:
        os.fsync(handle.fileno())
    table.add(Row("raw: cp + fsync", "machine", size / MB / (time.perf_counter() - started), "MB/s"))
    target.unlink()
    if writeback._sync_file_range is not None:
        settle_disk(warm=[source])
        table.add(Row("raw: 1 MiB writes + fsync, writeback started every 4 MiB", "machine",
                      size / MB / durable_write_seconds(source, target), "MB/s"))
        target.unlink()
    started = time.perf_counter()
    digest = hashlib.sha256()
    with open(source, "rb") as handle:
        while block := handle.read(8 * 2**20):
            digest.update(block)
    table.add(Row("raw: sha256 of the file", "machine", size / MB / (time.perf_counter() - started), "MB/s"))
    table.add(Row("raw: 10 KiB rows committed one by one (SQLite WAL, fsync each)", "machine",
                  durable_row_commits_per_second(work), "files/s"))
    settle_disk()
    if NginxPeer.available():
        nginx = NginxPeer(work).start()
        try:
            elapsed, _ = curl([f"http://127.0.0.1:{nginx.port}/discard", "-X", "PUT", "-T", str(source)])
            table.add(Row("raw: loopback PUT, body discarded", "nginx", size / MB / elapsed, "MB/s"))
        finally:
            nginx.stop()
