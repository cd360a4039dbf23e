"""Group commit: small uploads whose bytes are ready at the same time share one transaction and one commit.

A small (inline) upload's record is its whole durable write: token check, burst limit, quota, row and
bytes in one transaction (ingest.py, inline.py). Its commit is a WAL fsync (SQLite, synchronous=FULL) or
a WAL flush (PostgreSQL), and on this kind of machine that fsync, not the SQL, is most of the upload's
time on the database thread. So the records are queued, and whenever the database thread gets to the
queue it takes every record waiting there and runs them in one transaction:

- each record runs inside its own SAVEPOINT (peewee's nested `atomic()`): a record that fails (quota
  exceeded, burst limit, wrong token, a constraint, an Idempotency-Key replay) rolls back only its own
  work and gets its own error; the others go on;
- the checks stay exact: a record runs after the earlier ones of its group, in the same transaction, so
  it sees their usage (charge_quota's conditional UPDATE) and their burst allowance;
- one commit makes every record of the group durable; only then is any of them answered (a failed commit
  fails them all, and nothing of the group is stored);
- a record that met a database error other than a constraint (PostgreSQL's deadlock with another node
  that locks two accounts in the other order, say) runs again alone, in a transaction of its own, after
  the group's commit: only an error it meets alone is its answer.

Nothing waits to make a group: a record that finds the database thread idle runs at once, alone (without
the extra savepoint), and those that arrive while a commit is under way form the next group. One
connection's uploads therefore cost what they did; concurrent ones (several connections, several sync
agents) share commits.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from typing import Any, Callable, TypeVar, cast

import peewee

from lockr_local.server.db import Database
from lockr_local.server.faults import Faults
from lockr_local.server.metrics import Metrics

T = TypeVar("T")


@dataclass
class _Failed:
    """A record's error, handed to its waiter (never raised on the database thread)."""

    error: BaseException


@dataclass
class _Waiting:
    record: Callable[[], Any]
    answer: asyncio.Future[Any]


class GroupCommit:
    """Runs records on the database thread, as many in one transaction as are waiting (module docstring)."""

    def __init__(self, db: Database, faults: Faults, metrics: Metrics) -> None:
        self.db = db
        self.faults = faults
        self.metrics = metrics
        # Filled on the IOLoop, emptied on the database thread: the lock keeps `_queued` true exactly
        # while a drain that will take the waiting records is queued on that thread.
        self._lock = threading.Lock()
        self._waiting: list[_Waiting] = []
        self._queued = False

    @property
    def waiting(self) -> int:
        """Records waiting for the database thread (for tests and /metrics)."""
        return len(self._waiting)

    async def run(self, record: Callable[..., T], *args: Any) -> T:
        """Runs `record(*args)` on the database thread inside a transaction, and returns (or raises) what it
        did once that transaction has committed."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Any] = loop.create_future()
        waiting = _Waiting(lambda: record(*args), answer)
        with self._lock:
            self._waiting.append(waiting)
            start, self._queued = not self._queued, True
        if start:
            try:
                self.db.start(self._drain).add_done_callback(self._answer)
            except BaseException:  # the database thread is gone (the server is closing): nothing was queued
                with self._lock:
                    self._waiting.remove(waiting)
                    self._queued = False
                raise
        outcome = await answer
        if isinstance(outcome, _Failed):
            raise outcome.error
        return cast(T, outcome)

    def _drain(self) -> list[tuple[_Waiting, Any]]:
        """On the database thread: every waiting record in one transaction, then one commit."""
        with self._lock:
            group, self._waiting, self._queued = self._waiting, [], False
        try:
            return self._commit(group)
        except BaseException as exc:  # the begin or the commit failed: nothing of the group is stored
            return [(waiting, _Failed(exc)) for waiting in group]

    def _commit(self, group: list[_Waiting]) -> list[tuple[_Waiting, Any]]:
        if len(group) == 1:
            # Alone: the record's own transaction is the group's (no savepoint, as without group commit).
            return [(group[0], _attempt(group[0].record))]
        database = self.db.peewee
        with database.atomic():
            outcomes = [_attempt(waiting.record, savepoint=database) for waiting in group]
        self.faults.hit("after_group_commit")
        # Alone, after the group's commit: records that met a database error in the group (module docstring).
        return [(waiting, _attempt(waiting.record) if _retry_alone(outcome) else outcome)
                for waiting, outcome in zip(group, outcomes)]

    def _answer(self, drained: asyncio.Future[list[tuple[_Waiting, Any]]]) -> None:
        """On the IOLoop, once the group committed (or failed): every record's waiter gets its outcome."""
        results = drained.result()
        self.metrics.group_commit_size.observe(len(results))
        for waiting, outcome in results:
            if not waiting.answer.done():
                waiting.answer.set_result(outcome)


def _attempt(record: Callable[[], Any], savepoint: peewee.Database | None = None) -> Any:
    """The record's result, or _Failed with its error; with `savepoint`, inside a savepoint of that database
    (rolled back on the error)."""
    try:
        if savepoint is None:
            return record()
        with savepoint.atomic():
            return record()
    except Exception as exc:
        return _Failed(exc)


def _retry_alone(outcome: Any) -> bool:
    return (isinstance(outcome, _Failed) and isinstance(outcome.error, peewee.DatabaseError)
            and not isinstance(outcome.error, peewee.IntegrityError))
