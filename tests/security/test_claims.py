"""A share link gives read access only: attaching a guest upload to an account (POST
/api/v1/files/register) needs the claim secret that only the uploader got in the upload's answer."""

from __future__ import annotations

import base64
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.helpers import create_account, error_code, upload
from tests.server.session_tools import open_session, put_chunk


def register(base_url: str, account: Any, file_id: str, claim: Any = None, **extra: Any) -> requests.Response:
    body: dict[str, Any] = {"id": file_id, **extra}
    if claim is not None:
        body["claimToken"] = claim
    return requests.post(f"{base_url}/api/v1/files/register", json=body, headers=account.auth, timeout=10)


def guest_direct(base_url: str) -> dict[str, Any]:
    answer = upload(base_url, b"a guest's file\n", "guest.txt")
    assert answer.status_code == 201
    return dict(answer.json())


def guest_session(base_url: str) -> dict[str, Any]:
    session = open_session(base_url, 10, "session.bin")
    finished = put_chunk(session["uploadUrl"], b"0123456789", 0, 10).json()
    assert "claimToken" not in finished  # only the answer that opened the session carries it
    return {**finished, "claimToken": session["claimToken"]}


def guest_tus(base_url: str) -> dict[str, Any]:
    created = requests.post(f"{base_url}/api/v1/tus/", timeout=10, headers={
        "Tus-Resumable": "1.0.0", "Upload-Length": "10",
        "Upload-Metadata": f"filename {base64.b64encode(b'tus.bin').decode()}"})
    assert created.status_code == 201
    assert created.headers["Lockr-Claim-Token"] == created.json()["claimToken"]
    patched = requests.patch(created.headers["Location"], data=b"0123456789", timeout=10, headers={
        "Tus-Resumable": "1.0.0", "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"})
    assert patched.status_code == 204
    return {"id": created.headers["Lockr-File-Id"], "claimToken": created.headers["Lockr-Claim-Token"]}


UPLOADS = {"direct": guest_direct, "session": guest_session, "tus": guest_tus}


@pytest.mark.parametrize("how", UPLOADS)
def test_the_uploader_with_the_claim_secret_attaches_the_file(server, how):
    file = UPLOADS[how](server.url)
    claim = file["claimToken"]
    assert isinstance(claim, str) and len(claim) >= 22  # at least 128 bits, url-safe
    owner = create_account(server.url)
    answer = register(server.url, owner, file["id"], claim)
    assert answer.status_code == 200, answer.text
    assert "claimToken" not in answer.json()
    listed = requests.get(f"{server.url}/api/v1/files", headers=owner.auth, timeout=10).json()["files"]
    assert [f["id"] for f in listed] == [file["id"]]
    assert register(server.url, owner, file["id"]).status_code == 200  # again: it is yours, idempotent


@pytest.mark.parametrize("how", UPLOADS)
def test_a_stranger_with_the_share_link_cannot_register_the_file(server, how):
    file = UPLOADS[how](server.url)
    stranger = create_account(server.url)
    answer = register(server.url, stranger, file["id"])
    assert answer.status_code == 403 and error_code(answer) == "claim_required"
    # Nor take it over: no key, no deletion, and the link keeps working for everyone.
    assert requests.post(f"{server.url}/api/v1/files/{file['id']}/key", json={"key": "mine"},
                         headers=stranger.auth, timeout=10).status_code == 404
    assert requests.delete(f"{server.url}/api/v1/files/{file['id']}", headers=stranger.auth,
                           timeout=10).status_code == 404
    page = requests.get(f"{server.url}/download/{file['id']}", timeout=10)
    assert page.status_code == 200
    # The uploader can still claim it afterwards.
    assert register(server.url, create_account(server.url), file["id"], file["claimToken"]).status_code == 200
    assert register(server.url, stranger, file["id"], file["claimToken"]).status_code == 404


@pytest.mark.parametrize("claim,status,code", [
    ("x" * 32, 403, "wrong_claim"),
    ("", 403, "claim_required"),
    (None, 403, "claim_required"),
    (12345, 400, "bad_request"),
    (["a"], 400, "bad_request"),
    ("y" * 5000, 400, "bad_request"),
])
def test_a_wrong_or_malformed_claim_secret_is_refused(server, claim, status, code):
    file = guest_direct(server.url)
    account = create_account(server.url)
    body: dict[str, Any] = {"id": file["id"]}
    if claim is not None:
        body["claimToken"] = claim
    answer = requests.post(f"{server.url}/api/v1/files/register", json=body, headers=account.auth, timeout=10)
    assert answer.status_code == status and error_code(answer) == code, answer.text
    assert requests.get(f"{server.url}/api/v1/files", headers=account.auth, timeout=10).json()["files"] == []


def test_the_claim_secret_of_one_file_does_not_open_another(server):
    first, second = guest_direct(server.url), guest_direct(server.url)
    account = create_account(server.url)
    answer = register(server.url, account, second["id"], first["claimToken"])
    assert answer.status_code == 403 and error_code(answer) == "wrong_claim"


def test_a_claim_secret_is_spent_once_used(server):
    file = guest_direct(server.url)
    first = create_account(server.url)
    assert register(server.url, first, file["id"], file["claimToken"]).status_code == 200
    requests.delete(f"{server.url}/api/v1/files/{file['id']}", headers=first.auth, timeout=10)
    assert register(server.url, create_account(server.url), file["id"], file["claimToken"]).status_code == 404


def test_uploads_into_an_account_carry_no_claim_secret(server):
    account = create_account(server.url)
    assert "claimToken" not in upload(server.url, b"mine", "mine.txt", account=account).json()
    assert "claimToken" not in open_session(server.url, 10, "mine.bin", account)


def test_the_claim_secret_is_stored_only_hashed(server):
    file, session_file = guest_direct(server.url), guest_session(server.url)
    open_claim = open_session(server.url, 10, "open.bin")["claimToken"]
    data_dir = Path(server.settings.data_dir)
    for path in sorted(data_dir.glob("lockr.db*")):
        raw = path.read_bytes()
        for claim in (file["claimToken"], session_file["claimToken"], open_claim):
            assert claim.encode() not in raw, f"a claim secret is stored as is in {path.name}"


def test_guest_files_of_an_older_store_cannot_be_registered_by_id(server):
    file = guest_direct(server.url)
    with sqlite3.connect(Path(server.settings.data_dir) / "lockr.db") as conn:  # as before schema 5
        conn.execute("UPDATE storedfile SET claim_hash = NULL")
    account = create_account(server.url)
    for claim in (None, file["claimToken"]):
        answer = register(server.url, account, file["id"], claim)
        assert answer.status_code == 403 and error_code(answer) in ("claim_required", "wrong_claim")


def test_claim_codes_can_be_typed_after_an_option_on_any_shell() -> None:
    """A code starting with '-' was read by argparse as an option (`register ID --claim -x…` failed
    about one time in 64); claim codes are hex, so none can."""
    from lockr_local.server.security import new_claim_token

    codes = {new_claim_token() for _ in range(2000)}
    assert len(codes) == 2000
    assert all(len(code) == 48 and set(code) <= set("0123456789abcdef") for code in codes)
