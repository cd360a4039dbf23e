"""Fuzzing the inputs people and programs get wrong: names, Range, keyHash. Never a 5xx, never a path
outside the store."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import requests
from hypothesis import HealthCheck, given, settings, strategies as st

from tests.conftest import make_settings
from tests.helpers import ThreadedServer, create_account

FUZZ = settings(max_examples=int(os.environ.get("LOCKR_FUZZ_EXAMPLES", "150")), deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


FORBIDDEN_IN_HEADERS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def send(method: str, url: str, **kwargs: object) -> requests.Response | None:
    """The request, or None when it never reached a handler: requests refuses such a header value,
    or Tornado's HTTP parser drops the connection over control characters in a header (a reset may
    then overtake its bare 400). Any other dropped connection is a failure."""
    try:
        return requests.request(method, url, timeout=30, **kwargs)  # type: ignore[arg-type]
    except ValueError:
        return None
    except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError):
        headers = kwargs.get("headers") or {}
        if any(FORBIDDEN_IN_HEADERS.search(str(value)) for value in headers.values()):  # type: ignore[union-attr]
            return None
        raise


def rejected_by_http_parser(response: requests.Response) -> bool:
    """Control characters in a header break HTTP framing: Tornado's parser answers a bare 400
    before any handler runs (there is no request yet to give a JSON body to)."""
    return response.status_code == 400 and not response.content


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory):
    server = ThreadedServer(make_settings(tmp_path_factory.mktemp("fuzz") / "data")).start()
    account = create_account(server.url, "fuzzer")
    file = requests.post(f"{server.url}/api/v1/upload", data=bytes(range(256)) * 40,
                         headers={"x-file-name": "target.bin", **account.auth}).json()
    yield server, account, file
    server.stop()


def files_outside_store(root: Path) -> list[Path]:
    """Every regular file under the data folder must be one of the store's own."""
    allowed_dirs = {"objects", "tmp", "partial"}
    strays = []
    for path in root.rglob("*"):
        if path.is_file():
            relative = path.relative_to(root)
            if relative.parts[0] == "blobs" and len(relative.parts) > 1 and relative.parts[1] in allowed_dirs:
                continue
            if len(relative.parts) == 1 and (relative.name.startswith("lockr.db") or relative.name in
                                             ("secret.key", "lockr.lock")):
                continue
            strays.append(path)
    return strays


name_text = st.one_of(
    st.text(min_size=0, max_size=300),
    st.text(alphabet=st.sampled_from(list("./\\%0aAdD~ \u202e\u00e9\x00\x7f")), max_size=40),
    st.builds(lambda a, b: f"{a}/../{b}", st.text(max_size=20), st.text(max_size=20)),
)


@FUZZ
@given(name=name_text)
def test_fuzzed_file_names_get_4xx_or_a_stored_file_never_5xx(fuzz_server, name):
    server, account, _ = fuzz_server
    header = name.encode("utf-8", "surrogatepass").decode("latin-1")
    response = send("POST", f"{server.url}/api/v1/upload", data=b"fuzz", headers={"x-file-name": header, **account.auth})
    if response is None or rejected_by_http_parser(response):
        return
    assert response.status_code < 500, response.text
    if response.status_code == 201:
        stored = response.json()["name"]
        assert not stored.startswith("/") and ".." not in stored.split("/")
        assert "\x00" not in stored and "\n" not in stored
        requests.delete(f"{server.url}/api/v1/files/{response.json()['id']}", headers=account.auth, timeout=30)
    else:
        assert set(response.json()) == {"error"}
    assert files_outside_store(Path(server.settings.data_dir)) == []


range_text = st.one_of(
    st.text(max_size=40),
    st.builds(lambda a, b: f"bytes={a}-{b}", st.integers(-10, 20000), st.integers(-10, 20000)),
    st.builds(lambda a: f"bytes=-{a}", st.integers(-5, 20000)),
    st.builds(lambda a, b: f"bytes={a}-,{b}-", st.integers(0, 20000), st.integers(0, 20000)),
)


@FUZZ
@given(range_header=range_text)
def test_fuzzed_range_headers_never_5xx_and_partial_bodies_are_right(fuzz_server, range_header):
    server, account, file = fuzz_server
    data = bytes(range(256)) * 40
    response = send("GET", file["downloadUrl"], headers={"Range": range_header, **account.auth})
    if response is None or rejected_by_http_parser(response):
        return
    assert response.status_code in (200, 206, 416), response.status_code
    if response.status_code == 200:
        assert response.content == data
    if response.status_code == 206:
        first, last = map(int, response.headers["Content-Range"].split()[1].split("/")[0].split("-"))
        assert response.content == data[first:last + 1]


@FUZZ
@given(key_hash=st.one_of(st.text(max_size=80), st.text(alphabet="0123456789abcdefABCDEF", min_size=60, max_size=68)))
def test_fuzzed_key_hashes_never_5xx(fuzz_server, key_hash):
    server, account, file = fuzz_server
    response = requests.get(file["downloadUrl"], params={"keyHash": key_hash}, timeout=30)
    assert response.status_code in (200, 400), response.status_code
    upload = send("POST", f"{server.url}/api/v1/upload", data=b"k",
                  headers={"x-file-name": "k.bin", "x-key-hash": key_hash.encode("utf-8").decode("latin-1"),
                           **account.auth})
    if upload is not None and not rejected_by_http_parser(upload):
        assert upload.status_code in (201, 400), upload.text
