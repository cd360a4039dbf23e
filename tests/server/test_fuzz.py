"""Fuzzing the inputs people and programs get wrong: names, Range, keyHash, Content-Range on session
chunks, signed-link parameters. Never a 5xx, never a path outside the store, never another file."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import pytest
import requests
from hypothesis import HealthCheck, event, given, settings, strategies as st

from tests.conftest import make_settings
from tests.helpers import ThreadedServer, create_account

FUZZ = settings(max_examples=int(os.environ.get("LOCKR_FUZZ_EXAMPLES", "150")), deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


FORBIDDEN_IN_HEADERS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def send(method: str, url: str, **kwargs: object) -> requests.Response | None:
    """The request, or None when it never reached a handler: requests refuses such a header value,
    or Tornado's HTTP parser drops the connection over control characters in a header (a reset may
    then overtake its JSON 400). Any other dropped connection is a failure."""
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
    """Control characters in a header break HTTP framing: Tornado's parser refuses the request before
    any handler runs, with the one JSON error body all the same (server/malformed.py). A bare 400
    without that body fails here."""
    if response.status_code != 400:
        return False
    body = response.json()
    assert set(body) == {"error"}, body
    return bool(body["error"]["code"] == "bad_request")


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


# -- Content-Range on session PUTs ------------------------------------------------------------------

SESSION_SIZE = 600
SESSION_DATA = bytes((i * 7 + 3) % 251 for i in range(SESSION_SIZE))


def garble(header: str, how: str) -> str:
    """Spellings a sloppy client sends; only the first two still parse (whitespace is tolerated)."""
    return {"as is": header, "spaced": header.replace(" ", "   ") + " ", "upper": header.upper(),
            "equals": header.replace(" ", "=", 1), "no unit": header.split(" ", 1)[-1],
            "junk": header + ";x", "comma": header.replace("-", ",", 1)}[how]


@st.composite
def content_ranges(draw):
    """(header, first byte the body claims to start at or None, body length delta, chunked)."""
    stored = draw(st.integers(0, SESSION_SIZE))
    choice = draw(st.sampled_from(["chunk", "chunk", "chunk", "status", "text"]))
    # Weighted towards headers that parse, so the 308/201/409 paths get as many cases as the 400s.
    total = draw(st.sampled_from([str(SESSION_SIZE)] * 16 + ["*"] * 4 + [
        str(SESSION_SIZE - 1), str(SESSION_SIZE + 1), "0", "-1", "99999999999999999999", ""]))
    how = draw(st.sampled_from(["as is"] * 16 + ["spaced"] * 4 + ["upper", "equals", "no unit", "junk", "comma"]))
    delta = draw(st.sampled_from([0] * 16 + [-1, 1, 5]))
    chunked = draw(st.booleans())
    if choice == "status":
        return stored, garble(f"bytes */{total}", how), None, 0, draw(st.sampled_from([0, 0, 0, 3])), chunked
    if choice == "text":
        return stored, draw(st.text(max_size=40)), None, 0, draw(st.integers(0, 20)), chunked
    first = draw(st.one_of(st.integers(0, SESSION_SIZE + 2), st.integers(max(0, stored - 3), stored + 3),
                           st.integers(max(0, stored - 3), stored + 3), st.just(stored)))
    last = draw(st.one_of(st.integers(first - 2, SESSION_SIZE + 2), st.just(SESSION_SIZE - 1),
                          st.integers(first, max(first, min(first + 40, SESSION_SIZE - 1))), st.just(10**20)))
    length = max(0, min(last, SESSION_SIZE + 10) - first + 1 + delta)
    return stored, garble(f"bytes {first}-{last}/{total}", how), first, delta, length, chunked


def reported_offset(response: requests.Response) -> int:
    header = response.headers.get("Range")
    if header is None:
        return 0
    assert re.fullmatch(r"bytes=0-\d+", header), header
    return int(header.split("-")[1]) + 1


@FUZZ
@given(case=content_ranges())
def test_fuzzed_content_ranges_get_4xx_or_a_correct_308_or_201_and_keep_the_offset_true(fuzz_server, case):
    """Whatever the Content-Range says, the session keeps exactly the bytes it acknowledged: a later
    status query reports them, and resuming from there stores the right file."""
    server, account, _ = fuzz_server
    stored, header, first, _delta, length, chunked = case
    session = requests.post(f"{server.url}/api/v1/upload/session", headers=account.auth, timeout=30,
                            json={"name": "range.bin", "size": SESSION_SIZE, "type": "application/octet-stream"})
    assert session.status_code == 201, session.text
    url = session.json()["uploadUrl"]
    if stored:
        prefix = requests.put(url, data=SESSION_DATA[:stored], timeout=30,
                              headers={"Content-Range": f"bytes 0-{stored - 1}/{SESSION_SIZE}"})
        assert prefix.status_code == (201 if stored == SESSION_SIZE else 308), prefix.text
    # The body is the file's own bytes from where the header claims to start, so whatever the server
    # keeps of it must be the right bytes at the right place.
    start = first if first is not None else stored
    body = (SESSION_DATA + b"\xee" * 64)[start:start + length] if start <= SESSION_SIZE else b"\xee" * length
    response = send("PUT", url, data=iter([body]) if chunked else body, headers={"Content-Range": header})
    if response is None or rejected_by_http_parser(response):
        response = None
    else:
        event(f"chunk answered {response.status_code}")
        assert response.status_code < 500, (header, response.status_code, response.text)
        assert response.status_code in (201, 308) or 400 <= response.status_code < 500
        if response.status_code not in (201, 308):
            assert set(response.json()) == {"error"}, response.text

    status = requests.put(url, headers={"Content-Range": f"bytes */{SESSION_SIZE}"}, timeout=30)
    assert status.status_code in (201, 308), status.text
    if status.status_code == 201:
        assert status.json()["sha256"] == hashlib.sha256(SESSION_DATA).hexdigest()
        requests.delete(f"{server.url}/api/v1/files/{status.json()['id']}", headers=account.auth, timeout=30)
        return
    now = reported_offset(status)
    if response is not None and response.status_code == 308:
        assert now == reported_offset(response), "the status query disagrees with the 308 just given"
    elif response is not None and response.status_code >= 400:
        assert now == stored, f"a refused chunk ({response.status_code}) moved the offset from {stored} to {now}"
    assert stored <= now <= SESSION_SIZE
    rest = requests.put(url, data=SESSION_DATA[now:], timeout=30,
                        headers={"Content-Range": f"bytes {now}-{SESSION_SIZE - 1}/{SESSION_SIZE}"})
    assert rest.status_code == 201, rest.text
    assert rest.json()["sha256"] == hashlib.sha256(SESSION_DATA).hexdigest(), "the stored bytes are not the file's"
    requests.delete(f"{server.url}/api/v1/files/{rest.json()['id']}", headers=account.auth, timeout=30)


# -- signed-link parameters -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def signed_links(fuzz_server):
    """Two keyed files with a signed link each: without its key a file opens only with a valid signature,
    and a fuzzed link may fetch its own file or nothing, never the other."""
    server, account, _ = fuzz_server
    links = {}
    for which, data in (("target", b"the linked file" * 60), ("other", b"the other file" * 50)):
        file = requests.post(f"{server.url}/api/v1/upload", data=data, timeout=30,
                             headers={"x-file-name": f"{which}.bin", **account.auth}).json()
        keyed = requests.post(f"{server.url}/api/v1/files/{file['id']}/key", json={"key": f"{which} phrase"},
                              headers=account.auth, timeout=30)
        assert keyed.status_code == 200, keyed.text
        response = requests.post(f"{server.url}/api/v1/files/{file['id']}/link", json={"expiresIn": 3600},
                                 headers=account.auth, timeout=30)
        assert response.status_code == 201, response.text
        # Digests, not bytes: hypothesis prints the fixtures of a failing example.
        links[which] = (file, hashlib.sha256(data).hexdigest(), response.json()["url"])
    return links


def mutate(text: str, position: int, replacement: str) -> str:
    if not text:
        return replacement
    position %= len(text)
    return text[:position] + replacement + text[position + 1:]


query_value = st.one_of(
    st.text(max_size=60),
    st.text(alphabet="0123456789-+_=/ .e", max_size=25),
    st.text(alphabet="0123456789\u00b2\u00b9\u0661\u0662\u07c0\uff11", min_size=1, max_size=12),  # digits by isdigit()
    st.integers(-(2**70), 2**70).map(str),
    st.sampled_from(["", "0", "²", "١٢٣", "9" * 13, "nan", "1e10", " 1", "\x00"]),
)


@st.composite
def link_params(draw):
    """(which link to start from, path to use, its expires/sig pairs after fuzzing)."""
    link_of = draw(st.sampled_from(["target", "other"]))
    path_of = draw(st.sampled_from(["target"] * 3 + ["other"]))
    fields = {}
    for name in ("expires", "sig"):
        fields[name] = draw(st.one_of(
            st.just("keep"), st.just("keep"), st.just("keep"), st.just("keep"), st.just("drop"), st.just("twice"),
            st.tuples(st.just("replace"), query_value), st.tuples(st.just("replace"), query_value),
            st.tuples(st.just("flip"), st.integers(0, 60), st.sampled_from(list("0123456789AZaz_-=%é"))),
            st.tuples(st.just("append"), query_value),
        ))
    extra = draw(st.sampled_from([None, ("keyHash", "0" * 64), ("sig", ""), ("expires", "1")]))
    return link_of, path_of, fields, extra


@FUZZ
@given(params=link_params())
def test_fuzzed_signed_link_parameters_get_4xx_or_the_right_file_never_5xx(fuzz_server, signed_links, params):
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    link_of, path_of, fields, extra = params
    _, _, link = signed_links[link_of]
    _, path_sha256, path_link = signed_links[path_of]
    genuine = dict(parse_qsl(urlsplit(link).query))
    query: list[tuple[str, str]] = []
    for name, action in fields.items():
        value = genuine[name]
        if action == "drop":
            continue
        if action == "twice":
            query += [(name, value), (name, value)]
            continue
        if isinstance(action, tuple) and action[0] == "replace":
            value = action[1]
        elif isinstance(action, tuple) and action[0] == "flip":
            value = mutate(value, action[1], action[2])
        elif isinstance(action, tuple) and action[0] == "append":
            value = value + action[1]
        query.append((name, value))
    if extra:
        query.append(extra)
    url = urlunsplit(urlsplit(path_link)._replace(query=urlencode(query)))
    response = send("GET", url)
    assert response is not None
    event(f"link answered {response.status_code}")
    assert response.status_code in (200, 400, 403, 404, 410), (query, response.status_code, response.text[:300])
    if response.status_code != 200:
        assert set(response.json()) == {"error"}, response.text
        return
    # Only the genuine signature of this very file opens it, and then it is that file's bytes.
    assert hashlib.sha256(response.content).hexdigest() == path_sha256
    assert link_of == path_of, f"the link of one file opened the other: {query}"
    sent = {name: tornado_argument(value) for name, value in query}  # the last of repeated arguments wins
    assert sent["sig"] == genuine["sig"] and int(sent["expires"]) == int(genuine["expires"]), query


def tornado_argument(value: str) -> str:
    """What `get_query_argument` hands the handler: control characters blanked, then stripped."""
    return re.sub(r"[\x00-\x08\x0e-\x1f]", " ", value).strip()


# -- numbers in headers and paths --------------------------------------------------------------------

number_text = st.one_of(
    st.text(alphabet="0123456789\u00b2\u00b3\u00b9 +-", min_size=1, max_size=14),  # latin-1 has '²' '³' '¹'
    st.integers(-5, 2**64).map(str),
    st.text(max_size=14),
)


@pytest.fixture(scope="module")
def token_owner(fuzz_server):
    return create_account(fuzz_server[0].url, "tokenowner")


@FUZZ
@given(value=number_text, where=st.sampled_from(["X-Upload-Content-Length", "Upload-Length", "Upload-Offset",
                                                  "token path"]))
def test_fuzzed_numbers_in_headers_and_paths_get_4xx_or_success_never_5xx(fuzz_server, token_owner, value, where):
    """Superscript digits pass str.isdigit() yet int() refuses them: each must be a 4xx, not a crash."""
    from urllib.parse import quote

    server, account, _ = fuzz_server
    tus = {"Tus-Resumable": "1.0.0"}
    if where == "X-Upload-Content-Length":
        response = send("POST", f"{server.url}/api/v1/upload/session", json={"name": "n.bin"},
                        headers={where: value, **account.auth})
    elif where == "Upload-Length":
        response = send("POST", f"{server.url}/api/v1/tus/", headers={where: value, **tus, **account.auth})
    elif where == "Upload-Offset":
        created = requests.post(f"{server.url}/api/v1/tus/", headers={"Upload-Length": "4", **tus, **account.auth},
                                timeout=30)
        assert created.status_code == 201, created.text
        response = send("PATCH", created.headers["Location"], data=b"abcd",
                        headers={where: value, "Content-Type": "application/offset+octet-stream", **tus})
    else:
        # An account of its own, with Basic auth: a fuzzed id may well be one of the caller's tokens.
        response = send("DELETE", f"{server.url}/api/v1/tokens/{quote(value, safe='')}",
                        auth=(token_owner.username, token_owner.password))
    if response is None or rejected_by_http_parser(response):
        return
    if response.status_code == 507:  # a huge declared size on a small disk: a clear answer, not a crash
        assert response.json()["error"]["code"] == "insufficient_storage"
        return
    assert response.status_code < 500, (where, value, response.status_code, response.text)
