"""Fixtures: settings on a temp data folder, the real app on a loopback port, and the CI skip guard."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

import pytest

from lockr_local.config import Settings, load_settings
from tests.helpers import TEST_ENV, ThreadedServer


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    """With LOCKR_REQUIRE_ALL=1 (as in CI), a test skipped for a missing tool fails instead."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("LOCKR_REQUIRE_ALL") == "1" and report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under LOCKR_REQUIRE_ALL=1 (CI must run everything): {reason}"


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
def server(tmp_path: Path) -> Iterator[ThreadedServer]:
    """The real app in a background thread, for tests written with blocking clients (requests, CLI)."""
    threaded = ThreadedServer(make_settings(tmp_path / "data")).start()
    yield threaded
    threaded.stop()


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Any]:
    """Builds threaded servers with setting overrides: server_factory(rate_guest=1, ...)."""
    started: list[ThreadedServer] = []

    def factory(**overrides: Any) -> ThreadedServer:
        threaded = ThreadedServer(make_settings(tmp_path / f"data{len(started)}", **overrides)).start()
        started.append(threaded)
        return threaded

    yield factory
    for threaded in started:
        threaded.stop()
