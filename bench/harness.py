"""Benchmark plumbing: servers as subprocesses, peak-RSS sampling, curl transfers, and the result table."""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

REPO = Path(__file__).resolve().parent.parent


def rss_bytes(pid: int) -> int:
    """Resident memory of a process and its children (nginx's workers), from /proc."""
    total = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            with open(f"/proc/{current}/status") as handle:
                for line in handle:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
            for task in Path(f"/proc/{current}/task").iterdir():
                children = (task / "children").read_text().split()
                pending.extend(int(child) for child in children)
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


class PeakRss:
    """Samples a process's RSS every 20 ms while in the `with` block; `.peak` is the maximum seen."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes(self.pid))
            self._stop.wait(0.02)

    def __enter__(self) -> "PeakRss":
        self.peak = rss_bytes(self.pid)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes(self.pid))


class LockrServer:
    """`lockr-local serve` on a free port with a temp data folder and one account."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None, token: str | None = None) -> None:
        """Starts the server; signs up the `bench` account unless `token` is that account's token already
        (a restart on a data folder the harness filled itself)."""
        self.data_dir = data_dir
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKR_")}
        full_env.update({"LOCKR_RATE_ACCOUNT": "100000", "LOCKR_RATE_ACCOUNT_BURST": "1000000",
                         "LOCKR_RATE_GUEST": "100000", "LOCKR_RATE_GUEST_BURST": "1000000",
                         "LOCKR_LOG_LEVEL": "warning", "LOCKR_ACCOUNT_MAX_OBJECT": "1TB",
                         "LOCKR_DEFAULT_QUOTA": "10TB",
                         # The scenarios delete what they measured to free the disk: no trash to keep it.
                         "LOCKR_TRASH_RETENTION": "0", **(env or {})})
        self.proc = subprocess.Popen([sys.executable, "-m", "lockr_local", "serve", "--port", "0", "--data-dir",
                                      str(data_dir)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                     env=full_env, cwd=REPO)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        match = re.search(r"listening on (http://\S+)", line)
        if not match:
            raise RuntimeError(f"lockr-local did not start: {line!r}")
        self.url = match.group(1)
        self.token = token or self._signup()

    def _signup(self) -> str:
        out = subprocess.run(["curl", "-s", f"{self.url}/api/v1/account", "-H", "Content-Type: application/json",
                              "-d", json.dumps({"username": "bench", "email": "bench@example.com",
                                                "password": "benchmark-password"})],
                             capture_output=True, text=True, check=True).stdout
        return json.loads(out)["token"]

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def curl(args: list[str]) -> tuple[float, str]:
    """Runs curl; returns (seconds, stdout). curl is the one client every server is measured with."""
    started = time.perf_counter()
    result = subprocess.run(["curl", "-s", "-S", "--fail-with-body", *args], capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"curl {' '.join(args[:3])}... failed: {result.stderr.strip()} {result.stdout[:300]}")
    return elapsed, result.stdout


def make_file(path: Path, size: int) -> Path:
    """A file of incompressible bytes (written in 8 MiB blocks, never held whole in memory)."""
    if path.exists() and path.stat().st_size == size:
        return path
    block = os.urandom(8 * 1024 * 1024)
    with open(path, "wb") as handle:
        remaining = size
        while remaining:
            take = min(remaining, len(block))
            handle.write(block[:take])
            remaining -= take
    return path


@dataclass
class Row:
    scenario: str
    server: str
    value: float
    unit: str
    peak_rss: int = 0
    note: str = ""
    # The lockr-local scenario this row is compared with in the ratio column;
    # empty: a peer's row is compared with lockr-local's row of the same scenario.
    compare_with: str = ""
    # A ratio measured by the scenario itself (session vs direct uploads interleaved with it), and what it is.
    paired_ratio: float | None = None
    paired_label: str = ""


@dataclass
class Table:
    rows: list[Row] = field(default_factory=list)

    def add(self, row: Row) -> None:
        self.rows.append(row)
        rss = f"{row.peak_rss / 2**20:.0f} MiB" if row.peak_rss else "-"
        print(f"  {row.scenario:<48} {row.server:<20} {row.value:>10.1f} {row.unit:<8} rss {rss:>8} {row.note}",
              flush=True)

    def render(self) -> str:
        lines = ["| scenario | server | result | server peak RSS | lockr-local / peer | note |",
                 "|---|---|---|---|---|---|"]
        for row in self.rows:
            ratio = ""
            if row.paired_ratio is not None:
                ratio = f"{row.paired_ratio:.2f}x ({row.paired_label})"
            elif row.compare_with:
                base = [r for r in self.rows if r.scenario == row.compare_with and r.server == "lockr-local"]
                if base and base[0].value:
                    ratio = f"{row.value / base[0].value:.2f}x (this / {row.compare_with})"
            elif row.server != "lockr-local":
                ours = [r for r in self.rows if r.scenario == row.scenario and r.server == "lockr-local"]
                if ours and row.value:
                    ratio = f"{ours[0].value / row.value:.2f}x"
            rss = f"{row.peak_rss / 2**20:.0f} MiB" if row.peak_rss else "-"
            lines.append(f"| {row.scenario} | {row.server} | {row.value:.1f} {row.unit} | {rss} | {ratio} | {row.note} |")
        return "\n".join(lines)


def copy_range(source: Path, target: Path, offset: int, length: int) -> Path:
    """`length` bytes of `source` from `offset` into a new file (in the kernel: no Python buffers)."""
    with open(source, "rb") as src, open(target, "wb") as dst:
        copied = 0
        while copied < length:
            done = os.copy_file_range(src.fileno(), dst.fileno(), length - copied, offset + copied)
            if not done:
                raise RuntimeError(f"{source} ended before byte {offset + length}")
            copied += done
    return target


_CACHE_DROP = {"allowed": True}


def drop_page_cache() -> bool:
    """Empties the page cache (root only; False where it is not allowed)."""
    if not _CACHE_DROP["allowed"]:
        return False
    try:
        Path("/proc/sys/vm/drop_caches").write_text("1\n")
        return True
    except OSError:
        _CACHE_DROP["allowed"] = False
        print("  (cannot drop the page cache here: upload runs start with what earlier runs left cached)")
        return False


def settle_disk(warm: Sequence[Path] = ()) -> None:
    """Writes back every dirty page before a timed run, so that no run pays for the write-back of bytes
    left by the one before: the source file just made, a peer's unsynced upload, a deleted store.

    With `warm` (the files an upload run sends), the page cache is emptied too and only those files are
    read back into it: on this VM, each GiB left cached by earlier runs made the next upload slower (1 GiB
    direct uploads, three in a row: 525, 242, 182 MB/s; with the cache emptied before each: 330-460), so
    without this a server's figure depended on how many uploads ran before it."""
    os.sync()
    if warm and drop_page_cache():
        for path in warm:
            with open(path, "rb") as handle:
                while handle.read(8 * 2**20):
                    pass


def median_of(runs: int, measure: Callable[[], float], warm: Sequence[Path] = ()) -> float:
    """The median of `runs` measurements, each started on a settled disk (see settle_disk for `warm`)."""
    values = []
    for _ in range(runs):
        settle_disk(warm)
        values.append(measure())
    return statistics.median(values)


def have(tool: str) -> bool:
    return shutil.which(tool) is not None
