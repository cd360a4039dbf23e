"""Access matrix: every endpoint x {guest, bad token, revoked token, owner, another account} gets the
expected status, and no response ever carries another account's data."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pytest
import requests

from tests.conftest import make_settings
from tests.helpers import ThreadedServer, create_account

WHO = ("guest", "bad token", "revoked token", "owner", "other")


@dataclass
class World:
    server: ThreadedServer
    headers: dict[str, dict[str, str]]
    owner_name: str

    def new_file(self, keyed: bool = False) -> dict:
        secret_name = f"owner-secret-{len(self.headers)}-{id(object())}.txt"
        extra = {"x-key-hash": hashlib.sha256(b"phrase").hexdigest()} if keyed else {}
        response = requests.post(f"{self.server.url}/api/v1/upload", data=b"owner's private bytes",
                                 headers={"x-file-name": secret_name, **self.headers["owner"], **extra})
        assert response.status_code == 201
        return response.json()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    server = ThreadedServer(make_settings(tmp_path_factory.mktemp("matrix") / "data")).start()
    owner = create_account(server.url, "matrixowner")
    other = create_account(server.url, "matrixother")
    revoked = requests.post(f"{server.url}/api/v1/login",
                            json={"identifier": owner.username, "password": owner.password}).json()["token"]
    assert server.ctx.db.run_sync(server.ctx.service.revoke_token, revoked)
    headers = {
        "guest": {},
        "bad token": {"Authorization": "Bearer lkr_this-token-does-not-exist"},
        "revoked token": {"Authorization": f"Bearer {revoked}"},
        "owner": owner.auth,
        "other": other.auth,
    }
    yield World(server, headers, owner.username)
    server.stop()


def call(world: World, who: str, endpoint: str, file: dict) -> requests.Response:
    url = world.server.url
    h = world.headers[who]
    fid = file["id"]
    if endpoint in TRASHED_FIRST:  # the owner deletes the file into the trash first
        assert requests.delete(f"{url}/api/v1/files/{fid}", headers=world.headers["owner"]).status_code == 204
    requests_by_endpoint = {
        "list files": lambda: requests.get(f"{url}/api/v1/files", headers=h),
        "account": lambda: requests.get(f"{url}/api/v1/account", headers=h),
        "get file": lambda: requests.get(f"{url}/api/v1/files/{fid}", headers=h),
        "set key": lambda: requests.post(f"{url}/api/v1/files/{fid}/key", json={"key": "x"}, headers=h),
        "signed link": lambda: requests.post(f"{url}/api/v1/files/{fid}/link", json={"expiresIn": 60}, headers=h),
        "delete": lambda: requests.delete(f"{url}/api/v1/files/{fid}", headers=h),
        "register": lambda: requests.post(f"{url}/api/v1/files/register", json={"id": fid}, headers=h),
        "download": lambda: requests.get(file["downloadUrl"], headers=h),
        "download keyed": lambda: requests.get(file["downloadUrl"], headers=h),
        "upload": lambda: requests.post(f"{url}/api/v1/upload", data=b"x", headers={"x-file-name": "n.txt", **h}),
        "open session": lambda: requests.post(f"{url}/api/v1/upload/session", json={"name": "s.bin", "size": 3},
                                              headers=h),
        "tokens": lambda: requests.get(f"{url}/api/v1/tokens", headers=h),
        "dav listing": lambda: requests.request("PROPFIND", f"{url}/dav/{world.owner_name}/",
                                                headers={"Depth": "1", **h}),
        "dav get": lambda: requests.get(f"{url}/dav/{world.owner_name}/{file['name']}", headers=h),
        "list trash": lambda: requests.get(f"{url}/api/v1/trash", headers=h),
        "restore": lambda: requests.post(f"{url}/api/v1/trash/{fid}/restore", headers=h),
        "delete forever": lambda: requests.delete(f"{url}/api/v1/trash/{fid}", headers=h),
        "empty trash": lambda: requests.delete(f"{url}/api/v1/trash", headers=h),
    }
    return requests_by_endpoint[endpoint]()


#             guest  bad  revoked owner other
MATRIX = {
    "list files":     (401, 401, 401, 200, 200),
    "account":        (401, 401, 401, 200, 200),
    "get file":       (401, 401, 401, 200, 404),
    "set key":        (401, 401, 401, 200, 404),
    "signed link":    (401, 401, 401, 201, 404),
    "delete":         (401, 401, 401, 204, 404),
    "register":       (401, 401, 401, 200, 404),
    "download":       (200, 401, 401, 200, 200),
    "download keyed": (403, 401, 401, 200, 403),
    "upload":         (201, 401, 401, 201, 201),
    "open session":   (201, 401, 401, 201, 201),
    "tokens":         (401, 401, 401, 200, 200),
    "dav listing":    (401, 401, 401, 207, 403),
    "dav get":        (401, 401, 401, 200, 403),
    "list trash":     (401, 401, 401, 200, 200),
    "restore":        (401, 401, 401, 200, 404),
    "delete forever": (401, 401, 401, 204, 404),
    "empty trash":    (401, 401, 401, 200, 200),
}
TRASHED_FIRST = ("list trash", "restore", "delete forever", "empty trash")


@pytest.mark.parametrize("who", WHO)
@pytest.mark.parametrize("endpoint", sorted(MATRIX))
def test_access_matrix(world, endpoint, who):
    file = world.new_file(keyed=endpoint == "download keyed")
    response = call(world, who, endpoint, file)
    expected = MATRIX[endpoint][WHO.index(who)]
    assert response.status_code == expected, f"{endpoint} as {who}: {response.status_code} {response.text[:200]}"
    if who != "owner" and endpoint not in ("download", "register"):
        assert file["id"] not in response.text, f"{endpoint} as {who} leaked the owner's file id"
        assert file["name"] not in response.text, f"{endpoint} as {who} leaked the owner's file name"
        assert "owner's private bytes" not in response.text
    if response.status_code >= 400:
        assert response.headers["Content-Type"].startswith("application/json") or endpoint.startswith("dav")
