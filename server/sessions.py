"""Resumable upload sessions: creation with a quota reservation, offsets, completion, termination, reaping.

The rules only, with no Tornado and no file I/O: every method is synchronous and runs on the
`lockr-db` thread (`Database.run`). The bytes themselves are handled by `resumable.py`.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from typing import Any

import peewee

from lockr_local.errors import BadRequest, Gone, NotFound
from lockr_local.names import normalize_name, validate_content_type, validate_key_hash
from lockr_local.server.blobstore import Digests
from lockr_local.server.models import RAW_SESSION_KEYS, Meta, StoredFile, UploadSession, for_update
from lockr_local.server.prepared import Prepared
from lockr_local.server.security import Signer, new_claim_token, new_id, token_hash
from lockr_local.server.service import FileInfo, NewFile, Principal, Service, charge_quota
from lockr_local.server.wire import iso8601


def _attribute(field: peewee.Field) -> str:
    """The row attribute holding a column's plain value (a foreign key's id, not the related row)."""
    return field.object_id_name if isinstance(field, peewee.ForeignKeyField) else field.name


# The columns a SessionInfo is made of, in SessionInfo.from_columns' order.
_SESSION_COLUMNS = (UploadSession.session_id, UploadSession.file_id, UploadSession.owner, UploadSession.name,
                    UploadSession.size, UploadSession.content_type, UploadSession.region, UploadSession.key_hash,
                    UploadSession.offset, UploadSession.reserved, UploadSession.created_at, UploadSession.expires_at,
                    UploadSession.completed_at, UploadSession.metadata, UploadSession.claim_hash)


@dataclass(frozen=True)
class SessionInfo:
    """One session as the rest of the server sees it; `offset` counts only durable bytes."""

    session_id: str
    file_id: str
    owner_id: int | None
    name: str
    size: int
    type: str
    region: str
    key_hash: str | None  # the stored (HMAC'd) form, as on the file row; the raw keyHash is never kept
    offset: int
    reserved: int
    created_at: float
    expires_at: float
    completed: bool
    metadata: dict[str, Any] = field(default_factory=dict)
    claim_hash: str | None = None
    # Only on the answer that opened a guest's session: the raw claim token (stored only hashed).
    claim_token: str | None = None

    @property
    def principal(self) -> Principal:
        return Principal(self.owner_id, None)

    @property
    def remaining(self) -> int:
        return self.size - self.offset

    def upload_path(self) -> str:
        return f"/api/v1/upload/session/{self.session_id}"

    def download_path(self) -> str:
        return FileInfo(self.file_id, self.name, self.size, self.type, self.region, "", None, 0, self.owner_id,
                        self.created_at, None).download_path()

    def new_file(self, digests: Digests) -> NewFile:
        return NewFile(self.file_id, self.name, self.size, self.type, self.region, digests.sha256, self.key_hash,
                       sha1=digests.sha1, md5=digests.md5, check=digests.check, key_protected=True,
                       claim_hash=self.claim_hash)

    @staticmethod
    def of(row: UploadSession) -> "SessionInfo":
        return SessionInfo.from_columns(*(getattr(row, _attribute(field)) for field in _SESSION_COLUMNS))

    @staticmethod
    def from_columns(session_id: str, file_id: str, owner_id: int | None, name: str, size: int, content_type: str,
                     region: str, key_hash: str | None, offset: int, reserved: int, created_at: float,
                     expires_at: float, completed_at: float | None, metadata_json: str | None,
                     claim_hash: str | None = None) -> "SessionInfo":
        """From the values of _SESSION_COLUMNS, in that order."""
        try:
            metadata = json.loads(metadata_json or "{}")
        except ValueError:
            metadata = {}
        return SessionInfo(session_id, file_id, owner_id, name, size, content_type, region, key_hash, offset,
                           reserved, created_at, expires_at, completed_at is not None,
                           metadata if isinstance(metadata, dict) else {}, claim_hash)


@dataclass(frozen=True)
class SessionRequest:
    """What a client asked for when opening a session, validated by `parse_session_request`."""

    name: str
    size: int
    type: str
    region: str | None
    key_hash: str | None
    metadata: dict[str, Any] = field(default_factory=dict)


def parse_session_request(name: object, size: object, content_type: object, region: object = None,
                          key_hash: object = None, metadata: dict[str, Any] | None = None) -> SessionRequest:
    """Validates the fields of a new session (from JSON or tus headers); 400 naming the field at fault."""
    if not isinstance(name, str):
        raise BadRequest('Name the file: {"name": "report.pdf", ...}.', field="name")
    if isinstance(size, bool) or not isinstance(size, int):
        raise BadRequest('Declare the size in bytes: {"size": 1048576, ...}.', field="size")
    if size < 0:
        raise BadRequest("The size cannot be negative.", field="size")
    if region is not None and not isinstance(region, str):
        raise BadRequest("region must be a string such as 'us-central1'.", field="region")
    checked_key = None
    if key_hash is not None and key_hash != "":
        checked_key = validate_key_hash(key_hash)
    return SessionRequest(normalize_name(name), size, validate_content_type(content_type), region or None,
                          checked_key, dict(metadata or {}))


def tus_metadata_without(raw: str, secret_keys: tuple[str, ...] = ("keyHash",)) -> str:
    """A tus `Upload-Metadata` value without the named entries, kept to be echoed by HEAD: a keyHash
    must not be stored or sent back as it came."""
    pairs = [pair.strip() for pair in raw.split(",")]
    return ",".join(pair for pair in pairs if pair and pair.partition(" ")[0] not in secret_keys)


def protect_raw_session_keys(signer: Signer) -> int:
    """Once, for a store from before schema 5 (whose sessions kept the raw keyHash and echoed it in their
    tus metadata): stores the HMAC'd form instead and drops the keyHash from the metadata."""
    if Meta.get_or_none(Meta.key == RAW_SESSION_KEYS) is None:
        return 0
    changed = 0
    with UploadSession._meta.database.atomic():
        for row in UploadSession.select().where(UploadSession.key_hash.is_null(False)
                                                | UploadSession.metadata.contains("keyHash")):
            try:
                metadata = json.loads(row.metadata or "{}")
            except ValueError:
                metadata = {}
            if isinstance(metadata, dict) and isinstance(metadata.get("tus"), str):
                metadata["tus"] = tus_metadata_without(metadata["tus"])
            key_hash = signer.protect_key_hash(row.key_hash.lower()) if row.key_hash else None
            (UploadSession.update(key_hash=key_hash, metadata=json.dumps(metadata))
             .where(UploadSession.session_id == row.session_id).execute())
            changed += 1
        Meta.delete().where(Meta.key == RAW_SESSION_KEYS).execute()
    return changed


# Every chunk reads its session and records its offset: their SQL is built once (prepared.py).
_SESSION_BY_ID = Prepared(
    lambda session_id: (UploadSession.select(*_SESSION_COLUMNS)
                        .where(UploadSession.session_id == session_id).limit(1)), str)
_RECORD_OFFSET = Prepared(
    lambda offset, session_id: (UploadSession.update(offset=offset)
                                .where((UploadSession.session_id == session_id) & UploadSession.completed_at.is_null()
                                       & (UploadSession.offset <= offset))), int, str)


class SessionStore:
    """Session rows and the quota reservations that go with them."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.settings = service.settings

    def create(self, principal: Principal, request: SessionRequest, now: float | None = None) -> SessionInfo:
        """Opens a session: 413/403/507 from the declared size at once, then reserves it against the quota."""
        service = self.service
        region = service.admit_upload(principal, request.region, request.size, request.key_hash)
        now = time.time() if now is None else now
        reserved = 0 if principal.account_id is None else request.size
        # A guest's upload gets its claim token now, in the one answer only the uploader sees; the file
        # row inherits the hash when the upload completes.
        claim_token = new_claim_token() if principal.is_guest else None
        db = UploadSession._meta.database
        with db.atomic():
            if reserved:
                # The check and the reservation are one conditional UPDATE, so two sessions opened at
                # once cannot both squeeze into the last free bytes.
                assert principal.account_id is not None
                if not charge_quota(principal.account_id, 0, reserved):
                    raise service._quota_error(service.account(principal.account_id), request.size)
            row = UploadSession.create(
                session_id=new_id(), file_id=new_id(), owner=principal.account_id, name=request.name,
                size=request.size, content_type=request.type, region=region,
                # Only what the file row will hold: a session row lives for days, completed or not.
                key_hash=service.signer.protect_key_hash(request.key_hash) if request.key_hash else None,
                offset=0, reserved=reserved, metadata=json.dumps(request.metadata), created_at=now,
                expires_at=now + self.settings.session_expiry,
                claim_hash=token_hash(claim_token) if claim_token else None)
        return dataclasses.replace(SessionInfo.of(row), claim_token=claim_token)

    def get(self, session_id: str, now: float | None = None) -> SessionInfo:
        """The session; 404 when unknown (or reaped), 410 once expired."""
        row = _SESSION_BY_ID.fetch_one(UploadSession._meta.database, session_id)
        if row is None:
            raise NotFound("No upload session has that URL; it may have been reaped or cancelled. "
                           "Start a new session.")
        info = SessionInfo.from_columns(*row)
        if info.expires_at <= (time.time() if now is None else now):
            raise Gone(f"This upload session expired at {iso8601(info.expires_at)}; start a new one.")
        return info

    def record_offset(self, session_id: str, offset: int) -> None:
        """Records bytes that are already durable; never moves the offset backwards."""
        _RECORD_OFFSET.execute(UploadSession._meta.database, offset, session_id)

    def complete(self, session_id: str, digests: Digests) -> FileInfo:
        """Turns the session's durable bytes (already in place) into a listed file, in one transaction:
        the file row, the quota charge, the reservation released and the session marked complete."""
        db = UploadSession._meta.database
        with db.atomic():
            # Locked: a termination or a second completion on another node waits, then finds it gone or done.
            row = for_update(UploadSession.select().where(UploadSession.session_id == session_id)).first()
            if row is None or row.completed_at is not None:
                raise NotFound("The upload session disappeared before it could complete; start a new one.")
            session = SessionInfo.of(row)
            info = self.service.record_file(session.principal, session.new_file(digests), reserved=session.reserved)
            (UploadSession.update(offset=session.size, reserved=0, completed_at=time.time())
             .where(UploadSession.session_id == session_id).execute())
        return info

    def completed_file(self, session: SessionInfo) -> FileInfo:
        """The file a completed session became; 404 if it was deleted since."""
        row = StoredFile.get_or_none((StoredFile.file_id == session.file_id) & StoredFile.live())
        if row is None:
            raise NotFound("This upload completed, but its file has been deleted since.")
        return FileInfo.of(row)

    def terminate(self, session_id: str) -> SessionInfo:
        """Deletes an unfinished session and releases its reservation (tus termination, GCS cancel)."""
        db = UploadSession._meta.database
        with db.atomic():
            row = for_update(UploadSession.select().where(UploadSession.session_id == session_id)).first()
            if row is None:
                raise NotFound("No upload session has that URL.")
            session = SessionInfo.of(row)
            self._drop(session)
        return session

    def reap_expired(self, busy: set[str], now: float | None = None) -> list[SessionInfo]:
        """Deletes expired sessions (releasing reservations) except those being written right now.

        Returns them so the caller can delete their partial bytes after the rows are gone.
        """
        now = time.time() if now is None else now
        db = UploadSession._meta.database
        reaped: list[SessionInfo] = []
        with db.atomic():
            for row in UploadSession.select().where(UploadSession.expires_at <= now):
                session = SessionInfo.of(row)
                if session.session_id in busy:
                    continue
                self._drop(session)
                reaped.append(session)
        return reaped

    def unfinished_session_ids(self) -> set[str]:
        """Ids of every session that may still own a partial file (for start-up cleanup)."""
        query = UploadSession.select(UploadSession.session_id).where(UploadSession.completed_at.is_null())
        return {row.session_id for row in query}

    @staticmethod
    def _drop(session: SessionInfo) -> None:
        deleted = UploadSession.delete().where(UploadSession.session_id == session.session_id).execute()
        # Only the transaction that deleted the row releases its reservation (nodes may reap at once).
        if deleted and session.reserved and session.owner_id is not None:
            charge_quota(session.owner_id, 0, -session.reserved, must_fit=False)
