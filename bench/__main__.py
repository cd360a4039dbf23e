"""`make bench`: lockr-local side by side with nginx, copyparty and `rclone serve webdav` in one run.

curl is the client for everyone. Sizes: LOCKR_BENCH_SIZE (default 1GiB); runs per figure:
LOCKR_BENCH_RUNS (default 3); LOCKR_BENCH_PEERS=0 measures lockr-local alone; LOCKR_BENCH_RCLONE=0
leaves out the rclone-sync comparison (bench/rclone_webdav.py).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
import time
from abc import ABC, abstractmethod
from pathlib import Path

from bench.harness import REPO, LockrServer, PeakRss, Row, Table, curl, have, make_file, median_of
from bench.peers import ALL_PEERS, NginxPeer, Peer
from lockr_local.config import parse_size

MB = 1_000_000


class Target(ABC):
    """What a scenario needs from a server: how to upload a file with curl and where to fetch it."""

    def __init__(self, name: str, pid: int) -> None:
        self.name = name
        self.pid = pid
        self.urls: dict[str, str] = {}

    @abstractmethod
    def upload_args(self, name: str, path: Path) -> list[str]: ...

    def download_headers(self) -> list[str]:
        return []

    def remember(self, name: str, output: str) -> None:
        pass

    def download_url(self, name: str) -> str:
        return self.urls[name]


class LockrTarget(Target):
    def __init__(self, server: LockrServer) -> None:
        super().__init__("lockr-local", server.pid)
        self.server = server

    def upload_args(self, name: str, path: Path) -> list[str]:
        return [f"{self.server.url}/api/v1/upload", "-H", f"Authorization: Bearer {self.server.token}",
                "-H", f"x-file-name: {name}", "-H", "Content-Type: application/octet-stream", "-X", "POST",
                "-T", str(path)]

    def remember(self, name: str, output: str) -> None:
        self.urls[name] = json.loads(output)["downloadUrl"]

    def download_headers(self) -> list[str]:
        return ["-H", f"Authorization: Bearer {self.server.token}"]


class PeerTarget(Target):
    def __init__(self, peer: Peer) -> None:
        super().__init__(peer.name, peer.pid)
        self.peer = peer

    def upload_args(self, name: str, path: Path) -> list[str]:
        return [self.peer.upload_url(name), "-T", str(path)]

    def download_url(self, name: str) -> str:
        return self.peer.download_url(name)


def upload(target: Target, name: str, path: Path) -> float:
    elapsed, out = curl(target.upload_args(name, path))
    target.remember(name, out)
    return elapsed


def scenario_big_upload(target: Target, source: Path, size: int, runs: int, table: Table) -> None:
    counter = iter(range(1000))
    with PeakRss(target.pid) as rss:
        value = median_of(runs, lambda: size / MB / upload(target, f"big-{next(counter)}.bin", source))
    table.add(Row(f"upload {size / 2**30:.1f} GiB", target.name, value, "MB/s", rss.peak))


def scenario_big_download(target: Target, size: int, runs: int, table: Table) -> None:
    url = target.download_url("big-0.bin")
    headers = target.download_headers()
    with PeakRss(target.pid) as rss:
        value = median_of(runs, lambda: size / MB / curl([url, *headers, "-o", "/dev/null"])[0])
    table.add(Row(f"download {size / 2**30:.1f} GiB", target.name, value, "MB/s", rss.peak))


def scenario_small_files(target: Target, small: Path, count: int, runs: int, table: Table) -> None:
    round_counter = iter(range(1000))

    def once() -> float:
        batch = next(round_counter)
        args: list[str] = []
        for index in range(count):
            if index:
                args.append("--next")
            args += [*target.upload_args(f"small-{batch}-{index}.bin", small), "-o", "/dev/null"]
        elapsed, _ = curl(args)
        return count / elapsed

    with PeakRss(target.pid) as rss:
        value = median_of(runs, once)
    table.add(Row(f"{count} x 10 KiB uploads, keep-alive", target.name, value, "files/s", rss.peak))


def scenario_concurrent(target: Target, medium: Path, clients: int, table: Table) -> None:
    size = medium.stat().st_size
    started = time.perf_counter()
    with PeakRss(target.pid) as rss:
        procs = [subprocess.Popen(["curl", "-s", "-S", "--fail", *target.upload_args(f"conc-{i}.bin", medium),
                                   "-o", "/dev/null"]) for i in range(clients)]
        codes = [proc.wait() for proc in procs]
    elapsed = time.perf_counter() - started
    note = "" if all(code == 0 for code in codes) else f"{sum(1 for c in codes if c)} failed"
    table.add(Row(f"{clients} concurrent {size / 2**20:.0f} MiB uploads", target.name,
                  clients * size / MB / elapsed, "MB/s", rss.peak, note))


def bench_raw_limits(work: Path, source: Path, size: int, table: Table) -> None:
    """The frame: what copying, hashing and a body-discarding server cost on this machine."""
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
    if NginxPeer.available():
        nginx = NginxPeer(work).start()
        try:
            elapsed, _ = curl([f"http://127.0.0.1:{nginx.port}/discard", "-X", "PUT", "-T", str(source)])
            table.add(Row("raw: loopback PUT, body discarded", "nginx", size / MB / elapsed, "MB/s"))
        finally:
            nginx.stop()


def run_all(target: Target, work: Path, source: Path, size: int, runs: int, table: Table) -> None:
    scenario_big_upload(target, source, size, runs, table)
    scenario_big_download(target, size, runs, table)
    small = make_file(work / "small.bin", 10 * 1024)
    scenario_small_files(target, small, 500, max(runs, 5), table)
    medium = make_file(work / "medium.bin", min(50 * 2**20, size))
    scenario_concurrent(target, medium, 20, table)


def main() -> int:
    if not have("curl"):
        print("make bench needs curl: apt-get install curl")
        return 1
    size = parse_size(os.environ.get("LOCKR_BENCH_SIZE", "1GiB"))
    runs = int(os.environ.get("LOCKR_BENCH_RUNS", "3"))
    with_peers = os.environ.get("LOCKR_BENCH_PEERS", "1") != "0"
    table = Table()
    print(f"lockr-local benchmarks: {size / 2**30:.2f} GiB files, median of {runs} runs, "
          f"{os.cpu_count()} cores, Python {platform.python_version()}")
    with tempfile.TemporaryDirectory(prefix="lockr-bench-", dir=os.environ.get("LOCKR_BENCH_DIR")) as tmp:
        work = Path(tmp)
        source = make_file(work / "source.bin", size)
        bench_raw_limits(work, source, size, table)
        server = LockrServer(work / "lockr-data")
        try:
            run_all(LockrTarget(server), work, source, size, runs, table)
        finally:
            server.stop()
        for peer_class in ALL_PEERS if with_peers else ():
            if not peer_class.available():
                print(f"  ({peer_class.name} is not installed: skipped; see bench/README.md)")
                continue
            peer = peer_class(work).start()
            try:
                run_all(PeerTarget(peer), work, source, size, runs, table)
            finally:
                peer.stop()
    if os.environ.get("LOCKR_BENCH_RCLONE", "1") != "0":
        from bench import rclone_webdav

        print("\nrclone sync into lockr-local's WebDAV view vs `rclone serve webdav` (LOCKR_BENCH_RCLONE=0 skips):")
        rclone_webdav.main()
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
