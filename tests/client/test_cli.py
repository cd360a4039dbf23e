"""The client commands as a user runs them: subprocesses against the real server, a test keyring."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from tests.client.conftest import Cli, random_file, sha256_of
from tests.helpers import Account, ThreadedServer, create_account

NO_KEYRING = "keyring.backends.fail.Keyring"


def login(cli: Cli, url: str, account: Account, *extra: str, **env: str) -> None:
    done = cli.run("login", "--endpoint", url, "--identifier", account.username, "--password-stdin", *extra,
                   input=account.password + "\n", **env)
    assert done.returncode == 0, done.stderr
    assert f"Logged in to {url}" in done.stderr


def test_login_upload_ls_download_rm_round_trip(cli: Cli, server: ThreadedServer, account: Account,
                                                tmp_path: Path) -> None:
    login(cli, server.url, account)
    assert account.token not in cli.keyring_file.read_text()  # login issues its own token
    assert "lockr-local\n" + server.url in json.loads(cli.keyring_file.read_text())
    first = random_file(tmp_path / "one.bin", 300_000)
    second = tmp_path / "two words.txt"
    second.write_text("hello")
    up = cli.run("upload", str(first), str(second))
    assert up.returncode == 0, up.stderr
    links = up.stdout.split()
    assert len(links) == 2 and all(link.startswith(server.url) for link in links)

    ls = cli.run("ls")
    assert ls.returncode == 0, ls.stderr
    header, *rows = ls.stdout.splitlines()
    assert header.split() == ["ID", "SIZE", "NAME", "KEY", "DATE"]
    assert sorted(row.split()[3] for row in rows) == ["one.bin", "two"]
    listed = json.loads(cli.run("ls", "--json").stdout)
    by_name = {item["name"]: item for item in listed}
    assert by_name["one.bin"]["size"] == 300_000 and by_name["one.bin"]["sha256"] == sha256_of(first)

    out = tmp_path / "back"
    out.mkdir()
    down = cli.run("download", by_name["one.bin"]["id"], "-o", str(out))
    assert down.returncode == 0, down.stderr
    assert (out / "one.bin").read_bytes() == first.read_bytes()
    down = cli.run("download", by_name["two words.txt"]["downloadUrl"], "-o", str(out / "copy.txt"))
    assert down.returncode == 0 and (out / "copy.txt").read_text() == "hello"
    again = cli.run("download", by_name["one.bin"]["id"], "-o", str(out))
    assert again.returncode == 1 and "--force" in again.stderr

    rm = cli.run("rm", *(item["id"] for item in listed))
    assert rm.returncode == 0, rm.stderr
    assert json.loads(cli.run("ls", "--json").stdout) == []
    missing = cli.run("rm", listed[0]["id"])
    assert missing.returncode == 1 and listed[0]["id"] in missing.stderr


def test_upload_with_key_needs_the_phrase_to_download(cli: Cli, server: ThreadedServer, account: Account,
                                                      tmp_path: Path) -> None:
    source = tmp_path / "secret.txt"
    source.write_text("the plans")
    up = cli.run("upload", str(source), "--key", "correct battery", endpoint=server.url, LOCKR_TOKEN=account.token,
                 LOCKR_ENDPOINT=server.url)
    assert up.returncode == 0, up.stderr
    link = json.loads(cli.run("ls", "--json", LOCKR_TOKEN=account.token, LOCKR_ENDPOINT=server.url).stdout)[0]
    assert link["hasKey"]
    guest = cli.run("download", link["downloadUrl"], "-o", str(tmp_path / "a.txt"))
    assert guest.returncode == 1 and "key" in guest.stderr.lower()
    keyed = cli.run("download", link["downloadUrl"], "-o", str(tmp_path / "b.txt"), "--key", "correct battery")
    assert keyed.returncode == 0, keyed.stderr
    assert (tmp_path / "b.txt").read_text() == "the plans"


def test_lockr_token_overrides_the_keyring_and_token_flag_overrides_both(cli: Cli, server: ThreadedServer,
                                                                          account: Account) -> None:
    other = create_account(server.url)
    login(cli, server.url, account)
    (Path(cli.home) / "f.txt").write_text("x")
    cli.run("upload", str(Path(cli.home) / "f.txt"), "--token", other.token)
    assert json.loads(cli.run("ls", "--json").stdout) == []
    assert len(json.loads(cli.run("ls", "--json", LOCKR_TOKEN=other.token).stdout)) == 1
    assert json.loads(cli.run("ls", "--json", "--token", account.token, LOCKR_TOKEN=other.token).stdout) == []


def test_endpoint_comes_from_lockr_endpoint_when_nothing_is_saved(cli: Cli, server: ThreadedServer,
                                                                  account: Account) -> None:
    done = cli.run("ls", LOCKR_ENDPOINT=server.url, LOCKR_TOKEN=account.token)
    assert done.returncode == 0, done.stderr
    nothing = cli.run("ls", LOCKR_TOKEN=account.token)
    assert nothing.returncode == 2 and "lockr-local login --endpoint URL" in nothing.stderr


def test_not_logged_in_says_how_to_log_in(cli: Cli, server: ThreadedServer) -> None:
    done = cli.run("ls", "--endpoint", server.url)
    assert done.returncode == 4
    assert f"Not logged in to {server.url}: run 'lockr-local login --endpoint {server.url}'" in done.stderr
    upload = cli.run("upload", "README.md", "--endpoint", server.url)
    assert upload.returncode == 4 and "--guest" in upload.stderr
    guest = cli.run("upload", "README.md", "--endpoint", server.url, "--guest")
    assert guest.returncode == 0 and guest.stdout.startswith(f"{server.url}/download/"), guest.stderr


def test_a_guest_upload_prints_its_claim_code_and_register_adds_it_to_an_account(
        cli: Cli, server: ThreadedServer, account: Account, tmp_path: Path) -> None:
    source = tmp_path / "guest notes.txt"
    source.write_text("kept for later")
    guest = cli.run("upload", str(source), "--endpoint", server.url, "--guest")
    assert guest.returncode == 0, guest.stderr
    link = guest.stdout.strip()
    hint = next(line for line in guest.stderr.splitlines() if "lockr-local register" in line)
    file_id, claim = hint.split("lockr-local register ", 1)[1].split(" --claim ")
    assert link.endswith(file_id)
    env = {"LOCKR_TOKEN": account.token, "LOCKR_ENDPOINT": server.url}
    stolen = cli.run("register", link, "--claim", "not-the-code", **env)
    assert stolen.returncode != 0 and "claimToken" in stolen.stderr
    done = cli.run("register", link, "--claim", claim.strip(), **env)
    assert done.returncode == 0, done.stderr
    assert [item["id"] for item in json.loads(cli.run("ls", "--json", **env).stdout)] == [file_id]


def test_logout_forgets_the_token(cli: Cli, server: ThreadedServer, account: Account) -> None:
    login(cli, server.url, account)
    assert cli.run("ls").returncode == 0
    out = cli.run("logout")
    assert out.returncode == 0 and "Logged out" in out.stderr
    assert json.loads(cli.keyring_file.read_text()) == {}
    assert cli.run("ls").returncode == 4


def test_wrong_password_is_refused_with_exit_4(cli: Cli, server: ThreadedServer, account: Account) -> None:
    done = cli.run("login", "--endpoint", server.url, "--identifier", account.username, "--password-stdin",
                   input="wrong password\n")
    assert done.returncode == 4 and done.stderr.strip()
    assert not cli.keyring_file.exists()


def test_a_keyring_chainer_with_no_backend_behind_it_counts_as_no_keyring(monkeypatch: pytest.MonkeyPatch) -> None:
    # A desktop with no Secret Service or KWallet running gives keyring an empty chainer; which
    # backends a machine has cannot be chosen from a test, so the empty chainer is built here.
    import keyring
    from keyring.backends import chainer

    from lockr_local.credentials import keyring_usable

    empty = chainer.ChainerBackend()
    monkeypatch.setattr(chainer.ChainerBackend, "backends", [], raising=False)
    monkeypatch.setattr(keyring, "get_keyring", lambda: empty)
    assert keyring_usable() is False


@pytest.mark.parametrize("backend", [NO_KEYRING])
def test_without_a_keyring_login_names_the_fallbacks_and_stores_nothing(cli: Cli, server: ThreadedServer,
                                                                        account: Account, backend: str) -> None:
    done = cli.run("login", "--endpoint", server.url, "--identifier", account.username, "--password-stdin",
                   input=account.password + "\n", PYTHON_KEYRING_BACKEND=backend)
    assert done.returncode != 0
    assert "LOCKR_TOKEN" in done.stderr and "--insecure-file-store" in done.stderr
    assert not (cli.home / "config" / "lockr-local" / "tokens.json").exists()
    ls = cli.run("ls", "--endpoint", server.url, PYTHON_KEYRING_BACKEND=backend)
    assert ls.returncode == 4 and "LOCKR_TOKEN" in ls.stderr and "--insecure-file-store" in ls.stderr
    with_env = cli.run("ls", "--endpoint", server.url, PYTHON_KEYRING_BACKEND=backend, LOCKR_TOKEN=account.token)
    assert with_env.returncode == 0, with_env.stderr


def test_insecure_file_store_is_opt_in_and_private(cli: Cli, server: ThreadedServer, account: Account) -> None:
    login(cli, server.url, account, "--insecure-file-store", PYTHON_KEYRING_BACKEND=NO_KEYRING)
    tokens = cli.home / "config" / "lockr-local" / "tokens.json"
    assert stat.S_IMODE(os.stat(tokens).st_mode) == 0o600
    assert server.url in json.loads(tokens.read_text())
    assert cli.run("ls", PYTHON_KEYRING_BACKEND=NO_KEYRING).returncode == 0
    assert cli.run("logout", PYTHON_KEYRING_BACKEND=NO_KEYRING).returncode == 0
    assert json.loads(tokens.read_text()) == {}


def test_upload_of_a_missing_file_reports_it_and_goes_on(cli: Cli, server: ThreadedServer, account: Account,
                                                         tmp_path: Path) -> None:
    good = tmp_path / "good.txt"
    good.write_text("ok")
    done = cli.run("upload", str(tmp_path / "nope.txt"), str(good), "--endpoint", server.url,
                   LOCKR_TOKEN=account.token)
    assert done.returncode == 1 and "nope.txt: no such file" in done.stderr
    assert len(done.stdout.split()) == 1


def test_server_errors_reach_the_user_as_sentences(cli: Cli, server_factory, tmp_path: Path) -> None:
    served = server_factory(default_quota="1000")
    account = create_account(served.url)
    big = tmp_path / "big.bin"
    big.write_bytes(b"q" * 5000)
    done = cli.run("upload", str(big), "--endpoint", served.url, LOCKR_TOKEN=account.token)
    assert done.returncode == 1 and "quota" in done.stderr.lower()
    bad = cli.run("ls", "--endpoint", served.url, LOCKR_TOKEN="lkr_bogus")
    assert bad.returncode == 4 and "log in" in bad.stderr.lower()


@pytest.mark.parametrize(("value", "ok"), [("256K", True), ("8M", True), ("1000", False), ("3K", False)])
def test_chunk_size_option_accepts_multiples_of_256k(cli: Cli, value: str, ok: bool) -> None:
    done = cli.run("upload", "--chunk-size", value, "--guest", "--endpoint", "http://127.0.0.1:9", "/nonexistent")
    assert (done.returncode != 2) == ok, done.stderr


def run_on_a_terminal(cli: Cli, *args: str) -> tuple[int, str, str]:
    """Runs the CLI with stderr on a 120-column pseudo-terminal (where progress bars show); returns the
    exit code, stdout and what the terminal showed."""
    import fcntl
    import pty
    import struct
    import subprocess
    import sys
    import termios

    from tests.helpers import REPO

    main, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "lockr_local", *args], stdout=subprocess.PIPE, stderr=terminal,
                            env=cli.env, cwd=REPO)
    os.close(terminal)
    shown = b""
    while True:
        try:
            data = os.read(main, 65536)
        except OSError:  # EIO: the terminal's other end is closed
            break
        if not data:
            break
        shown += data
    os.close(main)
    code = proc.wait(timeout=60)
    assert proc.stdout is not None
    return code, proc.stdout.read().decode(), shown.decode("utf-8", "replace")


def test_upload_on_a_terminal_shows_bytes_rate_and_eta(cli: Cli, server: ThreadedServer, account: Account,
                                                       tmp_path: Path) -> None:
    import re

    source = random_file(tmp_path / "bar.bin", 3 * 1024 * 1024)
    code, out, text = run_on_a_terminal(cli, "upload", str(source), "--endpoint", server.url, "--token", account.token)
    assert code == 0
    assert out.strip().startswith(server.url)
    # tqdm: "bar.bin: 100%|####| 3.00M/3.00M [00:00<00:00, 41.2MB/s]": done/total, elapsed<ETA, rate.
    assert re.search(r"bar\.bin: 100%.*3\.00MB?/3\.00MB? \[\d\d:\d\d<\d\d:\d\d, +[\d.]+[kMG]?B/s\]", text), text


def test_download_on_a_terminal_resumes_a_partial_file_with_a_progress_bar(cli: Cli, server: ThreadedServer,
                                                                           account: Account, tmp_path: Path) -> None:
    import re

    source = random_file(tmp_path / "film.bin", 3 * 1024 * 1024)
    up = cli.run("upload", str(source), "--endpoint", server.url, "--token", account.token)
    assert up.returncode == 0, up.stderr
    link = up.stdout.strip()
    out = tmp_path / "back"
    out.mkdir()
    # What an interrupted earlier run left behind: the first MiB, in FILE.part.
    (out / "film.bin.part").write_bytes(source.read_bytes()[:1024 * 1024])
    code, _, text = run_on_a_terminal(cli, "download", link, "-o", str(out), "--endpoint", server.url,
                                      "--token", account.token)
    assert code == 0, text
    assert (out / "film.bin").read_bytes() == source.read_bytes()
    assert not (out / "film.bin.part").exists()
    assert re.search(r"download: 100%.*3\.00MB?/3\.00MB? \[\d\d:\d\d<\d\d:\d\d, +[\d.]+[kMG]?B/s\]", text), text
    assert "sha256 verified, resumed at byte 1048576" in text, text

def test_rclone_config_prints_the_token_login_stored_in_the_keyring(cli: Cli, server: ThreadedServer,
                                                                    account: Account) -> None:
    import configparser

    import requests

    login(cli, server.url, account)
    printed = cli.run("rclone-config", "--endpoint", server.url)
    assert printed.returncode == 0, printed.stderr
    remote = configparser.ConfigParser()
    remote.read_string(printed.stdout)
    token = remote["lockr"]["bearer_token"]
    assert token != account.token  # login's own token, read back from the keyring
    assert token in cli.keyring_file.read_text()
    files = requests.get(f"{server.url}/api/v1/files", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert files.status_code == 200
