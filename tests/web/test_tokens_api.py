"""The JSON endpoints behind the account page: list, create and revoke tokens; change the password."""

from __future__ import annotations

import pytest
import requests

from tests.helpers import create_account, error_code


def test_created_token_works_and_revoking_it_stops_it(server):
    account = create_account(server.url)
    response = requests.post(f"{server.url}/api/v1/tokens", json={"name": "laptop sync"}, headers=account.auth)
    assert response.status_code == 201, response.text
    token = response.json()["token"]
    bearer = {"Authorization": f"Bearer {token}"}
    assert requests.get(f"{server.url}/api/v1/files", headers=bearer).status_code == 200

    tokens = requests.get(f"{server.url}/api/v1/tokens", headers=account.auth).json()["tokens"]
    listed = [t for t in tokens if t["name"] == "laptop sync"]
    assert len(listed) == 1 and listed[0]["prefix"] == token[:10] and listed[0]["revoked"] is False
    assert all("token" not in t for t in tokens), "full tokens are never listed"

    assert requests.delete(f"{server.url}/api/v1/tokens/{listed[0]['id']}", headers=account.auth).status_code == 204
    refused = requests.get(f"{server.url}/api/v1/files", headers=bearer)
    assert refused.status_code == 401
    assert requests.get(f"{server.url}/api/v1/files", headers=account.auth).status_code == 200


def test_revoking_someone_elses_token_returns_404(server):
    alice = create_account(server.url)
    bob = create_account(server.url)
    bob_token_id = requests.get(f"{server.url}/api/v1/tokens", headers=bob.auth).json()["tokens"][0]["id"]
    response = requests.delete(f"{server.url}/api/v1/tokens/{bob_token_id}", headers=alice.auth)
    assert response.status_code == 404
    assert requests.get(f"{server.url}/api/v1/files", headers=bob.auth).status_code == 200


def test_password_change_needs_the_current_password(server):
    account = create_account(server.url, password="first password")
    url = f"{server.url}/api/v1/account/password"
    wrong = requests.post(url, json={"currentPassword": "not it", "newPassword": "second password"},
                          headers=account.auth)
    assert wrong.status_code == 403
    assert error_code(wrong) == "forbidden"
    ok = requests.post(url, json={"currentPassword": "first password", "newPassword": "second password"},
                       headers=account.auth)
    assert ok.status_code == 204, ok.text
    login = f"{server.url}/api/v1/login"
    assert requests.post(login, json={"identifier": account.username, "password": "first password"}).status_code == 401
    assert requests.post(login, json={"identifier": account.username, "password": "second password"}).status_code == 200
    assert requests.get(f"{server.url}/api/v1/files", headers=account.auth).status_code == 200


@pytest.mark.parametrize("body", [{}, {"currentPassword": "first password"},
                                  {"currentPassword": "first password", "newPassword": "short"}])
def test_password_change_with_bad_input_returns_400(server, body):
    account = create_account(server.url, password="first password")
    response = requests.post(f"{server.url}/api/v1/account/password", json=body, headers=account.auth)
    assert response.status_code == 400
    assert error_code(response) == "bad_request"


@pytest.mark.parametrize("method,path", [("GET", "/api/v1/tokens"), ("POST", "/api/v1/tokens"),
                                         ("DELETE", "/api/v1/tokens/1"), ("POST", "/api/v1/account/password")])
def test_token_endpoints_need_an_account(server, method, path):
    response = requests.request(method, f"{server.url}{path}", json={})
    assert response.status_code == 401
    assert error_code(response) == "unauthorized"
