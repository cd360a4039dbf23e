"""Fixtures: settings on a temp data folder, the real app on a loopback port, the database each server
uses (SQLite, or PostgreSQL for modules marked `both_databases`), and the CI skip guard."""

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
    """Every test of a module marked `both_databases` whose servers come from the `database` fixture runs
    once per database (the fixtures are parametrized; the tests are not copied)."""
    if "database" in metafunc.fixturenames and metafunc.definition.get_closest_marker("both_databases"):
        wanted = os.environ.get("LOCKR_TEST_DATABASES", ",".join(DATABASES)).split(",")
        metafunc.parametrize("database", [kind for kind in DATABASES if kind in wanted], indirect=True)


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
def server(tmp_path: Path, database: TestDatabases) -> Iterator[ThreadedServer]:
    """The real app in a background thread, for tests written with blocking clients (requests, CLI)."""
    threaded = ThreadedServer(database.settings(tmp_path / "data")).start()
    yield threaded
    threaded.stop()


@pytest.fixture
def server_factory(tmp_path: Path, database: TestDatabases) -> Iterator[Any]:
    """Builds threaded servers with setting overrides: server_factory(rate_guest=1, ...); each has a store
    (and database) of its own."""
    started: list[ThreadedServer] = []

    def factory(**overrides: Any) -> ThreadedServer:
        threaded = ThreadedServer(database.settings(tmp_path / f"data{len(started)}", **overrides)).start()
        started.append(threaded)
        return threaded

    yield factory
    for threaded in started:
        threaded.stop()
