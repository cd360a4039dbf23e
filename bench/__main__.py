"""`make bench`: lockr-local side by side with nginx, copyparty and `rclone serve webdav` in one run.

curl is the client for everyone. `python -m bench --help` lists the options; each has an environment
twin for `make bench`: LOCKR_BENCH_SIZE (default 1GiB), LOCKR_BENCH_RUNS (default 3), LOCKR_BENCH_PEERS=0
(lockr-local alone), LOCKR_BENCH_RCLONE=0 (no rclone-sync comparison), LOCKR_BENCH_ONLY (groups),
LOCKR_BENCH_BIG=1 (add the 4 GiB flat-memory run), LOCKR_BENCH_SMALL_COUNT (default 500),
LOCKR_BENCH_DIR (where temp files go).
The `firstrun` group times the packaged app (`make exe` first); it is skipped with a note without it.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

from bench.harness import REPO, LockrServer, Table, have, make_file
from bench.lockr_scenarios import (
    BIG_SIZE, LISTING_COUNTS, scenario_big, scenario_listing, scenario_session_upload,
)
from bench.peers import ALL_PEERS
from bench.scenarios import (
    bench_raw_limits, durable_row_commits_per_second, scenario_big_download, scenario_big_upload,
    scenario_concurrent, scenario_small_concurrent, scenario_small_files, scenario_upload_scaling,
)
from bench.targets import LockrTarget, PeerTarget, Target, upload
from lockr_local.config import parse_size

# What `--only` can pick; `big` runs only when asked for (--big, LOCKR_BENCH_BIG=1 or --only big).
GROUPS = {
    "raw": "machine limits: cp + fsync, sha256, nginx discarding a PUT",
    "upload": "1 GiB upload, every server (lockr-local: direct POST)",
    "session": "1 GiB upload through a resumable session in 8 MiB chunks (lockr-local)",
    "download": "1 GiB download, every server",
    "small": "10 KiB uploads: 500 over one keep-alive connection, 2,000 over 8 at once (--small-count)",
    "concurrent": "20 concurrent 50 MiB uploads",
    "scaling": "upload throughput with 1, 4 and 16 concurrent clients",
    "listing": "GET /api/v1/files at 1,000 / 10,000 / 100,000 files (lockr-local)",
    "rclone": "rclone sync into lockr-local's WebDAV view vs rclone serve webdav",
    "firstrun": "the packaged app's first run, start to a small folder in sync (needs `make exe`, Xvfb)",
    "cluster": "lockr-local on PostgreSQL + an S3 region (moto): upload, download, small files, 1 vs 2 nodes",
    "big": "4 GiB upload + download, peak RSS (lockr-local; not in the default run)",
}
DEFAULT_GROUPS = [name for name in GROUPS if name != "big"]
# Groups every server runs; a peer is started only for these.
SHARED_GROUPS = {"upload", "download", "small", "concurrent", "scaling"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="groups:\n" + "\n".join(f"  {k:<11} {v}" for k, v in GROUPS.items()))
    parser.add_argument("--only", default=env("LOCKR_BENCH_ONLY", ""),
                        help="comma-separated groups to run (default: all but big)")
    parser.add_argument("--size", type=parse_size, default=parse_size(env("LOCKR_BENCH_SIZE", "1GiB")),
                        help="size of the big file (default 1GiB)")
    parser.add_argument("--runs", type=int, default=int(env("LOCKR_BENCH_RUNS", "3")),
                        help="runs per figure, the median is shown (default 3; small files use at least 5)")
    parser.add_argument("--no-peers", action="store_true", default=env("LOCKR_BENCH_PEERS", "1") == "0",
                        help="measure lockr-local alone")
    parser.add_argument("--big", action="store_true", default=env("LOCKR_BENCH_BIG", "0") == "1",
                        help="add the 4 GiB flat-memory run (needs ~9 GB of free disk for a moment)")
    parser.add_argument("--big-size", type=parse_size, default=BIG_SIZE, help="size of the --big file (4GiB)")
    parser.add_argument("--listing-counts", default=",".join(str(c) for c in LISTING_COUNTS),
                        help="file counts of the listing rows (default 1000,10000,100000)")
    parser.add_argument("--small-count", type=int, default=int(env("LOCKR_BENCH_SMALL_COUNT", "500")),
                        help="10 KiB uploads of the one-connection row (default 500); the 8-connection row "
                             "sends four times as many")
    parser.add_argument("--results", type=Path, default=None,
                        help="where the table is written (default bench/results/latest.md; partial.md with --only)")
    args = parser.parse_args(argv)
    groups = [g.strip() for g in args.only.split(",") if g.strip()] or list(DEFAULT_GROUPS)
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        parser.error(f"unknown group(s) {', '.join(unknown)}; choose from {', '.join(GROUPS)}")
    if args.big and "big" not in groups:
        groups.append("big")
    if os.environ.get("LOCKR_BENCH_RCLONE", "1") == "0" and "rclone" in groups:
        groups.remove("rclone")
    args.groups = groups
    args.listing_counts = tuple(sorted(int(c) for c in args.listing_counts.split(",")))
    if args.results is None:
        args.results = REPO / "bench" / "results" / ("partial.md" if args.only else "latest.md")
    return args


def run_target(target: Target, groups: list[str], work: Path, source: Path, size: int, runs: int,
               table: Table, small_count: int = 500, ceiling: float | None = None) -> None:
    """The shared scenarios for one server, and the session row right after lockr-local's direct upload."""
    if "upload" in groups:
        scenario_big_upload(target, source, size, runs, table)
    elif "download" in groups:
        upload(target, "big-0.bin", source)  # the file the download row fetches, not timed
    if "session" in groups and isinstance(target, LockrTarget):
        scenario_session_upload(target, work, source, size, runs, table)
    if "download" in groups:
        scenario_big_download(target, size, runs, table)
    if "small" in groups:
        small = make_file(work / "small.bin", 10 * 1024)
        scenario_small_files(target, small, small_count, max(runs, 5), table, ceiling)
        scenario_small_concurrent(target, small, 4 * small_count, max(runs, 5), table, ceiling)
    if "concurrent" in groups:
        medium = make_file(work / "medium.bin", min(50 * 2**20, size))
        scenario_concurrent(target, medium, 20, table)
    if "scaling" in groups:
        scenario_upload_scaling(target, work, size, table)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not have("curl"):
        print("make bench needs curl: apt-get install curl")
        return 1
    groups, size, runs = args.groups, args.size, args.runs
    table = Table()
    print(f"lockr-local benchmarks: {size / 2**30:.2f} GiB files, median of {runs} runs, "
          f"{os.cpu_count()} cores, Python {platform.python_version()}; groups: {', '.join(groups)}")
    with tempfile.TemporaryDirectory(prefix="lockr-bench-", dir=os.environ.get("LOCKR_BENCH_DIR")) as tmp:
        work = Path(tmp)
        needs_source = bool({"raw", "upload", "session", "download", "cluster"} & set(groups))
        source = make_file(work / "source.bin", size) if needs_source else work / "source.bin"
        if "raw" in groups:
            bench_raw_limits(work, source, size, table)
        # The frame of the small-file rows, measured in this run: durable 10 KiB commits one by one.
        ceiling = durable_row_commits_per_second(work) if "small" in groups else None
        if (SHARED_GROUPS | {"session"}) & set(groups):
            server = LockrServer(work / "lockr-data")
            try:
                run_target(LockrTarget(server), groups, work, source, size, runs, table, args.small_count, ceiling)
            finally:
                server.stop()
                shutil.rmtree(work / "lockr-data", ignore_errors=True)
        if "cluster" in groups:
            from bench.cluster import run_cluster

            run_cluster(work, source, size, runs, args.small_count, table)
        if "listing" in groups:
            scenario_listing(work, args.listing_counts, runs, table)
        if "big" in groups:
            scenario_big(work, args.big_size, table)
        if "firstrun" in groups:
            from bench import firstrun

            print("\nthe packaged app's first run (dist/lockr-local under Xvfb, setup page in Chromium):")
            firstrun.main(work, runs, table)
        for peer_class in () if args.no_peers or not SHARED_GROUPS & set(groups) else ALL_PEERS:
            if not peer_class.available():
                print(f"  ({peer_class.name} is not installed: skipped; see bench/README.md)")
                continue
            peer = peer_class(work).start()
            try:
                run_target(PeerTarget(peer), groups, work, source, size, runs, table, args.small_count, ceiling)
            finally:
                peer.stop()
                peer.remove_data()
    if "rclone" in groups:
        from bench import rclone_webdav

        print("\nrclone sync into lockr-local's WebDAV view vs `rclone serve webdav` (--only without rclone skips):")
        rclone_webdav.main(table)
    rendered = table.render()
    args.results.parent.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    args.results.write_text(f"Measured {stamp} on {platform.node()} ({os.cpu_count()} cores), "
                            f"groups: {', '.join(groups)}\n\n{rendered}\n")
    print()
    print(rendered)
    print(f"\nwritten to {args.results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
