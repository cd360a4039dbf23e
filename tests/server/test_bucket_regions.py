"""Regions kept in an S3-compatible bucket (moto's server, a separate process): what only a bucket does —
presigned downloads, multipart parts, sessions resumed by a fresh process, server-side copies, mixed regions,
and region values refused at start."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from lockr_local.config import SettingsError, load_settings
from lockr_local.server.blobstore import BlobLocation
from tests.helpers import REPO, clean_env, create_account, error_code, upload
from tests.server.session_tools import open_session, put_chunk

MIB = 2**20


@pytest.fixture
def bucket_region(s3_server) -> str:
    return s3_server.region_url()


def test_presigned_download_redirects_an_authorised_client_to_the_object_store(server_factory, s3_server):
    srv = server_factory(regions=f"local={s3_server.region_url(presigned_downloads='true')}", inline_max="0")
    account = create_account(srv.url)
    data = os.urandom(300_000)
    file = upload(srv.url, data, "report.pdf", account=account,
                  headers={"Content-Type": "application/pdf"}).json()

    answer = requests.get(file["downloadUrl"], headers=account.auth, allow_redirects=False, timeout=30)
    assert answer.status_code == 302
    location = answer.headers["Location"]
    assert location.startswith(s3_server.endpoint + "/") and "Signature=" in location
    fetched = requests.get(location, timeout=30)  # no credentials of ours: the URL is the capability
    assert (fetched.status_code, fetched.content == data) == (200, True)
    assert 'filename="report.pdf"' in fetched.headers["Content-Disposition"]
    assert fetched.headers["Content-Type"] == "application/pdf"
    # A client that follows the redirect with its Range gets the range from the store.
    ranged = requests.get(file["downloadUrl"], headers={**account.auth, "Range": "bytes=1000-1999"}, timeout=30)
    assert (ranged.status_code, ranged.content) == (206, data[1000:2000])
    # HEAD cannot follow a GET-only URL: answered by the server itself.
    head = requests.head(file["downloadUrl"], headers=account.auth, allow_redirects=False, timeout=30)
    assert (head.status_code, head.headers["Content-Length"]) == (200, str(len(data)))


@pytest.mark.parametrize("query,credentials", [
    ({}, None),  # a stranger without the key
    ({"keyHash": "0" * 64}, None),  # a wrong key
    ({}, "other account"),  # another account is a stranger too
    ({"expires": "9999999999", "sig": "0" * 64}, None),  # a forged signed link
], ids=["no-key", "wrong-key", "other-account", "forged-link"])
def test_an_unauthorised_download_gets_no_presigned_url(server_factory, s3_server, query, credentials):
    srv = server_factory(regions=f"local={s3_server.region_url(presigned_downloads='true')}", inline_max="0")
    owner = create_account(srv.url)
    key_hash = hashlib.sha256(b"open sesame").hexdigest()
    file = upload(srv.url, b"private" * 20_000, "secret.bin", account=owner, headers={"x-key-hash": key_hash}).json()
    headers = create_account(srv.url).auth if credentials else {}
    answer = requests.get(file["downloadUrl"], params=query, headers=headers, allow_redirects=False, timeout=30)
    assert answer.status_code in (401, 403), answer.status_code
    assert "Location" not in answer.headers and "Signature" not in answer.text
    # The key, a signed link and the owner are each let through to the store.
    link = requests.post(f"{srv.url}/api/v1/files/{file['id']}/link", json={}, headers=owner.auth, timeout=30).json()
    for url, auth in ((file["downloadUrl"] + f"?keyHash={key_hash}", {}), (link["url"], {}),
                      (file["downloadUrl"], owner.auth)):
        granted = requests.get(url, headers=auth, allow_redirects=False, timeout=30)
        assert granted.status_code == 302 and "Signature=" in granted.headers["Location"], url
        assert requests.get(granted.headers["Location"], timeout=30).content == b"private" * 20_000


def test_without_presigned_downloads_the_server_streams(server_factory, bucket_region):
    srv = server_factory(regions=f"local={bucket_region}", inline_max="0")
    account = create_account(srv.url)
    data = os.urandom(200_000)
    file = upload(srv.url, data, "plain.bin", account=account).json()
    answer = requests.get(file["downloadUrl"], headers=account.auth, allow_redirects=False, timeout=30)
    assert (answer.status_code, answer.content == data) == (200, True)


def test_a_large_upload_is_stored_in_parts_and_reads_back_whole_and_ranged(server_factory, bucket_region):
    srv = server_factory(regions=f"local={bucket_region}")
    account = create_account(srv.url)
    data = os.urandom(17 * MIB + 3)  # three parts: 8 + 8 + 1 MiB
    file = upload(srv.url, data, "big.bin", account=account).json()
    assert file["sha256"] == hashlib.sha256(data).hexdigest()
    whole = requests.get(file["downloadUrl"], headers=account.auth, timeout=60)
    ranged = requests.get(file["downloadUrl"], headers={**account.auth, "Range": "bytes=-5000000"}, timeout=60)
    assert (whole.status_code, whole.content == data) == (200, True)
    assert (ranged.status_code, ranged.content == data[-5_000_000:]) == (206, True)
    assert srv.ctx.blobs.temp_leftovers("local") == 0


def test_a_session_resumes_on_a_fresh_server_from_the_bucket_with_the_right_sha256(server_factory, tmp_path,
                                                                                   bucket_region):
    """Chunks that end inside a part (the tail object) and on one (a part): after a restart the running
    SHA-256 comes from the saved state, since an unfinished multipart upload cannot be read back."""
    data = os.urandom(14 * MIB + 12345)
    first = server_factory(regions=f"local={bucket_region}")
    account = create_account(first.url)
    session = open_session(first.url, len(data), account=account)
    url = session["uploadUrl"].replace(first.url, "{base}")
    cuts = [0, 3 * MIB, 9 * MIB]  # a 3 MiB tail; then 6 MiB: tail + new bytes become one part
    for start, end in zip(cuts, cuts[1:]):
        assert put_chunk(url.format(base=first.url), data[start:end], start, len(data)).status_code == 308
    data_dir = first.settings.data_dir
    first.stop()

    from tests.conftest import make_settings
    from tests.helpers import ThreadedServer

    second = ThreadedServer(make_settings(Path(data_dir), regions=f"local={bucket_region}")).start()
    try:
        second_url = url.format(base=second.url)
        assert put_chunk(second_url, data[9 * MIB:11 * MIB], 9 * MIB, len(data)).status_code == 308
        done = put_chunk(second_url, data[11 * MIB:], 11 * MIB, len(data))
        assert done.status_code in (200, 201), done.text
        file = done.json()
        assert file["sha256"] == hashlib.sha256(data).hexdigest()
        got = requests.get(file["downloadUrl"], headers=account.auth, timeout=60)
        assert got.content == data
        assert list(second.ctx.blobs.partial_sessions("local")) == []
    finally:
        second.stop()


def test_copies_over_the_single_copy_limit_are_made_of_part_copies(s3_server, monkeypatch):
    """CopyObject stops at 5 GiB: beyond, UploadPartCopy. The limit is lowered so that a small blob crosses it."""
    from lockr_local.config import parse_bucket_url
    from lockr_local.server import s3store

    monkeypatch.setattr(s3store, "MAX_COPY_PART", 6 * MIB)
    monkeypatch.setattr(s3store, "COPY_PART", 5 * MIB)
    store = s3store.S3BlobStore({"r": parse_bucket_url(s3_server.region_url())})
    data = os.urandom(12 * MIB + 7)
    source, target = BlobLocation("r", "a" * 32), BlobLocation("r", "b" * 32)
    writer = store.new_writer(source)
    writer.write(data)
    writer.commit()
    store.clone(source, target)
    with store.open(target) as handle:
        assert handle.read() == data


def test_a_blob_taken_back_past_a_part_copy_keeps_every_part_but_the_last_at_least_5_mib(s3_server, monkeypatch):
    """Taking a completed session blob back copies whole parts server-side; an end too short to be a part
    that is not the last (S3's 5 MiB minimum) is read back as the tail, so later chunks complete. The copy
    part is lowered so that a small blob has such an end."""
    from lockr_local.config import parse_bucket_url
    from lockr_local.server import s3store

    monkeypatch.setattr(s3store, "COPY_PART", 6 * MIB)
    store = s3store.S3BlobStore({"r": parse_bucket_url(s3_server.region_url())})
    location, session_id = BlobLocation("r", "c" * 32), "d" * 32
    data = os.urandom(6 * MIB + 100)
    partial = store.open_partial(location, session_id, 0, None, rclone_digests=False)
    partial.write(data)
    partial.commit()  # the crash came after this, before the record of its 6 MiB + 100 bytes
    partial.restore()
    resumed = store.open_partial(location, session_id, len(data), None, rclone_digests=False)
    resumed.write(b"and the rest")
    resumed.commit()
    assert resumed.sha256() == hashlib.sha256(data + b"and the rest").hexdigest()
    with store.open(location) as handle:
        assert handle.read() == data + b"and the rest"


def test_folder_and_bucket_regions_mix(server_factory, tmp_path, bucket_region):
    srv = server_factory(regions=f"near={tmp_path / 'near'},far={bucket_region}", inline_max="0")
    account = create_account(srv.url)
    for region in ("near", "far"):
        data = region.encode() * 50_000
        file = upload(srv.url, data, f"{region}.bin", account=account, headers={"x-upload-region": region}).json()
        assert file["region"] == region
        assert requests.get(file["downloadUrl"], headers=account.auth, timeout=30).content == data
    assert len(list((tmp_path / "near" / "objects").glob("*/*"))) == 1  # a file in the folder
    assert len(list(srv.ctx.blobs.iter_objects("far"))) == 1  # an object in the bucket
    unknown = upload(srv.url, b"x", "x.bin", account=account, headers={"x-upload-region": "mars"})
    assert (unknown.status_code, error_code(unknown)) == (400, "unknown_region")


@pytest.mark.parametrize("where,message", [
    ("s3:", "not a bucket URL"),
    ("s3://lockr-us/p?endpoint=ftp://x", "not an http"),
    ("s3://lockr-us/p?colour=blue", "unknown bucket option"),
    ("blobs", "neither an absolute folder nor a supported URL"),
    ("gs://lockr-us", "'gs' is not supported"),
])
def test_a_region_that_is_neither_a_folder_nor_a_bucket_is_refused(tmp_path, where, message):
    with pytest.raises(SettingsError, match=message):
        load_settings({"data_dir": str(tmp_path), "regions": f"local={where}"}, env={})


def test_serve_refuses_an_s3_region_typo_instead_of_making_a_folder(tmp_path):
    result = subprocess.run([sys.executable, "-m", "lockr_local", "serve", "--data-dir", str(tmp_path / "data"),
                             "--port", "0"], cwd=tmp_path, env=clean_env(LOCKR_REGIONS="us-central1=s3:"),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "region us-central1" in result.stderr and "s3://BUCKET" in result.stderr
    assert not (tmp_path / "s3:").exists() and not (REPO / "s3:").exists()
