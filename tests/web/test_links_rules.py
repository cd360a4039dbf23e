"""The signed-link rules of server/links.py on their own: what a signature covers, and the clock."""

from __future__ import annotations

import dataclasses
from urllib.parse import parse_qs, urlsplit

import pytest

from lockr_local.errors import BadRequest, LinkInvalid
from lockr_local.server.links import check_download, link_lifetime, sign_download
from lockr_local.server.security import Signer
from lockr_local.server.service import FileInfo

NOW = 1_800_000_000.0
FILE = FileInfo(id="0123456789abcdef0123456789abcdef", name="docs/report.pdf", size=10, type="application/pdf",
                region="local", sha256="0" * 64, key_hash=None, key_version=3, owner_id=1, created_at=NOW,
                mtime=None)


def signed(info: FileInfo = FILE, lifetime: int = 60, signer: Signer | None = None) -> tuple[str, str]:
    link = sign_download(signer or Signer(b"secret"), info, lifetime, now=NOW)
    query = parse_qs(urlsplit(link.path).query)
    return query["expires"][0], query["sig"][0]


def test_link_is_the_download_path_with_expiry_and_signature():
    link = sign_download(Signer(b"secret"), FILE, 60, now=NOW)
    assert link.path.startswith("/api/v1/download/local/0123456789abcdef0123456789abcdef/docs/report.pdf?")
    assert link.expires_at == NOW + 60
    assert link.to_json("https://files.example.org")["url"].startswith("https://files.example.org/api/v1/")


def test_link_is_valid_until_its_expiry_and_not_a_second_after():
    expires, sig = signed()
    check_download(Signer(b"secret"), FILE, expires, sig, now=NOW + 60)
    with pytest.raises(LinkInvalid, match="expired"):
        check_download(Signer(b"secret"), FILE, expires, sig, now=NOW + 61)


@pytest.mark.parametrize("change", [
    {"key_version": 4}, {"id": "f" * 32}, {"region": "eu-west1"},
])
def test_signature_covers_key_version_file_id_and_region(change):
    expires, sig = signed()
    with pytest.raises(LinkInvalid):
        check_download(Signer(b"secret"), dataclasses.replace(FILE, **change), expires, sig, now=NOW)


def test_signature_does_not_cover_the_cosmetic_name():
    expires, sig = signed()
    check_download(Signer(b"secret"), dataclasses.replace(FILE, name="renamed.pdf"), expires, sig, now=NOW)


def test_another_secret_does_not_verify():
    expires, sig = signed(signer=Signer(b"other secret"))
    with pytest.raises(LinkInvalid):
        check_download(Signer(b"secret"), FILE, expires, sig, now=NOW)


@pytest.mark.parametrize("expires,sig", [(None, "x"), ("", "x"), ("123", None), ("12e3", "x"), ("-5", "x"),
                                         ("9" * 40, "x")])
def test_malformed_link_parameters_are_invalid_not_errors(expires, sig):
    with pytest.raises(LinkInvalid):
        check_download(Signer(b"secret"), FILE, expires, sig, now=NOW)


@pytest.mark.parametrize("requested,expected", [(None, 3600), (1, 1), (3600, 3600)])
def test_lifetime_defaults_and_limits(requested, expected):
    assert link_lifetime(requested, 3600) == expected


@pytest.mark.parametrize("requested", [0, 3601, "60", 1.0, False])
def test_lifetime_outside_the_rules_is_a_bad_request(requested):
    with pytest.raises(BadRequest):
        link_lifetime(requested, 3600)
