"""Idempotency-Key (IETF httpapi draft) on the one-request uploads: a retry answers with the first file.

`POST /api/v1/upload` and the WebDAV PUT accept `Idempotency-Key: "<key>"`. The key's row
(models.IdempotencyKey) is written in the same transaction as the file's row, so whatever the first
request's answer met (a cut connection, a crash between the commit and the answer), a retry finds the file:

- the same key and the same request (the body by SHA-256 and size, the name, the endpoint) answers as the
  first did, with the same file, and stores nothing (the retry's bytes are undone by ingest.py);
- the same key with another request is a 422 (`idempotency_key_reused`);
- a key whose first request is still being carried out is a 409 (`idempotency_key_in_flight`);
- a key is kept `idempotency_ttl` seconds, then forgotten (the reaper deletes expired rows).

Keys are per account; guests cannot use them (400): a guest upload's answer carries the claim token, which
a replay would hand to whoever shares the address. The key is stored only as its SHA-256.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import peewee

from lockr_local.errors import (
    BadRequest, IdempotencyKeyInFlight, IdempotencyKeyReused, IdempotencyKeySpent,
)
from lockr_local.server.db import Database
from lockr_local.server.ingest import Replayed
from lockr_local.server.models import IdempotencyKey, StoredFile
from lockr_local.server.service import FileInfo

HEADER = "Idempotency-Key"
# Sent on the answers of the routes that honour the key (and WebDAV's OPTIONS), so that a client can tell
# this server keeps keys and for how long: `Accept-Idempotency-Key: ttl=86400` (named after Accept-Ranges).
ADVERTISE_HEADER = "Accept-Idempotency-Key"
MAX_KEY_LENGTH = 255
# The draft's key is a Structured Field string ("..."); a bare token is taken too, as clients send them.
_QUOTED = re.compile(r'"((?:[ !#-\[\]-~]|\\["\\])+)"')
_BARE = re.compile(r"[!#-~]+")

log = logging.getLogger("lockr.server")


def parse_key(value: str | None) -> str | None:
    """The SHA-256 (hex) of the key in an Idempotency-Key header; None without one; 400 when malformed."""
    if value is None:
        return None
    text = value.strip()
    quoted = _QUOTED.fullmatch(text)
    key = re.sub(r"\\(.)", r"\1", quoted.group(1)) if quoted else (text if _BARE.fullmatch(text) else None)
    if key is None or not 0 < len(key) <= MAX_KEY_LENGTH:
        raise BadRequest(f'Idempotency-Key must be a quoted string of 1 to {MAX_KEY_LENGTH} printable ASCII '
                         'characters, e.g. Idempotency-Key: "8e03978e-40d5-43e8-bc93-6894a57f9324".',
                         field=HEADER)
    return hashlib.sha256(key.encode("ascii")).hexdigest()


@dataclass(frozen=True)
class Fingerprint:
    """What a retry under the same key must repeat."""

    route: str
    name: str
    size: int
    sha256: str


class IdempotencyKeys:
    """The keys of one server: the in-flight set (this node's requests not yet answered) and the rows."""

    def __init__(self, db: Database, ttl: int) -> None:
        self.db = db
        self.ttl = ttl
        self._in_flight: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.ttl > 0

    def advertisement(self) -> str:
        return f"ttl={self.ttl}"

    def claim(self, owner: str, key_hash: str) -> None:
        """Marks the key busy for `owner` (an account, or one credential) until `release`; 409 while it is.
        Requests on other nodes meet at the row's unique index instead (record raises 409 there too)."""
        with self._lock:
            if (owner, key_hash) in self._in_flight:
                raise IdempotencyKeyInFlight()
            self._in_flight.add((owner, key_hash))

    def release(self, owner: str, key_hash: str) -> None:
        with self._lock:
            self._in_flight.discard((owner, key_hash))

    def record(self, account_id: int, key_hash: str, fingerprint: Fingerprint, file_id: str, status: int,
               replay: Callable[[FileInfo, int], Any]) -> None:
        """On the database thread, inside the transaction that listed the file `file_id`: `check`, then
        `remember`. For a record that deletes no file; one that may (a PUT replacing a file: the first file
        itself, on a retry) calls `check` before it changes anything."""
        self.check(account_id, key_hash, fingerprint, replay)
        self.remember(account_id, key_hash, fingerprint, file_id, status)

    def check(self, account_id: int, key_hash: str, fingerprint: Fingerprint,
              replay: Callable[[FileInfo, int], Any]) -> None:
        """On the database thread, in the record's transaction: when the key is live, raises
        Replayed(replay(first file, first status)) for the same request and IdempotencyKeyReused for another
        one (either way the transaction must roll back); forgets the key when it has expired."""
        row = IdempotencyKey.get_or_none((IdempotencyKey.account == account_id) & (IdempotencyKey.key_hash == key_hash))
        if row is None:
            return
        if row.expires_at <= time.time():
            row.delete_instance()
            return
        if Fingerprint(row.route, row.name, row.size, row.sha256) != fingerprint:
            raise IdempotencyKeyReused()
        first = StoredFile.get_or_none((StoredFile.file_id == row.file_id) & (StoredFile.owner == account_id)
                                       & StoredFile.live())  # a file in the trash was deleted too
        if first is None:
            raise IdempotencyKeySpent()
        raise Replayed(replay(FileInfo.of(first), row.status))

    def remember(self, account_id: int, key_hash: str, fingerprint: Fingerprint, file_id: str, status: int) -> None:
        """On the database thread, in the transaction that listed the file `file_id` (after `check`)."""
        try:
            with IdempotencyKey._meta.database.atomic():
                IdempotencyKey.create(account=account_id, key_hash=key_hash, route=fingerprint.route,
                                      name=fingerprint.name, size=fingerprint.size, sha256=fingerprint.sha256,
                                      file_id=file_id, status=status, expires_at=time.time() + self.ttl)
        except peewee.IntegrityError:
            # Another node's request with this key committed first (PostgreSQL waits for it, then refuses).
            raise IdempotencyKeyInFlight() from None

    async def reap(self, now: float | None = None) -> int:
        """Forgets expired keys (run by the background reaper)."""
        removed = await self.db.run(delete_expired, time.time() if now is None else now)
        if removed:
            log.info("forgot %d expired idempotency keys", removed)
        return removed


def delete_expired(now: float) -> int:
    return int(IdempotencyKey.delete().where(IdempotencyKey.expires_at <= now).execute())
