"""The local setup/control page against a real server: the one-time link, refusals, sign-in errors, the
keyring and its fallback, and the agent starting after setup (no display needed: the page is HTTP)."""

from __future__ import annotations

import html
import json
import re
import stat
from pathlib import Path

import keyring
import pytest
import requests
from keyring.backends import fail

from lockr_local.tray.app import TrayApp
from lockr_local.tray.config import TrayConfig
from tests.helpers import Account, ThreadedServer, wait_for


def signed_in(app: TrayApp, path: str = "/settings") -> tuple[requests.Session, str]:
    """A browser-like session that followed the one-time link; returns it and the page's base URL."""
    session = requests.Session()
    response = session.get(app.server.open_url(path), timeout=10)
    assert response.status_code == 200, response.text
    return session, f"http://127.0.0.1:{app.server.port}"


def submit(session: requests.Session, base: str, **fields: str) -> requests.Response:
    data = {"_xsrf": session.cookies.get("_xsrf") or "", **fields}
    return session.post(f"{base}/settings", data=data, timeout=30, allow_redirects=False)


def error_text(response: requests.Response) -> str:
    match = re.search(r'id="error">([^<]*)<', response.text)
    assert match, response.text
    return html.unescape(match.group(1))


def test_the_link_works_once_and_nothing_else_gets_in(tray: TrayApp) -> None:
    url = tray.server.open_url("/settings")
    first = requests.Session()
    assert first.get(url, timeout=10).status_code == 200
    assert first.get(f"http://127.0.0.1:{tray.server.port}/", timeout=10).status_code == 200
    assert requests.get(url, timeout=10).status_code == 403  # spent
    assert requests.get(f"http://127.0.0.1:{tray.server.port}/settings", timeout=10).status_code == 403
    rebinding = first.get(f"http://127.0.0.1:{tray.server.port}/settings", headers={"Host": f"evil.example:{tray.server.port}"},
                          timeout=10)
    assert rebinding.status_code == 403


def test_a_post_without_the_xsrf_field_is_refused(tray: TrayApp, server: ThreadedServer) -> None:
    session, base = signed_in(tray)
    response = session.post(f"{base}/settings", data={"endpoint": server.url}, timeout=10, allow_redirects=False)
    assert response.status_code == 403
    assert not (Path.home() / "config" / "lockr-local" / "tray.json").exists()


@pytest.mark.parametrize("case, fields, field, message", [
    ("wrong password", {"password": "not the password"}, "password", "check both and try again"),
    ("no identifier", {"identifier": ""}, "identifier", "username or email"),
    ("relative folder", {"folder": "Documents"}, "folder", "full path"),
    ("folder inside a file", {"folder": "{home}/notes.txt/Lockr"}, "folder", "is a file, not a folder"),
    ("not a URL", {"endpoint": "lockr.example.org"}, "endpoint", "must be a url"),
    ("unreachable", {"endpoint": "http://127.0.0.1:9"}, "endpoint", "check the server address"),
    ("not a lockr server", {"endpoint": "{server}/nothing-here"}, "endpoint", "not as a lockr server"),
    ("bad remote folder", {"remote_folder": "../up"}, "remote_folder", "cannot be used"),
])
def test_bad_setup_says_what_to_fix_at_its_field_and_stores_nothing(
        tray: TrayApp, server: ThreadedServer, account: Account, home: Path, case: str, fields: dict[str, str],
        field: str, message: str) -> None:
    (home / "notes.txt").write_text("a file, not a folder\n")
    session, base = signed_in(tray)
    form = {"endpoint": server.url, "identifier": account.username, "password": account.password,
            "folder": str(home / "Lockr")}
    form.update({name: value.format(home=home, server=server.url) for name, value in fields.items()})
    response = submit(session, base, **form)
    assert response.status_code == 400, case
    assert message in error_text(response).lower(), error_text(response)
    assert f'data-field="{field}"' in response.text, response.text
    assert re.search(rf'id="{field}"[^>]*aria-invalid="true"', response.text), response.text
    for name in ("endpoint", "identifier", "folder"):  # what was typed stays, to be corrected
        assert f'value="{html.escape(form[name])}"' in response.text, name
    assert account.password not in response.text
    assert not (home / "keyring.json").exists()
    assert not (home / "config" / "lockr-local" / "tray.json").exists()
    assert not (home / "Lockr").exists()
    assert tray.status().state == "not_configured"


def test_setup_stores_the_token_in_the_keyring_and_the_agent_uploads_the_folder(
        tray: TrayApp, server: ThreadedServer, account: Account, home: Path) -> None:
    folder = home / "Lockr"
    folder.mkdir()
    (folder / "notes.txt").write_text("first file\n")
    session, base = signed_in(tray)
    response = submit(session, base, endpoint=server.url + "/", identifier=account.email, password=account.password,
                      folder=str(folder), autostart="1")
    assert response.status_code == 303, response.text
    token = json.loads((home / "keyring.json").read_text())[f"lockr-local\n{server.url}"]
    assert token and token != account.password
    config = TrayConfig.load()
    assert (config.endpoint, config.folder, config.autostart) == (server.url, str(folder), True)
    assert "Exec=" in (home / "config" / "autostart" / "lockr-local.desktop").read_text()

    def remote_names() -> list[str]:
        body = requests.get(f"{server.url}/api/v1/files", headers=account.auth, timeout=10).json()
        return [f["name"] for f in body["files"]]

    # Under a remote folder named like the folder (the field left empty).
    wait_for(lambda: remote_names() == ["Lockr/notes.txt"], timeout=30, message="the agent to upload notes.txt")
    wait_for(lambda: tray.status().state == "idle", timeout=30, message="the agent to be idle")
    page = session.get(f"{base}/", timeout=10)
    assert "up to date" in page.text and "notes.txt" in page.text


def test_settings_without_a_password_keeps_the_sign_in_and_moves_the_folder(
        tray: TrayApp, server: ThreadedServer, account: Account, home: Path) -> None:
    session, base = signed_in(tray)
    assert submit(session, base, endpoint=server.url, identifier=account.username, password=account.password,
                  folder=str(home / "One")).status_code == 303
    assert submit(session, base, endpoint=server.url, identifier=account.username, password="",
                  folder=str(home / "Two")).status_code == 303
    assert TrayConfig.load().folder == str(home / "Two") and (home / "Two").is_dir()
    assert "autostart" not in [p.name for p in (home / "config").iterdir()]  # not asked for, not written


def test_a_login_entry_that_cannot_be_written_is_shown_with_the_next_step_and_setup_stands(
        tray: TrayApp, server: ThreadedServer, account: Account, home: Path) -> None:
    (home / "config").mkdir()
    (home / "config" / "autostart").write_text("a file where the autostart folder should be")
    session, base = signed_in(tray)
    response = submit(session, base, endpoint=server.url, identifier=account.username, password=account.password,
                      folder=str(home / "Lockr"), autostart="1")
    assert response.status_code == 303, response.text
    page = session.get(base + response.headers["Location"], timeout=10)
    assert "Saved." in page.text
    shown = error_text(page)
    assert "Could not write the login entry" in shown and "save again" in shown, shown
    assert '<meta http-equiv="refresh"' not in page.text  # the message stays until read
    config = TrayConfig.load()
    assert config.folder == str(home / "Lockr") and config.autostart is False  # the entry as it really is


def test_without_a_keyring_the_page_offers_the_private_file_and_never_stores_silently(
        tray: TrayApp, server: ThreadedServer, account: Account, home: Path) -> None:
    keyring.set_keyring(fail.Keyring())
    session, base = signed_in(tray)
    assert 'id="keyring-missing"' in session.get(f"{base}/settings", timeout=10).text
    form = {"endpoint": server.url, "identifier": account.username, "password": account.password,
            "folder": str(home / "Lockr")}
    refused = submit(session, base, **form)
    assert refused.status_code == 400
    assert "LOCKR_TOKEN" in error_text(refused) and "private file" in error_text(refused)
    assert not (home / "config" / "lockr-local" / "tokens.json").exists()

    accepted = submit(session, base, **form, file_store="1")
    assert accepted.status_code == 303
    tokens = home / "config" / "lockr-local" / "tokens.json"
    assert stat.S_IMODE(tokens.stat().st_mode) == 0o600
    token = json.loads(tokens.read_text())[server.url]
    assert requests.get(f"{server.url}/api/v1/account", headers={"Authorization": f"Bearer {token}"},
                        timeout=10).status_code == 200
    wait_for(lambda: tray.status().state in ("idle", "syncing"), timeout=30, message="the agent to start")


def test_the_remote_folder_field_puts_the_files_under_that_remote_folder(
        tray: TrayApp, server: ThreadedServer, account: Account, home: Path) -> None:
    folder = home / "Lockr"
    folder.mkdir()
    (folder / "notes.txt").write_text("first file\n")
    session, base = signed_in(tray)
    assert 'id="remote_folder"' in session.get(f"{base}/settings", timeout=10).text
    response = submit(session, base, endpoint=server.url, identifier=account.username, password=account.password,
                      folder=str(folder), remote_folder="/laptop/notes/")
    assert response.status_code == 303, response.text
    assert TrayConfig.load().remote_folder == "laptop/notes"

    def remote_names() -> list[str]:
        body = requests.get(f"{server.url}/api/v1/files", headers=account.auth, timeout=10).json()
        return [f["name"] for f in body["files"]]

    wait_for(lambda: remote_names() == ["laptop/notes/notes.txt"], timeout=30, message="the upload under laptop/notes")
    assert 'value="laptop/notes"' in session.get(f"{base}/settings", timeout=10).text
