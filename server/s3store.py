"""The object-store blob backend: regions kept in S3-compatible buckets through boto3 (BlobStore contract:
server/blobstore.py).

Layout of a region `s3://BUCKET/PREFIX`: committed blobs at `PREFIX/objects/<key>` (flat: an object store
needs no shard folders); a resumable session's state under `PREFIX/partial/<session id>/`.

Direct uploads. Bytes are hashed as they arrive and buffered into parts (8 MiB, growing to 64 MiB past
1,000 parts so that 10,000 parts reach about 490 GiB); each full part is uploaded by one side thread while
the next fills, so memory stays at two parts per upload. A body that ends before its first part is one
PutObject; a longer one is a multipart upload, visible only when CompleteMultipartUpload returns.

Resumable sessions are multipart uploads on the final key. A part must be at least 5 MiB (except the
last), so the bytes of a chunk that do not fill a part cannot be a part yet; they must still be durable
before the 308. The choice: the session's *tail* (the bytes past its last part, under 5 MiB) is a small
object `partial/<id>/tail.<P>.<R>` (parts end at P, tail bytes P..R) written by each `sync`, instead of a
local spool file. A spool file would tie a session to one node's disk (a chunk arriving at another node, or
a node lost with its disk, would lose acknowledged bytes); the tail object is where every node can read
it. Its cost is one PutObject of at most 5 MiB per acknowledged chunk: with the usual chunk sizes (8 MiB
and up) a chunk becomes a part and the tail is empty; with small chunks of c bytes each 5 MiB of the
upload sends about 5 MiB * 5 MiB / 2c extra (2.5 MiB with 8 MiB chunks, 50 MiB with 256 KiB ones).
Tails are never overwritten: each is named by where it ends, so the tail of the offset the database
recorded survives a crash between a newer sync and its record; `open_partial` keeps the one ending at the
recorded offset, drops the parts past it (they are overwritten or left out of the completion) and deletes
the other tails.

The running SHA-256 (with the CRC and, when computed inline, SHA-1/MD5) survives a restart or a chunk
landing on another node by saving the hash state, not by re-hashing: the parts of an unfinished multipart
upload cannot be read back at all, so re-hashing the stored prefix is not possible. The state (306 bytes:
OpenSSL's contexts, hashstate.py) rides in the tail object's metadata, so loading it costs nothing beyond
the tail read that resuming needs anyway. Only when a session's bytes had already been completed into the
final object (a crash between the completion and the database record) are they taken back with
server-side UploadPartCopy (an end too short to be a part is read back as the tail) and re-hashed by
reading that object.

Downloads read ranged GetObject responses in bounded chunks (S3Reader); with presigned_downloads the
download handler answers 302 to a presigned GetObject URL instead. WebDAV COPY is CopyObject (up to 5 GiB)
or UploadPartCopy (beyond). Multipart uploads that no session owns (writers cut off by a crash) count as
temp leftovers; those older than the session lifetime are aborted by the periodic reaper and at start (an
object store is shared by every node, so a start must not abort another node's upload in flight).
"""

from __future__ import annotations

import base64
import datetime
import functools
import io
import json
import logging
import threading
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO, Iterator

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from lockr_local.config import BucketRegion
from lockr_local.errors import NotFound, StorageError, UnknownRegion
from lockr_local.server.blobstore import (
    BlobLocation, BlobStore, BlobWriter, Digests, HelperThreads, PartialBlob, StreamDigests,
)

log = logging.getLogger("lockr.sessions")

MIN_PART = 5 * 2**20  # S3's least size of a part that is not the last
PART_SIZE = 8 * 2**20
MAX_PART_SIZE = 64 * 2**20
MAX_COPY_PART = 5 * 2**30  # S3's largest single CopyObject, and largest part
COPY_PART = 512 * 2**20
READ_CHUNK = 1024 * 1024
# A presigned download URL lives this long: long enough for a client to follow the 302 (and for a slow
# client to finish a large download, which S3 checks only at the start), short enough to be useless later.
PRESIGNED_LIFETIME = 300
_HASH_STATE = "lockr-hash-state"
_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}
_NO_UPLOAD = {"404", "NoSuchUpload"}

# One side thread per writer uploads the previous part while the next fills (shared, bounded).


def part_size(number: int) -> int:
    """The size of part `number` (1-based) of a direct upload: 8 MiB doubling every 1,000 parts up to 64 MiB."""
    return min(MAX_PART_SIZE, PART_SIZE << ((number - 1) // 1000))


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


@contextmanager
def s3_errors(action: str, missing: str | None = None) -> Iterator[None]:
    """Translates boto errors into domain errors at the storage boundary: a missing object is NotFound when
    `missing` says what to tell; anything else (network, permissions, throttling) is a StorageError."""
    try:
        yield
    except ClientError as exc:
        if missing is not None and _code(exc) in _NOT_FOUND:
            raise NotFound(missing) from exc
        raise StorageError(f"The object store could not {action} ({_code(exc) or 'error'}); nothing was "
                           f"changed.") from exc
    except BotoCoreError as exc:
        raise StorageError(f"The object store could not {action} ({type(exc).__name__}); nothing was "
                           f"changed.") from exc


@dataclass
class Bucket:
    """One region's bucket: the client that reaches it, its name and key prefix."""

    name: str
    client: Any
    bucket: str
    prefix: str
    presigned: bool

    def object_key(self, key: str) -> str:
        return f"{self.prefix}objects/{key}"

    def session_prefix(self, session_id: str) -> str:
        return f"{self.prefix}partial/{session_id}/"

    def head_size(self, key: str) -> int | None:
        try:
            return int(self.client.head_object(Bucket=self.bucket, Key=key)["ContentLength"])
        except ClientError as exc:
            if _code(exc) in _NOT_FOUND:
                return None
            raise

    def last_modified(self, key: str) -> float | None:
        try:
            return float(self.client.head_object(Bucket=self.bucket, Key=key)["LastModified"].timestamp())
        except ClientError as exc:
            if _code(exc) in _NOT_FOUND:
                return None
            raise

    def list_keys(self, prefix: str) -> Iterator[dict[str, Any]]:
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            yield from page.get("Contents", [])

    def multipart_uploads(self, prefix: str) -> Iterator[dict[str, Any]]:
        for page in self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=prefix):
            yield from page.get("Uploads", [])

    def abort_upload(self, key: str, upload_id: str) -> None:
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except ClientError as exc:
            if _code(exc) not in _NO_UPLOAD:
                raise

    def copy_parts(self, source_key: str, length: int, target_key: str, upload_id: str,
                   first_part: int = 1) -> list[dict[str, Any]]:
        """UploadPartCopy of source bytes 0..length into parts of `upload_id` (server-side, no bytes here)."""
        parts = []
        for number, start in enumerate(range(0, length, COPY_PART), start=first_part):
            end = min(length, start + COPY_PART) - 1
            answer = self.client.upload_part_copy(
                Bucket=self.bucket, Key=target_key, UploadId=upload_id, PartNumber=number,
                CopySource={"Bucket": self.bucket, "Key": source_key}, CopySourceRange=f"bytes={start}-{end}")
            parts.append({"PartNumber": number, "ETag": answer["CopyPartResult"]["ETag"]})
        return parts

    def complete(self, key: str, upload_id: str, parts: list[dict[str, Any]]) -> None:
        self.client.complete_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id,
                                              MultipartUpload={"Parts": parts})


def make_client(region: BucketRegion) -> Any:
    """A boto3 S3 client by the usual AWS conventions (env, profile, instance roles), with the URL's
    endpoint and credentials taking precedence; one per connection in a process (clients are thread-safe,
    and making one loads the service model: about 0.3 s)."""
    return _client(region.endpoint, region.region, region.profile, region.access_key_id, region.secret_access_key,
                   region.session_token, region.addressing_style)


@functools.lru_cache(maxsize=32)
def _client(endpoint: str | None, region_name: str | None, profile: str | None, access_key_id: str | None,
            secret_access_key: str | None, session_token: str | None, addressing_style: str | None) -> Any:
    """Checksums only where the API requires them: several S3-compatible stores refuse the CRC headers
    newer boto3 sends by default (our own CRC and SHA-256 are computed on the way in either way)."""
    session = boto3.session.Session(profile_name=profile, region_name=region_name, aws_access_key_id=access_key_id,
                                    aws_secret_access_key=secret_access_key, aws_session_token=session_token)
    config = Config(signature_version="s3v4", retries={"max_attempts": 5, "mode": "standard"},
                    max_pool_connections=32, s3={"addressing_style": addressing_style or "auto"},
                    request_checksum_calculation="when_required", response_checksum_validation="when_required")
    return session.client("s3", endpoint_url=endpoint, config=config)


class S3BlobStore(BlobStore):
    """Blobs as objects in one bucket (and prefix) per region; see the module docstring."""

    def __init__(self, regions: dict[str, BucketRegion], *, presigned_downloads: bool = False,
                 stale_after: float = 7 * 24 * 3600) -> None:
        self._buckets: dict[str, Bucket] = {}
        self._stale_after = stale_after
        for name, region in regions.items():
            presigned = presigned_downloads if region.presigned_downloads is None else region.presigned_downloads
            bucket = Bucket(name, make_client(region), region.bucket, region.prefix, presigned)
            with s3_errors(f"reach bucket {region.bucket!r} of region {name}"):
                bucket.client.head_bucket(Bucket=region.bucket)
            self._buckets[name] = bucket

    def bucket(self, region: str) -> Bucket:
        self.check_region(region)
        return self._buckets[region]

    def regions(self) -> list[str]:
        return list(self._buckets)

    def check_region(self, region: str) -> None:
        if region not in self._buckets:
            valid = sorted(self._buckets)
            raise UnknownRegion(f"Unknown region {region!r}; valid regions: {', '.join(valid)}.", validRegions=valid)

    def check_space(self, region: str, size: int) -> None:
        """An object store cannot tell its free space: unknown counts as enough."""
        self.check_region(region)

    def new_writer(self, location: BlobLocation, rclone_digests: bool = True) -> S3BlobWriter:
        bucket = self.bucket(location.region)
        return S3BlobWriter(bucket, bucket.object_key(location.key), rclone_digests, self.threads)

    def open(self, location: BlobLocation) -> BinaryIO:
        bucket = self.bucket(location.region)
        key = bucket.object_key(location.key)
        with s3_errors("read the file"):
            size = bucket.head_size(key)
        if size is None:
            raise NotFound("The file's bytes are missing from the store.")
        return S3Reader(bucket, key, size)  # type: ignore[return-value]

    def size(self, location: BlobLocation) -> int | None:
        bucket = self.bucket(location.region)
        with s3_errors("look up the file"):
            return bucket.head_size(bucket.object_key(location.key))

    def stored_at(self, location: BlobLocation) -> float | None:
        bucket = self.bucket(location.region)
        with s3_errors("look up the file"):
            return bucket.last_modified(bucket.object_key(location.key))

    def delete(self, location: BlobLocation) -> None:
        bucket = self.bucket(location.region)
        with s3_errors("delete the file"):
            bucket.client.delete_object(Bucket=bucket.bucket, Key=bucket.object_key(location.key))

    def clone(self, source: BlobLocation, target: BlobLocation) -> None:
        """A server-side copy: CopyObject up to 5 GiB, UploadPartCopy parts beyond (S3's CopyObject limit)."""
        bucket = self.bucket(source.region)
        if target.region != source.region:
            raise StorageError("A copy stays in its region.")
        source_key, target_key = bucket.object_key(source.key), bucket.object_key(target.key)
        with s3_errors("copy the file", missing="The file's bytes are missing from the store."):
            size = bucket.head_size(source_key)
            if size is None:
                raise NotFound("The file's bytes are missing from the store.")
            if size <= MAX_COPY_PART:
                bucket.client.copy_object(Bucket=bucket.bucket, Key=target_key,
                                          CopySource={"Bucket": bucket.bucket, "Key": source_key})
                return
            upload_id = bucket.client.create_multipart_upload(Bucket=bucket.bucket, Key=target_key)["UploadId"]
            try:
                bucket.complete(target_key, upload_id, bucket.copy_parts(source_key, size, target_key, upload_id))
            except BaseException:
                bucket.abort_upload(target_key, upload_id)
                raise

    def iter_objects(self, region: str) -> Iterator[str]:
        bucket = self.bucket(region)
        start = len(bucket.object_key(""))
        with s3_errors("list the files"):
            for entry in bucket.list_keys(bucket.object_key("")):
                yield entry["Key"][start:]

    # -- uploads cut off by a crash ---------------------------------------------------------------------

    def _session_upload_ids(self, bucket: Bucket) -> set[str]:
        ids = set()
        for entry in bucket.list_keys(f"{bucket.prefix}partial/"):
            if entry["Key"].endswith("/upload"):
                marker = _read_marker(bucket, entry["Key"])
                if marker is not None:
                    ids.add(marker["upload_id"])
        return ids

    def _leftover_uploads(self, bucket: Bucket) -> list[dict[str, Any]]:
        """Multipart uploads of new blobs that no session owns: direct writers that never completed."""
        owned = self._session_upload_ids(bucket)
        return [u for u in bucket.multipart_uploads(bucket.object_key("")) if u["UploadId"] not in owned]

    def temp_leftovers(self, region: str) -> int:
        with s3_errors("list unfinished uploads"):
            return len(self._leftover_uploads(self.bucket(region)))

    def clear_temp(self) -> int:
        """Aborts leftover multipart uploads started more than `stale_after` seconds ago: other nodes may be
        writing the younger ones."""
        return self.reap_abandoned()

    def reap_abandoned(self) -> int:
        cutoff = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=self._stale_after)
        removed = 0
        for bucket in self._buckets.values():
            with s3_errors("abort abandoned uploads"):
                for upload in self._leftover_uploads(bucket):
                    if upload["Initiated"] <= cutoff:
                        bucket.abort_upload(upload["Key"], upload["UploadId"])
                        removed += 1
        return removed

    # -- presigned downloads --------------------------------------------------------------------------

    def download_url(self, location: BlobLocation, disposition: str, content_type: str) -> str | None:
        bucket = self.bucket(location.region)
        if not bucket.presigned:
            return None
        with s3_errors("sign a download URL"):
            return str(bucket.client.generate_presigned_url(
                "get_object", ExpiresIn=PRESIGNED_LIFETIME,
                Params={"Bucket": bucket.bucket, "Key": bucket.object_key(location.key),
                        "ResponseContentDisposition": disposition, "ResponseContentType": content_type,
                        "ResponseCacheControl": "private, no-cache"}))

    # -- resumable sessions -----------------------------------------------------------------------------

    def open_partial(self, location: BlobLocation, session_id: str, offset: int, hasher: StreamDigests | None,
                     rclone_digests: bool) -> S3Partial:
        bucket = self.bucket(location.region)
        with s3_errors("open the stored part of the upload"):
            return S3Partial.open(bucket, bucket.object_key(location.key), session_id, offset, hasher,
                                  rclone_digests)

    def partial_sessions(self, region: str) -> Iterator[str]:
        bucket = self.bucket(region)
        with s3_errors("list the upload sessions"):
            pages = bucket.client.get_paginator("list_objects_v2").paginate(
                Bucket=bucket.bucket, Prefix=f"{bucket.prefix}partial/", Delimiter="/")
            for page in pages:
                for common in page.get("CommonPrefixes", []):
                    yield common["Prefix"].rstrip("/").rsplit("/", 1)[-1]

    def delete_partial(self, region: str, session_id: str) -> None:
        """Aborts the session's multipart upload and deletes its tails and marker."""
        bucket = self.bucket(region)
        with s3_errors("delete a partial upload"):
            prefix = bucket.session_prefix(session_id)
            marker = _read_marker(bucket, prefix + "upload")
            if marker is not None:
                bucket.abort_upload(marker["key"], marker["upload_id"])
            _delete_keys(bucket, [entry["Key"] for entry in bucket.list_keys(prefix)])


def _read_marker(bucket: Bucket, key: str) -> dict[str, str] | None:
    try:
        body = bucket.client.get_object(Bucket=bucket.bucket, Key=key)["Body"].read()
    except ClientError as exc:
        if _code(exc) in _NOT_FOUND:
            return None
        raise
    return dict(json.loads(body))


def _delete_keys(bucket: Bucket, keys: list[str]) -> None:
    for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1,000 keys
        batch = keys[start:start + 1000]
        if batch:
            bucket.client.delete_objects(Bucket=bucket.bucket, Delete={"Objects": [{"Key": k} for k in batch],
                                                                        "Quiet": True})


class S3BlobWriter(BlobWriter):
    """A new blob: parts uploaded one behind the buffer that fills; PutObject when it never fills one."""

    def __init__(self, bucket: Bucket, key: str, rclone_digests: bool = True, threads: HelperThreads = HelperThreads()
                 ) -> None:
        self._bucket = bucket
        self._key = key
        self._parts_pool = threads.uploads  # None (a store outside a server): parts upload on this thread
        self._hasher = StreamDigests(rclone_digests, threads.hashing)
        self.bytes_written = 0
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._in_flight: Future[dict[str, Any]] | None = None
        self._done = False
        self._lock = threading.Lock()

    def write(self, data: bytes | memoryview) -> None:
        assert not self._done, "write after commit or abort"
        self._hasher.update(data)
        self._buffer += data
        self.bytes_written += len(data)
        while len(self._buffer) >= part_size(len(self._parts) + 1 + (self._in_flight is not None)):
            size = part_size(len(self._parts) + 1 + (self._in_flight is not None))
            part = bytes(self._buffer[:size])
            del self._buffer[:size]
            self._send(part)

    def _send(self, part: bytes) -> None:
        """Starts uploading `part` after the one in flight has landed (at most one in flight per writer)."""
        with s3_errors("store a part of the upload"):
            self._land()
            if self._upload_id is None:
                self._upload_id = self._bucket.client.create_multipart_upload(
                    Bucket=self._bucket.bucket, Key=self._key)["UploadId"]
            number = len(self._parts) + 1
            if self._parts_pool is not None:
                self._in_flight = self._parts_pool.submit(self._upload_part, number, part)
            else:
                self._in_flight = Future()
                self._in_flight.set_result(self._upload_part(number, part))

    def _upload_part(self, number: int, part: bytes) -> dict[str, Any]:
        answer = self._bucket.client.upload_part(Bucket=self._bucket.bucket, Key=self._key,
                                                 UploadId=self._upload_id, PartNumber=number, Body=part)
        return {"PartNumber": number, "ETag": answer["ETag"]}

    def _land(self) -> None:
        if self._in_flight is not None:
            flight, self._in_flight = self._in_flight, None
            self._parts.append(flight.result())

    def sha256(self) -> str:
        return self._hasher.hexdigest()

    def digests(self) -> Digests:
        return self._hasher.digests()

    def commit(self) -> None:
        try:
            self._hasher.settle()
            with s3_errors("store the upload"):
                if self._upload_id is None:
                    self._bucket.client.put_object(Bucket=self._bucket.bucket, Key=self._key,
                                                   Body=bytes(self._buffer))
                else:
                    if self._buffer:
                        self._send(bytes(self._buffer))
                    self._land()
                    self._bucket.complete(self._key, self._upload_id, self._parts)
            self._done = True
            self._buffer = bytearray()
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        self._done = True
        self._buffer = bytearray()
        try:
            if self._in_flight is not None:
                self._in_flight.exception()
            if self._upload_id is not None:
                self._bucket.abort_upload(self._key, self._upload_id)
                self._upload_id = None
        except (ClientError, BotoCoreError) as exc:
            log.warning("could not abort an unfinished upload (the reaper will): %s", exc)


class S3Partial(PartialBlob):
    """A session's bytes: the parts of its multipart upload, then the tail (see the module docstring)."""

    def __init__(self, bucket: Bucket, key: str, session_id: str, upload_id: str, parts: list[dict[str, Any]],
                 parts_end: int, tail: bytes, hasher: StreamDigests) -> None:
        self._bucket = bucket
        self._key = key
        self._prefix = bucket.session_prefix(session_id)
        self._upload_id = upload_id
        self._parts = parts
        self._parts_end = parts_end
        self._buffer = bytearray(tail)
        self.offset = parts_end + len(tail)
        self.hasher = hasher
        self.bytes_written = 0

    @classmethod
    def open(cls, bucket: Bucket, key: str, session_id: str, offset: int, hasher: StreamDigests | None,
             rclone_digests: bool) -> "S3Partial":
        prefix = bucket.session_prefix(session_id)
        marker = _read_marker(bucket, prefix + "upload")
        parts = _list_parts(bucket, key, marker["upload_id"]) if marker is not None else None
        if marker is None or parts is None:  # no upload, or it was completed
            if offset == 0:
                upload_id = cls._new_upload(bucket, key, prefix)
                _delete_keys(bucket, [e["Key"] for e in bucket.list_keys(prefix + "tail.")])
                return cls(bucket, key, session_id, upload_id, [], 0, b"", hasher or _new_digests(rclone_digests))
            # A crash between completing the upload and recording the file: take the object back.
            size = bucket.head_size(key)
            if size is None or size < offset:
                raise StorageError("The stored part of this upload is shorter than recorded; start a new session.")
            partial = cls(bucket, key, session_id, "", [], 0, b"", hasher or _rehash_object(bucket, key, offset,
                                                                                            rclone_digests))
            partial._take_back(offset)
            return partial
        tails = [(t, _tail_range(t["Key"])) for t in bucket.list_keys(prefix + "tail.")]
        usable = [t for t, (start, end) in tails if end == offset]
        kept: list[dict[str, Any]] | None
        saved: str | None
        if offset == 0:
            kept, parts_end, tail_bytes, saved = [], 0, b"", None
        elif usable:
            chosen = max(usable, key=lambda t: t["LastModified"])
            parts_end, _ = _tail_range(chosen["Key"])
            answer = bucket.client.get_object(Bucket=bucket.bucket, Key=chosen["Key"])
            tail_bytes = answer["Body"].read()
            saved = answer.get("Metadata", {}).get(_HASH_STATE)
            kept = _prefix_parts(parts, parts_end)
            if kept is None or len(tail_bytes) != offset - parts_end:
                raise StorageError("The stored part of this upload does not match its record; start a new session.")
        else:
            raise StorageError("The stored part of this upload is shorter than recorded; start a new session.")
        _delete_keys(bucket, [t["Key"] for t, (start, end) in tails if end != offset])
        if hasher is None:
            if saved is None and offset:
                raise StorageError("The stored part of this upload has no saved digest state; start a new session.")
            hasher = StreamDigests.load(base64.b64decode(saved)) if saved else _new_digests(rclone_digests)
        if offset:
            log.info("resumed session %s at %d bytes from the object store", session_id[:8], offset)
        return cls(bucket, key, session_id, marker["upload_id"], kept, parts_end, tail_bytes, hasher)

    @staticmethod
    def _new_upload(bucket: Bucket, key: str, prefix: str) -> str:
        upload_id = bucket.client.create_multipart_upload(Bucket=bucket.bucket, Key=key)["UploadId"]
        bucket.client.put_object(Bucket=bucket.bucket, Key=prefix + "upload",
                                 Body=json.dumps({"key": key, "upload_id": upload_id}).encode())
        return str(upload_id)

    def write(self, data: bytes | memoryview) -> None:
        self.hasher.update(data)
        self._buffer += data
        self.offset += len(data)
        self.bytes_written += len(data)
        while len(self._buffer) >= (size := part_size(len(self._parts) + 1)):
            with s3_errors("store a part of the upload"):
                self._upload_part(bytes(self._buffer[:size]))
            del self._buffer[:size]

    def _upload_part(self, part: bytes) -> None:
        number = len(self._parts) + 1
        answer = self._bucket.client.upload_part(Bucket=self._bucket.bucket, Key=self._key,
                                                 UploadId=self._upload_id, PartNumber=number, Body=part)
        self._parts.append({"PartNumber": number, "ETag": answer["ETag"], "Size": len(part)})
        self._parts_end += len(part)

    def sha256(self) -> str:
        return self.hasher.hexdigest()

    def digests(self) -> Digests:
        return self.hasher.digests()

    def sync(self) -> None:
        """A buffer of at least 5 MiB becomes a part; a shorter one a tail object carrying the hash state."""
        with s3_errors("make the upload durable"):
            self.hasher.settle()
            if len(self._buffer) >= MIN_PART:
                self._upload_part(bytes(self._buffer))
                self._buffer = bytearray()
            self._put_tail()

    def _put_tail(self) -> None:
        state = base64.b64encode(self.hasher.save()).decode()
        self._bucket.client.put_object(Bucket=self._bucket.bucket, Key=f"{self._prefix}tail.{self._parts_end}.{self.offset}",
                                       Body=bytes(self._buffer), Metadata={_HASH_STATE: state})

    def commit(self) -> None:
        """The tail becomes the last part, and CompleteMultipartUpload makes the blob; the session's state goes."""
        with s3_errors("make the upload durable"):
            self.hasher.settle()
            client, bucket = self._bucket.client, self._bucket.bucket
            if self.offset == 0:
                self._bucket.abort_upload(self._key, self._upload_id)
                client.put_object(Bucket=bucket, Key=self._key, Body=b"")
            else:
                if self._buffer:
                    self._upload_part(bytes(self._buffer))
                    self._buffer = bytearray()
                self._bucket.complete(self._key, self._upload_id,
                                      [{"PartNumber": p["PartNumber"], "ETag": p["ETag"]} for p in self._parts])
        try:
            _delete_keys(self._bucket, [e["Key"] for e in self._bucket.list_keys(self._prefix)])
        except (ClientError, BotoCoreError) as exc:  # harmless: the start-up sweep deletes them
            log.warning("could not delete a finished session's state: %s", exc)

    def restore(self) -> None:
        with s3_errors("put the upload back"):
            self._take_back(self.offset)

    def _take_back(self, length: int) -> None:
        """The completed object becomes the session's stored bytes again: a new multipart upload gets its
        bytes by server-side UploadPartCopy, with a tail recording the hash state, then the object goes.
        More parts follow the copied ones, so each must reach S3's 5 MiB minimum: an end shorter than
        that (a whole session under 5 MiB, or what passes the last full copy part) is read back as the
        tail instead (at most 5 MiB, as any tail)."""
        self._upload_id = self._new_upload(self._bucket, self._key, self._prefix)
        end = length % COPY_PART
        copied_length = length - end if end < MIN_PART else length
        self._parts = []
        self._parts_end = 0
        self._buffer = bytearray()
        if copied_length:
            copied = self._bucket.copy_parts(self._key, copied_length, self._key, self._upload_id)
            self._parts = [{**part, "Size": min(COPY_PART, copied_length - i * COPY_PART)}
                           for i, part in enumerate(copied)]
            self._parts_end = copied_length
        if copied_length < length:
            answer = self._bucket.client.get_object(Bucket=self._bucket.bucket, Key=self._key,
                                                    Range=f"bytes={copied_length}-{length - 1}")
            self._buffer = bytearray(answer["Body"].read())
        self.offset = length
        self._put_tail()
        self._bucket.client.delete_object(Bucket=self._bucket.bucket, Key=self._key)

    def abort(self) -> None:
        """Lets go: every acknowledged byte is already stored (parts and tail); the buffer is dropped."""
        self._buffer = bytearray()


def _new_digests(rclone_digests: bool) -> StreamDigests:
    return StreamDigests(rclone_digests, savable=True)


def _tail_range(key: str) -> tuple[int, int]:
    _name, start, end = key.rsplit("/", 1)[-1].split(".")
    return int(start), int(end)


def _list_parts(bucket: Bucket, key: str, upload_id: str) -> list[dict[str, Any]] | None:
    """The upload's parts by number, or None when the upload is gone (completed or aborted)."""
    parts: list[dict[str, Any]] = []
    try:
        for page in bucket.client.get_paginator("list_parts").paginate(Bucket=bucket.bucket, Key=key,
                                                                      UploadId=upload_id):
            parts += page.get("Parts", [])
    except ClientError as exc:
        if _code(exc) in _NO_UPLOAD:
            return None
        raise
    return sorted(parts, key=lambda p: p["PartNumber"])


def _prefix_parts(parts: list[dict[str, Any]], end: int) -> list[dict[str, Any]] | None:
    """Parts 1..k whose sizes add up to exactly `end` bytes (the rest were never acknowledged); None if none do."""
    kept, total = [], 0
    for number, part in enumerate(parts, start=1):
        if total == end:
            break
        if part["PartNumber"] != number:
            return None
        kept.append({"PartNumber": number, "ETag": part["ETag"], "Size": int(part["Size"])})
        total += int(part["Size"])
    return kept if total == end else None


def _rehash_object(bucket: Bucket, key: str, length: int, rclone_digests: bool) -> StreamDigests:
    hasher = _new_digests(rclone_digests)
    with S3Reader(bucket, key, length) as reader:
        while block := reader.read(READ_CHUNK):
            hasher.update(block)
    return hasher


class S3Reader(io.RawIOBase):
    """A committed object as a seekable, readable stream without a descriptor: each read continues one
    ranged GetObject from the current position (a seek starts a new one), in bounded chunks."""

    def __init__(self, bucket: Bucket, key: str, size: int) -> None:
        super().__init__()
        self._bucket = bucket
        self._key = key
        self._size = size
        self._position = 0
        self._body: Any = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        position = max(0, base + offset)
        if position != self._position:
            self._drop_body()
            self._position = position
        return position

    def read(self, size: int = -1) -> bytes:
        remaining = self._size - self._position
        if remaining <= 0:
            return b""
        size = remaining if size is None or size < 0 else min(size, remaining)
        if self._body is None:
            with s3_errors("read the file", missing="The file's bytes are missing from the store."):
                answer = self._bucket.client.get_object(Bucket=self._bucket.bucket, Key=self._key,
                                                        Range=f"bytes={self._position}-{self._size - 1}")
            self._body = answer["Body"]
        with s3_errors("read the file"):
            data = self._body.read(size)
        self._position += len(data)
        return bytes(data)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def _drop_body(self) -> None:
        if self._body is not None:
            self._body.close()
            self._body = None

    def close(self) -> None:
        self._drop_body()
        super().close()
