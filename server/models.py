"""Peewee models of the store and `open_database`, the one place that knows which database is used."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import peewee
from playhouse.db_url import connect
from playhouse.migrate import SchemaMigrator, migrate

from lockr_local.config import is_postgresql
from lockr_local.errors import StoreUnusable
from lockr_local.server.private import create_private_file, make_private_dir



class ThreadBoundDatabase(peewee.DatabaseProxy):
    """The database the models speak to, bound per thread: `initialize(db)` binds `db` to the calling thread.

    A server opens its database on its own `lockr-db` thread (db.py), where every query of it runs, so two
    servers in one process (tests, an embedding application) each see only their own database. A thread
    that bound none (the CLI's, a test's) sees the database bound last.
    """

    __slots__ = ("_local", "_last")

    def __init__(self) -> None:
        object.__setattr__(self, "_local", threading.local())
        object.__setattr__(self, "_last", None)
        super().__init__()

    @property
    def obj(self) -> peewee.Database | None:
        return getattr(self._local, "database", None) or self._last

    @obj.setter
    def obj(self, database: peewee.Database | None) -> None:
        self._local.database = database
        if database is not None:
            object.__setattr__(self, "_last", database)

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)


database_proxy = ThreadBoundDatabase()
log = logging.getLogger("lockr.server")


def bound_database() -> peewee.Database:
    """The database this thread's models speak to (open_database bound it); for the admin commands."""
    database = database_proxy.obj
    if database is None:
        raise RuntimeError("no database is open: call open_database first")
    return database

# Schema 5: the LoginAddress table (create_tables makes it), one username regardless of case, claim
# hashes for guest uploads, and upload sessions that keep only the keyHash's HMAC.
# Schema 6: the IdempotencyKey table (create_tables makes it; nothing else changes).
# Schema 7: ApiToken.expires_at, an optional expiry (null: the token lasts until revoked).
# Schema 8: StoredFile.deleted_at, set while a file is in the trash (trash.py), and its index.
SCHEMA_VERSION = 8
# A Meta key set when a store from before schema 5 is upgraded: its upload sessions still hold raw
# keyHashes, which need the server secret to protect (sessions.protect_raw_session_keys, at start-up).
RAW_SESSION_KEYS = "raw_session_keys"
# Meta keys of `lockr-local migrate` (server/migrate.py) in the store it copies into: which store it copies
# (JSON) and how far it is ("copying", then "done" in the transaction that writes the copied rows).
MIGRATION_SOURCE = "migration_source"
MIGRATION_STATE = "migration_state"


class BaseModel(peewee.Model):
    """The models' base. Their bare annotations (`id: peewee.AutoField[int]`, `owner_id: int`) are for the
    type checker only: they declare what peewee adds by itself and its stubs do not know, the `id` key of
    a model that declares none and the `<name>_id` beside each foreign key `<name>`."""

    class Meta:
        database = database_proxy


class Account(BaseModel):
    id: peewee.AutoField[int]
    username = peewee.CharField(max_length=64, unique=True)
    email = peewee.CharField(max_length=254, unique=True)
    password_hash = peewee.CharField(max_length=255)
    quota = peewee.BigIntegerField()
    used_bytes = peewee.BigIntegerField(default=0)
    reserved_bytes = peewee.BigIntegerField(default=0)
    default_region = peewee.CharField(max_length=64, null=True)
    created_at = peewee.DoubleField()


class ApiToken(BaseModel):
    id: peewee.AutoField[int]
    account_id: int
    account = peewee.ForeignKeyField(Account, backref="tokens", on_delete="CASCADE")
    token_hash = peewee.CharField(max_length=64, unique=True)
    prefix = peewee.CharField(max_length=16)
    name = peewee.CharField(max_length=100, default="")
    created_at = peewee.DoubleField()
    last_used_at = peewee.DoubleField(null=True)
    revoked = peewee.BooleanField(default=False)
    expires_at = peewee.DoubleField(null=True)


class LoginAddress(BaseModel):
    """An address a password login to the account came from (as a keyed hash, not the address itself):
    guesses made elsewhere do not hold such an address back (auth.py, Authenticator.limit_login)."""

    id: peewee.AutoField[int]
    account_id: int
    account = peewee.ForeignKeyField(Account, backref="login_addresses", on_delete="CASCADE")
    tag = peewee.CharField(max_length=64)
    last_login_at = peewee.DoubleField()

    class Meta:
        indexes = ((("account", "tag"), True),)


class StoredFile(BaseModel):
    """A complete, durable object. Rows exist only for bytes that are already fsynced in place."""

    seq = peewee.AutoField()
    file_id = peewee.CharField(max_length=32, unique=True)
    owner = peewee.ForeignKeyField(Account, backref="files", null=True, on_delete="CASCADE")
    owner_id: int | None
    name = peewee.CharField(max_length=1024)
    size = peewee.BigIntegerField()
    content_type = peewee.CharField(max_length=255)
    region = peewee.CharField(max_length=64)
    sha256 = peewee.CharField(max_length=64)
    # SHA-1 and MD5 are what rclone (ownCloud conventions) compares; "" when unknown.
    sha1 = peewee.CharField(max_length=40, default="")
    md5 = peewee.CharField(max_length=32, default="")
    # What a whole-file download checks on the way out (checks.py): CRC-32C since schema 3, zlib's
    # CRC-32 in schema 2 (and where the CRC-32C extension is missing); neither before (SHA-256 then).
    crc32c = peewee.BigIntegerField(null=True)
    crc32 = peewee.BigIntegerField(null=True)
    key_hash = peewee.CharField(max_length=64, null=True)
    key_version = peewee.IntegerField(default=0)
    # Since schema 5: SHA-256 of a guest upload's claim token (only the uploader got the token), cleared
    # when the file is registered. NULL: nobody can register it (account files; guest files from before).
    claim_hash = peewee.CharField(max_length=64, null=True)
    mtime = peewee.DoubleField(null=True)
    created_at = peewee.DoubleField()
    # Since schema 4: the bytes are an InlineBlob row, committed with this row, rather than a blob file.
    # Nullable only so that the upgrade adds it without rebuilding the table; upgrade_schema fills it in.
    inline = peewee.BooleanField(null=True, default=False)
    # Since schema 7: when the owner deleted the file into the trash (trash.py); NULL for a live file. A
    # trashed row keeps its id, bytes and quota charge until it is restored or purged. Its index is made
    # by ensure_trash_index, after upgrade_schema has added the column to an older store.
    deleted_at = peewee.DoubleField(null=True)

    class Meta:
        indexes = ((("owner", "seq"), False), (("owner", "name"), False))

    @staticmethod
    def live() -> peewee.Expression:
        """Files that are not in the trash: what listings, downloads, WebDAV and name checks see."""
        return StoredFile.deleted_at.is_null()


class InlineBlob(BaseModel):
    """The bytes of a small file, kept in the database (setting `inline_max`): one commit makes bytes and
    row durable together, so a small upload costs one WAL fsync instead of fsyncing a file, its folder
    and the WAL. A table of its own, so that listings, which read whole StoredFile rows, never read bytes."""

    file = peewee.ForeignKeyField(StoredFile, field=StoredFile.file_id, primary_key=True, on_delete="CASCADE",
                                  column_name="file_id")
    data = peewee.BlobField()


class DavFolder(BaseModel):
    """A folder made through WebDAV (MKCOL) or kept after its last file left; other folders are
    implied by names containing '/'."""

    id: peewee.AutoField[int]
    owner = peewee.ForeignKeyField(Account, backref="folders", on_delete="CASCADE")
    owner_id: int
    path = peewee.CharField(max_length=1024)
    created_at = peewee.DoubleField()

    class Meta:
        indexes = ((("owner", "path"), True),)


class UploadSession(BaseModel):
    """A resumable upload in progress; `offset` counts only bytes that are durable on disk."""

    session_id = peewee.CharField(max_length=32, primary_key=True)
    file_id = peewee.CharField(max_length=32, unique=True)
    owner = peewee.ForeignKeyField(Account, backref="sessions", null=True, on_delete="CASCADE")
    owner_id: int | None
    name = peewee.CharField(max_length=1024)
    size = peewee.BigIntegerField(null=True)
    content_type = peewee.CharField(max_length=255)
    region = peewee.CharField(max_length=64)
    key_hash = peewee.CharField(max_length=64, null=True)
    claim_hash = peewee.CharField(max_length=64, null=True)  # a guest session's, handed to its file
    offset = peewee.BigIntegerField(default=0)
    reserved = peewee.BigIntegerField(default=0)
    metadata = peewee.TextField(default="{}")
    created_at = peewee.DoubleField()
    expires_at = peewee.DoubleField()
    # Set when the upload became a StoredFile; the row stays (reserved=0) as a tombstone until it expires
    # so that a status query after completion still answers 201 with the file object.
    completed_at = peewee.DoubleField(null=True)

    class Meta:
        indexes = ((("expires_at",), False),)


class IdempotencyKey(BaseModel):
    """An upload made with an Idempotency-Key (idempotency.py), written in the same transaction as its file
    row: a retry with the same key and body answers with that file. The key itself is kept only as SHA-256."""

    id: peewee.AutoField[int]
    account_id: int
    account = peewee.ForeignKeyField(Account, backref="idempotency_keys", on_delete="CASCADE")
    key_hash = peewee.CharField(max_length=64)
    route = peewee.CharField(max_length=16)  # "upload" or "dav put": a key is for one kind of request
    # The request's fingerprint: what a retry must repeat (the body by its SHA-256 and size, and the name).
    name = peewee.CharField(max_length=1024)
    size = peewee.BigIntegerField()
    sha256 = peewee.CharField(max_length=64)
    file_id = peewee.CharField(max_length=32)
    status = peewee.IntegerField()
    expires_at = peewee.DoubleField()

    class Meta:
        indexes = ((("account", "key_hash"), True), (("expires_at",), False))


class Meta(BaseModel):
    """Key/value facts about the store itself (schema version)."""

    key = peewee.CharField(max_length=64, primary_key=True)
    value = peewee.TextField()


class LoginBucket(BaseModel):
    """A password-login token bucket that every node sharing the database counts in (cluster.py); SQLite
    stores keep theirs in memory. A table added by create_tables: older versions ignore it."""

    key = peewee.CharField(max_length=255, primary_key=True)
    tokens = peewee.DoubleField()
    updated = peewee.DoubleField(index=True)


ALL_MODELS: tuple[type[BaseModel], ...] = (Account, ApiToken, LoginAddress, StoredFile, InlineBlob, UploadSession,
                                            DavFolder, IdempotencyKey, Meta, LoginBucket)


def refuse_unfinished_migration() -> None:
    """Refuses to serve a database that `lockr-local migrate` is still copying into: its rows come last,
    in one transaction that replaces whatever is there, so a server started earlier would lose its writes."""
    row = Meta.get_or_none(Meta.key == MIGRATION_STATE)
    if row is not None and row.value != "done":
        raise StoreUnusable("This database is the target of a 'lockr-local migrate' that has not finished; run "
                            "the same migrate command again to finish it, then start the server.")


def for_update(query: peewee.Select) -> peewee.Select:
    """The query as `SELECT ... FOR UPDATE` where the database has row locks (PostgreSQL, which several
    nodes may share): the rows read stay as read until the transaction ends, and a second transaction
    that wants them waits. SQLite has none and needs none: one thread runs every transaction (db.py)."""
    return query.for_update() if database_proxy.for_update else query


def lock_account(account_id: int) -> None:
    """Holds the account's row until the transaction ends, so that changes to the account's files that
    read before they write (WebDAV's replace, move, copy, delete) run one at a time on every node."""
    list(for_update(Account.select(Account.id).where(Account.id == account_id)))


def open_database(database_url: str) -> peewee.Database:
    """Connects the models, on the calling thread (ThreadBoundDatabase), to the database named by
    `database_url` and creates missing tables.

    SQLite runs in WAL mode with synchronous=FULL so that a committed row survives power loss.
    PostgreSQL (postgresql://user:password@host:port/database) needs its driver, the `postgres` extra;
    its durability is the server's (fsync and synchronous_commit on, as they are by default).
    """
    options: dict[str, Any] = {}
    path = sqlite_file(database_url)
    if path is not None:
        # Created 0600 before SQLite opens it: SQLite makes its -wal and -shm files with the same mode.
        make_private_dir(path.parent)
        create_private_file(path)
    if database_url.startswith("sqlite"):
        options["pragmas"] = {
            "journal_mode": "wal",
            "synchronous": "full",
            "foreign_keys": 1,
            "busy_timeout": 10_000,
        }
    elif is_postgresql(database_url):
        # peewee itself notices a missing driver only when it first binds a value (an AttributeError).
        if getattr(peewee, "psycopg", None) is None and getattr(peewee, "psycopg2", None) is None:
            raise StoreUnusable("database_url names PostgreSQL, but its driver (psycopg) is not installed: "
                                "pip install 'lockr-local[postgres]' (the release executable includes it).")
        # peewee picks psycopg2 over psycopg 3 when both are installed; the `postgres` extra installs (and
        # the tests run) psycopg 3, the maintained one.
        options["prefer_psycopg3"] = True
        # As libpq reads a URL: a password with '@', ':' or '/' is written percent-encoded.
        options["unquote_user"] = options["unquote_password"] = True
    try:
        database = connect(database_url, **options)
        database_proxy.initialize(database)
        database.connect(reuse_if_open=True)
    except peewee.ImproperlyConfigured as exc:
        raise peewee.ImproperlyConfigured(
            f"{exc} database_url names PostgreSQL: install its driver with pip install 'lockr-local[postgres]'."
        ) from exc
    version = stored_schema_version(database)
    if version is not None:
        check_schema_version(version, str(path) if path is not None else without_password(database_url))
        if version < SCHEMA_VERSION and path is not None:
            saved = save_before_upgrade(database, path, version)
            log.warning("upgrading the store from schema %d to %d; the database as it was is saved in %s "
                        "(to go back to the older lockr-local, stop the server and copy it over %s)",
                        version, SCHEMA_VERSION, saved, path)
    if version == SCHEMA_VERSION and isinstance(database, peewee.PostgresqlDatabase) and schema_complete(database):
        # Other nodes may be running on it: the statements below would take a SHARE lock on every table
        # (CREATE INDEX IF NOT EXISTS takes it before it looks), waiting for their writes in progress, and
        # every write of theirs would queue behind it until this start's transaction ends.
        return database
    with database.atomic():
        if isinstance(database, peewee.PostgresqlDatabase):
            # Several nodes may start at once: one at a time creates and upgrades the schema (the lock is
            # released at commit). SQLite needs none: its write transaction already excludes the others.
            database.execute_sql("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
        database.create_tables(ALL_MODELS, safe=True)
        if isinstance(database, peewee.PostgresqlDatabase):
            bytewise_names(database)
        Meta.insert(key="schema_version", value=str(SCHEMA_VERSION)).on_conflict_ignore().execute()
        upgrade_schema(database)
        ensure_username_index(database)
        ensure_trash_index(database)
    return database


def without_password(database_url: str) -> str:
    """`database_url` fit for a message: its password replaced by ***."""
    parts = urlsplit(database_url)
    if parts.password is None:
        return database_url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def stored_schema_version(database: peewee.Database) -> int | None:
    """The store's schema version, or None for a new database (no Meta table yet)."""
    if not database.table_exists(Meta._meta.table_name):
        return None
    row = Meta.get_or_none(Meta.key == "schema_version")
    return int(row.value) if row is not None else None


def check_schema_version(version: int, where: str) -> None:
    """Refuses a store made by a newer lockr-local: this version would misread or damage it."""
    if version > SCHEMA_VERSION:
        raise StoreUnusable(f"The store {where} has schema version {version}, made by a newer lockr-local; this "
                            f"version knows schema {SCHEMA_VERSION} at most. Nothing was changed: install the "
                            "newer lockr-local again, or restore a backup made by this version.")


def save_before_upgrade(database: peewee.Database, path: Path, version: int) -> Path:
    """Before a migration changes the schema: a copy of the database through SQLite's backup API in
    DATA_DIR/backups/ (blobs are untouched by migrations, so the copy and the blobs are the old store)."""
    folder = make_private_dir(path.parent / "backups")
    target = folder / f"lockr-schema-{version}-{time.strftime('%Y%m%d-%H%M%S')}.db"
    create_private_file(target)
    copy = sqlite3.connect(target)
    try:
        database.connection().backup(copy)
        copy.execute("PRAGMA journal_mode=delete")
    finally:
        copy.close()
    return target


# Usernames are one identity whatever their case: the unique index on lower(username) says so. A store
# from before schema 5 may hold names that differ only in case; it gets the same index without
# uniqueness until the pair is resolved (fsck names it), so that it still starts.
_USERNAME_INDEX = "account_username_lower"
_USERNAME_INDEX_NOT_UNIQUE = "account_username_lower_not_unique"


def username_case_clashes() -> list[list[str]]:
    """Groups of usernames that differ only in case (each sorted), oldest store first."""
    clashing = (Account.select(peewee.fn.LOWER(Account.username)).group_by(peewee.fn.LOWER(Account.username))
                .having(peewee.fn.COUNT(Account.id) > 1))
    groups: dict[str, list[str]] = {}
    for account in Account.select(Account.username).where(peewee.fn.LOWER(Account.username).in_(clashing)
                                                           ).order_by(Account.username):
        groups.setdefault(account.username.lower(), []).append(account.username)
    return [groups[key] for key in sorted(groups)]


def ensure_username_index(database: peewee.Database) -> None:
    table = Account._meta.table_name
    clashes = username_case_clashes()
    if clashes:
        log.warning("usernames that differ only in case: %s; run 'lockr-local fsck' for the next step",
                    "; ".join(", ".join(group) for group in clashes))
        database.execute_sql(f'CREATE INDEX IF NOT EXISTS "{_USERNAME_INDEX_NOT_UNIQUE}" ON "{table}" '
                             '(lower("username"))')
        return
    database.execute_sql(f'DROP INDEX IF EXISTS "{_USERNAME_INDEX_NOT_UNIQUE}"')
    database.execute_sql(f'CREATE UNIQUE INDEX IF NOT EXISTS "{_USERNAME_INDEX}" ON "{table}" (lower("username"))')


_TRASH_INDEX = "storedfile_deleted_at"


def ensure_trash_index(database: peewee.Database) -> None:
    """The index the trash purge and the trash listing read trashed rows by (not in StoredFile.Meta:
    create_tables would make it before upgrade_schema adds the column to a store from before schema 7)."""
    table, column = StoredFile._meta.table_name, StoredFile.deleted_at.column_name
    database.execute_sql(f'CREATE INDEX IF NOT EXISTS "{_TRASH_INDEX}" ON "{table}" ("{column}")')


# The advisory lock that serialises schema creation and upgrades between nodes starting together (any
# fixed 64-bit number; "lockr" in ASCII).
_SCHEMA_LOCK = 0x6C6F636B72

# Names that are compared as ranges (a folder is every name from "docs/" up to "docs0", davstore.py):
# byte order, as SQLite compares. PostgreSQL's default collation is the database's locale, in which
# "Docs/x", "dócs/x" or (glibc, ignoring punctuation) "docs-old" fall into that range.
_BYTEWISE_NAMES = (StoredFile.name, DavFolder.path)


def schema_complete(database: peewee.Database) -> bool:
    """Whether a PostgreSQL database already has every table, index and byte-order name column that
    open_database would make (catalog reads only: no table is locked)."""
    tables = set(database.get_tables())
    for model in ALL_MODELS:
        table = model._meta.table_name
        if table not in tables:
            return False
        wanted = {index._name for index in model._meta.fields_to_index()}
        if model is Account:
            wanted.add(_USERNAME_INDEX)
        present = {index.name for index in database.get_indexes(table)}
        if not wanted <= present and not (model is Account and wanted - present == {_USERNAME_INDEX}
                                          and _USERNAME_INDEX_NOT_UNIQUE in present):
            return False
    for field in _BYTEWISE_NAMES:
        row = database.execute_sql(
            "SELECT collation_name FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND table_name = %s AND column_name = %s", (field.model._meta.table_name, field.column_name)).fetchone()
        if row is None or row[0] != "C":
            return False
    return True


def bytewise_names(database: peewee.Database) -> None:
    """Gives the name columns PostgreSQL's "C" collation (byte order), where they have another."""
    for field in _BYTEWISE_NAMES:
        table = field.model._meta.table_name
        row = database.execute_sql(
            "SELECT collation_name FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND table_name = %s AND column_name = %s", (table, field.column_name)).fetchone()
        if row is None or row[0] != "C":
            database.execute_sql(f'ALTER TABLE "{table}" ALTER COLUMN "{field.column_name}" '
                                 f'TYPE VARCHAR({field.max_length}) COLLATE "C"')


def sqlite_file(database_url: str) -> Path | None:
    """The file of a SQLite database URL (sqlite:///relative, sqlite:////absolute); None for other
    databases and in-memory ones."""
    if not database_url.startswith("sqlite:///"):
        return None
    name = database_url[len("sqlite:///"):].split("?", 1)[0]
    if not name or name == ":memory:":
        return None
    return Path(name)


def upgrade_schema(database: peewee.Database) -> None:
    """Brings a store made by an older version up to SCHEMA_VERSION, one additive step at a time."""
    version = int(Meta.get_by_id("schema_version").value)
    # Schema 4 also added the InlineBlob table, schema 6 the IdempotencyKey table: create_tables makes them.
    for since, field in ((2, StoredFile.crc32), (3, StoredFile.crc32c), (4, StoredFile.inline),
                         (5, StoredFile.claim_hash), (5, UploadSession.claim_hash), (7, ApiToken.expires_at),
                         (8, StoredFile.deleted_at)):
        table = field.model._meta.table_name
        if version < since and field.column_name not in {column.name for column in database.get_columns(table)}:
            migrate(SchemaMigrator.from_database(database).add_column(table, field.column_name, field))
    if version < 4:
        StoredFile.update(inline=False).where(StoredFile.inline.is_null()).execute()
    if version < 5:
        Meta.insert(key=RAW_SESSION_KEYS, value="1").on_conflict_ignore().execute()
    if version < SCHEMA_VERSION:
        Meta.update(value=str(SCHEMA_VERSION)).where(Meta.key == "schema_version").execute()


def integrity_ok(database: peewee.Database) -> bool:
    """SQLite's own integrity check; other databases look after themselves."""
    if isinstance(database, peewee.SqliteDatabase):
        row = database.execute_sql("PRAGMA integrity_check").fetchone()
        return bool(row) and row[0] == "ok"
    return True
