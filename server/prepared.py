"""Prepared: a peewee query whose SQL is built once per database and then run with new values.

Building a query's SQL in peewee costs 0.3-0.6 ms here, twenty times what SQLite takes to run it. On
the hot paths (every upload's token check and file row, every session chunk's offset) that was a
sixth of a small upload's server time. The SQL is still peewee's own, for whichever database the
`database_url` names; only the building is skipped.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Sequence

import peewee

# Stand-ins for the values while the SQL is built: unlike any real value, so their positions among
# the built query's parameters say where each value goes.
_MARK_INT = -(2**62) + 7_919
_MARK_FLOAT = -1.234e300


def _marker(kind: type, index: int) -> Any:
    if kind is str:
        return f"\x00lockr-parameter-{index}\x00"
    if kind is int:
        return _MARK_INT - index
    if kind is float:
        return _MARK_FLOAT * (index + 1)
    raise TypeError(f"Prepared queries take str, int or float values, not {kind.__name__}")


class _Compiled:
    """The SQL for one database, where each parameter comes from, and how to read selected columns."""

    def __init__(self, sql: str, slots: list[int | None], constants: list[Any],
                 columns: list[peewee.Field | None]) -> None:
        self.sql = sql
        self.slots = slots
        self.constants = constants
        self.columns = columns

    def params(self, values: Sequence[Any]) -> list[Any]:
        return [values[slot] if slot is not None else constant for slot, constant in zip(self.slots, self.constants)]


class Prepared:
    """`Prepared(build, str, int)`: build(marker_str, marker_int) returns the query; `execute(db, a, b)`
    runs its SQL with a and b, `fetch_one(db, ...)` returns the first row with Python values."""

    def __init__(self, build: Callable[..., peewee.Query], *kinds: type) -> None:
        self._build = build
        self._kinds = kinds
        self._compiled: dict[type, _Compiled] = {}
        self._lock = threading.Lock()

    def _for(self, database: peewee.Database) -> _Compiled:
        # By the kind of the database behind the models' proxy: SQLite and PostgreSQL stores may serve in one
        # process (tests, `migrate`), and their SQL differs (placeholders, quoting).
        kind = type(getattr(database, "obj", None) or database)
        compiled = self._compiled.get(kind)
        if compiled is None:
            with self._lock:
                compiled = self._compiled.get(kind) or self._compile(database)
                self._compiled[kind] = compiled
        return compiled

    def _compile(self, database: peewee.Database) -> _Compiled:
        markers = [_marker(kind, index) for index, kind in enumerate(self._kinds)]
        query = self._build(*markers)
        sql, params = database.get_sql_context().sql(query).query()
        keyed = {(type(marker), marker): index for index, marker in enumerate(markers)}
        slots = [keyed.get((type(param), param)) for param in params]
        missing = set(range(len(markers))) - {slot for slot in slots if slot is not None}
        if missing:
            raise ValueError(f"values {sorted(missing)} do not appear in the query's parameters")
        columns = [column if isinstance(column, peewee.Field) else None
                   for column in getattr(query, "_returning", None) or []]
        return _Compiled(sql, slots, [None if slot is not None else param for slot, param in zip(slots, params)],
                         columns)

    def execute(self, database: peewee.Database, *values: Any) -> Any:
        """Runs the query with `values`; returns the database cursor (rowcount for updates)."""
        compiled = self._for(database)
        return database.execute_sql(compiled.sql, compiled.params(values))

    def fetch_one(self, database: peewee.Database, *values: Any) -> tuple[Any, ...] | None:
        """The first row of a select, each column converted as its field converts it."""
        compiled = self._for(database)
        row = database.execute_sql(compiled.sql, compiled.params(values)).fetchone()
        if row is None:
            return None
        return tuple(column.python_value(value) if column is not None else value
                     for column, value in zip(compiled.columns, row))
