"""The kill harness's ledger: what the server acknowledged, what was in flight, each session's offset, each
file's download key, and the key changes and deletes sent but not (yet) acknowledged.

Content is never kept: every upload's bytes come from its own seed (`content(seed, size)`), so the
ledger stays small over thousands of uploads and a resumed session regenerates exactly what it sent.
"""

from __future__ import annotations

import hashlib
import random
import threading
from dataclasses import dataclass, field


def content(seed: int, size: int) -> bytes:
    """The bytes of one upload, the same every time for the same seed."""
    return random.Random(seed).randbytes(size)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Upload:
    """One upload the driver started: its name is unique, its bytes are `content(seed, size)`."""

    name: str
    seed: int
    size: int
    sha256: str
    kind: str  # "direct", "session", "tus" or "dav"
    file_id: str = ""  # known from the 201 (direct) or from the session's 201 at creation
    key: str | None = None  # the keyHash sent with the upload (tus metadata), if any

    def data(self) -> bytes:
        return content(self.seed, self.size)


@dataclass
class Session:
    """A resumable session the server opened: `acked` counts the bytes a 308 (or 201) acknowledged, or for
    a tus upload (`tus`, `upload_url` is its Location) a PATCH's 204 with its Upload-Offset."""

    upload: Upload
    upload_url: str
    tus: bool = False
    acked: int = 0
    completed: bool = False
    interrupted: int = 0  # how many times a kill cut this session short

    @property
    def session_id(self) -> str:
        return self.upload_url.rstrip("/").rsplit("/", 1)[1]


@dataclass
class Figures:
    """What the run did, printed at the end."""

    direct_started: int = 0
    dav_started: int = 0
    dav_replaced: int = 0
    sessions_started: int = 0
    tus_started: int = 0
    acknowledged: int = 0
    recovered_in_flight: int = 0  # never acknowledged, but listed whole after the restart
    lost_in_flight: int = 0  # never acknowledged and gone after the restart (allowed)
    chunks_acknowledged: int = 0
    sessions_resumed: int = 0
    status_queries_checked: int = 0
    random_kills: int = 0
    crash_point_kills: dict[str, int] = field(default_factory=dict)
    restarts_checked: int = 0
    bytes_verified: int = 0
    files_verified: int = 0
    deleted: int = 0  # by the harness between restarts
    deletes_started: int = 0  # by the clients (API and WebDAV DELETE), cut by kills or not
    deletes_acked: int = 0
    deletes_recovered: int = 0  # unacknowledged, found done after the restart
    key_changes_started: int = 0
    key_changes_acked: int = 0
    key_changes_recovered: int = 0  # unacknowledged, found done after the restart
    keys_verified: int = 0  # files whose key state was checked by anonymous downloads after a restart


class Ledger:
    """Shared by the worker threads and the controller; every mutation holds `lock`."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.acked: dict[str, Upload] = {}  # file id -> upload, in acknowledgement order
        self.in_flight: dict[str, Upload] = {}  # name -> direct or WebDAV upload sent, not (yet) acknowledged
        self.sessions: dict[str, Session] = {}  # session id -> open session
        self.resumable: list[Session] = []  # open sessions cut by a kill, for workers to resume
        self.deleted: set[str] = set()
        self.unverified: set[str] = set()  # acknowledged since the last download check
        self.keys: dict[str, str | None] = {}  # file id -> its acknowledged keyHash (None: no key)
        self.key_unverified: set[str] = set()  # key acknowledged since the last key check
        self.pending_keys: dict[str, tuple[str | None, str | None]] = {}  # file id -> (old, new) keyHash
        self.pending_deletes: dict[str, Upload] = {}  # file id -> a DELETE sent, not acknowledged
        self.busy: set[str] = set()  # files a client is changing (key or delete); one change at a time
        self.failures: list[str] = []
        self.figures = Figures()

    def fail(self, message: str) -> None:
        with self.lock:
            self.failures.append(message)

    def start_direct(self, upload: Upload) -> None:
        with self.lock:
            self.in_flight[upload.name] = upload
            if upload.kind == "dav":
                self.figures.dav_started += 1
            elif upload.kind == "tus":
                self.figures.tus_started += 1
            else:
                self.figures.direct_started += 1

    def ack_file(self, upload: Upload, file_id: str) -> None:
        with self.lock:
            upload.file_id = file_id
            self.in_flight.pop(upload.name, None)
            self.acked[file_id] = upload
            self.unverified.add(file_id)
            self.figures.acknowledged += 1
            if upload.key is not None:
                self.keys[file_id] = upload.key
                self.key_unverified.add(file_id)

    def ack_version(self, upload: Upload, file_id: str) -> None:
        """A WebDAV PUT acknowledged: the new version replaces whatever the ledger had under its name."""
        with self.lock:
            for old_id in [fid for fid, old in self.acked.items() if old.name == upload.name]:
                del self.acked[old_id]
                self.figures.dav_replaced += 1
                self.unverified.discard(old_id)
        self.ack_file(upload, file_id)

    def open_session(self, session: Session) -> None:
        with self.lock:
            self.sessions[session.session_id] = session
            if session.tus:
                self.in_flight.pop(session.upload.name, None)  # the creation's 201 came: now a session
            else:
                self.figures.sessions_started += 1

    def ack_chunk(self, session: Session, offset: int) -> None:
        with self.lock:
            session.acked = max(session.acked, offset)
            self.figures.chunks_acknowledged += 1

    def complete_session(self, session: Session, file_id: str) -> None:
        with self.lock:
            session.completed = True
            session.acked = session.upload.size
            self.sessions.pop(session.session_id, None)
        self.ack_file(session.upload, file_id)

    def take_resumable(self) -> Session | None:
        with self.lock:
            return self.resumable.pop() if self.resumable else None

    # -- key changes and deletes by the clients -----------------------------------------------------

    def claim_file(self, rng: random.Random) -> tuple[str, Upload] | None:
        """An acknowledged file no other client is changing (WebDAV files stay with their own client)."""
        with self.lock:
            free = [fid for fid, upload in self.acked.items() if upload.kind != "dav" and fid not in self.busy]
            if not free:
                return None
            file_id = rng.choice(free)
            self.busy.add(file_id)
            return file_id, self.acked[file_id]

    def claim_named(self, file_id: str) -> None:
        with self.lock:
            self.busy.add(file_id)

    def key_of(self, file_id: str) -> str | None:
        with self.lock:
            return self.keys.get(file_id)

    def start_key(self, file_id: str, new: str | None) -> None:
        with self.lock:
            self.pending_keys[file_id] = (self.keys.get(file_id), new)
            self.figures.key_changes_started += 1

    def ack_key(self, file_id: str, new: str | None) -> None:
        with self.lock:
            self.pending_keys.pop(file_id, None)
            self.keys[file_id] = new
            self.key_unverified.add(file_id)
            self.busy.discard(file_id)
            self.figures.key_changes_acked += 1

    def start_delete(self, file_id: str) -> None:
        with self.lock:
            self.pending_deletes[file_id] = self.acked[file_id]
            self.figures.deletes_started += 1

    def ack_delete(self, file_id: str) -> None:
        with self.lock:
            self.figures.deletes_acked += 1
        self.forget(file_id)

    def forget(self, file_id: str) -> None:
        """The file is deleted (acknowledged, or found gone after an unacknowledged DELETE): it stays gone."""
        with self.lock:
            self.pending_deletes.pop(file_id, None)
            self.acked.pop(file_id, None)
            self.unverified.discard(file_id)
            self.keys.pop(file_id, None)
            self.key_unverified.discard(file_id)
            self.busy.discard(file_id)
            self.deleted.add(file_id)
