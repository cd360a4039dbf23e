"""Plan limits (413), quota (403) and burst protection (429) hold before bytes are read or stored."""

from __future__ import annotations

import socket

import pytest
import requests

from tests.helpers import create_account, error_code, upload, wait_for


def read_response_without_sending_body(url: str, head: bytes) -> bytes:
    """Sends only the request head, then reads what the server answers (it must not wait for a body)."""
    host, port = url.split("//")[1].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head)
        data = b""
        while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < 20:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return data


def test_guest_upload_over_5gb_is_refused_with_413_before_the_body(server):
    head = (b"POST /api/v1/upload HTTP/1.1\r\nHost: x\r\nx-file-name: huge.iso\r\n"
            b"Content-Length: 5000000001\r\nExpect: 100-continue\r\n\r\n")
    answer = read_response_without_sending_body(server.url, head)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b'"too_large"' in answer
    assert b"100 (Continue)" not in answer
    # The body stays unread, so the connection closes after the answer, and the answer says so: a
    # client must not send its next request on it (rclone's PUT of another file failed there).
    assert b"\r\nConnection: close\r\n" in answer.split(b"\r\n\r\n")[0] + b"\r\n"


def test_an_error_after_reading_a_small_body_keeps_the_connection_open(server):
    with requests.Session() as session:
        response = session.post(f"{server.url}/api/v1/upload", data=b"x" * 1000,
                                headers={"x-file-name": "../bad"}, timeout=10)
        assert response.status_code == 400
        assert response.headers.get("Connection", "").lower() != "close"


def send_body_then_read_answer(url: str, head: bytes, body_pieces: list[bytes]) -> bytes:
    """Writes the whole body the way naive clients do (requests, Go's net/http until it sees the answer),
    then reads the answer to the end. A server that closes with our bytes unread resets the connection,
    and the answer is lost: that raises here."""
    host, port = url.split("//")[1].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head)
        for piece in body_pieces:
            sock.sendall(piece)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def test_a_body_refused_before_it_is_read_still_lets_the_client_read_the_413(server_factory):
    srv = server_factory(guest_max_object=1000)
    body = b"x" * (6 * 1024 * 1024)
    head = (b"POST /api/v1/upload HTTP/1.1\r\nHost: x\r\nx-file-name: big.bin\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n")
    answer = send_body_then_read_answer(srv.url, head, [body])
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert answer.rstrip().endswith(b"}") and b'"too_large"' in answer
    assert b"\r\nConnection: close\r\n" in answer


def test_account_upload_over_100gb_is_refused_with_413_before_the_body(server):
    account = create_account(server.url)
    head = (b"POST /api/v1/upload HTTP/1.1\r\nHost: x\r\nx-file-name: huge.iso\r\nAuthorization: Bearer "
            + account.token.encode() + b"\r\nContent-Length: 100000000001\r\n\r\n")
    answer = read_response_without_sending_body(server.url, head)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


def test_guest_upload_of_exactly_the_limit_size_is_not_refused_by_size(server_factory):
    srv = server_factory(guest_max_object=1000)
    assert upload(srv.url, b"x" * 1000, "edge.bin").status_code == 201
    response = upload(srv.url, b"x" * 1001, "over.bin")
    assert response.status_code == 413
    assert "1.0 KB" in response.json()["error"]["message"]


def test_chunked_body_running_past_the_limit_is_cut_with_413_and_discarded(server_factory):
    srv = server_factory(guest_max_object=2_000_000)

    def body():
        for _ in range(100):
            yield b"z" * 65536

    # requests writes the whole body before it reads: the server's lingering close lets it read the 413.
    response = requests.post(f"{srv.url}/api/v1/upload", data=body(), headers={"x-file-name": "big.bin"})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"
    temp = srv.ctx.blobs.temp_dir("local")
    assert wait_for(lambda: list(temp.iterdir()) == [], message="temp file discarded")
    assert not any(p.is_file() for p in (srv.ctx.blobs.root("local") / "objects").rglob("*"))
    assert upload(srv.url, b"small", "ok.bin").status_code == 201


def test_quota_exceeded_returns_403_and_keeps_existing_files(server_factory):
    srv = server_factory(default_quota=1000)
    account = create_account(srv.url)
    first = upload(srv.url, b"a" * 600, "first.bin", account=account)
    assert first.status_code == 201
    second = upload(srv.url, b"b" * 600, "second.bin", account=account)
    assert second.status_code == 403
    assert error_code(second) == "quota_exceeded"
    files = requests.get(f"{srv.url}/api/v1/files", headers=account.auth).json()["files"]
    assert [f["name"] for f in files] == ["first.bin"]
    assert requests.get(files[0]["downloadUrl"], headers=account.auth).content == b"a" * 600
    assert requests.get(f"{srv.url}/api/v1/account", headers=account.auth).json()["used"] == 600


def test_quota_is_checked_for_chunked_uploads_at_commit(server_factory):
    srv = server_factory(default_quota=1000)
    account = create_account(srv.url)
    response = requests.post(f"{srv.url}/api/v1/upload", data=iter([b"c" * 700, b"c" * 700]),
                             headers={"x-file-name": "chunked.bin", **account.auth})
    assert response.status_code == 403
    assert requests.get(f"{srv.url}/api/v1/files", headers=account.auth).json()["files"] == []
    assert not any(p.is_file() for p in (srv.ctx.blobs.root("local") / "objects").rglob("*"))


def test_register_over_quota_returns_403(server_factory):
    srv = server_factory(default_quota=10)
    account = create_account(srv.url)
    guest = upload(srv.url, b"x" * 50, "guest.bin").json()
    response = requests.post(f"{srv.url}/api/v1/files/register", json={"id": guest["id"]}, headers=account.auth)
    assert response.status_code == 403


def test_guest_bursts_get_429_with_retry_after(server_factory):
    srv = server_factory(rate_guest=1, rate_guest_burst=3)
    statuses = [requests.get(f"{srv.url}/api/v1/download/local/{'0' * 32}/x") for _ in range(6)]
    limited = [r for r in statuses if r.status_code == 429]
    assert limited, [r.status_code for r in statuses]
    assert int(limited[0].headers["Retry-After"]) >= 1
    assert error_code(limited[0]) == "rate_limited"


def test_accounts_get_a_larger_allowance_than_guests(server_factory):
    srv = server_factory(rate_guest=0.5, rate_guest_burst=2, rate_account=0.5, rate_account_burst=20)
    account = create_account(srv.url)
    stored = upload(srv.url, b"shared bytes", "shared.txt", account=account)
    assert stored.status_code == 201
    url = stored.json()["downloadUrl"]
    account_codes = [requests.get(url, headers=account.auth).status_code for _ in range(10)]
    guest_codes = [requests.get(url).status_code for _ in range(10)]
    assert account_codes == [200] * 10
    assert guest_codes[:2] == [200, 200]
    assert 429 in guest_codes[2:], guest_codes


def revoked_token(base_url: str) -> str:
    account = create_account(base_url)
    made = requests.post(f"{base_url}/api/v1/tokens", json={"name": "old laptop"}, headers=account.auth).json()
    token_id = [t["id"] for t in requests.get(f"{base_url}/api/v1/tokens", headers=account.auth).json()["tokens"]
                if t["name"] == "old laptop"][0]
    assert requests.delete(f"{base_url}/api/v1/tokens/{token_id}", headers=account.auth).status_code == 204
    return str(made["token"])


@pytest.mark.parametrize("credential, method, path", [
    ("invalid", "GET", "/api/v1/files"),
    ("revoked", "GET", "/api/v1/files"),
    ("invalid", "POST", "/api/v1/upload"),  # the upload's one-trip token check is limited too
    ("invalid", "PROPFIND", "/dav/"),
])
def test_250_requests_with_bad_tokens_meet_429_with_retry_after(server_factory, credential, method, path):
    # The shipped guest allowance (20/s, bursts of 60): a token guesser is held to it.
    srv = server_factory(rate_guest=20.0, rate_guest_burst=60)
    token = revoked_token(srv.url) if credential == "revoked" else "lk_" + "0" * 40
    headers = {"Authorization": f"Bearer {token}", "x-file-name": "guess.bin"}
    with requests.Session() as session:
        answers = [session.request(method, srv.url + path, headers=headers, data=b"x", timeout=10)
                   for _ in range(250)]
        # The failures counted against the address: a guest there is held back as well (within what
        # refills at 20 per second meanwhile).
        guest = [session.get(f"{srv.url}/api/v1/download/local/{'0' * 32}/x").status_code for _ in range(10)]
    codes = [r.status_code for r in answers]
    assert set(codes) == {401, 429}, codes
    assert codes[0] == 401
    assert 60 <= codes.count(401) < 200, codes.count(401)
    limited = next(r for r in answers if r.status_code == 429)
    assert int(limited.headers["Retry-After"]) >= 1
    assert error_code(limited) == "rate_limited"
    assert guest.count(429) >= 5, guest


def test_webdav_requests_without_credentials_spend_the_guest_allowance(server_factory):
    srv = server_factory(rate_guest=0.2, rate_guest_burst=3)
    answers = [requests.get(f"{srv.url}/dav/x.txt") for _ in range(6)]
    codes = [r.status_code for r in answers]
    assert codes[:3] == [401] * 3 and set(codes[3:]) == {429}, codes
    assert int(answers[3].headers["Retry-After"]) >= 1


def test_wrong_basic_passwords_meet_429_with_retry_after(server_factory):
    srv = server_factory(rate_guest=20.0, rate_guest_burst=60, rate_login=0.2, rate_login_burst=10)
    account = create_account(srv.url)
    answers = [requests.get(f"{srv.url}/api/v1/files", auth=(account.username, "wrong password"))
               for _ in range(15)]
    codes = [r.status_code for r in answers]
    # Signing up spends an allowance of its own: all ten attempts of the burst are password guesses.
    first_refusal = codes.index(429)
    assert codes[:first_refusal] == [401] * 10 and set(codes[first_refusal:]) == {429}, codes
    assert int(answers[first_refusal].headers["Retry-After"]) >= 1


def test_accounts_from_one_address_share_one_account_allowance(server_factory):
    srv = server_factory(rate_account=0.2, rate_account_burst=10)
    accounts = [create_account(srv.url) for _ in range(3)]
    answers = [requests.get(f"{srv.url}/api/v1/files", headers=account.auth)
               for account in accounts for _ in range(6)]
    codes = [r.status_code for r in answers]
    # 18 requests with 3 tokens from one address: the address's account allowance (10, plus what
    # refills meanwhile) is the cap, not 3 x 10.
    assert 10 <= codes.count(200) <= 12 and codes[:10] == [200] * 10, codes
    limited = next(r for r in answers if r.status_code == 429)
    assert int(limited.headers["Retry-After"]) >= 1
    assert error_code(limited) == "rate_limited"


def guest_codes(url: str, forwarded_for: str, count: int) -> list[int]:
    return [requests.get(f"{url}/api/v1/download/local/{'0' * 32}/x",
                         headers={"X-Forwarded-For": forwarded_for}).status_code for _ in range(count)]


def test_spoofed_x_forwarded_for_does_not_escape_the_guest_limit(server_factory):
    srv = server_factory(rate_guest=0.2, rate_guest_burst=3)
    # Each request claims another address; from a peer that is not a trusted proxy, none is believed.
    codes = [guest_codes(srv.url, f"198.51.100.{i}", 1)[0] for i in range(8)]
    assert codes[:3] == [404] * 3 and set(codes[3:]) == {429}, codes


def test_x_forwarded_for_from_a_trusted_proxy_is_limited_per_forwarded_address(server_factory):
    srv = server_factory(rate_guest=0.2, rate_guest_burst=3, trusted_proxies="127.0.0.1")
    first = guest_codes(srv.url, "203.0.113.7", 5)
    assert first[:3] == [404] * 3 and set(first[3:]) == {429}, first
    # Another client behind the same proxy has an allowance of its own.
    assert guest_codes(srv.url, "203.0.113.8", 3) == [404] * 3
    # A client cannot pose as another by prepending a hop: the proxy appends the peer it saw, last.
    assert guest_codes(srv.url, "203.0.113.8, 203.0.113.7", 1) == [429]


def test_login_brute_force_meets_429(server_factory):
    srv = server_factory(rate_login=0.01, rate_login_burst=5)
    create_account(srv.url, "victim", password="the real password")
    codes = [requests.post(f"{srv.url}/api/v1/login", json={"identifier": "victim", "password": f"guess{i}"}
                           ).status_code for i in range(8)]
    assert codes[:4] == [401] * 4
    assert 429 in codes
    limited = requests.post(f"{srv.url}/api/v1/login", json={"identifier": "victim", "password": "x"})
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 1


def sign_up_status(url: str, address: str, username: str, password: str = "long enough pw") -> int:
    return requests.post(f"{url}/api/v1/account", headers={"X-Forwarded-For": address}, timeout=30, json={
        "username": username, "email": f"{username}@example.com", "password": password}).status_code


def test_sign_up_bursts_from_one_address_leave_other_addresses_their_own_allowance(server_factory):
    srv = server_factory(rate_login=0.01, rate_login_burst=3, trusted_proxies="127.0.0.1")
    # Malformed sign-ups are refused before any allowance is spent: they cost the server nothing.
    assert [sign_up_status(srv.url, "203.0.113.7", "bad name!") for _ in range(5)] == [400] * 5
    noisy = [sign_up_status(srv.url, "203.0.113.7", f"noisy{i}") for i in range(5)]
    assert noisy[:3] == [201] * 3 and set(noisy[3:]) == {429}, noisy
    # Another client has an allowance of its own.
    assert sign_up_status(srv.url, "203.0.113.8", "quiet") == 201


def login_status(url: str, address: str, identifier: str, password: str) -> int:
    return requests.post(f"{url}/api/v1/login", headers={"X-Forwarded-For": address}, timeout=30, json={
        "identifier": identifier, "password": password}).status_code


def test_a_user_named_signup_does_not_share_the_sign_up_allowance(server_factory):
    srv = server_factory(rate_login=0.01, rate_login_burst=3, trusted_proxies="127.0.0.1")
    create_account(srv.url, "signup", password="the real password")
    codes = [sign_up_status(srv.url, "203.0.113.7", f"other{i}") for i in range(4)]
    assert codes[-1] == 429, codes
    assert login_status(srv.url, "203.0.113.9", "signup", "the real password") == 200


def basic_status(url: str, address: str, identifier: str, password: str) -> int:
    return requests.get(f"{url}/api/v1/files", auth=(identifier, password), headers={"X-Forwarded-For": address},
                        timeout=30).status_code


@pytest.mark.parametrize("attempt", [login_status, basic_status], ids=["api-login", "basic-auth"])
def test_guessing_from_many_addresses_is_bounded_but_does_not_lock_the_owner_out(server_factory, attempt):
    srv = server_factory(rate_login=0.01, rate_login_burst=3, trusted_proxies="127.0.0.1")
    create_account(srv.url, "victim", password="the real password")
    # The owner has logged in from home before.
    assert attempt(srv.url, "198.51.100.1", "victim", "the real password") == 200
    srv.ctx.auth.forget_cached_credentials()  # Basic answers from a short cache; make every check a real one
    # Guesses from ten addresses (each with an allowance of its own) meet the account's allowance.
    guesses = [attempt(srv.url, f"203.0.113.{i}", "victim", f"guess {i}") for i in range(10)]
    assert guesses.count(401) <= 3 and set(guesses[3:]) == {429}, guesses
    # The right password from an unknown address is held back too while someone guesses...
    assert attempt(srv.url, "192.0.2.50", "victim", "the real password") == 429
    # ...but the owner's known address still gets in, under any case of the name's letters too.
    assert attempt(srv.url, "198.51.100.1", "victim", "the real password") == 200
    assert attempt(srv.url, "198.51.100.1", "victim@example.com", "the real password") == 200


def test_trickled_upload_body_is_cut_off_without_hurting_others(server_factory):
    srv = server_factory(body_idle_timeout=0.5, min_body_rate=1000)
    head = (b"POST /api/v1/upload HTTP/1.1\r\nHost: x\r\nx-file-name: slow.bin\r\nContent-Length: 100000\r\n\r\n")
    host, port = srv.url.split("//")[1].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head)
        closed = False
        for _ in range(100):
            try:
                sock.sendall(b"x" * 10)
            except OSError:
                closed = True
                break
            if not wait_for_readable(sock, 0.1):
                continue
            if receive_or_reset(sock) == b"":
                closed = True
                break
        assert closed, "a body trickling at 100 bytes/s was not cut off"
    assert upload(srv.url, b"fast", "fast.bin").status_code == 201
    temp = srv.ctx.blobs.temp_dir("local")
    assert wait_for(lambda: list(temp.iterdir()) == [], message="temp file of the cut upload removed")


def test_slowloris_headers_are_cut_off(server_factory):
    srv = server_factory(header_timeout=0.5)
    host, port = srv.url.split("//")[1].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        closed = False
        for _ in range(50):
            try:
                sock.sendall(b"X-Slow: a\r\n")
            except OSError:
                closed = True
                break
            if wait_for_readable(sock, 0.1) and receive_or_reset(sock) == b"":
                closed = True
                break
        assert closed, "headers trickled for 5 s were not cut off"


def test_many_idle_connections_do_not_exhaust_the_server(server_factory):
    srv = server_factory()
    host, port = srv.url.split("//")[1].split(":")
    idle = [socket.create_connection((host, int(port)), timeout=10) for _ in range(300)]
    try:
        assert requests.get(f"{srv.url}/healthz", timeout=10).status_code == 200
    finally:
        for sock in idle:
            sock.close()


def wait_for_readable(sock: socket.socket, seconds: float) -> bool:
    import select

    readable, _, _ = select.select([sock], [], [], seconds)
    return bool(readable)


def receive_or_reset(sock: socket.socket) -> bytes:
    """What the server sent; b"" when it closed the connection, whether with FIN or RST."""
    try:
        return sock.recv(65536)
    except ConnectionResetError:
        return b""
