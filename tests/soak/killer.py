"""The seeded kill harness: concurrent uploads against a real `lockr-local serve`, SIGKILL at random
moments and at each named crash point, and after every restart a check of the store against the ledger.

The clients send direct uploads, chunked resumable sessions, tus uploads (some with a key in their
metadata), WebDAV PUTs (new files and new versions of earlier ones) and DELETEs, API deletes, and key
changes (set, change, clear). Promises checked after each restart (issue 10, issue 17):
1. every acknowledged upload is listed and downloads with its sha256; every acknowledged delete stays
   gone, an unacknowledged one left the file whole or gone; every acknowledged key change holds (an
   anonymous download without keyHash is a 403 iff a key is set, with the right keyHash it gets the
   bytes), an unacknowledged one left the old or the new key;
2. nothing partial is listed or served: every listed file is acknowledged, or was in flight and is
   listed whole with the bytes the driver sent; a replacement cut by a kill leaves the acknowledged
   version listed and whole;
3. `lockr-local fsck` is clean and start-up reaped the leftovers (no temp files, no partial file
   without its session);
4. a session's reported offset (a 308's Range, a tus HEAD's Upload-Offset) is never below what was
   acknowledged, and never beyond the bytes the server has on disk (its stored prefix hashes to what
   was sent); resuming from it completes the upload with the right sha256.

Small files (up to the `inline_max` setting) are kept inside the database with their row; the same
promises hold for them and are checked the same way (listing, download by sha256, `fsck --verify`).

It runs on either stack the tests know (SoakConfig.database_url and .regions): SQLite and a folder (the
single box), or PostgreSQL and an S3 bucket (tests/soak/stores.py looks at each from outside).
`KillHarness(config).run()` is used by the short CI test and by `make soak` (`python -m tests.soak`).
The seed picks every kill delay, crash point order, upload size and byte; thread timing is not
replayable, but the same seed replays the same sequence of choices.
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Callable

import requests

from tests.helpers import REPO, ServerProcess, clean_env, create_account
from tests.soak.ledger import Figures, Ledger, Upload, sha256
from tests.soak.stores import RegionView, region_view, session_rows
from tests.soak.uploads import Interrupted, ProtocolFailure, Uploader

# before_inline_commit: inside the transaction that stores a small file's row and bytes (server/inline.py);
# the soak's 0- and 1-byte uploads and WebDAV PUTs take that path, the bigger ones the blob-file path.
CRASH_POINTS = ("after_blob_commit", "after_db_commit", "after_session_blob_commit", "before_inline_commit")
NETWORK_ERRORS = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)
TIMEOUT = (5.0, 30.0)


@dataclass(frozen=True)
class SoakConfig:
    """How long and how hard to shake the server; `seed` replays the same choices."""

    work_dir: Path
    seed: int
    random_kills: int = 8
    crash_point_rounds: int = 1  # each named crash point is armed this many times
    workers: int = 3
    chunk: int = 256 * 1024
    run_seconds: tuple[float, float] = (0.05, 0.8)  # uploads run this long before a random kill
    crash_timeout: float = 30.0  # an armed crash point must be reached within this
    keep_files: int = 60  # older verified files are deleted through the API beyond this many
    sample_downloads: int = 5  # older files re-downloaded after each restart (new ones always are)
    # The stack: SQLite in the data folder and the region `local` in its blobs/ (the defaults), or the
    # `database_url` and `regions` settings of another (PostgreSQL, a region in an S3 bucket).
    database_url: str = ""
    regions: str = ""

    @property
    def stack(self) -> str:
        database = "postgresql" if self.database_url.startswith("postgresql") else "sqlite"
        return f"{database}+{'s3' if 's3://' in self.regions else 'folder'}"

    def server_env(self, **extra: str) -> dict[str, str]:
        """The server's (and fsck's) environment: the stack's settings, then `extra`."""
        env = clean_env(**extra)
        if self.database_url:
            env["LOCKR_DATABASE_URL"] = self.database_url
        if self.regions:
            env["LOCKR_REGIONS"] = self.regions
        return env


class Stop(Exception):
    """The harness is finishing: the worker leaves."""


class Paused(Exception):
    """The server is down or being checked: the worker drops its job and waits."""


class Gate:
    """Lets workers send requests only while a server generation is running; counts parked workers."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.generation = 0
        self.running = False
        self.stopping = False
        self.down = -1  # the latest generation whose server is known to be dead
        self.parked = 0

    def enter(self) -> int:
        """At the top of a worker's loop: waits while paused; Stop when finishing."""
        with self._cond:
            if not self.running and not self.stopping:
                self.parked += 1
                self._cond.notify_all()
                while not self.running and not self.stopping:
                    self._cond.wait()
                self.parked -= 1
            if self.stopping:
                raise Stop()
            return self.generation

    def check(self) -> int:
        """Before each request of a job: the running generation, or Paused."""
        with self._cond:
            if not self.running:
                raise Paused()
            return self.generation

    def open(self) -> None:
        with self._cond:
            self.generation += 1
            self.running = True
            self._cond.notify_all()

    def close(self) -> None:
        """The server of this generation is dead (or about to be checked): no new requests."""
        with self._cond:
            self.running = False
            self.down = self.generation
            self._cond.notify_all()

    def finish(self) -> None:
        with self._cond:
            self.stopping = True
            self._cond.notify_all()

    def wait_down(self, generation: int, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self.down >= generation, timeout)

    def wait_parked(self, count: int, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self.parked >= count, timeout)


class LoggedServer(ServerProcess):
    """ServerProcess whose stderr goes to a log file: an unread pipe could fill up and stall a long run."""

    def __init__(self, data_dir: Path, log_path: Path, env: dict[str, str] | None = None) -> None:
        super().__init__(data_dir, env)
        self.log_path = log_path

    def start(self, port: int = 0) -> "LoggedServer":
        cmd = [sys.executable, "-m", "lockr_local", "serve", "--data-dir", str(self.data_dir),
               "--port", str(port or self.port or 0)]
        with self.log_path.open("a") as log:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True, env=self.env, cwd=REPO)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        match = re.search(r"listening on (http://\S+)", line)
        if not match:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"server did not start: {line!r}; see {self.log_path}")
        self.url = match.group(1)
        self.port = int(self.url.rsplit(":", 1)[1])
        return self

    def crashed(self, timeout: float) -> int | None:
        """Waits for the process to die by itself; its exit status, or None if it is still running."""
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None


class Worker(threading.Thread):
    """One client: direct uploads, new sessions and resumes of sessions a kill cut short, in a loop."""

    def __init__(self, harness: "KillHarness", index: int) -> None:
        super().__init__(name=f"soak-worker-{index}", daemon=True)
        self.harness = harness
        self.http = requests.Session()
        rng = random.Random(f"{harness.config.seed}-worker-{index}")
        self.rng = rng
        self.uploader = Uploader(harness.url, harness.auth, harness.ledger, harness.config.chunk, self.request,
                                 rng, f"w{index}")

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        generation = self.harness.gate.check()
        try:
            return self.http.request(method, url, timeout=TIMEOUT, **kwargs)
        except NETWORK_ERRORS as exc:
            self.http.close()
            self.http = requests.Session()
            if not self.harness.gate.wait_down(generation, 15.0):
                self.harness.ledger.fail(f"{self.name}: {method} {url} lost its connection while the server was "
                                         f"up: {exc!r}")
            raise Interrupted() from exc

    def run(self) -> None:
        ledger = self.harness.ledger
        while True:
            try:
                self.harness.gate.enter()
            except Stop:
                return
            try:
                session = ledger.take_resumable()
                if session is not None:
                    self.uploader.resume(session)
                else:
                    pick = self.rng.random()
                    if pick < 0.25:
                        self.uploader.direct()
                    elif pick < 0.4:
                        self.uploader.dav()
                    elif pick < 0.6:
                        self.uploader.new_session()
                    elif pick < 0.8:
                        self.uploader.new_tus()
                    elif pick < 0.9:
                        self.uploader.change_key()
                    elif pick < 0.95:
                        self.uploader.delete()
                    else:
                        self.uploader.dav_delete()
            except (Interrupted, Paused):
                continue
            except ProtocolFailure as exc:
                ledger.fail(f"{self.name}: {exc}")
            except Exception as exc:  # anything unexpected is a finding, reported with the seed
                ledger.fail(f"{self.name}: unexpected {exc!r}")


class KillHarness:
    """Runs the schedule of kills, restarts and checks; `run()` returns the figures (failures in the ledger)."""

    def __init__(self, config: SoakConfig, out: Callable[[str], None] = print) -> None:
        self.config = config
        self.out = out
        self.rng = random.Random(config.seed)
        self.ledger = Ledger()
        self.gate = Gate()
        self.data_dir = config.work_dir / "data"
        self.log_path = config.work_dir / "server.log"
        self.server = LoggedServer(self.data_dir, self.log_path, config.server_env())
        self.url = ""
        self.auth: dict[str, str] = {}
        self.http = requests.Session()

    # -- the schedule -------------------------------------------------------------------------------

    def schedule(self) -> list[str]:
        """"random" kills with every crash point spread among them, in seeded order."""
        kinds = ["random"] * self.config.random_kills
        for _ in range(self.config.crash_point_rounds):
            for point in CRASH_POINTS:
                kinds.insert(self.rng.randrange(len(kinds) + 1), point)
        return kinds

    def run(self) -> Figures:
        config = self.config
        self.out(f"kill harness on {config.stack}: seed {config.seed} (replay with LOCKR_SOAK_SEED={config.seed}), "
                 f"{config.random_kills} random kills, crash points x{config.crash_point_rounds}, "
                 f"{config.workers} clients, chunk {config.chunk} bytes")
        started = time.monotonic()
        self.server.start()
        self.url = self.server.url
        self.auth = create_account(self.url, "soak").auth
        workers = [Worker(self, i) for i in range(config.workers)]
        for worker in workers:
            worker.start()
        try:
            kinds = self.schedule()
            for number, kind in enumerate(kinds, 1):
                self.one_generation(kind)
                if number % 25 == 0:
                    self.out(f"  {number}/{len(kinds)} kills, {self.ledger.figures.acknowledged} uploads "
                             f"acknowledged, {time.monotonic() - started:.0f} s")
                if self.ledger.failures:
                    self.out(f"stopping after kill {number} ({kind}): {len(self.ledger.failures)} failures")
                    break
            self.gate.finish()
            for worker in workers:
                worker.join(60)
            if not self.ledger.failures:
                self.finish_open_sessions()
                self.check_store(full=True)
            if not self.ledger.failures:
                self.server.stop()
                self.fsck("--verify")
        finally:
            self.gate.finish()
            self.server.kill()
        self.print_figures(time.monotonic() - started)
        return self.ledger.figures

    def one_generation(self, kind: str) -> None:
        """Uploads run until the kill (random moment or armed crash point); then a clean restart and the checks."""
        figures = self.ledger.figures
        if kind != "random":
            self.server.stop()
            self.server.env = self.config.server_env(LOCKR_CRASH_POINT=kind)
            self.server.start(self.server.port)
            self.server.env = self.config.server_env()
        self.gate.open()
        if kind == "random":
            time.sleep(self.rng.uniform(*self.config.run_seconds))  # the random moment is the point here
            self.server.kill()
            figures.random_kills += 1
        else:
            status = self.server.crashed(self.config.crash_timeout)
            if status is None:
                self.ledger.fail(f"crash point {kind} was not reached within {self.config.crash_timeout}s")
            elif status != -9:
                self.ledger.fail(f"the server armed with crash point {kind} exited with {status}, not SIGKILL")
            else:
                figures.crash_point_kills[kind] = figures.crash_point_kills.get(kind, 0) + 1
            self.server.kill()
        self.gate.close()
        if not self.gate.wait_parked(self.config.workers, 60):
            self.ledger.fail("a client did not stop within 60 s after the kill")
            return
        self.after_kill(kind)
        self.server.start(self.server.port)
        self.check_store(full=False)
        figures.restarts_checked += 1
        with self.ledger.lock:
            self.ledger.resumable = list(self.ledger.sessions.values())
            self.rng.shuffle(self.ledger.resumable)

    def after_kill(self, kind: str) -> None:
        """Between the kill and the restart, with the server dead and the clients parked: nothing here;
        the power-cut harness (tests/powercut/harness.py) cuts the power of the data folder's disk."""

    # -- the checks after a restart -----------------------------------------------------------------

    def expect(self, condition: bool, message: str) -> bool:
        if not condition:
            self.ledger.fail(message)
        return condition

    def get(self, url: str, **kwargs: Any) -> requests.Response:
        return self.http.get(url, timeout=TIMEOUT, **kwargs)

    def fsck(self, *flags: str) -> None:
        result = subprocess.run([sys.executable, "-m", "lockr_local", "fsck", "--data-dir", str(self.data_dir),
                                 *flags], capture_output=True, text=True, env=self.config.server_env(), cwd=REPO,
                                timeout=300)
        self.expect(result.returncode == 0 and result.stdout.strip().endswith("clean"),
                    f"fsck {' '.join(flags)} after the restart is not clean: {result.stdout} {result.stderr}")

    def listing(self) -> dict[str, dict[str, Any]]:
        files: dict[str, dict[str, Any]] = {}
        cursor = ""
        while True:
            response = self.get(f"{self.url}/api/v1/files", params={"limit": 1000, "cursor": cursor},
                                headers=self.auth)
            response.raise_for_status()
            page = response.json()
            files.update({f["id"]: f for f in page["files"]})
            if not page["next"]:
                return files
            cursor = page["next"]

    def check_store(self, full: bool) -> None:
        """Promises 1-4 against the ledger, right after a restart (nothing else is talking to the server)."""
        self.fsck()
        self.check_leftovers()
        listed = self.check_listing()
        self.check_sessions()
        self.check_downloads(listed, full)
        self.check_keys(listed, full)
        used = self.get(f"{self.url}/api/v1/account", headers=self.auth).json()["used"]
        # Deleted files wait in the trash, their bytes still counted (server/trash.py).
        trashed = self.get(f"{self.url}/api/v1/trash", headers=self.auth).json()["bytes"]
        held = sum(f["size"] for f in listed.values())
        self.expect(used == held + trashed,
                    f"account says {used} bytes used, the listed files hold {held} and the trash {trashed}")
        if not full:
            self.delete_old_files()

    @cached_property
    def region(self) -> RegionView:
        """The default region's folder or bucket, looked at directly (first used after __init__, so a subclass
        may move the data folder)."""
        return region_view(self.config.regions, self.data_dir)

    def check_leftovers(self) -> None:
        temp = self.region.temp_leftovers()
        self.expect(temp == [], f"temp files survived the start-up clean-up: {temp}")
        partial = self.region.partial_sessions()
        with self.ledger.lock:
            open_sessions = set(self.ledger.sessions)
        # A kill between a session's commit and its answer leaves a session the client never learnt of: the
        # server still owns it (its row) until it expires. Bytes no session row owns are the leftovers
        # the start-up clean-up must have removed.
        unknown = partial - open_sessions - self.server_sessions()
        self.expect(not unknown, f"partial files without an open session: {unknown}")

    def server_sessions(self) -> set[str]:
        """The ids of the upload sessions the restarted server holds (read from its database, read-only)."""
        return session_rows(self.config.database_url, self.data_dir)

    def check_listing(self) -> dict[str, dict[str, Any]]:
        ledger = self.ledger
        listed = self.listing()
        with ledger.lock:
            by_name = dict(ledger.in_flight)
            sessions_by_file = {s.upload.file_id: s for s in ledger.sessions.values()}
            acked = dict(ledger.acked)
            deleted = set(ledger.deleted)
            pending_deletes = dict(ledger.pending_deletes)
        names = [f["name"] for f in listed.values()]
        self.expect(len(names) == len(set(names)), "a name is listed twice (a replaced version survived)")
        listed_by_name = {f["name"]: f for f in listed.values()}
        for file_id, upload in acked.items():
            file = listed.get(file_id)
            if file is None and upload.name in by_name and upload.name in listed_by_name:
                continue  # a new version in flight took its place: checked whole below
            if file_id in pending_deletes:
                with ledger.lock:
                    ledger.pending_deletes.pop(file_id)
                    ledger.unverified.add(file_id)  # whole or gone: downloaded again below if listed
                if file is None:  # the unacknowledged DELETE happened
                    ledger.forget(file_id)
                    ledger.figures.deletes_recovered += 1
                    continue
            if self.expect(file is not None, f"acknowledged {upload.kind} upload {upload.name} ({file_id}, "
                                             f"{upload.size} bytes) is not listed after the restart"):
                self.expect_whole(file, upload)
        for file_id, file in listed.items():
            self.expect(file_id not in deleted, f"deleted file {file_id} is listed again")
            if file_id in acked or file_id in deleted:
                continue
            upload = by_name.get(file["name"])
            session = sessions_by_file.get(file_id)
            if session is not None:
                # The last chunk's 201 was lost in the kill, but the file was recorded: complete and whole.
                if self.expect_whole(file, session.upload):
                    ledger.complete_session(session, file_id)
                    ledger.figures.recovered_in_flight += 1
            elif upload is not None:
                if self.expect_whole(file, upload):
                    ledger.ack_version(upload, file_id)
                    ledger.figures.recovered_in_flight += 1
            else:
                self.expect(False, f"file {file['name']} ({file_id}) is listed but the driver never sent it")
        with ledger.lock:
            ledger.figures.lost_in_flight += len(ledger.in_flight)
            ledger.in_flight.clear()
        return listed

    def expect_whole(self, file: dict[str, Any], upload: Upload) -> bool:
        return self.expect(file["name"] == upload.name and file["size"] == upload.size
                           and file["sha256"] == upload.sha256,
                           f"{upload.name} is listed as {file['size']} bytes sha256 {file['sha256']}, "
                           f"but {upload.size} bytes sha256 {upload.sha256} were sent")

    def check_keys(self, listed: dict[str, dict[str, Any]], full: bool) -> None:
        """Each file whose key changed (acknowledged or not) since the last restart, and a sample of the
        others: anonymous downloads show the key state; an unacknowledged change left the old or new key."""
        ledger = self.ledger
        with ledger.lock:
            pending = dict(ledger.pending_keys)
            ledger.pending_keys.clear()
            ledger.busy.clear()  # the clients are parked: every change they had under way is settled here
            keys = dict(ledger.keys)
            new = set(ledger.key_unverified) | set(pending)
            ledger.key_unverified.clear()
        older = sorted(set(keys) - new)
        sample = older if full else self.rng.sample(older, min(len(older), self.config.sample_downloads))
        for file_id in sorted(new) + sample:
            file = listed.get(file_id)
            if file is None:
                continue  # deleted (and checked gone) since
            upload = ledger.acked.get(file_id)
            if upload is None:
                continue
            allowed = list(pending[file_id]) if file_id in pending else [keys.get(file_id)]
            state = self.key_state(file, upload, allowed)
            if not self.expect(state in allowed, f"{upload.name} ({file_id}) has "
                               f"{'no key' if state is None else 'key ' + str(state)[:12]} after the restart; "
                               f"expected {' or '.join('no key' if k is None else 'key ' + k[:12] for k in allowed)}"
                               f"{' (a change was in flight)' if file_id in pending else ''}"):
                continue
            self.expect(file["hasKey"] == (state is not None),
                        f"{upload.name} is listed with hasKey {file['hasKey']}, but downloads say otherwise")
            with ledger.lock:
                if file_id in pending:
                    if state == pending[file_id][1] and state != pending[file_id][0]:
                        ledger.figures.key_changes_recovered += 1
                    ledger.keys[file_id] = state
                ledger.figures.keys_verified += 1

    def key_state(self, file: dict[str, Any], upload: Upload, candidates: list[str | None]) -> str | None:
        """The file's key as anonymous downloads show it: None (a 200 without keyHash), one of the candidate
        keyHashes (a 403 without, the bytes with it), or "unknown" (no candidate opens it)."""
        url = file["downloadUrl"]
        response = self.http.get(url, timeout=TIMEOUT)
        if response.status_code == 200:
            self.expect(sha256(response.content) == upload.sha256,
                        f"{upload.name} downloads anonymously as bytes that do not match what was sent")
            return None
        if not self.expect(response.status_code == 403, f"{upload.name} downloads anonymously as "
                                                         f"{response.status_code}, not 200 or 403"):
            return "unknown"
        for key in candidates:
            if key is None:
                continue
            response = self.http.get(url, params={"keyHash": key}, timeout=TIMEOUT)
            if response.status_code == 200:
                self.expect(sha256(response.content) == upload.sha256,
                            f"{upload.name} downloads with its key as bytes that do not match what was sent")
                return key
        return "unknown"

    def check_sessions(self) -> None:
        """Promise 4: the reported offset is at least the acknowledged one and at most what is on disk."""
        checker = Uploader(self.url, self.auth, self.ledger, self.config.chunk, self.plain_request, self.rng, "check")
        with self.ledger.lock:
            sessions = list(self.ledger.sessions.values())
        for session in sessions:
            try:
                offset = checker.status(session)
            except ProtocolFailure as exc:
                self.ledger.fail(str(exc))
                continue
            if offset is None:
                with self.ledger.lock:
                    self.ledger.figures.recovered_in_flight += 1
                continue
            self.expect(self.region.holds_prefix(session, offset),
                        f"session {session.upload.name} reports {offset} bytes stored, but the server does not "
                        f"hold them as they were sent")

    def check_downloads(self, listed: dict[str, dict[str, Any]], full: bool) -> None:
        ledger = self.ledger
        with ledger.lock:
            acked = dict(ledger.acked)
            new = set(ledger.unverified)
            ledger.unverified.clear()
        older = sorted(set(acked) - new)
        sample = older if full else self.rng.sample(older, min(len(older), self.config.sample_downloads))
        for file_id in sorted(new) + sample:
            upload = acked.get(file_id)
            if upload is None or file_id not in listed:
                continue
            try:
                response = self.get(listed[file_id]["downloadUrl"], headers=self.auth)
            except requests.RequestException as exc:  # e.g. the stored bytes are shorter than the row says
                self.expect(False, f"{upload.name} ({file_id}, {upload.size} bytes) breaks off downloading: {exc!r}")
                continue
            if self.expect(response.status_code == 200 and sha256(response.content) == upload.sha256,
                           f"{upload.name} ({file_id}) downloads as {response.status_code}, "
                           f"{len(response.content)} bytes that do not match what was sent"):
                ledger.figures.bytes_verified += upload.size
                ledger.figures.files_verified += 1

    def delete_old_files(self) -> None:
        """Keeps the store small on a long run: the oldest verified files go, and must stay gone."""
        ledger = self.ledger
        with ledger.lock:
            excess = len(ledger.acked) - self.config.keep_files
            doomed = [fid for fid in list(ledger.acked)[:max(0, excess)]
                      if fid not in ledger.unverified and fid not in ledger.busy]
        for file_id in doomed:
            response = self.http.delete(f"{self.url}/api/v1/files/{file_id}", headers=self.auth, timeout=TIMEOUT)
            if self.expect(response.status_code == 204, f"deleting {file_id} answered {response.status_code}"):
                ledger.forget(file_id)
                with ledger.lock:
                    ledger.figures.deleted += 1

    # -- the end ------------------------------------------------------------------------------------

    def plain_request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        return self.http.request(method, url, timeout=TIMEOUT, **kwargs)

    def finish_open_sessions(self) -> None:
        """Every session still open is resumed to completion, as its client would."""
        finisher = Uploader(self.url, self.auth, self.ledger, self.config.chunk, self.plain_request, self.rng, "end")
        with self.ledger.lock:
            sessions = list(self.ledger.sessions.values())
        for session in sessions:
            try:
                finisher.resume(session)
            except ProtocolFailure as exc:
                self.ledger.fail(f"finishing {session.upload.name}: {exc}")
        with self.ledger.lock:
            left = [s.upload.name for s in self.ledger.sessions.values()]
        self.expect(left == [], f"sessions still open after resuming them: {left}")

    def print_figures(self, seconds: float) -> None:
        f = self.ledger.figures
        crash = sum(f.crash_point_kills.values())
        points = ", ".join(f"{k} x{v}" for k, v in sorted(f.crash_point_kills.items())) or "none"
        lines = [
            f"seed {self.config.seed}: {seconds:.1f} s",
            f"uploads run: {f.direct_started + f.dav_started + f.sessions_started + f.tus_started} "
            f"({f.direct_started} direct, {f.dav_started} WebDAV PUTs of which {f.dav_replaced} replaced a version, "
            f"{f.sessions_started} sessions and {f.tus_started} tus uploads of {self.config.chunk}-byte chunks)",
            f"client deletes: {f.deletes_started} sent, {f.deletes_acked} acknowledged, {f.deletes_recovered} "
            f"unacknowledged found done; key changes: {f.key_changes_started} sent, {f.key_changes_acked} "
            f"acknowledged, {f.key_changes_recovered} unacknowledged found done; {f.keys_verified} key states "
            f"verified by anonymous downloads",
            f"acknowledged: {f.acknowledged} files ({f.recovered_in_flight} of them unacknowledged in flight and "
            f"recovered whole), {f.chunks_acknowledged} chunks; {f.lost_in_flight} unacknowledged uploads gone",
            f"kills survived: {f.random_kills + crash} ({f.random_kills} random SIGKILL, {crash} at crash points: "
            f"{points}); {f.restarts_checked} restarts checked",
            f"sessions resumed: {f.sessions_resumed}; status queries checked: {f.status_queries_checked}",
            f"verified: {f.files_verified} downloads, {f.bytes_verified} bytes by sha256; "
            f"{f.deleted} deleted through the API and checked gone",
            "nothing lost" if not self.ledger.failures else f"FAILURES ({len(self.ledger.failures)}):",
        ]
        lines += [f"  {message}" for message in self.ledger.failures[:20]]
        for line in lines:
            self.out(line)


def config_from_env(work_dir: Path, **defaults: Any) -> SoakConfig:
    """`LOCKR_SOAK_SEED`, `LOCKR_SOAK_KILLS`, `LOCKR_SOAK_WORKERS` override the given defaults."""
    seed_text = os.environ.get("LOCKR_SOAK_SEED", "")
    seed = int(seed_text) if seed_text else random.SystemRandom().randrange(2**32)
    values = dict(defaults)
    if os.environ.get("LOCKR_SOAK_KILLS"):
        values["random_kills"] = int(os.environ["LOCKR_SOAK_KILLS"])
    if os.environ.get("LOCKR_SOAK_WORKERS"):
        values["workers"] = int(os.environ["LOCKR_SOAK_WORKERS"])
    return SoakConfig(work_dir=work_dir, seed=seed, **values)


def run_to_exit_status(harness: KillHarness, work: Path) -> int:
    """Runs a long harness (`make soak`) and gives its exit status: 1, with the server log's tail on
    stderr, when the ledger found a failure."""
    harness.run()
    if harness.ledger.failures:
        print("the server's log ends with:\n" + (work / "server.log").read_text()[-4000:], file=sys.stderr)
        return 1
    return 0
