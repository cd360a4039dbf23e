"""Benchmark: `rclone sync` into lockr-local's WebDAV view, side by side with `rclone serve webdav`.

Same machine, same run, same rclone flags (the seed's --transfers=16 --checkers=8); prints the times
and their ratio for many small files and for one large file, and adds rows to `make bench`'s table
(files/s and MB/s, so its ratio column reads like the others: above 1.00x, lockr-local is faster).
The two remotes differ in one way a user would choose: lockr-local's is `vendor = owncloud`, so rclone
keeps modification times and compares SHA-1/MD5; `rclone serve webdav` is plain (`vendor = other`).
Sizes: LOCKR_BENCH_SMALL_FILES (default 2000) and LOCKR_BENCH_BIG_MB (default 1024).
Run it with `python -m bench.rclone_webdav`.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from bench.harness import Row, Table

SMALL_FILES = int(os.environ.get("LOCKR_BENCH_SMALL_FILES", "2000"))
BIG_MB = int(os.environ.get("LOCKR_BENCH_BIG_MB", "1024"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.request("OPTIONS", url, timeout=2)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def make_sources(root: Path) -> tuple[Path, Path]:
    small = root / "small"
    for index in range(SMALL_FILES):
        path = small / f"d{index % 20:02d}" / f"f{index:05d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"small file {index}\n".encode() * (1 + index % 50))
    big = root / "big"
    big.mkdir()
    block = os.urandom(1 << 20)
    with (big / "big.bin").open("wb") as handle:
        for index in range(BIG_MB):
            handle.write(index.to_bytes(8, "big") + block[8:])
    return small, big


def timed_sync(config: Path, source: Path, remote: str) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RCLONE_")}
    env["RCLONE_CONFIG"] = str(config)
    started = time.monotonic()
    subprocess.run(["rclone", "sync", str(source), remote, "--transfers=16", "--checkers=8"], env=env, check=True,
                   capture_output=True)
    return time.monotonic() - started


def main(table: Table | None = None) -> int:
    table = table if table is not None else Table()
    if shutil.which("rclone") is None:
        print("rclone-webdav: skipped, rclone is not installed")
        return 0
    with tempfile.TemporaryDirectory(prefix="lockr-bench-") as temp:
        root = Path(temp)
        small, big = make_sources(root / "src")
        lockr_port, serve_port = free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKR_")}
        env["LOCKR_LOG_LEVEL"] = "warning"  # default rate limits: a migration must fit within them
        lockr = subprocess.Popen([sys.executable, "-m", "lockr_local", "serve", "--data-dir", str(root / "lockr"),
                                  "--port", str(lockr_port)], env=env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        (root / "served").mkdir()
        served = subprocess.Popen(["rclone", "serve", "webdav", str(root / "served"), "--addr",
                                   f"127.0.0.1:{serve_port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            lockr_url = f"http://127.0.0.1:{lockr_port}"
            wait_until_up(lockr_url + "/dav/")
            wait_until_up(f"http://127.0.0.1:{serve_port}/")
            token = requests.post(f"{lockr_url}/api/v1/account", timeout=30, json={
                "username": "bench", "email": "bench@example.com", "password": "benchmark password"}).json()["token"]
            printed = subprocess.run([sys.executable, "-m", "lockr_local", "rclone-config", "--endpoint", lockr_url,
                                      "--token", token], capture_output=True, text=True, check=True).stdout
            config = root / "rclone.conf"
            config.write_text(printed + f"\n[served]\ntype = webdav\nurl = http://127.0.0.1:{serve_port}/\n"
                                        "vendor = other\n")
            cases = ((f"rclone sync, {SMALL_FILES} small files", small, "small", SMALL_FILES, "files/s"),
                     (f"rclone sync, one {BIG_MB} MiB file", big, "big", BIG_MB * 2**20 / 1e6, "MB/s"))
            for label, source, target, amount, unit in cases:
                ours = timed_sync(config, source, f"lockr:bench/{target}")
                theirs = timed_sync(config, source, f"served:{target}")
                print(f"{label}: lockr-local {ours:.1f}s, rclone serve webdav {theirs:.1f}s, "
                      f"time ratio {ours / theirs:.2f} (lockr-local / serve)")
                table.add(Row(label, "lockr-local", amount / ours, unit, note=f"{ours:.1f} s, vendor owncloud"))
                table.add(Row(label, "rclone serve webdav", amount / theirs, unit,
                              note=f"{theirs:.1f} s, vendor other"))
        finally:
            for process in (lockr, served):
                process.terminate()
                process.wait(15)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
