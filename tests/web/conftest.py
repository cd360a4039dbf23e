"""Fixtures for the web tests: one real server and one headless Chromium per module, and screenshots."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.conftest import make_settings
from tests.helpers import ThreadedServer

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def web_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedServer]:
    """One real server for a module's browser tests (each test signs up its own account)."""
    threaded = ThreadedServer(make_settings(tmp_path_factory.mktemp("web") / "data")).start()
    yield threaded
    threaded.stop()


@contextmanager
def launched_chromium() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright (never `playwright install`); skips the test without it."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """One browser per module (the tray's page tests launch theirs the same way)."""
    with launched_chromium() as browser:
        yield browser


def check_screenshot(page: Any, path: Path) -> Path:
    """Saves a full-page screenshot and checks it shows something (more than one colour)."""
    from PIL import Image

    page.screenshot(path=str(path), full_page=True)
    with Image.open(path) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1_000_000)
    assert colours is None or len(colours) > 1, f"screenshot {path} is blank"
    return path
