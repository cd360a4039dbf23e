"""Prepared queries run peewee's own SQL with new values, on a real SQLite file."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import peewee
import pytest

from lockr_local.server.models import Account, ApiToken, open_database
from lockr_local.server.prepared import Prepared


@pytest.fixture
def database(tmp_path: Path) -> Iterator[peewee.Database]:
    db = open_database(f"sqlite:///{tmp_path / 'lockr.db'}")
    yield db
    db.close()


def make_account(name: str, quota: int = 1000) -> Any:
    return Account.create(username=name, email=f"{name}@example.com", password_hash="x", quota=quota, created_at=1.5)


def test_a_prepared_select_returns_what_peewee_returns_with_python_values(database: peewee.Database) -> None:
    alice, bob = make_account("alice"), make_account("bob")
    ApiToken.create(account=alice, token_hash="a" * 64, prefix="a", created_at=2.0, revoked=True)
    ApiToken.create(account=bob, token_hash="b" * 64, prefix="b", created_at=3.0)
    lookup = Prepared(lambda digest: ApiToken.select(ApiToken.revoked, Account.username, Account.created_at)
                      .join(Account).where(ApiToken.token_hash == digest), str)
    assert lookup.fetch_one(database, "a" * 64) == (True, "alice", 1.5)
    assert lookup.fetch_one(database, "b" * 64) == (False, "bob", 1.5)
    assert lookup.fetch_one(database, "c" * 64) is None


def test_a_value_used_twice_fills_both_places_and_rowcount_tells_whether_it_applied(
        database: peewee.Database) -> None:
    alice = make_account("alice", quota=100)
    charge = Prepared(lambda size, account_id: Account.update(used_bytes=Account.used_bytes + size)
                      .where((Account.id == account_id) & (Account.used_bytes + size <= Account.quota)), int, int)
    assert charge.execute(database, 60, alice.id).rowcount == 1
    assert charge.execute(database, 60, alice.id).rowcount == 0  # 120 > 100: refused, nothing changed
    assert charge.execute(database, 40, alice.id).rowcount == 1
    assert Account.get_by_id(alice.id).used_bytes == 100


def test_constants_of_the_query_are_kept_and_none_is_a_value(database: peewee.Database) -> None:
    alice = make_account("alice")
    insert = Prepared(lambda digest, last_used: ApiToken.insert(account=alice.id, token_hash=digest, prefix="p",
                                                                created_at=9.0, last_used_at=last_used), str, float)
    insert.execute(database, "d" * 64, None)
    insert.execute(database, "e" * 64, 4.5)
    rows = {t.token_hash[0]: (t.account_id, t.prefix, t.created_at, t.last_used_at) for t in ApiToken.select()}
    assert rows == {"d": (alice.id, "p", 9.0, None), "e": (alice.id, "p", 9.0, 4.5)}


def test_a_value_the_query_never_uses_is_refused_when_first_run(database: peewee.Database) -> None:
    unused = Prepared(lambda digest, other: ApiToken.select().where(ApiToken.token_hash == digest), str, int)
    with pytest.raises(ValueError, match=r"values \[1\]"):
        unused.fetch_one(database, "a", 1)
    with pytest.raises(TypeError, match="bytes"):
        Prepared(lambda data: ApiToken.select(), bytes).fetch_one(database, b"x")
