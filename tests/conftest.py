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
def server(tmp_path: Path, blob_regions: dict[str, str]) -> Iterator[ThreadedServer]:
    """The real app in a background thread, for tests written with blocking clients (requests, CLI)."""
    threaded = ThreadedServer(make_settings(tmp_path / "data", **blob_regions)).start()
    yield threaded
    threaded.stop()


@pytest.fixture
def server_factory(tmp_path: Path, blob_regions: dict[str, str]) -> Iterator[Any]:
    """Builds threaded servers with setting overrides: server_factory(rate_guest=1, ...)."""
    started: list[ThreadedServer] = []

    def factory(**overrides: Any) -> ThreadedServer:
        settings = {**(blob_regions if "regions" not in overrides else {}), **overrides}
        threaded = ThreadedServer(make_settings(tmp_path / f"data{len(started)}", **settings)).start()
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


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marker = metafunc.definition.get_closest_marker("blob_backends")
    if marker is not None and "blob_backend" in metafunc.fixturenames and len(marker.args) > 1:
        metafunc.parametrize("blob_backend", marker.args, indirect=True)


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
