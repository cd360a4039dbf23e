"""Hostile values in every JSON field, query parameter and header the server reads: the answer is a
success or a 4xx with the one JSON error body, never a 5xx, a dropped connection or a traceback in the
server's log. The JSON endpoints come from the OpenAPI document and the headers and query parameters
from one table that a test holds against the handlers' code, so a new endpoint or header is covered
without anyone remembering to list it here."""

from __future__ import annotations

import ast
import base64
import json
import logging
import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator
from urllib.parse import quote, urlsplit

import pytest
import requests
from hypothesis import HealthCheck, given, settings, strategies as st

from tests.conftest import make_settings
from tests.helpers import REPO, Account, ThreadedServer, create_account, upload
from tests.server.test_fuzz import send

# Every value of the corpora below is sent in every field by one test; another sends this many random
# ones per field (`make soak` raises it).
HOSTILE = settings(max_examples=int(os.environ.get("LOCKR_HOSTILE_EXAMPLES", "8")), deadline=None,
                   suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                          HealthCheck.data_too_large])

# -- hostile values ----------------------------------------------------------------------------------

# Raw JSON texts: lone surrogates stay "\ud800" escapes, as an attacker would write them.
JSON_CORPUS = [
    "[" * 60_000,                                # 60 KB of unclosed nesting
    "[" * 3_000 + "]" * 3_000,                   # deep but well-formed
    '{"a":' * 2_000 + "1" + "}" * 2_000,
    '"\\ud800"', '"a\\udfffb"', '"\\udc00\\ud800"', '["\\ud800"]', '{"\\ud800": 1}',
    '"correct horse \\ud800"', '"name-\\udc00.bin"', '"\\u0000"', '"a\\u0000b"', '"correct horse \\u0000"', '"\\u001b[2J\\r\\n"', '"\\u007f"',
    '"\\u202e"', '"\\u061c"', '"\\u2060"', '"\\ufeff"', '"a\\u200db"',
    '""', '" "', "null", "true", "false", "[]", "{}", '["a", 1]', '{"a": "b"}',
    "0", "-1", "1.5", "-0", "1e309", "-1e309", "1e-400", "NaN", "Infinity", "-Infinity",
    str(2**63), str(2**64), str(-(2**63) - 1), "9" * 400, "9" * 5_000,
    json.dumps("x" * 5_000), json.dumps("\u00e9" * 3_000), json.dumps("x" * 70_000),
]

json_values = st.one_of(
    st.sampled_from(JSON_CORPUS),
    st.integers(-(2**80), 2**80).map(str),
    st.floats().map(lambda f: json.dumps(f)),
    st.text(max_size=300).map(json.dumps),
    st.text(alphabet=st.sampled_from(list("\x00\x01\x1b\x7f\u202e\u061c\u2060\u200b\ufeff\n\r\t a/.\\%")),
            max_size=40).map(json.dumps),
    st.builds(lambda depth, kind: {"list": "[" * depth + "]" * depth, "open": "[" * depth,
                                   "object": '{"a":' * depth + "0" + "}" * depth}[kind],
              st.integers(900, 20_000), st.sampled_from(["list", "open", "object"])),
    st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                 lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                 max_leaves=8).map(json.dumps),
)

# Whole bodies that are not a JSON object at all.
BODY_CORPUS = [
    b"[" * 60_000, b"{" * 60_000, b'{"a":' * 12_000, b"\xff\xfe{}", b"\xef\xbb\xbf{}", '{"a": 1}'.encode("utf-16"),
    b"{", b'{"a":1}{"b":2}', b"\x00", b"", b"  ", b"null", b"[]", b'"\\ud800"', b"1e309", b"x" * 70_000,
]

# Header and query values: numbers past 64 bits, digits that are not ASCII, empty, repeated, signs.
TEXT_CORPUS = [
    "", " ", "0", "-1", "-0", "+1", "1.5", "1e3", str(2**63), str(2**64), "9" * 30, "-" + "9" * 30,
    "\u0661\u0662", "\u00b2", "\uff11", "1,2", "1, 1", "1,", ",", "nan", "infinity",
    "\x00", "\x01", "a\x7fb", "\u202e", "\u061c", "\u2060", "\ufeff", "\u00e9", "\ud800", "\U0001F600",
    "bytes=-5", "bytes=0-", "bytes=5-1", "bytes=-0", "bytes=0-18446744073709551616", "bytes=-99999999999999999999",
    "bytes */0", "bytes 0-0/0", "bytes 0-18446744073709551616/18446744073709551617", "bytes */-1",
    "http://[::1", "http://[::1]/dav/x", "http://%zz/", "//evil.example/x", "\t/evil.example/x", "/\t/evil.example/x", "/\n/evil",
    "T", "F", "infinity", "(<opaquelocktoken:x>)", "sha1:zz", "MD5:" + "0" * 300,
    "Basic", "Basic !!!", "Basic " + base64.b64encode(b":").decode(), "Basic " + base64.b64encode(b"\xff:\xfe").decode(),
    "Bearer", "Bearer " + "x" * 5_000, "Bearer \u00e9", "Basic \u00e9", "sha1 \u00e9", "filename \u00e9",
    "x" * 8_000,
    "x" * 70_000,                                   # a request head past 64 KiB
]

text_values = st.one_of(
    st.sampled_from(TEXT_CORPUS),
    st.integers(-(2**80), 2**80).map(str),
    st.text(alphabet=st.sampled_from(list("0123456789+-., \u0661\u0662\u00b2\u00b3\uff11\u07c0")), min_size=1,
            max_size=25),
    st.text(max_size=200),
    st.builds(lambda a, b: f"bytes={a}-{b}", st.integers(-(2**70), 2**70), st.integers(-(2**70), 2**70)),
    st.builds(lambda a, b, c: f"bytes {a}-{b}/{c}", st.integers(-5, 2**70), st.integers(-5, 2**70),
              st.integers(-5, 2**70)),
)

# -- the server and its log ----------------------------------------------------------------------------


class LogCapture(logging.Handler):
    """Every record the server logs, formatted the way its log file would show it (tracebacks included)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def tracebacks_since(self, mark: int) -> list[str]:
        return [line for line in self.lines[mark:] if "Traceback" in line]


@dataclass
class Target:
    """The running server, an account with files, and how to reach each kind of request."""

    server: ThreadedServer
    account: Account
    log: LogCapture
    file: dict[str, Any]
    empty_file: dict[str, Any]
    guest_file: dict[str, Any]
    http: requests.Session = field(default_factory=requests.Session)

    @property
    def url(self) -> str:
        return self.server.url

    def path_value(self, name: str) -> str:
        """Real values for the document's path parameters, so the body reaches the handler's logic."""
        return {"id": self.file["id"], "region": self.file["region"], "name": self.file["name"],
                "sessionId": self.new_session()["uploadUrl"].rsplit("/", 1)[1], "tokenId": "1"}[name]

    def new_session(self) -> dict[str, Any]:
        response = self.http.post(f"{self.url}/api/v1/upload/session", json={"name": "s.bin", "size": 10},
                                  headers=self.account.auth, timeout=30)
        assert response.status_code == 201, response.text
        return dict(response.json())

    def new_tus_upload(self) -> str:
        response = self.http.post(f"{self.url}/api/v1/tus/", headers={"Tus-Resumable": "1.0.0", "Upload-Length": "10",
                                                                       **self.account.auth}, timeout=30)
        assert response.status_code == 201, response.text
        return str(response.headers["Location"])

    def dav(self, name: str = "") -> str:
        return f"{self.url}/dav/{self.account.username}/{name}"

    def put_dav_source(self) -> None:
        response = self.http.put(self.dav("src.txt"), data=b"dav source", headers=self.account.auth, timeout=30)
        assert response.status_code in (201, 204), response.text


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    capture = LogCapture()
    root = logging.getLogger()
    root.addHandler(capture)
    # Trusted so that the X-Forwarded-* code paths run too.
    server = ThreadedServer(make_settings(tmp_path_factory.mktemp("hostile") / "data",
                                          trusted_proxies="127.0.0.1")).start()
    try:
        account = create_account(server.url, "hostile")
        file = upload(server.url, bytes(range(256)) * 8, "target.bin", account=account).json()
        empty = upload(server.url, b"", "empty.bin", account=account).json()
        guest = upload(server.url, b"guest bytes", "guest.bin").json()
        yield Target(server, account, capture, file, empty, guest)
    finally:
        server.stop()
        root.removeHandler(capture)


# -- what every answer must be ------------------------------------------------------------------------

def check_answer(target: Target, mark: int, response: requests.Response | None, what: str,
                 api: bool = True) -> None:
    """A success or a 4xx; an API 4xx has the one JSON error body; a redirect stays on this site; the
    server logged no traceback and still answers its health check."""
    tracebacks = target.log.tracebacks_since(mark)
    if tracebacks:
        raise AssertionError(f"{what}: the server logged a traceback ending "
                             f"{tracebacks[0].strip().splitlines()[-1]!r}\n{tracebacks[0][-3000:]}")
    if response is not None:
        status = response.status_code
        assert status < 500, f"{what}: {status} {response.text[:500]}"
        if status >= 400 and api and response.request.method != "HEAD":
            try:
                body = response.json()
            except ValueError:
                raise AssertionError(f"{what}: {status} without the JSON error body: {response.text[:200]!r}")
            assert response.headers.get("Content-Type", "").startswith("application/json"), (what, response.headers)
            assert set(body) == {"error"} and set(body["error"]) >= {"code", "message"}, (what, body)
        if 300 <= status < 400 and "Location" in response.headers:
            location = re.sub(r"[\t\n\r]", "", response.headers["Location"])  # what a browser makes of it
            assert not location.startswith("//") and not urlsplit(location).scheme \
                or location.startswith(target.url + "/"), f"{what}: redirects off-site to {location!r}"
        if status == 206:
            match = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", response.headers.get("Content-Range", ""))
            assert match, f"{what}: 206 with Content-Range {response.headers.get('Content-Range')!r}"
            first, last, size = map(int, match.groups())
            assert first <= last < size and len(response.content) == last - first + 1, (what, match.group(0))
    health = requests.get(f"{target.url}/healthz", timeout=30)
    assert health.status_code == 200, f"{what}: the server is no longer healthy: {health.text[:300]}"


def all_answers_right(checks: list[tuple[str, Callable[[], None]]]) -> None:
    """Runs every check and fails once with all that failed, so one defect does not hide the others."""
    failures = []
    for what, check in checks:
        try:
            check()
        except AssertionError as exc:
            failures.append(f"{what[:100]} -> {str(exc).splitlines()[0][:400]}")
        except requests.ConnectionError as exc:
            failures.append(f"{what[:100]} -> the connection closed without an answer ({exc})")
    assert not failures, f"{len(failures)} of {len(checks)} hostile requests were mishandled:\n" + "\n".join(failures)


# -- every field of every JSON endpoint in the OpenAPI document -----------------------------------------

@dataclass(frozen=True)
class JsonOperation:
    method: str
    path: str
    schema: dict[str, Any]
    guests: bool

    def __str__(self) -> str:
        return f"{self.method.upper()} {self.path}"


def json_operations() -> list[JsonOperation]:
    from lockr_local.server.openapi import openapi_document

    document = openapi_document("http://127.0.0.1")
    operations = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" in content:
                security = operation.get("security", document["security"])
                operations.append(JsonOperation(method, path, content["application/json"]["schema"],
                                                {} in security))
    return operations


WHOLE_BODY, UNKNOWN_FIELD = "(the whole body)", "(an unknown field)"
JSON_CASES = [(operation, name) for operation in json_operations()
              for name in [*operation.schema.get("properties", {}), UNKNOWN_FIELD, WHOLE_BODY]]


def baseline_value(schema: dict[str, Any]) -> Any:
    """A valid value from the document: its example, else the first enum value, else a plain one."""
    if "example" in schema:
        return schema["example"]
    if "enum" in schema:
        return schema["enum"][0]
    return {"string": "plain", "integer": 1, "number": 1, "boolean": False, "array": [], "object": {}}.get(
        schema.get("type", "string"))


def baseline_body(target: Target, operation: JsonOperation) -> dict[str, Any]:
    """A body the endpoint accepts, so a hostile value in one field is judged by that field's logic.
    Only what the document cannot know (this account's password, a guest file's id) comes from here."""
    body = {name: baseline_value(schema) for name, schema in operation.schema.get("properties", {}).items()}
    known = {"identifier": target.account.username, "password": target.account.password,
             "currentPassword": target.account.password, "newPassword": target.account.password,
             "id": target.guest_file["id"]}
    if operation.path == "/api/v1/account":
        known = {"username": "newcomer", "email": "newcomer@example.com", "password": "a long password"}
    return {**body, **{name: value for name, value in known.items() if name in body}}


def splice(body: dict[str, Any], name: str, raw: str) -> bytes:
    """The JSON text of `body` with `name` set to the raw JSON text `raw` (kept byte for byte)."""
    if name == WHOLE_BODY:
        return raw.encode("utf-8")
    members = [f"{json.dumps(key)}: {json.dumps(value)}" for key, value in body.items() if key != name]
    members.append(f"{json.dumps(name if name != UNKNOWN_FIELD else 'unexpected')}: {raw}")
    return ("{" + ", ".join(members) + "}").encode("utf-8")


def restore_password(target: Target, operation: JsonOperation, sent: bytes, response: requests.Response) -> None:
    """A hostile newPassword that was accepted is a password now: put the account's own one back."""
    if operation.path != "/api/v1/account/password" or response.status_code != 204:
        return
    new = json.loads(sent)["newPassword"]
    back = requests.post(f"{target.url}{operation.path}", headers=target.account.auth, timeout=30,
                         json={"currentPassword": new, "newPassword": target.account.password})
    assert back.status_code == 204, back.text


def send_json_field(target: Target, operation: JsonOperation, name: str, raw: str, signed_in: bool) -> None:
    path = re.sub(r"\{(\w+)\}", lambda m: quote(target.path_value(m.group(1)), safe=""), operation.path)
    body = splice(baseline_body(target, operation), name, raw)
    headers = {"Content-Type": "application/json", **(target.account.auth if signed_in else {})}
    mark = len(target.log.lines)
    response = send(operation.method.upper(), f"{target.url}{path}", data=body, headers=headers)
    assert response is not None, "the request never reached the server"
    check_answer(target, mark, response, f"{operation} {name}={raw[:80]!r}{'' if signed_in else ' (guest)'}")
    restore_password(target, operation, body, response)


JSON_IDS = [f"{op} {name}" for op, name in JSON_CASES]


@pytest.mark.parametrize("operation, name", JSON_CASES, ids=JSON_IDS)
def test_each_hostile_json_value_in_every_field_gets_a_json_4xx_or_success(target, operation, name):
    all_answers_right([(f"{name}={raw[:60]!r} {who}",
                        lambda raw=raw, signed_in=signed_in: send_json_field(target, operation, name, raw, signed_in))
                       for raw in JSON_CORPUS for signed_in, who in ((True, "signed in"), (False, "guest"))
                       if signed_in or operation.guests])


@pytest.mark.parametrize("operation, name", JSON_CASES, ids=JSON_IDS)
@HOSTILE
@given(raw=json_values, signed_in=st.booleans())
def test_random_hostile_json_values_in_every_field_get_a_json_4xx_or_success(target, operation, name, raw, signed_in):
    send_json_field(target, operation, name, raw, signed_in)


@pytest.mark.parametrize("operation", json_operations(), ids=str)
@pytest.mark.parametrize("body", BODY_CORPUS, ids=range(len(BODY_CORPUS)))
def test_hostile_whole_bodies_on_every_json_endpoint_get_a_json_4xx(target, operation, body):
    path = re.sub(r"\{(\w+)\}", lambda m: quote(target.path_value(m.group(1)), safe=""), operation.path)
    for headers in (target.account.auth, {}):
        mark = len(target.log.lines)
        response = send(operation.method.upper(), f"{target.url}{path}", data=body,
                        headers={"Content-Type": "application/json", **headers})
        assert response is not None
        check_answer(target, mark, response, f"{operation} body={body[:60]!r} signed in={bool(headers)}")


# -- every header and query parameter the server reads --------------------------------------------------

Request = tuple[str, str, dict[str, str], bytes]  # method, URL, headers, body


def request_for(target: Target, where: str) -> tuple[Request, bool]:
    """A request that reaches the code reading the header or parameter under test, and whether its errors
    are the API's JSON (the web pages answer in HTML)."""
    auth, url = target.account.auth, target.url
    tus = {"Tus-Resumable": "1.0.0"}
    if where == "account":
        return ("GET", f"{url}/api/v1/account", auth, b""), True
    if where == "files":
        return ("GET", f"{url}/api/v1/files", auth, b""), True
    if where == "trash":
        return ("GET", f"{url}/api/v1/trash", auth, b""), True
    if where == "download":
        return ("GET", target.file["downloadUrl"], auth, b""), True
    if where == "download empty":
        return ("GET", target.empty_file["downloadUrl"], auth, b""), True
    if where == "guest download":
        return ("GET", target.guest_file["downloadUrl"], {}, b""), True
    if where == "upload":
        return ("POST", f"{url}/api/v1/upload", {"x-file-name": "h.bin", **auth}, b"fuzz"), True
    if where == "session create":
        return ("POST", f"{url}/api/v1/upload/session", {"Content-Type": "application/json",
                                                          "X-Upload-Content-Length": "10", **auth},
                b'{"name": "h.bin"}'), True
    if where == "session chunk":
        return ("PUT", target.new_session()["uploadUrl"], {"Content-Range": "bytes 0-3/10"}, b"fuzz"), True
    if where == "tus create":
        return ("POST", f"{url}/api/v1/tus/", {"Upload-Length": "10", **tus, **auth}, b""), True
    if where == "tus patch":
        return ("PATCH", target.new_tus_upload(), {"Upload-Offset": "0", "Content-Type": "application/offset+octet-stream",
                                                  **tus}, b"fuzz"), True
    if where == "tus head":
        return ("HEAD", target.new_tus_upload(), tus, b""), True
    if where == "dav put":
        return ("PUT", target.dav("h.txt"), auth, b"dav bytes"), True
    if where in ("dav move", "dav copy"):
        target.put_dav_source()
        return (where.split()[1].upper(), target.dav("src.txt"),
                {"Destination": target.dav("dst.txt"), "Overwrite": "T", **auth}, b""), True
    if where == "dav propfind":
        return ("PROPFIND", target.dav(), {"Depth": "1", **auth}, b""), True
    if where == "dav lock":
        return ("LOCK", target.dav("locked.txt"), auth, b""), True
    if where == "web login":
        token = "2|abcdef01|" + "0" * 32 + "|1"  # any well-formed XSRF token, sent as cookie and field alike
        form = f"identifier={target.account.username}&password={quote(target.account.password)}&_xsrf={token}"
        return ("POST", f"{url}/account/login", {"Cookie": f"_xsrf={token}",
                                                 "Content-Type": "application/x-www-form-urlencoded"},
                form.encode()), False
    if where == "account page":
        return ("GET", f"{url}/account", {}, b""), False
    if where == "files page":
        return ("GET", f"{url}/files", {}, b""), False
    raise AssertionError(f"no request for {where!r}")


# Every request header a handler reads, and the requests on which it is read. A test below holds this
# table against the code: a handler reading a header that is not here fails it.
READ_HEADERS: dict[str, tuple[str, ...]] = {
    "Authorization": ("account", "upload", "session create", "tus create", "dav propfind"),
    "Host": ("session create", "upload"),              # read through request.host (absolute links)
    "Content-Length": ("upload", "session chunk", "dav put"),
    "Transfer-Encoding": ("upload", "dav put"),  # also sizes a body's reads (httpserver.py)
    "Content-Type": ("upload", "tus patch", "dav put"),
    "Content-Range": ("session chunk", "dav put"),
    "Expect": ("session chunk",),
    "Range": ("download", "download empty", "guest download"),
    "If-None-Match": ("download",),
    "If-Range": ("download",),
    "X-Forwarded-For": ("account", "upload"),
    "X-Forwarded-Proto": ("session create",),
    "X-Forwarded-Host": ("session create",),
    "X-Upload-Content-Length": ("session create",),
    "X-Upload-Content-Type": ("session create",),
    "Tus-Resumable": ("tus create", "tus head", "tus patch"),
    "Upload-Defer-Length": ("tus create",),
    "Upload-Length": ("tus create",),
    "Upload-Metadata": ("tus create",),
    "Upload-Offset": ("tus patch",),
    "Upload-Checksum": ("tus patch",),
    "x-file-name": ("upload",),
    "x-upload-region": ("upload",),
    "x-key-hash": ("upload",),
    "Idempotency-Key": ("upload", "dav put"),
    "Depth": ("dav propfind", "dav copy"),
    "Destination": ("dav move", "dav copy"),
    "Overwrite": ("dav move", "dav copy"),
    "If": ("dav lock",),
    "OC-Checksum": ("dav put",),
    "X-OC-Mtime": ("dav put", "dav move"),
    "Cookie": ("account page", "files page"),         # read through get_signed_cookie
    "Origin": ("tus create", "tus head", "tus patch"),  # the CORS grant (cors_origins)
    "User-Agent": ("account", "upload"),               # the access log
    "Referer": ("account", "upload"),                  # the access log
}

# Every query parameter a handler reads, and where.
READ_QUERY: dict[str, tuple[str, ...]] = {
    "limit": ("files", "trash"),
    "cursor": ("files", "trash"),
    "keyHash": ("download", "guest download"),
    "expires": ("download", "guest download"),
    "sig": ("download", "guest download"),
    "next": ("account page", "web login"),
}

HEADER_CASES = [(name, where) for name, places in READ_HEADERS.items() for where in places]
QUERY_CASES = [(name, where) for name, places in READ_QUERY.items() for where in places]


def framing_safe(name: str, value: str) -> bool:
    """A Content-Length that is a plain number (or a Transfer-Encoding naming chunked) makes the server wait
    for a body: such values are the subject of the streaming tests, not of this one."""
    if name == "Transfer-Encoding" and "chunked" in value.lower():
        return False  # a chunked body that never comes: the streaming tests' subject too
    return not (name == "Content-Length" and value.strip().isascii() and value.strip().isdigit()
                and value.strip() != "0")


def send_header(target: Target, name: str, where: str, value: str) -> None:
    if not framing_safe(name, value):
        return
    (method, url, headers, body), api = request_for(target, where)
    headers = {**{k: v for k, v in headers.items() if k.lower() != name.lower()},
               name: value.encode("utf-8", "surrogatepass")}  # raw bytes, as a client may send them
    if name == "Content-Length":
        body = b""
    mark = len(target.log.lines)
    response = send(method, url, data=body, headers=headers, allow_redirects=False)
    check_answer(target, mark, response, f"{method} ({where}) {name}: {value[:80]!r}", api)


HEADER_IDS = [f"{n} on {w}" for n, w in HEADER_CASES]


@pytest.mark.parametrize("name, where", HEADER_CASES, ids=HEADER_IDS)
def test_each_hostile_value_in_every_header_read_gets_a_json_4xx_or_success(target, name, where):
    all_answers_right([(f"{name}: {value[:60]!r}", lambda value=value: send_header(target, name, where, value))
                       for value in TEXT_CORPUS])


@pytest.mark.parametrize("name, where", HEADER_CASES, ids=HEADER_IDS)
@HOSTILE
@given(value=text_values)
def test_random_hostile_values_in_every_header_read_get_a_json_4xx_or_success(target, name, where, value):
    send_header(target, name, where, value)


def send_query(target: Target, name: str, where: str, values: list[str]) -> None:
    (method, url, headers, body), api = request_for(target, where)
    kept = [part for part in urlsplit(url).query.split("&") if part and part.split("=")[0] != name]
    query = "&".join(kept + [f"{name}={quote(v.encode('utf-8', 'surrogatepass'), safe='')}" for v in values])
    url = url.split("?")[0] + "?" + query
    mark = len(target.log.lines)
    response = send(method, url, data=body, headers=headers, allow_redirects=False)
    assert response is not None, "the request never reached the server"
    check_answer(target, mark, response, f"{method} ({where}) {name}={values!r:.200}", api)


QUERY_IDS = [f"{n} on {w}" for n, w in QUERY_CASES]
QUERY_CORPUS = [[value] for value in TEXT_CORPUS] + [["1", "2"], ["", ""], [str(2**64)] * 3, ["\u0661\u0662"] * 2]


@pytest.mark.parametrize("name, where", QUERY_CASES, ids=QUERY_IDS)
def test_each_hostile_value_in_every_query_parameter_read_gets_a_json_4xx_or_success(target, name, where):
    all_answers_right([(f"{name}={values!r:.60}", lambda values=values: send_query(target, name, where, values))
                       for values in QUERY_CORPUS])


@pytest.mark.parametrize("name, where", QUERY_CASES, ids=QUERY_IDS)
@HOSTILE
@given(values=st.lists(text_values, min_size=1, max_size=3))
def test_random_hostile_values_in_every_query_parameter_read_get_a_json_4xx_or_success(target, name, where, values):
    send_query(target, name, where, values)


# -- the tables above stay complete ---------------------------------------------------------------------

def names_read_by_the_server() -> tuple[set[str], set[str], set[str]]:
    """(headers, query parameters, JSON fields) named by string literals where the server's code reads
    them: request.headers.get("X") / headers["X"], request.host, get_*cookie, get_argument("x") /
    get_query_argument("x"), and body.get("x") / body["x"] on a handler's JSON body."""
    headers, query, fields = set(), set(), set()
    for path in sorted((REPO / "server").rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr == "host" and ast.unparse(node.value).endswith("request"):
                headers.add("host")
            if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) \
                    and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str):
                owner = ast.unparse(node.value)
                if owner.endswith("request.headers"):
                    headers.add(node.slice.value.lower())
                elif owner == "body" and "handlers" in path.parts:
                    fields.add(node.slice.value)
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            literal = node.args[0].value if node.args and isinstance(node.args[0], ast.Constant) else None
            owner, attr = ast.unparse(node.func.value), node.func.attr
            if attr in ("get_cookie", "get_signed_cookie", "get_secure_cookie"):
                headers.add("cookie")
            if not isinstance(literal, str):
                continue
            if attr in ("get", "get_list") and (owner.endswith("request.headers") or owner == "headers"):
                headers.add(literal.lower())
            elif attr in ("get_argument", "get_arguments", "get_query_argument", "get_query_arguments"):
                query.add(literal)
            elif attr == "get" and "handlers" in path.parts and (owner == "body" or owner.endswith("json_body()")):
                fields.add(literal)
    return headers, query, fields


def test_every_header_and_query_parameter_the_server_reads_is_fuzzed():
    headers, query, _ = names_read_by_the_server()
    table = {name.lower() for name in READ_HEADERS}
    assert headers - table == set(), f"handlers read headers missing from READ_HEADERS: {headers - table}"
    assert table - headers == set(), f"READ_HEADERS lists headers no handler reads: {table - headers}"
    assert query == set(READ_QUERY), f"query parameters read {query} != READ_QUERY {set(READ_QUERY)}"


def test_every_parameter_in_the_openapi_document_is_in_the_tables():
    documented_headers, documented_query = set(), set()
    for operation in _all_operations():
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "header":
                documented_headers.add(parameter["name"].lower())
            elif parameter["in"] == "query":
                documented_query.add(parameter["name"])
    assert documented_headers <= {name.lower() for name in READ_HEADERS}, documented_headers
    assert documented_query <= set(READ_QUERY), documented_query


def test_every_json_field_a_handler_reads_is_in_the_openapi_document():
    _, _, fields = names_read_by_the_server()
    documented = {name for operation, name in JSON_CASES if name not in (WHOLE_BODY, UNKNOWN_FIELD)}
    assert fields - documented == set(), f"handlers read JSON fields the document does not list: {fields - documented}"


def _all_operations() -> list[dict[str, Any]]:
    from lockr_local.server.openapi import openapi_document

    return [operation for item in openapi_document("http://127.0.0.1")["paths"].values()
            for operation in item.values()]
