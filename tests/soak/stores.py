"""The kill harness's view of a server's store from outside: the session rows of its database (SQLite in the
data folder, or PostgreSQL) and the leftovers and stored session bytes of its region (a folder, or an S3
bucket read with the harness's own boto3 client), so the same checks run on both stacks."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any, Protocol

from botocore.exceptions import ClientError

from lockr_local.config import parse_bucket_url, parse_regions
from tests.soak.ledger import Session


def session_rows(database_url: str, data_dir: Path) -> set[str]:
    """The ids of the upload sessions the server holds (read-only): lockr.db in the data folder by default."""
    if database_url.startswith("postgresql"):
        import psycopg

        with psycopg.connect(database_url, autocommit=True) as connection:
            return {row[0] for row in connection.execute("SELECT session_id FROM uploadsession")}
    database = sqlite3.connect(f"file:{data_dir / 'lockr.db'}?mode=ro", uri=True, timeout=30)
    try:
        return {row[0] for row in database.execute("SELECT session_id FROM uploadsession")}
    finally:
        database.close()


class RegionView(Protocol):
    """Where the default region's bytes are, seen without the server's code."""

    def temp_leftovers(self) -> list[str]:
        """Bytes of uploads cut off by a crash, which the start-up clean-up must have removed."""

    def partial_sessions(self) -> set[str]:
        """The session ids that have stored bytes."""

    def holds_prefix(self, session: Session, length: int) -> bool:
        """Whether the server holds the session's first `length` bytes as they were sent."""


class FolderRegion:
    """The region `local` in a folder (by default blobs/ in the data folder: the single box)."""

    def __init__(self, root: Path) -> None:
        self.blobs = root

    def temp_leftovers(self) -> list[str]:
        temp = self.blobs / "tmp"
        return sorted(p.name for p in temp.iterdir()) if temp.exists() else []

    def partial_sessions(self) -> set[str]:
        partial = self.blobs / "partial"
        return {p.name for p in partial.iterdir()} if partial.exists() else set()

    def holds_prefix(self, session: Session, length: int) -> bool:
        """Its partial file, or the object a crash after the final rename left in place (taken back on the
        next chunk)."""
        file_id = session.upload.file_id
        for path in (self.blobs / "partial" / session.session_id, self.blobs / "objects" / file_id[:2] / file_id):
            if path.exists():
                with path.open("rb") as handle:
                    return handle.read(length) == session.upload.data()[:length]
        return length == 0


class BucketRegion:
    """The region `local` in an S3 bucket (server/s3store.py's layout: PREFIX/objects/<id>, and a session's
    marker and tails under PREFIX/partial/<session id>/)."""

    def __init__(self, url: str) -> None:
        import boto3

        region = parse_bucket_url(url)
        self.bucket = region.bucket
        self.prefix = region.prefix
        self.client: Any = boto3.client("s3", endpoint_url=region.endpoint, region_name=region.region,
                                        aws_access_key_id=region.access_key_id,
                                        aws_secret_access_key=region.secret_access_key)

    def _keys(self, prefix: str) -> list[dict[str, Any]]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return [entry for page in pages for entry in page.get("Contents", [])]

    def _marker(self, session_id: str) -> dict[str, str] | None:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=f"{self.prefix}partial/{session_id}/upload")
        except self.client.exceptions.NoSuchKey:
            return None
        return dict(json.loads(body["Body"].read()))

    def temp_leftovers(self) -> list[str]:
        """Multipart uploads of blobs that no session's marker owns (a direct writer cut off)."""
        owned = {marker["upload_id"] for session_id in self.partial_sessions()
                 if (marker := self._marker(session_id)) is not None}
        pages = self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket,
                                                                              Prefix=f"{self.prefix}objects/")
        return sorted(f"{u['Key']} ({u['UploadId']})" for page in pages for u in page.get("Uploads", [])
                      if u["UploadId"] not in owned)

    def partial_sessions(self) -> set[str]:
        start = len(f"{self.prefix}partial/")
        return {entry["Key"][start:].split("/", 1)[0] for entry in self._keys(f"{self.prefix}partial/")}

    def holds_prefix(self, session: Session, length: int) -> bool:
        """The parts of the session's multipart upload (each part's ETag is the MD5 of its bytes: the parts of
        an unfinished upload cannot be read back) followed by a tail object ending at `length`; or, after a
        crash between the completion and its record, the completed object."""
        data = session.upload.data()[:length]
        if length == 0:
            return True
        marker = self._marker(session.session_id)
        parts = self._parts(marker) if marker is not None else None
        if parts is None:
            key = f"{self.prefix}objects/{session.upload.file_id}"
            try:
                body = self.client.get_object(Bucket=self.bucket, Key=key, Range=f"bytes=0-{length - 1}")["Body"].read()
            except ClientError:  # missing, or shorter than `length`
                return False
            return bool(body == data)
        for tail in self._keys(f"{self.prefix}partial/{session.session_id}/tail."):
            _name, start, end = tail["Key"].rsplit("/", 1)[-1].split(".")
            if int(end) != length or not self._parts_hold(parts, data[:int(start)]):
                continue
            body = self.client.get_object(Bucket=self.bucket, Key=tail["Key"])["Body"].read()
            if body == data[int(start):]:
                return True
        return False

    def _parts(self, marker: dict[str, str]) -> list[dict[str, Any]] | None:
        try:
            pages = self.client.get_paginator("list_parts").paginate(Bucket=self.bucket, Key=marker["key"],
                                                                     UploadId=marker["upload_id"])
            return sorted((p for page in pages for p in page.get("Parts", [])), key=lambda p: p["PartNumber"])
        except self.client.exceptions.NoSuchUpload:
            return None

    @staticmethod
    def _parts_hold(parts: list[dict[str, Any]], data: bytes) -> bool:
        """Parts 1..k hold exactly `data`, part by part (later parts were never acknowledged)."""
        offset = 0
        for number, part in enumerate(parts, start=1):
            if offset == len(data):
                break
            size = int(part["Size"])
            expected = hashlib.md5(data[offset:offset + size]).hexdigest()
            if part["PartNumber"] != number or part["ETag"].strip('"') != expected:
                return False
            offset += size
        return offset == len(data)


def region_view(regions: str, data_dir: Path) -> RegionView:
    """The view of the default region `local` the `regions` setting names (empty: blobs/ in the data folder)."""
    where = dict(parse_regions(regions)).get("local", "") if regions else ""
    if where.startswith("s3:"):
        return BucketRegion(where)
    return FolderRegion(Path(where) if where else data_dir / "blobs")
