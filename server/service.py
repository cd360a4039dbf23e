"""Accounts, tokens, files and quotas: the rules of the store, with no Tornado in sight.

Every method here is synchronous and touches the database, so the server calls it through
`Database.run` (the `lockr-db` thread); the CLI calls it directly.
"""

from __future__ import annotations

import dataclasses
import re
import time
from dataclasses import dataclass
from typing import Iterable, cast
from urllib.parse import quote

import peewee

from lockr_local.config import Settings
from lockr_local.units import format_size
from lockr_local.errors import (
    AlreadyExists, BadRequest, ClaimRequired, GuestKeyForbidden, GuestUploadsDisabled, KeyRequired, NotFound,
    QuotaExceeded, TokenExpired, TooLarge, Unauthorized, WrongClaim, WrongKey,
)
from lockr_local.server.blobstore import BlobLocation, BlobStore, Digests
from lockr_local.server.checks import StoredCheck
from lockr_local.server.faults import Faults
from lockr_local.server.filebytes import StoredAt
from lockr_local.server.inline import insert_inline
from lockr_local.server.models import Account, ApiToken, LoginAddress, StoredFile, UploadSession
from lockr_local.server.numbers import parse_count
from lockr_local.server.prepared import Prepared
from lockr_local.server.security import Signer, claim_matches, new_claim_token, new_token, token_hash
from lockr_local.server.wire import iso8601

_USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
# No control characters (PostgreSQL text cannot even hold NUL) and at most 254 characters (RFC 5321's
# limit, and the column's).
_EMAIL = re.compile(r"[^@\s\x00-\x1f\x7f]{1,64}@[^@\s\x00-\x1f\x7f]{1,189}\.[^@\s\x00-\x1f\x7f]{1,60}")
_EMAIL_MAX = 254
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# The longest lifetime a token may be given (ten years): past it, "never expires" is the honest choice.
MAX_TOKEN_LIFETIME = 3650 * 86400


def token_lifetime(requested: object) -> int | None:
    """A new token's `expiresIn` (seconds), checked: None (no expiry) or a whole number 1..MAX_TOKEN_LIFETIME."""
    if requested is None:
        return None
    if isinstance(requested, bool) or not isinstance(requested, int):
        raise BadRequest('"expiresIn" must be a whole number of seconds, like {"expiresIn": 2592000} for 30 days, '
                         "or left out for a token that lasts until revoked.", field="expiresIn")
    if not 1 <= requested <= MAX_TOKEN_LIFETIME:
        raise BadRequest(f'"expiresIn" must be between 1 and {MAX_TOKEN_LIFETIME} seconds (ten years); leave it '
                         "out for a token that lasts until revoked.", field="expiresIn", max=MAX_TOKEN_LIFETIME)
    return requested


@dataclass(frozen=True)
class Principal:
    """Who is asking: an account, or a guest identified only by address."""

    account_id: int | None
    username: str | None

    @property
    def is_guest(self) -> bool:
        return self.account_id is None

    @staticmethod
    def guest() -> "Principal":
        return Principal(None, None)


@dataclass(frozen=True)
class AccountInfo:
    id: int
    username: str
    email: str
    quota: int
    used_bytes: int
    reserved_bytes: int
    default_region: str | None
    created_at: float

    @staticmethod
    def of(account: Account) -> "AccountInfo":
        return AccountInfo(account.id, account.username, account.email, account.quota, account.used_bytes,
                           account.reserved_bytes, account.default_region, account.created_at)


@dataclass(frozen=True)
class FileInfo:
    """A stored file as the API shows it; `key_hash` is the protected (HMAC'd) form, never shown."""

    id: str
    name: str
    size: int
    type: str
    region: str
    sha256: str
    key_hash: str | None
    key_version: int
    owner_id: int | None
    created_at: float
    mtime: float | None
    sha1: str = ""
    md5: str = ""
    check: StoredCheck = StoredCheck()
    # The bytes are in the database (inline.py), not the blob store.
    inline: bool = False
    # Only on the answer to a guest's upload, right after it: the raw claim token (stored only hashed).
    claim_token: str | None = None

    @property
    def has_key(self) -> bool:
        return self.key_hash is not None

    @property
    def location(self) -> BlobLocation:
        return BlobLocation(self.region, self.id)

    @property
    def stored(self) -> StoredAt:
        """Where the file's bytes are, for FileBytes."""
        return StoredAt(self.location, self.inline)

    def download_path(self) -> str:
        return f"/api/v1/download/{self.region}/{self.id}/{quote(self.name, safe='/')}"

    @staticmethod
    def of(row: StoredFile) -> "FileInfo":
        return FileInfo(row.file_id, row.name, row.size, row.content_type, row.region, row.sha256, row.key_hash,
                        row.key_version, row.owner_id, row.created_at, row.mtime, row.sha1, row.md5,
                        StoredCheck(row.crc32c, row.crc32), bool(row.inline))


@dataclass(frozen=True)
class LoginCandidate:
    """The account a login names, its password hash, and whether the client's address logged in before."""

    account: AccountInfo
    password_hash: str
    known_address: bool


# Addresses remembered per account for login (record_login): enough for home, work, phone and travel.
_KNOWN_ADDRESSES = 20


@dataclass(frozen=True)
class NewFile:
    """What an upload knows once its bytes are durable, ready to become a row."""

    file_id: str
    name: str
    size: int
    type: str
    region: str
    sha256: str
    key_hash: str | None
    mtime: float | None = None
    sha1: str = ""
    md5: str = ""
    check: StoredCheck = StoredCheck()
    # True when key_hash is already the stored (HMAC'd) form: an upload session keeps only that.
    key_protected: bool = False
    # A guest session's claim hash (its token went to the uploader when the session opened).
    claim_hash: str | None = None

    def with_digests(self, digests: Digests) -> "NewFile":
        return dataclasses.replace(self, sha256=digests.sha256, sha1=digests.sha1, md5=digests.md5,
                                   check=digests.check)


# The queries every upload runs (see prepared.py for why their SQL is built only once).
_TOKEN_ACCOUNT = Prepared(
    lambda digest: (ApiToken.select(ApiToken.id, ApiToken.revoked, ApiToken.last_used_at, ApiToken.expires_at,
                                    Account.id, Account.username,
                                    Account.email, Account.quota, Account.used_bytes, Account.reserved_bytes,
                                    Account.default_region, Account.created_at)
                    .join(Account).where(ApiToken.token_hash == digest).limit(1)), str)
# Every change of an account's used and reserved bytes (charge_quota). The check that the change still
# fits and the change are one statement, so two uploads at once cannot both squeeze into the last free
# bytes: rowcount 0 means it no longer fits.
_CHARGE_QUOTA = Prepared(
    lambda used, reserved, must_fit, account_id: (
        Account.update(used_bytes=Account.used_bytes + used, reserved_bytes=Account.reserved_bytes + reserved)
        .where((Account.id == account_id)
               & ((peewee.Value(must_fit) == 0)
                  | (Account.used_bytes + Account.reserved_bytes + used + reserved <= Account.quota)))),
    int, int, int, int)


def charge_quota(account_id: int, used: int, reserved: int = 0, must_fit: bool = True) -> bool:
    """Adds `used` bytes to the account's usage and `reserved` to its reservations (either may be negative;
    a file stored against a reservation does both). With `must_fit`, only when the account's usage and
    reservations then stay within its quota: False when they would not (nothing changed)."""
    return bool(_CHARGE_QUOTA.execute(Account._meta.database, used, reserved, int(must_fit), account_id).rowcount)

# `inline` is passed as a plain Value: the BooleanField would turn its build-time marker into True.
_INSERT_FILE = Prepared(
    lambda file_id, owner, name, size, content_type, region, sha256, sha1, md5, crc32c, crc32, key_hash, mtime,
    created_at, inline, claim_hash: StoredFile.insert(
        file_id=file_id, owner=owner, name=name, size=size, content_type=content_type, region=region,
        sha256=sha256, sha1=sha1, md5=md5, crc32c=crc32c, crc32=crc32, key_hash=key_hash, mtime=mtime,
        created_at=created_at, inline=peewee.Value(inline), claim_hash=claim_hash),
    str, int, str, int, str, str, str, str, str, int, int, str, float, float, int, str)


class Service:
    """The store's rules; constructed once with the settings, blob store and signer."""

    def __init__(self, settings: Settings, blobs: BlobStore, signer: Signer, faults: Faults | None = None) -> None:
        self.settings = settings
        self.blobs = blobs
        self.signer = signer
        self.faults = faults or Faults("")

    # -- accounts -----------------------------------------------------------------------------

    def create_account(self, username: str, email: str, password_hash: str, quota: int | None = None
                       ) -> tuple[AccountInfo, str]:
        """Creates an account and its first API token; 409 when the username or email is taken."""
        username = validate_username(username)
        email = validate_email(email)
        db = Account._meta.database
        with db.atomic():
            taken = Account.select().where((_same_username(username)) | (Account.email == email)).first()
            if taken is not None:
                what = "username" if taken.username.lower() == username.lower() else "email"
                raise AlreadyExists(f"That {what} is already registered; log in or pick another.", field=what)
            try:
                account = Account.create(username=username, email=email, password_hash=password_hash,
                                         quota=self.settings.default_quota if quota is None else quota,
                                         created_at=time.time())
            except peewee.IntegrityError as exc:
                raise AlreadyExists("That username or email is already registered.") from exc
            token = self._insert_token(account, "first token")
        return AccountInfo.of(account), token

    def find_account(self, identifier: str) -> tuple[AccountInfo, str] | None:
        """(account, password hash) by username or email, or None."""
        identifier = identifier.strip()
        if len(identifier) > _EMAIL_MAX or _CONTROL.search(identifier):
            return None  # no account has such a name (and PostgreSQL refuses a NUL in a query)
        if "@" in identifier:
            account = Account.get_or_none(Account.email == identifier.lower())
        else:
            account = _account_named(identifier)
        return None if account is None else (AccountInfo.of(account), account.password_hash)

    def find_login(self, identifier: str, client_address: str) -> LoginCandidate | None:
        """What a password login needs to know about `identifier`, in one trip: the account, its password
        hash and whether a password login to it has come from `client_address` before."""
        found = self.find_account(identifier)
        if found is None:
            return None
        account, password_hash = found
        known = LoginAddress.select().where((LoginAddress.account == account.id)
                                            & (LoginAddress.tag == self.signer.address_tag(client_address))).exists()
        return LoginCandidate(account, password_hash, known)

    def record_login(self, account_id: int, client_address: str, checked_hash: str,
                     upgraded_hash: str | None = None) -> None:
        """After a right password: remembers the address (the newest _KNOWN_ADDRESSES per account) and
        stores the upgraded hash, unless the password changed meanwhile (then `checked_hash` is stale)."""
        now = time.time()
        with Account._meta.database.atomic():
            if upgraded_hash is not None:
                Account.update(password_hash=upgraded_hash).where(
                    (Account.id == account_id) & (Account.password_hash == checked_hash)).execute()
            (LoginAddress.insert(account=account_id, tag=self.signer.address_tag(client_address), last_login_at=now)
             .on_conflict(conflict_target=[LoginAddress.account, LoginAddress.tag],
                          update={LoginAddress.last_login_at: now}).execute())
            newest = (LoginAddress.select(LoginAddress.id).where(LoginAddress.account == account_id)
                      .order_by(LoginAddress.last_login_at.desc()).limit(_KNOWN_ADDRESSES))
            LoginAddress.delete().where((LoginAddress.account == account_id)
                                        & LoginAddress.id.not_in(newest)).execute()

    def account(self, account_id: int) -> AccountInfo:
        account = Account.get_or_none(Account.id == account_id)
        if account is None:
            raise Unauthorized("This account no longer exists.")
        return AccountInfo.of(account)

    def account_by_username(self, username: str) -> AccountInfo:
        account = _account_named(username)
        if account is None:
            raise NotFound(f"No account named {username!r} (names that differ only in case need the exact "
                           "spelling); see 'lockr-local user list'.")
        return AccountInfo.of(account)

    def rename_account(self, account_id: int, new_username: str) -> AccountInfo:
        """Gives the account another username; 409 when another account has it in any case."""
        new_username = validate_username(new_username)
        with Account._meta.database.atomic():
            if Account.select().where(_same_username(new_username) & (Account.id != account_id)).exists():
                raise AlreadyExists("That username is already registered (in some case); pick another.",
                                    field="username")
            try:
                Account.update(username=new_username).where(Account.id == account_id).execute()
            except peewee.IntegrityError as exc:  # taken meanwhile (another node, another process)
                raise AlreadyExists("That username is already registered (in some case); pick another.",
                                    field="username") from exc
        return self.account(account_id)

    def list_accounts(self) -> list[AccountInfo]:
        return [AccountInfo.of(a) for a in Account.select().order_by(Account.username)]

    def set_password_hash(self, account_id: int, password_hash: str) -> None:
        Account.update(password_hash=password_hash).where(Account.id == account_id).execute()

    def set_quota(self, account_id: int, quota: int) -> None:
        if quota < 0:
            raise BadRequest("A quota cannot be negative.")
        Account.update(quota=quota).where(Account.id == account_id).execute()

    def delete_account(self, account_id: int) -> int:
        """Deletes the account, its tokens, sessions and files; returns how many files went."""
        db = Account._meta.database
        with db.atomic():
            rows = list(StoredFile.select(StoredFile.file_id, StoredFile.region)
                        .where((StoredFile.owner == account_id) & (StoredFile.inline == False)))  # noqa: E712
            sessions = list(UploadSession.select().where(UploadSession.owner == account_id))
            StoredFile.delete().where(StoredFile.owner == account_id).execute()
            UploadSession.delete().where(UploadSession.owner == account_id).execute()
            ApiToken.delete().where(ApiToken.account == account_id).execute()
            LoginAddress.delete().where(LoginAddress.account == account_id).execute()
            Account.delete().where(Account.id == account_id).execute()
        # Bytes go after the rows: a crash in between leaves unlisted bytes for fsck, never a row without bytes.
        for row in rows:
            self.blobs.delete(BlobLocation(row.region, row.file_id))
        for session in sessions:
            self.blobs.delete_partial(session.region, session.session_id)
        return len(rows)

    # -- tokens -------------------------------------------------------------------------------

    def _insert_token(self, account: Account | int, name: str, expires_in: int | None = None,
                      now: float | None = None) -> str:
        if _CONTROL.search(name):
            raise BadRequest("A token's name is a label without control characters.", field="name")
        lifetime = token_lifetime(expires_in)
        token = new_token()
        now = time.time() if now is None else now
        ApiToken.create(account=account, token_hash=token_hash(token), prefix=token[:10], name=name[:100],
                        created_at=now, expires_at=now + lifetime if lifetime is not None else None)
        return token

    def create_token(self, account_id: int, name: str = "", expires_in: int | None = None,
                     now: float | None = None) -> str:
        """A new token for the account; `expires_in` seconds after `now` (default: this moment) it stops
        working (401 token_expired)."""
        return self._insert_token(account_id, name, expires_in, now)

    def revoke_token(self, token: str, account_id: int | None = None) -> bool:
        query = ApiToken.update(revoked=True).where(ApiToken.token_hash == token_hash(token))
        if account_id is not None:
            query = query.where(ApiToken.account == account_id)
        return query.execute() > 0

    def list_tokens(self, account_id: int) -> list[ApiToken]:
        return list(ApiToken.select().where(ApiToken.account == account_id).order_by(ApiToken.id))

    def revoke_token_id(self, account_id: int, token_id: int) -> None:
        updated = (ApiToken.update(revoked=True)
                   .where((ApiToken.id == token_id) & (ApiToken.account == account_id)).execute())
        if not updated:
            raise NotFound("No such token.")

    def authenticate_token(self, token: str) -> Principal:
        """The account a Bearer token belongs to; 401 for unknown, revoked or expired tokens."""
        return self.token_account(token)[0]

    def token_account(self, token: str) -> tuple[Principal, AccountInfo]:
        """Who a Bearer token speaks for, with the account row joined in the same query (uploads read it
        for their region and quota checks); 401 for unknown or revoked tokens, 401 token_expired for expired
        ones. Every way a token is presented (API, WebDAV, uploads, the web pages' session) comes here."""
        db = ApiToken._meta.database
        row = _TOKEN_ACCOUNT.fetch_one(db, token_hash(token))
        if row is None:
            raise Unauthorized("That API token is not valid; log in again to get a new one.")
        token_id, revoked, last_used_at, expires_at, *account_columns = row
        if revoked:
            raise Unauthorized("That API token was revoked; log in again to get a new one.")
        now = time.time()
        if expires_at is not None and now >= expires_at:
            raise TokenExpired(f"That API token expired at {iso8601(expires_at)}. Get a new one: log in again "
                               "('lockr-local login'), make one on the account page (/account), or ask the "
                               "server's admin ('lockr-local token create USERNAME --expires 30d').",
                               expiredAt=iso8601(expires_at))
        if last_used_at is None or now - last_used_at > 60:
            ApiToken.update(last_used_at=now).where(ApiToken.id == token_id).execute()
        account = AccountInfo(*account_columns)
        return Principal(account.id, account.username), account

    def authenticate_and_admit(self, token: str, region: str | None, size: int | None,
                               key_hash: str | None) -> tuple[Principal, str]:
        """A Bearer-token upload's one database trip before its body: who, then admit_upload's checks.

        Small uploads are dominated by round trips to the database thread, so the token's account
        row, already joined for authentication, is what the region and quota checks read.
        """
        principal, account = self.token_account(token)
        return principal, self.admit_upload(principal, region, size, key_hash, account)

    # -- uploads ------------------------------------------------------------------------------

    def upload_region(self, principal: Principal, region: str | None, account: AccountInfo | None = None) -> str:
        """The region an upload lands in: the asked one (400 when unknown), else the account's default."""
        if region:
            self.blobs.check_region(region)
            return region
        if principal.account_id is not None:
            account = account or self.account(principal.account_id)
            if account.default_region in self.blobs.regions():
                return account.default_region
        return self.settings.default_region

    def admit_upload(self, principal: Principal, region: str | None, size: int | None,
                     key_hash: str | None, account: AccountInfo | None = None) -> str:
        """One database trip before an upload's body is read: its region, then check_upload's refusals.

        `account` is the principal's account row when the caller has just read it."""
        if principal.account_id is not None and account is None:
            account = self.account(principal.account_id)
        resolved = self.upload_region(principal, region, account)
        self.check_upload(principal, size, key_hash, account)
        if size:
            self.blobs.check_space(resolved, size)
        return resolved

    def check_upload(self, principal: Principal, size: int | None, key_hash: str | None,
                     account: AccountInfo | None = None) -> None:
        """Refuses an upload before any byte is read: guest rules, the plan's object size, the quota."""
        if principal.is_guest:
            if not self.settings.guest_uploads:
                raise GuestUploadsDisabled()
            if key_hash is not None:
                raise GuestKeyForbidden()
        if size is None:
            return
        if size < 0:
            raise BadRequest("The size cannot be negative.", field="size")
        self.check_object_size(principal, size)
        if principal.account_id is not None:
            account = account or self.account(principal.account_id)
            if account.used_bytes + account.reserved_bytes + size > account.quota:
                raise self._quota_error(account, size)

    def max_object_size(self, principal: Principal) -> int:
        return self.settings.guest_max_object if principal.is_guest else self.settings.account_max_object

    def check_object_size(self, principal: Principal, size: int) -> None:
        limit = self.max_object_size(principal)
        if size > limit:
            plan = "guests" if principal.is_guest else "accounts"
            hint = " Create an account for larger files." if principal.is_guest else ""
            raise TooLarge(f"The file is {format_size(size)}; {plan} may upload at most {format_size(limit)} "
                           f"per file.{hint}", limit=limit)

    @staticmethod
    def _quota_error(account: AccountInfo, size: int) -> QuotaExceeded:
        free = max(0, account.quota - account.used_bytes - account.reserved_bytes)
        return QuotaExceeded(f"This upload needs {format_size(size)} but only {format_size(free)} of your "
                             f"{format_size(account.quota)} quota is free; delete files or ask for more.",
                             quota=account.quota, used=account.used_bytes + account.reserved_bytes)

    def record_file(self, principal: Principal, new: NewFile, reserved: int = 0,
                    session_id: str | None = None, data: bytes | None = None) -> FileInfo:
        """Makes durable bytes a listed file: charges the quota (releasing a reservation) in one transaction.
        With `data`, the bytes themselves go into the database in that transaction (an inline file).

        Raises QuotaExceeded when the account filled up meanwhile; the caller then deletes the bytes.
        """
        db = StoredFile._meta.database
        key_hash = new.key_hash if new.key_protected else (
            self.signer.protect_key_hash(new.key_hash) if new.key_hash else None)
        claim_token, claim_hash = None, new.claim_hash
        if principal.is_guest and claim_hash is None:
            # Only the uploader gets this answer; the share link alone must not let anyone register the file.
            claim_token = new_claim_token()
            claim_hash = token_hash(claim_token)
        created_at = time.time()
        with db.atomic():
            if principal.account_id is not None:
                if not charge_quota(principal.account_id, new.size, -reserved):
                    raise self._quota_error(self.account(principal.account_id), new.size)
            if session_id is not None:
                UploadSession.delete().where(UploadSession.session_id == session_id).execute()
            _INSERT_FILE.execute(db, new.file_id, principal.account_id, new.name, new.size, new.type, new.region,
                                 new.sha256, new.sha1, new.md5, new.check.crc32c, new.check.crc32, key_hash, new.mtime,
                                 created_at, data is not None, claim_hash)
            if data is not None:
                insert_inline(db, new.file_id, data)
                self.faults.hit("before_inline_commit")
        return FileInfo(new.file_id, new.name, new.size, new.type, new.region, new.sha256, key_hash, 0,
                        principal.account_id, created_at, new.mtime, new.sha1, new.md5, new.check, data is not None,
                        claim_token)

    # -- files --------------------------------------------------------------------------------

    def list_files(self, account_id: int, limit: int, cursor: str | None) -> tuple[list[FileInfo], str | None]:
        """One page of the account's files, oldest first; `next` is the cursor of the following page."""
        query = StoredFile.select().where((StoredFile.owner == account_id) & StoredFile.live())
        if cursor:
            after = parse_count(cursor)  # a row's seq: past 64 bits SQLite would raise OverflowError
            if after is None:
                raise BadRequest("The cursor is not one this server gave out.", field="cursor")
            query = query.where(StoredFile.seq > after)
        rows = list(query.order_by(StoredFile.seq).limit(limit + 1))
        next_cursor = str(rows[limit - 1].seq) if len(rows) > limit else None
        return [FileInfo.of(r) for r in rows[:limit]], next_cursor

    def owned_file(self, principal: Principal, file_id: str) -> FileInfo:
        """The caller's own file; 404 for unknown ids, other people's files and files in the trash alike (only
        the owner is told that a file is in the trash, and how to get it back)."""
        row = StoredFile.get_or_none(StoredFile.file_id == file_id)
        if row is None or principal.account_id is None or row.owner_id != principal.account_id:
            raise NotFound("You have no file with that id.")
        if row.deleted_at is not None:
            raise NotFound(f"That file is in your trash; POST /api/v1/trash/{file_id}/restore brings it back.")
        return FileInfo.of(row)

    def file(self, file_id: str) -> FileInfo:
        """A file anyone with its id may ask for (downloads, share links); 404 while it is in the trash."""
        row = StoredFile.get_or_none((StoredFile.file_id == file_id) & StoredFile.live())
        if row is None:
            raise NotFound("No file has that id; it may have been deleted.")
        return FileInfo.of(row)

    def register_file(self, principal: Principal, file_id: str, claim_token: str | None) -> FileInfo:
        """Attaches a guest upload to the caller's account (charging its quota) when `claim_token` is the one
        its upload's answer gave; idempotent for own files. The id alone is in every share link, so it is
        never enough: a file without a claim hash (from before schema 5) cannot be registered."""
        if principal.account_id is None:
            raise Unauthorized("Log in to attach files to an account.")
        db = StoredFile._meta.database
        with db.atomic():
            row = StoredFile.get_or_none((StoredFile.file_id == file_id) & StoredFile.live())
            if row is None or (row.owner_id is not None and row.owner_id != principal.account_id):
                raise NotFound("No unclaimed file has that id.")
            if row.owner_id == principal.account_id:
                return FileInfo.of(row)
            if not claim_token:
                raise ClaimRequired()
            if not claim_matches(claim_token, row.claim_hash):
                raise WrongClaim() if row.claim_hash else ClaimRequired(
                    "This guest upload was made before uploads got a claimToken; it cannot be added to an "
                    "account. Its share link keeps working.")
            if not charge_quota(principal.account_id, row.size):
                raise self._quota_error(self.account(principal.account_id), row.size)
            claimed = (StoredFile.update(owner=principal.account_id, claim_hash=None)
                       .where((StoredFile.file_id == file_id) & StoredFile.owner.is_null()).execute())
            if not claimed:
                raise NotFound("No unclaimed file has that id.")
        return self.file(file_id)

    def set_key(self, principal: Principal, file_id: str, key_hash: str | None) -> FileInfo:
        """Sets (or with None clears) a file's key; links signed before stop working."""
        if principal.is_guest:
            raise GuestKeyForbidden()
        self.owned_file(principal, file_id)
        protected = self.signer.protect_key_hash(key_hash) if key_hash else None
        (StoredFile.update(key_hash=protected, key_version=StoredFile.key_version + 1)
         .where(StoredFile.file_id == file_id).execute())
        return self.file(file_id)

    def delete_file(self, principal: Principal, file_id: str) -> StoredAt | None:
        """Moves the file to the trash (trash.py), where it keeps its bytes and quota: None, nothing to
        delete. With `trash_retention` 0: removes the row and releases the quota, and returns where the
        bytes are for the caller to delete next (FileBytes.delete, on an I/O thread: never a filesystem
        call on the database thread), so that no row ever lacks its bytes."""
        info = self.owned_file(principal, file_id)
        assert principal.account_id is not None  # owned_file refuses guests
        db = StoredFile._meta.database
        if self.settings.trash_retention > 0:
            trashed = (StoredFile.update(deleted_at=time.time())
                       .where((StoredFile.file_id == file_id) & StoredFile.live()).execute())
            if not trashed:
                raise NotFound("You have no file with that id.")
            return None
        with db.atomic():
            deleted = StoredFile.delete().where(StoredFile.file_id == file_id).execute()
            if not deleted:
                raise NotFound("You have no file with that id.")
            charge_quota(principal.account_id, -info.size, must_fit=False)
        return info.stored

    def check_download_key(self, principal: Principal, info: FileInfo, key_hash: str | None) -> None:
        """Keyed files need a matching keyHash from anyone but their authenticated owner."""
        if info.key_hash is None:
            return
        if principal.account_id is not None and principal.account_id == info.owner_id:
            return
        if not key_hash:
            raise KeyRequired()
        if not self.signer.key_hash_matches(key_hash, info.key_hash):
            raise WrongKey()

    # -- maintenance --------------------------------------------------------------------------

    def reconcile_reservations(self) -> None:
        """At start-up: reservations are exactly the sizes of open sessions (direct uploads died with us)."""
        db = Account._meta.database
        with db.atomic():
            Account.update(reserved_bytes=0).execute()
            totals = (UploadSession.select(UploadSession.owner, peewee.fn.SUM(UploadSession.reserved))
                      .where(UploadSession.owner.is_null(False)).group_by(UploadSession.owner).tuples())
            for owner_id, reserved in cast("Iterable[tuple[int, int]]", totals):  # stubs: rows are models
                Account.update(reserved_bytes=reserved).where(Account.id == owner_id).execute()


def _same_username(username: str) -> peewee.Expression:
    """Usernames are one identity whatever the case (ASCII only, so SQL lower() agrees with Python's);
    matches the index on lower(username) (models.py)."""
    return peewee.fn.LOWER(Account.username) == username.lower()


def _account_named(username: str) -> Account | None:
    """The account with this username in any case. A store from before schema 5 may hold names that
    differ only in case (fsck reports them): then only the exact spelling finds one of them."""
    found = list(Account.select().where(_same_username(username)).limit(10))
    if len(found) == 1:
        return found[0]
    return next((account for account in found if account.username == username), None)


def validate_username(username: object) -> str:
    if not isinstance(username, str) or not _USERNAME.fullmatch(username):
        raise BadRequest("A username has 1-64 letters, digits, '.', '_' or '-' and starts with a letter or digit.",
                         field="username")
    return username


def validate_email(email: object) -> str:
    if not isinstance(email, str) or len(email.strip()) > _EMAIL_MAX or not _EMAIL.fullmatch(email.strip()):
        raise BadRequest("That does not look like an email address.", field="email")
    return email.strip().lower()


def validate_password(password: object) -> str:
    if not isinstance(password, str) or len(password) < 8:
        raise BadRequest("A password needs at least 8 characters.", field="password")
    if len(password) > 1024:
        raise BadRequest("A password may have at most 1024 characters.", field="password")
    return password
