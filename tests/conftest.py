"""Fixtures: settings on a temp data folder, the real app on a loopback port, the database and the blob
store each server uses (SQLite and a folder; PostgreSQL and an S3 bucket for marked modules), and the CI
skip guard."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

import pytest

from lockr_local.config import Settings, load_settings
from tests.helpers import TEST_ENV, ThreadedServer

# The databases a `both_databases` module runs on; LOCKR_TEST_DATABASES=sqlite narrows a local run.
DATABASES = ("sqlite", "postgresql")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    """With LOCKR_REQUIRE_ALL=1 (as in CI), a test skipped for a missing tool fails instead."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("LOCKR_REQUIRE_ALL") == "1" and report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under LOCKR_REQUIRE_ALL=1 (CI must run everything): {reason}"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Runs the tests of marked modules on more than one stack; the fixtures are parametrized, the tests
    are not copied. `both_databases`: SQLite and PostgreSQL (the `database` fixture); `blob_backends(...)`:
    the region in a folder and in an S3 bucket (`blob_backend`). A module with both runs on two stacks, not
    on every pairing: SQLite + folder (the single box) and PostgreSQL + bucket (the scaled-out one); a test
    marked blob_backends("folder") there (it looks at files on disk) runs on SQLite and on PostgreSQL, each
    with a folder."""
    names = [name for name in ("database", "blob_backend") if name in metafunc.fixturenames]
    databases_marker = metafunc.definition.get_closest_marker("both_databases")
    backends_marker = metafunc.definition.get_closest_marker("blob_backends")
    wanted = os.environ.get("LOCKR_TEST_DATABASES", ",".join(DATABASES)).split(",")
    databases = [kind for kind in DATABASES if kind in wanted] if databases_marker else ["sqlite"]
    backends = list(backends_marker.args) if backends_marker else ["folder"]
    if "database" not in names:
        databases = ["sqlite"]
    if "blob_backend" not in names:
        backends = ["folder"]
    count = max(len(databases), len(backends))
    if count < 2:
        return
    # Pair the n-th database with the n-th backend; the shorter list repeats its last entry.
    stacks = [(databases[min(i, len(databases) - 1)], backends[min(i, len(backends) - 1)]) for i in range(count)]
    ids = [f"{database}+{backend}" for database, backend in stacks]
    if names == ["database", "blob_backend"]:
        metafunc.parametrize(names, stacks, indirect=True, ids=ids)
    elif names == ["database"]:
        metafunc.parametrize("database", [database for database, _ in stacks], indirect=True)
    else:
        metafunc.parametrize("blob_backend", [backend for _, backend in stacks], indirect=True)


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[Any]:
    """One private PostgreSQL cluster for the whole run (started on first use, removed at the end)."""
    from tests.postgres import PostgresCluster, postgres_bin_dir

    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed (Debian: apt-get install postgresql)")
    cluster = PostgresCluster(bin_dir).start()
    yield cluster
    cluster.stop()


@pytest.fixture
def pg_url(postgres_cluster: Any) -> Iterator[str]:
    """A new, empty PostgreSQL database (no tables yet) on the private cluster, dropped at the end."""
    name = postgres_cluster.create_database(empty=True)
    yield str(postgres_cluster.url(name))
    postgres_cluster.drop_database(name)


class TestDatabases:
    """The database a test's servers use: `new_url()` is "" for SQLite (lockr.db in the data folder, the
    default) or the URL of a fresh PostgreSQL database, dropped when the test ends."""

    __test__ = False

    def __init__(self, kind: str, request: pytest.FixtureRequest) -> None:
        self.kind = kind
        self._request = request
        self._made: list[str] = []

    def new_url(self) -> str:
        if self.kind == "sqlite":
            return ""
        cluster = self._request.getfixturevalue("postgres_cluster")
        name = cluster.create_database()
        self._made.append(name)
        return str(cluster.url(name))

    def settings(self, data_dir: Path, **overrides: Any) -> Settings:
        url = self.new_url()
        return make_settings(data_dir, **({"database_url": url} if url else {}), **overrides)

    def drop_all(self) -> None:
        if self._made:
            cluster = self._request.getfixturevalue("postgres_cluster")
            for name in self._made:
                cluster.drop_database(name)


@pytest.fixture
def database(request: pytest.FixtureRequest) -> Iterator[TestDatabases]:
    """SQLite unless the module is marked `both_databases` (then each test runs on both)."""
    databases = TestDatabases(getattr(request, "param", "sqlite"), request)
    yield databases
    databases.drop_all()


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    env = dict(TEST_ENV)
    return load_settings({"data_dir": str(data_dir), "port": 0, **overrides}, env=env)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "data")


@pytest.fixture
def ctx(settings: Settings) -> Iterator[Any]:
    from lockr_local.server.app import build_context, close_context, startup_maintenance

    context = build_context(settings)
    startup_maintenance(context)
    yield context
    close_context(context)


@pytest.fixture
def app(ctx: Any) -> Any:
    from lockr_local.server.app import make_app

    return make_app(ctx)


@pytest.fixture
def http_server(request: pytest.FixtureRequest, io_loop: Any, _unused_port: Any, app: Any) -> Any:
    """Overrides pytest-tornado's server so tests run the production HTTPServer options."""
    from lockr_local.server.app import make_http_server

    server = make_http_server(app)
    server.add_socket(_unused_port[0])
    yield server
    server.stop()
    io_loop.run_sync(server.close_all_connections, timeout=10)


@pytest.fixture
def base_url(http_port: int) -> str:
    return f"http://127.0.0.1:{http_port}"


@pytest.fixture
def server(tmp_path: Path, database: TestDatabases, blob_regions: dict[str, str]) -> Iterator[ThreadedServer]:
    """The real app in a background thread, for tests written with blocking clients (requests, CLI)."""
    threaded = ThreadedServer(database.settings(tmp_path / "data", **blob_regions)).start()
    yield threaded
    threaded.stop()


@pytest.fixture
def server_factory(tmp_path: Path, database: TestDatabases, blob_regions: dict[str, str]) -> Iterator[Any]:
    """Builds threaded servers with setting overrides: server_factory(rate_guest=1, ...); each has a store
    (and database) of its own."""
    started: list[ThreadedServer] = []

    def factory(**overrides: Any) -> ThreadedServer:
        settings = {**(blob_regions if "regions" not in overrides else {}), **overrides}
        threaded = ThreadedServer(database.settings(tmp_path / f"data{len(started)}", **settings)).start()
        started.append(threaded)
        return threaded

    yield factory
    for threaded in started:
        threaded.stop()


# -- Where the blob regions of `server` and `server_factory` live ---------------------------------------
# A module marked `pytestmark = pytest.mark.blob_backends("folder", "s3")` runs each of its server tests
# twice: with the region `local` in a folder (the default, and the only kind for unmarked tests), and in a
# bucket of an S3-compatible server run as a separate process (tests/objectstore.py). A test marked
# blob_backends("folder") inside such a module stays on folders (it looks at files on disk).


@pytest.fixture
def blob_backend(request: pytest.FixtureRequest) -> str:
    return str(getattr(request, "param", "folder"))


@pytest.fixture(scope="session")
def s3_server() -> Iterator[Any]:
    """An S3-compatible server (moto's, over HTTP) for the whole run; skips where moto is not installed."""
    pytest.importorskip("moto.server", reason="the object-store tests need moto[server] (the test extra)")
    pytest.importorskip("boto3", reason="the object-store tests need boto3 (the s3 extra)")
    from tests.objectstore import S3Server

    started = S3Server().start()
    yield started
    started.stop()


@pytest.fixture
def blob_regions(request: pytest.FixtureRequest, blob_backend: str) -> dict[str, str]:
    """Setting overrides that put the default region where `blob_backend` says (none: a folder in data_dir)."""
    if blob_backend == "folder":
        return {}
    s3 = request.getfixturevalue("s3_server")
    return {"regions": f"local={s3.region_url()}"}
