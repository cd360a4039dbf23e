"""`serve` on an address other machines reach, with open sign-up or guest uploads, warns at start and
names the settings that close them; on loopback, or with both closed, it says nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import ServerProcess

WARNING = "lockr-local: warning: listening on 0.0.0.0"


def serve_stderr(tmp_path: Path, host: str, env: dict[str, str]) -> str:
    """Starts `serve`, stops it, and returns what it wrote to stderr."""
    server = ServerProcess(tmp_path / "data", env=env, args=["--host", host]).start()
    assert server.proc is not None
    server.proc.terminate()
    _, err = server.proc.communicate(timeout=15)
    server.stop()
    return err


def test_open_signup_and_guest_uploads_on_every_interface_warn_with_the_settings_to_close_them(tmp_path: Path) -> None:
    err = serve_stderr(tmp_path, "0.0.0.0", {})
    lines = [line for line in err.splitlines() if line.startswith(WARNING)]
    assert len(lines) == 1, err
    for words in ("sign-up and guest uploads open", "signup = false", "guest_uploads = false",
                  "LOCKR_SIGNUP=false", "LOCKR_GUEST_UPLOADS=false", "lockr-local user add"):
        assert words in lines[0], lines[0]


def test_guest_uploads_alone_name_only_their_setting(tmp_path: Path) -> None:
    err = serve_stderr(tmp_path, "0.0.0.0", {"LOCKR_SIGNUP": "false"})
    line = next(line for line in err.splitlines() if line.startswith(WARNING))
    assert "guest_uploads = false" in line and "signup" not in line


@pytest.mark.parametrize("host, env", [
    ("0.0.0.0", {"LOCKR_SIGNUP": "false", "LOCKR_GUEST_UPLOADS": "false"}),
    ("127.0.0.1", {}),
])
def test_no_warning_on_loopback_or_when_both_are_closed(tmp_path: Path, host: str, env: dict[str, str]) -> None:
    err = serve_stderr(tmp_path, host, env)
    assert "warning:" not in err, err
