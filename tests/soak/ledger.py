"""The kill harness's ledger: what the server acknowledged, what was in flight, and each session's offset.

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
    kind: str  # "direct", "session" or "dav"
    file_id: str = ""  # known from the 201 (direct) or from the session's 201 at creation

    def data(self) -> bytes:
        return content(self.seed, self.size)


@dataclass
class Session:
    """A resumable session the server opened: `acked` counts the bytes a 308 (or 201) acknowledged."""

    upload: Upload
    upload_url: str
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
    deleted: int = 0


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
            else:
                self.figures.direct_started += 1

    def ack_file(self, upload: Upload, file_id: str) -> None:
        with self.lock:
            upload.file_id = file_id
            self.in_flight.pop(upload.name, None)
            self.acked[file_id] = upload
            self.unverified.add(file_id)
            self.figures.acknowledged += 1

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
