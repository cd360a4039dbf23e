"""The sync agent under power cuts: its state folder and the synced folder on forgetfs, a real server on
the normal disk, `lockr-local sync` SIGKILLed mid-sync and the power of the forgetfs disk cut, then a
restart of the agent on what the disk kept.

Each round: a "user" changes the folder (new files, rewrites, atomic saves, renames, deletes; some made
durable with fsync, most not) before and while the continuous agent runs; at a random moment the agent is
SIGKILLed and the power is cut (the next fault mode in turn); the remote listing at the cut is taken,
then `lockr-local sync --once` runs on what survived. Promises checked after every restart:
1. nothing is deleted or overwritten that should not be: every remote file (name N, content X) of the
   cut still has X, or the remote now holds N with the local file's content after the cut, or N is
   gone locally because the user deleted (or renamed) it before the cut;
2. nothing acknowledged is sent again: no upload after the restart has a name and content the remote
   already held at the cut (uploads after the restart are counted: new content, or content whose upload
   was not acknowledged before the cut);
3. every upload after the restart is still listed (none was uploaded, then deleted again) and every
   local file is on the remote with its content after the cut. Beside it, and without a local file,
   only copies the remote held at the cut may stay: the agent's record of them may have gone with the
   cut, and it leaves alone what it does not know it made.

`SyncPowerCutHarness(config).run()` serves the short CI test and `make soak` (`python -m tests.powercut.sync`).
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import requests

from tests.helpers import REPO, clean_env, create_account
from tests.powercut.forgetfs import MODES
from tests.powercut.mount import PowerCutMount
from tests.soak.killer import LoggedServer

DIRS = ("", "docs", "docs/old", "photos")


@dataclass(frozen=True)
class SyncCutConfig:
    work_dir: Path
    seed: int
    rounds: int = 8
    run_seconds: tuple[float, float] = (0.3, 3.0)  # the agent runs this long before the kill and the cut
    max_files: int = 40
    bwlimit: str = "3MB"  # stretches the bigger uploads so kills land inside them


@dataclass
class SyncFigures:
    rounds: int = 0
    cuts: Counter[str] = field(default_factory=Counter)
    user_ops: Counter[str] = field(default_factory=Counter)
    remote_files_checked: int = 0  # remote files at a cut whose fate after the restart was checked
    kept: int = 0  # of those: still there with the same content
    replaced_by_local: int = 0  # replaced by the content the local file has after the cut
    deleted_by_user: int = 0  # gone because the user deleted or renamed them before the cut
    uploads_after_restart: int = 0  # all allowed: content the remote did not hold at the cut
    adopted_or_resumed: int = 0  # local files the remote held at the cut, not sent again
    guard_pauses: int = 0
    kept_beside: int = 0  # an older remote copy kept beside the local file's (its record lost with the cut)
    remote_only: int = 0  # remote files without a local file after a restart (summed over rounds)


class User:
    """Changes the synced folder like a person and their programs do; remembers what it deleted."""

    def __init__(self, folder: Path, rng: random.Random, max_files: int) -> None:
        self.folder = folder
        self.rng = rng
        self.max_files = max_files
        self.counter = 0
        self.deleted: set[str] = set()  # names whose last change by the user was a delete or rename away
        self.last_write = 0.0

    def files(self) -> list[str]:
        return sorted(p.relative_to(self.folder).as_posix() for p in self.folder.rglob("*")
                      if p.is_file() and not p.name.endswith(".tmp"))

    def content(self) -> bytes:
        pick = self.rng.random()
        size = (self.rng.randrange(0, 4096) if pick < 0.6 else self.rng.randrange(4096, 200_000) if pick < 0.93
                else self.rng.randrange(500_000, 1_500_000))
        return self.rng.randbytes(size)

    def maybe_fsync_dir(self, path: Path) -> None:
        if self.rng.random() < 0.3:
            fsync_dir(path)

    def write(self, rel: str, atomic: bool) -> None:
        path = self.folder / rel
        if not path.parent.exists():
            path.parent.mkdir(parents=True)
            self.maybe_fsync_dir(path.parent.parent)
        target = path.with_name(path.name + ".tmp") if atomic else path
        with open(target, "wb") as handle:
            handle.write(self.content())
            if self.rng.random() < 0.4:
                handle.flush()
                os.fsync(handle.fileno())
        if atomic:
            os.replace(target, path)
        self.maybe_fsync_dir(path.parent)
        self.deleted.discard(rel)
        self.last_write = time.time()

    def step(self) -> str:
        """One change; returns its kind."""
        files = self.files()
        pick = self.rng.random()
        if not files or (pick < 0.4 and len(files) < self.max_files):
            self.counter += 1
            self.write(f"{self.rng.choice(DIRS)}/f{self.counter:04d}.bin".lstrip("/"), atomic=False)
            return "create"
        rel = self.rng.choice(files)
        if pick < 0.6:
            self.write(rel, atomic=False)
            return "rewrite"
        if pick < 0.75:
            self.write(rel, atomic=True)
            return "atomic save"
        if pick < 0.87:
            self.counter += 1
            new = f"{self.rng.choice(DIRS)}/r{self.counter:04d}.bin".lstrip("/")
            (self.folder / new).parent.mkdir(parents=True, exist_ok=True)
            os.rename(self.folder / rel, self.folder / new)
            self.maybe_fsync_dir((self.folder / new).parent)
            self.deleted.add(rel)
            self.deleted.discard(new)
            self.last_write = time.time()
            return "rename"
        os.unlink(self.folder / rel)
        self.maybe_fsync_dir((self.folder / rel).parent)
        self.deleted.add(rel)
        return "delete"


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def local_tree(folder: Path) -> dict[str, str]:
    """name -> sha256 of the files the agent syncs (the user's .tmp files are ignored by the agent)."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in folder.rglob("*") if p.is_file() and not p.name.endswith(".tmp")
            and not p.name.startswith(".lockr-")}


class SyncPowerCutHarness:
    """Runs the rounds; failures are collected in `failures` (the run stops at the first round with any)."""

    def __init__(self, config: SyncCutConfig, out: Callable[[str], None] = print) -> None:
        self.config = config
        self.out = out
        self.rng = random.Random(config.seed)
        work = config.work_dir
        self.server = LoggedServer(work / "server", work / "server.log")
        self.mount = PowerCutMount(work / "forgetfs", work / "mnt")
        self.folder = self.mount.mountpoint / "folder"
        self.state = self.mount.mountpoint / "state"
        self.agent_log = work / "agent.log"
        self.figures = SyncFigures()
        self.failures: list[str] = []
        self.user = User(self.folder, random.Random(f"{config.seed}-user"), config.max_files)
        self.env: dict[str, str] = {}
        self.auth: dict[str, str] = {}

    def fail(self, message: str) -> None:
        self.failures.append(message)

    def run(self) -> SyncFigures:
        config = self.config
        self.out(f"sync power-cut harness: seed {config.seed} (replay with LOCKR_SOAK_SEED={config.seed}), "
                 f"{config.rounds} rounds")
        started = time.monotonic()
        self.server.start()
        self.mount.mount()
        try:
            account = create_account(self.server.url, "syncer")
            self.auth = account.auth
            self.folder.mkdir()
            self.state.mkdir()
            fsync_dir(self.mount.mountpoint)  # the folders existed long before: not what is tested here
            self.env = {"LOCKR_ENDPOINT": self.server.url, "LOCKR_TOKEN": account.token,
                        "LOCKR_SYNC_STATE_DIR": str(self.state), "LOCKR_SYNC_BANDWIDTH_LIMIT": config.bwlimit}
            for number in range(config.rounds):
                self.one_round(MODES[number % len(MODES)])
                self.figures.rounds += 1
                if self.failures:
                    self.out(f"stopping after round {number + 1}: {len(self.failures)} failures")
                    break
        finally:
            self.mount.unmount()
            self.server.kill()
        self.print_figures(time.monotonic() - started)
        return self.figures

    # -- one round ----------------------------------------------------------------------------------

    def one_round(self, mode: str) -> None:
        user, rng = self.user, self.rng
        for _ in range(rng.randrange(2, 8)):
            self.figures.user_ops[user.step()] += 1
        with self.agent_log.open("a") as log:
            # At the top level (--remote-folder /), so that remote names are the folder's own paths.
            agent = subprocess.Popen([sys.executable, "-m", "lockr_local", "sync", str(self.folder),
                                      "--remote-folder", "/"],
                                     env=clean_env(**self.env), cwd=REPO, stdout=log, stderr=log)
        try:
            deadline = time.monotonic() + rng.uniform(*self.config.run_seconds) + 0.8  # + the agent's start-up
            while time.monotonic() < deadline:
                time.sleep(rng.uniform(0.05, 0.5))
                if rng.random() < 0.5:
                    self.figures.user_ops[user.step()] += 1
        finally:
            agent.send_signal(signal.SIGKILL)
            agent.wait()
        report = self.mount.cut(mode, rng.getrandbits(32))
        self.figures.cuts[mode] += 1
        at_cut = self.listing()  # the server saw the agent die a moment ago: its answers are all in
        local = local_tree(self.folder)
        # Files written in the last second are "still being written" to the agent: let them settle.
        time.sleep(max(0.0, user.last_write + 1.2 - time.time()))
        restarted = time.time()
        result = self.sync_once()
        if result is None:
            return
        after = self.listing()
        self.check(at_cut, local, after, restarted, result, report)

    def sync_once(self) -> int | None:
        """`lockr-local sync --once` after the cut: 0 (in sync) or 3 (deletions paused by the guard)."""
        done = subprocess.run([sys.executable, "-m", "lockr_local", "sync", str(self.folder), "--once",
                               "--remote-folder", "/"],
                              env=clean_env(**self.env), cwd=REPO, capture_output=True, text=True, timeout=300)
        with self.agent_log.open("a") as log:
            log.write(done.stderr)
        if done.returncode == 3 and "deletions paused" in done.stderr:
            self.figures.guard_pauses += 1
            return 3
        if done.returncode != 0:
            self.fail(f"sync --once after the cut exited {done.returncode}: {done.stderr[-1500:]}")
            return None
        return 0

    def listing(self) -> dict[str, tuple[str, str]]:
        """id -> (name, sha256) of the remote files."""
        files: dict[str, tuple[str, str]] = {}
        cursor = ""
        while True:
            response = requests.get(f"{self.server.url}/api/v1/files", params={"limit": 1000, "cursor": cursor},
                                    headers=self.auth, timeout=30)
            response.raise_for_status()
            page = response.json()
            files.update({f["id"]: (f["name"], f["sha256"]) for f in page["files"]})
            if not page["next"]:
                return files
            cursor = page["next"]

    def sessions_since(self, since: float) -> list[tuple[str, str, bool]]:
        """(name, file id, completed) of the upload sessions opened since `since`, from the server's database."""
        connection = sqlite3.connect(f"file:{self.server.data_dir / 'lockr.db'}?mode=ro", uri=True, timeout=10)
        try:
            rows = connection.execute("SELECT name, file_id, completed_at FROM uploadsession WHERE created_at >= ?",
                                      (since,)).fetchall()
        finally:
            connection.close()
        return [(name, file_id, completed is not None) for name, file_id, completed in rows]

    def check(self, at_cut: dict[str, tuple[str, str]], local: dict[str, str], after: dict[str, tuple[str, str]],
              restarted: float, result: int, report: dict) -> None:
        figures = self.figures
        after_by_name: dict[str, list[str]] = {}
        for name, digest in after.values():
            after_by_name.setdefault(name, []).append(digest)
        lost = (f"(the cut kept {report.get('kept_writes')}/{report.get('pending_writes')} writes, "
                f"{report.get('kept_names')}/{report.get('pending_names')} name changes)")
        # 1. nothing deleted or overwritten that should not be
        for file_id, (name, digest) in at_cut.items():
            figures.remote_files_checked += 1
            if file_id in after or digest in after_by_name.get(name, []):
                figures.kept += 1
            elif name in local and local[name] in after_by_name.get(name, []):
                figures.replaced_by_local += 1
            elif name not in local and name in self.user.deleted:
                figures.deleted_by_user += 1
            else:
                self.fail(f"remote {name} ({digest[:12]}) is gone after the restart; the local file "
                          f"{'has ' + local[name][:12] if name in local else 'is gone'}, the remote now holds "
                          f"{[d[:12] for d in after_by_name.get(name, [])]}, and the user "
                          f"{'did' if name in self.user.deleted else 'did not'} delete it {lost}")
        # 2. nothing the remote held at the cut is sent again
        held = set(at_cut.values())
        new_ids = set(after) - set(at_cut)
        for file_id in new_ids:
            name, digest = after[file_id]
            if (name, digest) in held:
                self.fail(f"{name} ({digest[:12]}) was uploaded again after the restart, though the remote "
                          f"held it at the cut")
        figures.uploads_after_restart += len(new_ids)
        figures.adopted_or_resumed += sum(1 for name, digest in local.items() if (name, digest) in held)
        # 3. every upload since the restart is listed; the remote mirrors the folder
        for name, file_id, completed in self.sessions_since(restarted):
            if completed and file_id not in after:
                self.fail(f"{name} was uploaded after the restart, then deleted again")
        if result == 0:
            # A second copy under a local file's name may stay only if it is content the remote held at the
            # cut whose record the agent lost with the cut (it then leaves it alone: it may be the only copy).
            differ = sorted(name for name, digest in local.items()
                            if digest not in after_by_name.get(name, [])
                            or any(d != digest and (name, d) not in held for d in after_by_name[name]))
            figures.kept_beside += sum(len(after_by_name[name]) - 1 for name in local if name in after_by_name)
            if differ:
                self.fail(f"after sync --once the remote does not mirror the folder: "
                          f"{[(n, local[n][:12], [d[:12] for d in after_by_name.get(n, [])]) for n in differ[:5]]} {lost}")
            # Remote files with no local file left are kept, never deleted on a guess: the agent's own
            # record of them may have been lost with the cut, and the remote may hold the only copy.
            strays = [(name, d[:12]) for name, digests in after_by_name.items() if name not in local
                      for d in digests if (name, d) not in held]
            if strays:
                self.fail(f"remote files without a local file were uploaded after the restart: {strays[:5]}")
            figures.remote_only += sum(1 for name in after_by_name if name not in local)

    def print_figures(self, seconds: float) -> None:
        f = self.figures
        cuts = ", ".join(f"{mode} x{f.cuts.get(mode, 0)}" for mode in MODES)
        ops = ", ".join(f"{count} {kind}" for kind, count in sorted(f.user_ops.items()))
        for line in (
            f"seed {self.config.seed}: {f.rounds} rounds in {seconds:.1f} s; power cuts: {sum(f.cuts.values())} "
            f"({cuts})",
            f"user changes: {ops}",
            f"remote files checked after a restart: {f.remote_files_checked} ({f.kept} kept, {f.replaced_by_local} "
            f"replaced by the local content after the cut, {f.deleted_by_user} deleted by the user)",
            f"uploads after a restart: {f.uploads_after_restart} (none of content the remote held at the cut); "
            f"{f.adopted_or_resumed} local files the remote held at the cut not sent again; "
            f"{f.guard_pauses} restarts paused by the deletion guard; {f.remote_only} remote files kept "
            f"without a local file, {f.kept_beside} older copies kept beside a local file's (summed over restarts)",
            "nothing lost" if not self.failures else f"FAILURES ({len(self.failures)}):",
            *[f"  {message}" for message in self.failures[:20]],
        ):
            self.out(line)
