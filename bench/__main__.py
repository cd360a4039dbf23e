"""`make bench`: lockr-local's upload/download throughput and server memory, printed and saved as a table.

Sizes: LOCKR_BENCH_SIZE (default 1GiB); runs per figure: LOCKR_BENCH_RUNS (default 3).
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
from pathlib import Path

from bench.harness import REPO, LockrServer, PeakRss, Row, Table, curl, have, make_file, median_of
from lockr_local.config import parse_size

MB = 1_000_000


def bench_lockr(work: Path, source: Path, size: int, runs: int, table: Table) -> None:
    server = LockrServer(work / "lockr-data")
    auth = f"Authorization: Bearer {server.token}"
    try:
        last_url = ""

        def upload_once() -> float:
            nonlocal last_url
            elapsed, out = curl([f"{server.url}/api/v1/upload", "-H", auth, "-H", "x-file-name: bench.bin",
                                 "-H", "Content-Type: application/octet-stream", "-X", "POST", "-T", str(source)])
            import json
            last_url = json.loads(out)["downloadUrl"]
            return size / MB / elapsed

        with PeakRss(server.pid) as rss:
            value = median_of(runs, upload_once)
        table.add(Row(f"upload {size / 2**30:.1f} GiB (direct POST)", "lockr-local", value, "MB/s", rss.peak))

        def download_once() -> float:
            elapsed, _ = curl([last_url, "-H", auth, "-o", "/dev/null"])
            return size / MB / elapsed

        with PeakRss(server.pid) as rss:
            value = median_of(runs, download_once)
        table.add(Row(f"download {size / 2**30:.1f} GiB", "lockr-local", value, "MB/s", rss.peak))

        small = make_file(work / "small.bin", 10 * 1024)
        count = 200

        def small_files_once() -> float:
            args: list[str] = []
            for index in range(count):
                if index:
                    args.append("--next")
                args += [f"{server.url}/api/v1/upload", "-H", auth, "-H", f"x-file-name: small/{index}.bin",
                         "--data-binary", f"@{small}", "-o", "/dev/null"]
            elapsed, _ = curl(args)
            return count / elapsed

        with PeakRss(server.pid) as rss:
            value = median_of(runs, small_files_once)
        table.add(Row("10 KiB uploads, one keep-alive connection", "lockr-local", value, "files/s", rss.peak))
    finally:
        server.stop()


def bench_raw_limits(work: Path, source: Path, size: int, table: Table) -> None:
    """The frame: what copying and hashing cost on this machine, without any server."""
    import hashlib
    import shutil

    started = time.perf_counter()
    target = work / "copy.bin"
    shutil.copyfile(source, target)
    with open(target, "rb+") as handle:
        os.fsync(handle.fileno())
    table.add(Row("raw: cp + fsync", "machine", size / MB / (time.perf_counter() - started), "MB/s"))
    target.unlink()
    started = time.perf_counter()
    digest = hashlib.sha256()
    with open(source, "rb") as handle:
        while block := handle.read(8 * 2**20):
            digest.update(block)
    table.add(Row("raw: sha256 of the file", "machine", size / MB / (time.perf_counter() - started), "MB/s"))


def main() -> int:
    if not have("curl"):
        print("make bench needs curl: apt-get install curl")
        return 1
    size = parse_size(os.environ.get("LOCKR_BENCH_SIZE", "1GiB"))
    runs = int(os.environ.get("LOCKR_BENCH_RUNS", "3"))
    table = Table()
    print(f"lockr-local benchmarks: {size / 2**30:.2f} GiB files, median of {runs} runs, "
          f"{os.cpu_count()} cores, Python {platform.python_version()}")
    with tempfile.TemporaryDirectory(prefix="lockr-bench-", dir=os.environ.get("LOCKR_BENCH_DIR")) as tmp:
        work = Path(tmp)
        source = make_file(work / "source.bin", size)
        bench_raw_limits(work, source, size, table)
        bench_lockr(work, source, size, runs, table)
    rendered = table.render()
    results = REPO / "bench" / "results"
    results.mkdir(exist_ok=True)
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    (results / "latest.md").write_text(f"Measured {stamp} on {platform.node()} ({os.cpu_count()} cores)\n\n"
                                       f"{rendered}\n")
    print()
    print(rendered)
    print(f"\nwritten to {results / 'latest.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
