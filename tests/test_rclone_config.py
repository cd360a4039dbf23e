"""`lockr-local rclone-config`: the remote section it prints and where it finds the endpoint and token."""

from __future__ import annotations

import configparser

import pytest

from lockr_local.cli import ExitStatus, main


def printed_remote(out: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(comment_prefixes=("#",))
    parser.read_string(out)
    return parser


def test_prints_an_owncloud_webdav_remote_on_the_dav_folder(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["rclone-config", "--endpoint", "https://files.example.org/", "--token", "lkr_abc",
                 "--name", "home"])
    assert code == ExitStatus.OK
    remote = printed_remote(capsys.readouterr().out)
    assert remote.sections() == ["home"]
    assert dict(remote["home"]) == {"type": "webdav", "url": "https://files.example.org/dav/",
                                    "vendor": "owncloud", "bearer_token": "lkr_abc"}


def test_endpoint_and_token_come_from_the_environment(capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCKR_ENDPOINT", "http://192.168.1.5:8080")
    monkeypatch.setenv("LOCKR_TOKEN", "lkr_from_env")
    assert main(["rclone-config"]) == ExitStatus.OK
    remote = printed_remote(capsys.readouterr().out)["lockr"]
    assert (remote["url"], remote["bearer_token"]) == ("http://192.168.1.5:8080/dav/", "lkr_from_env")


def test_without_any_token_it_says_how_to_get_one(capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOCKR_TOKEN", raising=False)
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    assert main(["rclone-config", "--endpoint", "http://127.0.0.1:9"]) == ExitStatus.AUTH
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "lockr-local login" in captured.err


@pytest.mark.parametrize("name", ["", "two words", "a:b", "[x]"])
def test_a_remote_name_rclone_cannot_use_is_refused(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rclone-config", "--token", "t", "--name", name]) == ExitStatus.USAGE
    assert capsys.readouterr().out == ""
