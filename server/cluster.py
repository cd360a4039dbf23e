"""What nodes sharing one PostgreSQL database agree on through it: the signing secret, one node at a time
for each background job and each upload session's writer, and the password-login buckets.

On SQLite there is one node (one process owns the data folder): the locks are always granted and the
login buckets stay in memory (auth.RateLimiter). Every function here runs on the database thread (db.py),
whose one connection holds the session-level advisory locks: a node that dies loses its connection,
and PostgreSQL releases its locks with it.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from typing import Awaitable, Callable

import peewee

from lockr_local.errors import RateLimited
from lockr_local.server.db import Database
from lockr_local.server.models import LoginBucket, Meta, bound_database

# The Meta key of the store's signing secret (hex) when the database keeps it.
SECRET_KEY = "secret_key"

# Advisory lock keys are 64-bit numbers shared with every other user of the database: ours start with
# "lockr" in ASCII (like models._SCHEMA_LOCK) and end with a byte per kind.
_JOB_LOCKS = {"reaper": 0x6C6F636B7201, "backfill-scan": 0x6C6F636B7202}
# Held shared by every running node, and exclusively by a node doing its start-up clean-up alone.
_NODES_LOCK = 0x6C6F636B7200
_SESSION_LOCK_CLASS = 0x6C6F636B  # the first int4 of a session's two-int advisory lock key


def _postgresql() -> peewee.Database | None:
    database = bound_database()
    return database if isinstance(database, peewee.PostgresqlDatabase) else None


def shared_secret(seed: bytes | None) -> bytes:
    """The store's signing secret, kept in the database: the first node to start inserts one (`seed`, the
    secret a single node used before, so that its signed links and stored key hashes stay valid; else a
    new random one) and every node reads the same row back."""
    candidate = seed if seed else secrets.token_bytes(32)
    Meta.insert(key=SECRET_KEY, value=candidate.hex()).on_conflict_ignore().execute()
    return bytes.fromhex(Meta.get_by_id(SECRET_KEY).value)


def try_lock_job(job: str) -> bool:
    """Takes the job's lock for this node unless another node holds it (False: skip this run)."""
    database = _postgresql()
    if database is None:
        return True
    return bool(database.execute_sql("SELECT pg_try_advisory_lock(%s)", (_JOB_LOCKS[job],)).fetchone()[0])


def unlock_job(job: str) -> None:
    database = _postgresql()
    if database is not None:
        database.execute_sql("SELECT pg_advisory_unlock(%s)", (_JOB_LOCKS[job],))


def start_alone() -> bool:
    """Before a node's start-up clean-up: True when no other node is running on this database (always on
    SQLite, where one process owns the store). A node alone holds the nodes lock exclusively until
    `join_nodes`, so that a node starting meanwhile waits for that clean-up to end and does not count
    itself alone too."""
    database = _postgresql()
    if database is None:
        return True
    return bool(database.execute_sql("SELECT pg_try_advisory_lock(%s)", (_NODES_LOCK,)).fetchone()[0])


def join_nodes(alone: bool) -> None:
    """Counts this node as running from now until its connection ends (the nodes lock held shared; it
    waits while a node alone does its start-up clean-up); `alone`: the node's exclusive hold from
    start_alone is let go after the shared one is taken, so that no other node sees it absent meanwhile."""
    database = _postgresql()
    if database is None:
        return
    database.execute_sql("SELECT pg_advisory_lock_shared(%s)", (_NODES_LOCK,))
    if alone:
        database.execute_sql("SELECT pg_advisory_unlock(%s)", (_NODES_LOCK,))


def one_node_at_a_time(db: Database, job: str, run: Callable[[], Awaitable[int]]) -> Callable[[], Awaitable[int]]:
    """`run` made a job that one node at a time does: a node that finds another node's run under way
    skips its own (that run does the same work) and counts 0."""
    async def exclusive() -> int:
        if not await db.run(try_lock_job, job):
            logging.getLogger("lockr.server").debug("skipping the %s run: another node is doing it", job)
            return 0
        try:
            return await run()
        finally:
            await db.run(unlock_job, job)
    return exclusive


def _session_key(session_id: str) -> int:
    # A signed int4 from the id: two sessions sharing one only make each other wait (rare), never collide.
    return int.from_bytes(hashlib.sha256(session_id.encode()).digest()[:4], "big", signed=True)


def try_lock_session(session_id: str) -> bool:
    """Claims the session's writer lock for this node unless another node's request is writing it."""
    database = _postgresql()
    if database is None:
        return True
    row = database.execute_sql("SELECT pg_try_advisory_lock(%s, %s)",
                               (_SESSION_LOCK_CLASS, _session_key(session_id))).fetchone()
    return bool(row[0])


def unlock_session(session_id: str) -> None:
    database = _postgresql()
    if database is not None:
        database.execute_sql("SELECT pg_advisory_unlock(%s, %s)", (_SESSION_LOCK_CLASS, _session_key(session_id)))


def hit_login_buckets(limits: list[tuple[str, float, int]], cost: float = 1.0, now: float | None = None) -> None:
    """auth.RateLimiter.hit_all on rows every node sees: takes `cost` from every (key, rate, burst) bucket
    or from none (RateLimited). The rows are locked (FOR UPDATE) in key order, so that two nodes counting
    the same attempt at once count it twice, never once, and never deadlock."""
    now = time.time() if now is None else now
    database = bound_database()
    keys = sorted({key for key, _, _ in limits})
    with database.atomic():
        # A bucket left alone for an hour is full again (rate_login is per minute at the least): forget it.
        LoginBucket.delete().where(LoginBucket.updated < now - 3600).execute()
        LoginBucket.insert_many([{"key": key, "tokens": -1.0, "updated": now} for key in keys]
                                ).on_conflict_ignore().execute()
        rows = {row.key: row for row in LoginBucket.select().where(LoginBucket.key.in_(keys))
                .order_by(LoginBucket.key).for_update()}
        tokens: dict[str, float] = {}
        waits = []
        for key, rate, burst in limits:
            row = rows[key]
            # -1 marks a row just inserted: a new bucket starts full.
            level = float(burst) if row.tokens < 0 else min(float(burst), row.tokens + max(0.0, now - row.updated) * rate)
            tokens[key] = level
            if level < cost:
                waits.append((cost - level) / rate if rate > 0 else 3600)
        if waits:
            raise RateLimited(max(waits))
        for key, level in tokens.items():
            LoginBucket.update(tokens=level - cost, updated=now).where(LoginBucket.key == key).execute()
