"""LockrClient against the real server: every API call, streamed transfers, errors as exception classes."""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from lockr_local import errors
from lockr_local.client import LockrClient, RemoteFile
from lockr_local.transfer import RetryPolicy, key_hash
from tests.client.conftest import FAST_RETRY, random_file, sha256_of
from tests.helpers import REPO, ThreadedServer, create_account


def test_create_account_and_login_give_working_tokens(server: ThreadedServer) -> None:
    lockr = LockrClient(server.url)
    created = lockr.create_account("carol", "carol@example.com", "correct horse")
    assert created.token and created.username == "carol"
    fresh = LockrClient(server.url)
    token = fresh.login("carol@example.com", "correct horse")
    assert token != created.token
    assert fresh.account().username == "carol"


def test_upload_list_download_round_trip_is_byte_identical(client: LockrClient, tmp_path: Path) -> None:
    source = random_file(tmp_path / "photo.jpg", 3 * 1024 * 1024 + 17)
    seen: list[tuple[int, int]] = []
    info = client.upload(source, progress=lambda done, total: seen.append((done, total)))
    assert isinstance(info, RemoteFile)
    assert (info.name, info.size, info.type) == ("photo.jpg", source.stat().st_size, "image/jpeg")
    assert info.sha256 == sha256_of(source)
    assert seen[-1] == (info.size, info.size) and len(seen) > 2
    assert [f.id for f in client.list_files()] == [info.id]
    result = client.download(info.id, tmp_path / "copy.jpg")
    assert (tmp_path / "copy.jpg").read_bytes() == source.read_bytes()
    assert result.sha256 == info.sha256 and not (tmp_path / "copy.jpg.part").exists()


def test_upload_from_file_object_and_unicode_name(client: LockrClient, tmp_path: Path) -> None:
    data = b"x" * 1000
    info = client.upload(io.BytesIO(data), "Ünïcödé – report 100%.txt")
    assert info.name == "Ünïcödé – report 100%.txt"
    result = client.download(info.download_url, tmp_path)
    assert result.path.name == "Ünïcödé – report 100%.txt" and result.path.read_bytes() == data


def test_list_files_follows_every_page(client: LockrClient) -> None:
    ids = {client.upload(io.BytesIO(b"%d" % n), f"f{n}.txt").id for n in range(5)}
    assert {f.id for f in client.list_files(page_size=2)} == ids


def test_key_phrase_is_sent_only_as_its_hash_and_guards_downloads(client: LockrClient, server: ThreadedServer,
                                                                 tmp_path: Path) -> None:
    info = client.upload(io.BytesIO(b"secret bytes"), "s.txt", key_phrase="open sesame")
    assert info.has_key
    guest = LockrClient(server.url, retry=FAST_RETRY)
    with pytest.raises(errors.KeyRequired):
        guest.download(info.download_url, tmp_path / "no-key")
    with pytest.raises(errors.WrongKey):
        guest.download(info.download_url, tmp_path / "wrong", key_phrase="close sesame")
    guest.download(info.download_url, tmp_path / "right", key_phrase="open sesame")
    assert (tmp_path / "right").read_bytes() == b"secret bytes"
    assert key_hash("open sesame") == hashlib.sha256(b"open sesame").hexdigest()
    assert not client.clear_key(info.id).has_key
    guest.download(info.download_url, tmp_path / "cleared")
    assert client.set_key(info.id, "again").has_key


def test_register_attaches_a_guest_upload(client: LockrClient, server: ThreadedServer) -> None:
    guest_file = LockrClient(server.url).upload(io.BytesIO(b"guest"), "g.txt")
    assert guest_file.id not in {f.id for f in client.list_files()}
    assert guest_file.claim_token
    with pytest.raises(errors.Forbidden):
        client.register(guest_file.id)  # the id (in every share link) is not enough
    assert client.register(guest_file.id, guest_file.claim_token).id == guest_file.id
    assert guest_file.id in {f.id for f in client.list_files()}


def test_a_resumable_guest_upload_keeps_its_claim_token(client: LockrClient, server: ThreadedServer) -> None:
    guest = LockrClient(server.url, direct_limit=1024, chunk_size=256 * 1024)
    guest_file = guest.upload(io.BytesIO(b"s" * 300_000), "big.bin")
    assert guest_file.claim_token
    assert client.register(guest_file.id, guest_file.claim_token).size == 300_000


def test_delete_removes_the_file(client: LockrClient) -> None:
    info = client.upload(io.BytesIO(b"bye"), "bye.txt")
    client.delete(info.id)
    assert client.list_files() == []
    with pytest.raises(errors.NotFound):
        client.delete(info.id)


def test_download_resumes_from_a_partial_file(client: LockrClient, tmp_path: Path) -> None:
    source = random_file(tmp_path / "movie.bin", 2 * 1024 * 1024)
    info = client.upload(source)
    (tmp_path / "out.bin.part").write_bytes(source.read_bytes()[:700_000])
    got: list[int] = []
    result = client.download(info.id, tmp_path / "out.bin", progress=lambda done, total: got.append(done))
    assert result.resumed_from == 700_000 and got[0] > 700_000
    assert (tmp_path / "out.bin").read_bytes() == source.read_bytes()


def test_download_with_corrupt_partial_fails_verification_and_drops_it(client: LockrClient, tmp_path: Path) -> None:
    info = client.upload(io.BytesIO(b"a" * 100_000), "a.bin")
    (tmp_path / "a.bin.part").write_bytes(b"b" * 50_000)
    with pytest.raises(errors.LockrError, match="sha256"):
        client.download(info.id, tmp_path)
    assert not (tmp_path / "a.bin.part").exists() and not (tmp_path / "a.bin").exists()
    client.download(info.id, tmp_path)
    assert (tmp_path / "a.bin").read_bytes() == b"a" * 100_000


def test_download_never_replaces_an_existing_file_unless_asked(client: LockrClient, tmp_path: Path) -> None:
    info = client.upload(io.BytesIO(b"new"), "same.txt")
    (tmp_path / "same.txt").write_bytes(b"mine")
    with pytest.raises(FileExistsError):
        client.download(info.id, tmp_path)
    assert (tmp_path / "same.txt").read_bytes() == b"mine"
    client.download(info.id, tmp_path, overwrite=True)
    assert (tmp_path / "same.txt").read_bytes() == b"new"


def test_token_is_not_sent_to_other_hosts(client: LockrClient) -> None:
    assert client._auth_headers(client.endpoint + "/api/v1/files")
    assert client._auth_headers("http://elsewhere.example/api/v1/files") == {}


@pytest.mark.parametrize(("case", "expected"), [
    ("bad_token", errors.Unauthorized),
    ("quota", errors.QuotaExceeded),
    ("unknown_id", errors.NotFound),
    ("too_large", errors.TooLarge),
    ("guest_key", errors.GuestKeyForbidden),
    ("unknown_region", errors.UnknownRegion),
])
def test_server_errors_come_back_as_their_exception_class(server_factory, case: str, expected: type,
                                                          tmp_path: Path) -> None:
    served = server_factory(default_quota="1000", account_max_object="1500")
    account = create_account(served.url)
    lockr = LockrClient(served.url, account.token, retry=FAST_RETRY)
    payload = tmp_path / "p.bin"
    payload.write_bytes(b"z" * (1200 if case == "quota" else 2000))
    with pytest.raises(expected) as caught:
        if case == "bad_token":
            LockrClient(served.url, "lkr_not-a-token").list_files()
        elif case == "quota":
            lockr.upload(payload)
        elif case == "unknown_id":
            lockr.set_key("0" * 32, "x")
        elif case == "too_large":
            lockr.upload(payload)
        elif case == "guest_key":
            LockrClient(served.url).upload(io.BytesIO(b"k"), "k.txt", key_phrase="nope")
        elif case == "unknown_region":
            lockr.upload(io.BytesIO(b"r"), "r.txt", region="mars")
    assert caught.value.status == expected.status and caught.value.message


def test_rate_limit_raises_rate_limited_with_retry_after(server_factory) -> None:
    served = server_factory(rate_account=0.5, rate_account_burst=2)
    account = create_account(served.url)
    lockr = LockrClient(served.url, account.token, retry=RetryPolicy(attempts=0))
    with pytest.raises(errors.RateLimited) as caught:
        for _ in range(5):
            lockr.list_files()
    assert caught.value.retry_after >= 1


def test_rate_limit_is_waited_out_for_retry_after_seconds(server_factory) -> None:
    served = server_factory(rate_account=1.0, rate_account_burst=2)
    account = create_account(served.url)
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        time.sleep(seconds)

    lockr = LockrClient(served.url, account.token, retry=RetryPolicy(attempts=3, sleep=sleep))
    for _ in range(4):
        assert lockr.list_files() == []
    assert waits and all(wait >= 1 for wait in waits)


def test_unreachable_endpoint_raises_connection_failed_after_retries() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    waits: list[float] = []
    lockr = LockrClient(f"http://127.0.0.1:{port}", "t",
                        retry=RetryPolicy(attempts=2, base_delay=0.01, sleep=waits.append))
    with pytest.raises(errors.ConnectionFailed):
        lockr.list_files()
    assert len(waits) == 2 and waits[1] > waits[0]


MEASURE_UPLOAD = """
import resource, sys
from lockr_local.client import LockrClient
lockr = LockrClient(sys.argv[1], sys.argv[2])
lockr.list_files()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
info = lockr.upload(sys.argv[3])
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(info.sha256, (after - before) * 1024)
"""


def test_upload_memory_stays_flat_for_a_large_file(client: LockrClient, tmp_path: Path) -> None:
    """The body is streamed from disk: the uploading process grows by far less than the file's size."""
    source = random_file(tmp_path / "big.bin", 48 * 1024 * 1024)
    done = subprocess.run([sys.executable, "-c", MEASURE_UPLOAD, client.endpoint, client.token or "", str(source)],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stderr
    sha, growth = done.stdout.split()
    assert sha == sha256_of(source)
    assert int(growth) < 12 * 1024 * 1024, growth


def test_requests_sends_content_length_not_chunked(client: LockrClient, server: ThreadedServer,
                                                   tmp_path: Path) -> None:
    """A streamed body still declares its size, so the server can answer 413/403 before reading it."""
    from lockr_local.transfer import FileWindow

    source = random_file(tmp_path / "f.bin", 300_000)
    with open(source, "rb") as handle:
        prepared = requests.Request("POST", server.url, data=FileWindow(handle, 0, 300_000, 300_000)).prepare()
    assert prepared.headers.get("Content-Length") == "300000" and "Transfer-Encoding" not in prepared.headers


def test_someone_elses_file_downloads_by_id_or_page_link(client: LockrClient, server: ThreadedServer,
                                                         tmp_path: Path) -> None:
    shared = LockrClient(server.url, create_account(server.url).token).upload(io.BytesIO(b"for you"), "gift.txt")
    assert requests.get(f"{server.url}/download/{shared.id}", timeout=10).headers["Content-Type"].startswith("text/html")
    assert client.download(shared.id, tmp_path / "by-id.txt").path.read_bytes() == b"for you"
    page = f"{server.url}/download/{shared.id}"
    assert client.download(page, tmp_path / "by-page.txt").path.read_bytes() == b"for you"


def test_unknown_id_says_what_to_do(client: LockrClient, tmp_path: Path) -> None:
    with pytest.raises(errors.NotFound, match="download link"):
        client.download("f" * 32, tmp_path)
    with pytest.raises(errors.NotFound, match="neither a file id"):
        client.download("not-an-id", tmp_path)
