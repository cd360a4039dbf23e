"""The pages over plain HTTP: headers, cookies, redirects, form errors and sessions that end on logout."""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

import pytest
import requests

from tests.helpers import create_account, upload


def page_session(base_url: str) -> tuple[requests.Session, str]:
    """A cookie-keeping client holding the page's XSRF token, as a browser would."""
    session = requests.Session()
    html = session.get(f"{base_url}/account").text
    match = re.search(r'name="_xsrf" value="([^"]+)"', html)
    assert match, "the account page's forms carry an XSRF token"
    return session, match.group(1)


def sign_up(base_url: str, username: str = "pageuser") -> requests.Session:
    session, xsrf = page_session(base_url)
    response = session.post(f"{base_url}/account/signup", allow_redirects=False, data={
        "_xsrf": xsrf, "username": username, "email": f"{username}@example.com", "password": "long enough pw"})
    assert response.status_code == 302, response.text
    return session


@pytest.mark.parametrize("path", ["/account", "/download/" + "0" * 32])
def test_pages_send_protective_headers(server, path):
    response = requests.get(server.url + path)
    assert response.headers["Content-Type"].startswith("text/html")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Cache-Control"] == "no-store"


def test_session_cookie_is_signed_httponly_and_samesite(server):
    session, xsrf = page_session(server.url)
    response = session.post(f"{server.url}/account/signup", allow_redirects=False, data={
        "_xsrf": xsrf, "username": "cookie", "email": "cookie@example.com", "password": "long enough pw"})
    cookie = next(c for c in response.headers.get("Set-Cookie", "").split(", lockr") if "lockr_session=" in c)
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    forged = requests.get(f"{server.url}/files", cookies={"lockr_session": "lkr_madeup"}, allow_redirects=False)
    assert forged.status_code == 302 and forged.headers["Location"].startswith("/account")


def test_logout_revokes_the_page_session_token(server):
    session = sign_up(server.url)
    html = session.get(f"{server.url}/files").text
    token = re.search(r'<meta name="lockr-token" content="([^"]+)"', html).group(1)
    bearer = {"Authorization": f"Bearer {token}"}
    assert requests.get(f"{server.url}/api/v1/files", headers=bearer).status_code == 200
    xsrf = session.cookies.get("_xsrf")
    response = session.post(f"{server.url}/account/logout", data={"_xsrf": xsrf}, allow_redirects=False)
    assert response.status_code == 302
    assert requests.get(f"{server.url}/api/v1/files", headers=bearer).status_code == 401
    assert session.get(f"{server.url}/files", allow_redirects=False).status_code == 302


@pytest.mark.parametrize("form,data,status,text", [
    ("signup", {"username": "taken", "email": "new@example.com", "password": "long enough pw"}, 409,
     "username is already registered"),
    ("signup", {"username": "bad name!", "email": "x@example.com", "password": "long enough pw"}, 400, "username"),
    ("signup", {"username": "shorty", "email": "s@example.com", "password": "short"}, 400, "at least 8"),
    ("login", {"identifier": "taken", "password": "wrong password"}, 401, "Wrong username"),
    ("login", {"identifier": "", "password": ""}, 400, "Enter your username"),
])
def test_form_errors_are_shown_on_the_page(server, form, data, status, text):
    create_account(server.url, "taken")
    session, xsrf = page_session(server.url)
    response = session.post(f"{server.url}/account/{form}", data={"_xsrf": xsrf, **data}, allow_redirects=False)
    assert response.status_code == status
    assert text in response.text
    assert "lockr_session" not in session.cookies


@pytest.mark.parametrize("next_url,expected", [
    ("/files", "/files"), ("//evil.example/steal", "/files"), ("https://evil.example/", "/files"),
    ("/\\evil.example", "/files"), ("/account", "/account"),
])
def test_login_redirects_only_within_the_site(server, next_url, expected):
    create_account(server.url, "walker", password="long enough pw")
    session, xsrf = page_session(server.url)
    response = session.post(f"{server.url}/account/login", allow_redirects=False, data={
        "_xsrf": xsrf, "identifier": "walker", "password": "long enough pw", "next": next_url})
    assert response.status_code == 302
    assert response.headers["Location"] == expected


# Browsers drop tabs and newlines from a URL (WHATWG) and read a backslash as a slash, so each of these
# would leave the site if it came out in Location unchanged.
HOSTILE_NEXT = [
    "\t/evil.example/x", "/\t/evil.example/x", "/\n/evil.example/x", "\n/evil.example", "/\r\n/evil.example",
    "/\\evil.example", "\\/evil.example", "//evil.example", "///evil.example", "https:evil.example",
    "https://evil.example/", "javascript:alert(1)", "/\x00/evil.example", "/\x1b/evil.example", "/\x7f/x",
    " //evil.example", "/\u00a0/evil.example", "/" + "a" * 5000, "evil.example", "?next=//evil", "http://[::1",
]


@pytest.mark.parametrize("next_url", HOSTILE_NEXT)
def test_login_with_a_hostile_next_lands_on_a_same_site_path(server, next_url):
    create_account(server.url, "walker", password="long enough pw")
    session, xsrf = page_session(server.url)
    form = session.get(f"{server.url}/account", params={"next": next_url})
    assert form.status_code == 200
    response = session.post(f"{server.url}/account/login", allow_redirects=False, data={
        "_xsrf": xsrf, "identifier": "walker", "password": "long enough pw", "next": next_url})
    assert response.status_code == 302, response.text
    location = response.headers["Location"]
    assert location == "/files"
    # What a browser would make of it: a path on this site.
    parts = urlsplit(urljoin(server.url + "/account", location))
    assert f"{parts.scheme}://{parts.netloc}" == server.url


@pytest.mark.parametrize("next_url", ["/files", "/download/" + "a" * 32, "/%09/evil.example", "/files?x=1#top"])
def test_login_keeps_a_plain_same_site_next(server, next_url):
    create_account(server.url, "walker", password="long enough pw")
    session, xsrf = page_session(server.url)
    response = session.post(f"{server.url}/account/login", allow_redirects=False, data={
        "_xsrf": xsrf, "identifier": "walker", "password": "long enough pw", "next": next_url})
    assert response.status_code == 302
    assert response.headers["Location"] == next_url
    parts = urlsplit(urljoin(server.url + "/account", response.headers["Location"]))
    assert f"{parts.scheme}://{parts.netloc}" == server.url


def test_signup_disabled_shows_a_notice_and_refuses_the_form(server_factory):
    server = server_factory(signup=False)
    session, xsrf = page_session(server.url)
    assert "does not take new accounts" in session.get(f"{server.url}/account").text
    response = session.post(f"{server.url}/account/signup", data={
        "_xsrf": xsrf, "username": "nobody", "email": "n@example.com", "password": "long enough pw"})
    assert response.status_code == 403


def test_download_page_shows_facts_and_never_the_content(server):
    account = create_account(server.url)
    marker = "<b>inline-marker</b>"
    file = upload(server.url, marker.encode(), "docs/<script>x</script>.html", {"Content-Type": "text/html"},
                  account).json()
    html = requests.get(f"{server.url}/download/{file['id']}").text
    assert "inline-marker" not in html
    assert "<script>x</script>" not in html and "&lt;script&gt;x&lt;/script&gt;.html" in html
    assert "text/html" in html and f"{len(marker)} B" in html and file["sha256"] in html


def test_api_stays_token_only_and_needs_no_xsrf(server):
    """A page session cookie gives the JSON API nothing: it reads only the Authorization header."""
    session = sign_up(server.url, "cookieonly")
    assert session.get(f"{server.url}/api/v1/files").status_code == 401
    account = create_account(server.url)
    response = requests.post(f"{server.url}/api/v1/tokens", json={"name": "no xsrf"}, headers=account.auth)
    assert response.status_code == 201


def test_home_sends_visitors_to_the_guest_upload_page_and_members_to_their_files(server):
    response = requests.get(server.url + "/", allow_redirects=False)
    assert response.status_code == 302 and response.headers["Location"] == "/upload"
    for path in ("/upload", "/account", "/download/" + "0" * 32):
        assert '<a href="/upload"' in requests.get(server.url + path).text, f"{path} links the upload page"
    session = sign_up(server.url, "member")
    assert session.get(server.url + "/", allow_redirects=False).headers["Location"] == "/files"
    assert session.get(server.url + "/upload", allow_redirects=False).headers["Location"] == "/files"
    assert '<a href="/upload"' not in session.get(server.url + "/account").text


def test_upload_page_without_guest_uploads_sends_people_to_sign_in(server_factory):
    server = server_factory(guest_uploads=False)
    assert requests.get(server.url + "/", allow_redirects=False).headers["Location"] == "/account"
    html = requests.get(server.url + "/upload").text
    assert "signed-in users only" in html and 'id="dropzone"' not in html
    assert '<a href="/upload"' not in requests.get(server.url + "/account").text


def page_post(session: requests.Session, url: str, address: str, data: dict[str, str]) -> requests.Response:
    """A form post from the client at `address` (the test server trusts 127.0.0.1 as its proxy)."""
    return session.post(url, data={"_xsrf": session.cookies.get("_xsrf"), **data}, allow_redirects=False,
                        headers={"X-Forwarded-For": address}, timeout=30)


def test_page_sign_up_bursts_from_one_address_do_not_refuse_another(server_factory):
    srv = server_factory(rate_login=0.01, rate_login_burst=3, trusted_proxies="127.0.0.1")
    session, _ = page_session(srv.url)
    form = {"email": "x@example.com", "password": "long enough pw"}
    bad = [page_post(session, f"{srv.url}/account/signup", "203.0.113.7", {**form, "username": "bad name!"})
           for _ in range(5)]
    assert [r.status_code for r in bad] == [400] * 5
    noisy = [page_post(session, f"{srv.url}/account/signup", "203.0.113.7",
                       {**form, "username": f"noisy{i}", "email": f"noisy{i}@example.com"}).status_code
             for i in range(5)]
    assert noisy[:3] == [302] * 3 and set(noisy[3:]) == {429}, noisy
    other, _ = page_session(srv.url)
    answer = page_post(other, f"{srv.url}/account/signup", "203.0.113.8",
                       {**form, "username": "quiet", "email": "quiet@example.com"})
    assert answer.status_code == 302, answer.text


def test_a_browser_that_logged_in_before_is_not_locked_out_by_guessing_elsewhere(server_factory):
    srv = server_factory(rate_login=0.01, rate_login_burst=3, trusted_proxies="127.0.0.1")
    create_account(srv.url, "victim", password="the real password")
    owner, _ = page_session(srv.url)
    login = {"identifier": "victim", "password": "the real password"}
    assert page_post(owner, f"{srv.url}/account/login", "198.51.100.1", login).status_code == 302
    page_post(owner, f"{srv.url}/account/logout", "198.51.100.1", {})
    device = next(c for c in owner.cookies if c.name == "lockr_device")
    assert device.has_nonstandard_attr("HttpOnly") and device.expires and device.path == "/account"
    guesses = [requests.post(f"{srv.url}/api/v1/login", headers={"X-Forwarded-For": f"203.0.113.{i}"},
                             json={"identifier": "victim", "password": f"guess {i}"}).status_code for i in range(8)]
    assert 429 in guesses, guesses
    # The owner's browser, now on another network, still gets in; a browser new to the account does not.
    assert page_post(owner, f"{srv.url}/account/login", "192.0.2.60", login).status_code == 302
    srv.ctx.auth.forget_cached_credentials()  # a right password is remembered briefly (for Basic auth)
    stranger, _ = page_session(srv.url)
    assert page_post(stranger, f"{srv.url}/account/login", "192.0.2.61", login).status_code == 429
    # A device cookie names accounts, signed: it cannot be made up for someone else's account.
    forged, _ = page_session(srv.url)
    forged.cookies.set("lockr_device", "1", path="/account")
    assert page_post(forged, f"{srv.url}/account/login", "192.0.2.62", login).status_code == 429


@pytest.mark.parametrize("retention, shown", [("30d", "stay here for 30 days"), ("12h", "stay here for 12 hours"),
                                              ("0", None)])
def test_files_page_shows_the_trash_with_its_retention_unless_the_trash_is_off(server_factory, retention, shown):
    server = server_factory(trash_retention=retention)
    html = sign_up(server.url).get(f"{server.url}/files").text
    if shown is None:
        assert 'id="trash-card"' not in html
    else:
        assert 'id="trash-card"' in html and shown in html
