"""Client commands fail at once, in one line naming the URL and the next step, on what retrying cannot clear;
what can clear (a 5xx) is retried, and each retry is said on stderr as it starts; -v logs the requests."""

from __future__ import annotations

import socket
import time

import pytest

from tests.client.conftest import Cli
from tests.errorproxy import ErrorProxy
from tests.helpers import Account, ThreadedServer


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def https_of(url: str) -> str:
    return url.replace("http://", "https://", 1)


# (case, endpoint maker, what the one line says)
CASES = [
    ("closed port", lambda url: f"http://127.0.0.1:{closed_port()}",
     ["the connection was refused", "is the lockr server running on that port"]),
    ("dns failure", lambda url: "http://lockr-nowhere.invalid:8080",
     ["Cannot reach http://lockr-nowhere.invalid:8080", "host name does not resolve", "--endpoint"]),
    ("https to http", https_of, ["TLS handshake", "speaks plain HTTP", "use --endpoint http://127.0.0.1:"]),
]
COMMANDS = [["ls"], ["rm", "0" * 32], ["download", "0" * 32, "-o", "{tmp}"], ["upload", "{tmp}/a.txt"],
            ["login", "--identifier", "bob", "--password-stdin", "--insecure-file-store"]]


@pytest.mark.parametrize("case,endpoint_of,says", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("command", COMMANDS, ids=lambda command: command[0])
def test_unreachable_endpoint_fails_within_10_seconds_with_one_line(cli: Cli, server: ThreadedServer, tmp_path,
                                                                    case, endpoint_of, says, command):
    (tmp_path / "a.txt").write_text("hello")
    endpoint = endpoint_of(server.url)
    args = [part.replace("{tmp}", str(tmp_path)) for part in command]
    started = time.monotonic()
    result = cli.run(*args, "--endpoint", endpoint, input="a password\n", timeout=30, LOCKR_TOKEN="lkr_whatever")
    took = time.monotonic() - started
    assert took < 10, f"{case}: took {took:.1f} s"
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"lockr-local: Cannot reach {endpoint}")
    for words in says:
        assert words in lines[0]
    assert "Traceback" not in result.stderr and "HTTPConnectionPool" not in result.stderr


def test_a_5xx_is_retried_and_each_retry_is_shown(cli: Cli, server: ThreadedServer, account: Account):
    with ErrorProxy(int(server.url.rsplit(":", 1)[1]), status=503) as proxy:
        proxy.fail_next(2)
        result = cli.run("ls", "--endpoint", proxy.url, "--token", account.token, timeout=60)
    assert result.returncode == 0, result.stderr
    retries = [line for line in result.stderr.splitlines() if "retry" in line]
    assert len(retries) == 2, result.stderr
    assert retries[0].startswith(f"lockr-local: {proxy.url}/api/v1/files answered HTTP 503")
    assert "retry 1 of 8 in" in retries[0] and "retry 2 of 8 in" in retries[1]


def test_a_4xx_is_not_retried(cli: Cli, server: ThreadedServer, account: Account):
    result = cli.run("rm", "f" * 32, "--endpoint", server.url, "--token", account.token, "-v")
    assert result.returncode == 1
    requests_made = [line for line in result.stderr.splitlines() if "DELETE" in line]
    assert requests_made == [line for line in requests_made if "-> 404" in line] and len(requests_made) == 1


def test_verbose_logs_each_request_without_query_values(cli: Cli, server: ThreadedServer, account: Account,
                                                        tmp_path):
    (tmp_path / "n.txt").write_text("note")
    uploaded = cli.run("upload", str(tmp_path / "n.txt"), "--endpoint", server.url, "--token", account.token,
                       "--key", "a phrase", "-q")
    assert uploaded.returncode == 0, uploaded.stderr
    result = cli.run("download", uploaded.stdout.strip(), "-o", str(tmp_path / "out.txt"), "--key", "a phrase",
                     "--endpoint", server.url, "-v", "-q")
    assert result.returncode == 0, result.stderr
    logged = [line for line in result.stderr.splitlines() if " -> " in line]
    assert any(line.startswith("lockr-local: GET ") and "-> 200 OK" in line for line in logged), result.stderr
    assert "keyHash=..." in result.stderr
    assert "Bearer" not in result.stderr and account.token not in result.stderr
