"""Browser-test helpers: sign up through the form, drop files on the page, collect downloads."""

from __future__ import annotations

import base64
import itertools
from pathlib import Path
from typing import Any

import requests

from tests.helpers import Account

_names = itertools.count(1)
PASSWORD = "correct horse battery"
TIMEOUT_MS = 15_000


def sign_up(page: Any, base_url: str) -> str:
    """Creates an account through the /account form; returns the username."""
    username = f"web{next(_names)}"
    page.goto(f"{base_url}/account")
    page.fill("#signup-username", username)
    page.fill("#signup-email", f"{username}@example.com")
    page.fill("#signup-password", PASSWORD)
    page.click("#signup-form button[type=submit]")
    page.wait_for_selector("#logout-button")
    return username


def api_account(base_url: str, username: str) -> Account:
    """The same account seen from a script: log in through the API for a token."""
    response = requests.post(f"{base_url}/api/v1/login", json={"identifier": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return Account(username, f"{username}@example.com", PASSWORD, response.json()["token"])


def drop_files(page: Any, selector: str, files: dict[str, bytes]) -> None:
    """Drops files on an element the way a real drag from the desktop does (a DataTransfer of Files)."""
    payload = {name: base64.b64encode(data).decode() for name, data in files.items()}
    page.eval_on_selector(selector, """(zone, files) => {
        const transfer = new DataTransfer();
        for (const [name, encoded] of Object.entries(files)) {
            const bytes = Uint8Array.from(atob(encoded), c => c.charCodeAt(0));
            transfer.items.add(new File([bytes], name, {type: "application/octet-stream"}));
        }
        for (const type of ["dragenter", "dragover", "drop"]) {
            zone.dispatchEvent(new DragEvent(type, {dataTransfer: transfer, bubbles: true, cancelable: true}));
        }
    }""", payload)


def download_bytes(page: Any, click_selector: str) -> tuple[bytes, str]:
    with page.expect_download() as info:
        page.click(click_selector)
    download = info.value
    path = download.path()
    return Path(path).read_bytes(), download.suggested_filename
