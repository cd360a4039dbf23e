"""`make bench` (sync part): `lockr-local sync --once` on 2,000 and 20,000 x 10 KiB files and on one big file,
beside `rclone copy` of the same trees to the same server (WebDAV) in the same run, the machine's durable-commit
ceiling beside the small-file rows, and the median delay from a file saved to it being listed remotely with
the agent running.

Sizes: LOCKR_BENCH_SIZE (default 1GiB) for the big file; LOCKR_BENCH_SYNC_SAMPLES (default 15) saves timed
until listed; LOCKR_BENCH_SYNC_FILES (default 2000,20000: the
file counts of the small trees). LOCKR_BENCH_SYNC_RESULTS: where the table goes (bench/results/sync.md).
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from bench.harness import REPO, LockrServer, Row, Table, have, make_file, settle_disk
from bench.scenarios import ceiling_note, durable_row_commits_per_second
from lockr_local.config import parse_size

MB = 1_000_000


def sync_once(server: LockrServer, folder: Path, state: Path, concurrency: int | None = None) -> float:
    """Seconds `lockr-local sync FOLDER --once` takes (its default concurrency unless one is given)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKR_")}
    env.update(LOCKR_ENDPOINT=server.url, LOCKR_TOKEN=server.token, LOCKR_SYNC_STATE_DIR=str(state))
    extra = ["--concurrency", str(concurrency)] if concurrency else []
    settle_disk()  # a folder's files are on the disk already, not pages the agent's fsync must write
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "lockr_local", "sync", str(folder), "--once", *extra], env=env,
                            cwd=REPO, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"sync --once failed: {result.stderr.strip()[-500:]}")
    return elapsed


def rclone_copy(server: LockrServer, folder: Path) -> float | None:
    """rclone's own WebDAV backend against the server's /dav view; None when either is missing."""
    if not have("rclone"):
        return None
    dav = f"{server.url}/dav/bench/"
    probe = requests.request("PROPFIND", dav, headers={"Authorization": f"Bearer {server.token}", "Depth": "0"},
                             timeout=10)
    if probe.status_code not in (200, 207):
        return None
    settle_disk()
    started = time.perf_counter()
    result = subprocess.run(["rclone", "copy", str(folder), f":webdav:rclone-{folder.name}", "--webdav-url", dav,
                             "--webdav-vendor", "owncloud", "--webdav-bearer-token", server.token,
                             "--transfers=16", "--checkers=8", "--config", "/dev/null"],
                            capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"rclone copy failed: {result.stderr.strip()[-500:]}")
    return elapsed


def change_delay(server: LockrServer, work: Path, samples: int = 15) -> list[float]:
    """Seconds from a file written (closed) to it appearing in GET /api/v1/files, with the agent running."""
    from lockr_local.sync.agent import AgentOptions, SyncAgent
    from lockr_local.sync.remote import make_remote

    folder = work / "live"
    folder.mkdir()
    # Its own account, so the listing polled below is one short page.
    token = requests.post(f"{server.url}/api/v1/account", json={"username": "live", "email": "live@example.com",
                                                                "password": "benchmark-password"},
                          timeout=30).json()["token"]
    agent = SyncAgent(folder, make_remote(server.url, token), endpoint=server.url,
                      options=AgentOptions(state_dir=work / "live-state")).start()
    headers = {"Authorization": f"Bearer {token}"}
    delays = []
    try:
        for i in range(samples):
            name = f"live-{i}.txt"
            (folder / name).write_bytes(os.urandom(4096))
            saved = time.perf_counter()
            deadline = saved + 30
            while time.perf_counter() < deadline:
                files = requests.get(f"{server.url}/api/v1/files", params={"limit": "1000"}, headers=headers,
                                     timeout=10).json()["files"]
                if any(f["name"] == name for f in files):
                    delays.append(time.perf_counter() - saved)
                    break
                time.sleep(0.02)  # polling the listing at 50 Hz: the measurement's resolution
    finally:
        agent.stop()
    return delays


def small_tree(folder: Path, count: int) -> Path:
    """`count` files of 10 KiB in 20 folders (one random block shared: content does not matter here)."""
    block = os.urandom(10 * 1024)
    for i in range(count):
        (_mkdir(folder / f"d{i % 20:02}") / f"f{i:05}.bin").write_bytes(block[:-8] + i.to_bytes(8, "big"))
    return folder


def main() -> int:
    size = parse_size(os.environ.get("LOCKR_BENCH_SIZE", "1GiB"))
    counts = [int(c) for c in os.environ.get("LOCKR_BENCH_SYNC_FILES", "2000,20000").split(",") if c.strip()]
    table = Table()
    print(f"sync benchmarks: {' and '.join(f'{c:,}' for c in counts)} x 10 KiB files, "
          f"one {size / 2**30:.2f} GiB file")
    with tempfile.TemporaryDirectory(prefix="lockr-bench-sync-", dir=os.environ.get("LOCKR_BENCH_DIR")) as tmp:
        work = Path(tmp)
        ceiling = durable_row_commits_per_second(work)
        table.add(Row("raw: 10 KiB rows committed one by one (SQLite WAL, fsync each)", "machine", ceiling,
                      "files/s"))
        big = work / "big-tree"
        big.mkdir()
        make_file(big / "big.bin", size)
        server = LockrServer(work / "data")
        rclone_missing = False
        try:
            for count in counts:
                small = small_tree(work / f"small-{count}", count)
                elapsed = sync_once(server, small, work / f"state-{count}")
                table.add(Row(f"initial sync {count} x 10 KiB", "lockr-local", count / elapsed, "files/s",
                              note=ceiling_note(ceiling)))
                again = sync_once(server, small, work / f"state-{count}")
                table.add(Row(f"re-sync {count} files, nothing to do", "lockr-local", again, "s"))
                rclone_small = None if rclone_missing else rclone_copy(server, small)
                if rclone_small is None:
                    rclone_missing = True
                else:
                    table.add(Row(f"initial sync {count} x 10 KiB", "rclone copy (WebDAV)", count / rclone_small,
                                  "files/s", note=ceiling_note(ceiling)))
            elapsed = sync_once(server, big, work / "state")
            table.add(Row(f"initial sync {size / 2**30:.1f} GiB file", "lockr-local", size / MB / elapsed, "MB/s"))
            if rclone_missing:
                print("  (rclone or the server's WebDAV view is missing: rclone rows skipped)")
            else:
                rclone_big = rclone_copy(server, big)
                assert rclone_big is not None
                table.add(Row(f"initial sync {size / 2**30:.1f} GiB file", "rclone copy (WebDAV)",
                              size / MB / rclone_big, "MB/s"))
            delays = change_delay(server, work, int(os.environ.get("LOCKR_BENCH_SYNC_SAMPLES", "15")))
            if delays:
                table.add(Row("save -> listed remotely (median)", "lockr-local", statistics.median(delays), "s",
                              note=f"{len(delays)} samples, max {max(delays):.2f} s"))
        finally:
            server.stop()
    rendered = table.render()
    results = Path(os.environ.get("LOCKR_BENCH_SYNC_RESULTS") or REPO / "bench" / "results" / "sync.md")
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    results.write_text(f"Measured {stamp} on {platform.node()} ({os.cpu_count()} cores)\n\n{rendered}\n")
    print()
    print(rendered)
    print(f"\nwritten to {results}")
    return 0


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


if __name__ == "__main__":
    raise SystemExit(main())
