"""The harness's client side: direct uploads, chunked resumable sessions, tus uploads, WebDAV PUTs and
DELETEs, API deletes and key changes, each answer checked and written to the ledger the moment the server
acknowledges it."""

from __future__ import annotations

import base64
import hashlib
import random
from typing import Any, Callable

import requests

from tests.soak.ledger import Ledger, Session, Upload, content, sha256

Request = Callable[..., requests.Response]
TUS = {"Tus-Resumable": "1.0.0"}


class Interrupted(Exception):
    """The request never got an answer (the server died under it); the job is dropped, not failed."""


class ProtocolFailure(AssertionError):
    """The server answered something it must never answer; the harness reports it and stops."""


def stored_offset(response: requests.Response) -> int:
    """`Range: bytes=0-N` -> N+1; no Range -> 0 (what a GCS client reads from a 308)."""
    header = response.headers.get("Range")
    if header is None:
        return 0
    if not header.startswith("bytes=0-"):
        raise ProtocolFailure(f"308 with a malformed Range header {header!r}")
    return int(header.split("-", 1)[1]) + 1


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def boundary_sizes(chunk: int) -> list[int]:
    """Sizes at and around chunk boundaries, where off-by-one mistakes live."""
    return [0, 1, chunk - 1, chunk, chunk + 1, 2 * chunk, 2 * chunk + 1]


class Uploader:
    """Sends uploads through `request` (which may be gated by the harness) and records every ack."""

    def __init__(self, base_url: str, auth: dict[str, str], ledger: Ledger, chunk: int, request: Request,
                 rng: random.Random, prefix: str, account: str = "soak") -> None:
        self.base_url = base_url
        self.dav_root = f"{base_url}/dav/{account}"
        self.dav_names: list[str] = []  # this client's WebDAV files, overwritten with new versions
        self.auth = auth
        self.ledger = ledger
        self.chunk = chunk
        self.request = request
        self.rng = rng
        self.prefix = prefix
        self.counter = 0

    def new_upload(self, kind: str, name: str = "") -> Upload:
        self.counter += 1
        sizes = boundary_sizes(self.chunk)
        size = self.rng.choice(sizes) if self.rng.random() < 0.8 else self.rng.randrange(0, 3 * self.chunk)
        seed = self.rng.getrandbits(64)
        data = content(seed, size)
        name = name or f"soak/{self.prefix}/{self.counter:05d}-{kind}-{size}.bin"
        return Upload(name, seed, size, sha256(data), kind)

    def dav(self) -> None:
        """WebDAV PUT (what rclone sends): a new file, or a new version of one of this client's files.
        Until its 201/204 the version it replaces must stay listed and whole."""
        name = ""
        with self.ledger.lock:
            current = {upload.name for upload in self.ledger.acked.values() if upload.kind == "dav"}
        # Names deleted by the harness (or never acknowledged) would be new files, not new versions.
        self.dav_names = [n for n in self.dav_names if n in current]
        if self.dav_names and self.rng.random() < 0.6:
            name = self.rng.choice(self.dav_names)
        upload = self.new_upload("dav", name or f"soak-{self.prefix}-dav-{self.counter + 1:05d}.bin")
        self.ledger.start_direct(upload)
        response = self.request("PUT", f"{self.dav_root}/{upload.name}", data=upload.data(),
                                headers={"Content-Type": "application/octet-stream", **self.auth})
        if response.status_code not in (201, 204):
            raise ProtocolFailure(f"WebDAV PUT of {upload.name} answered {response.status_code}: {response.text}")
        if response.headers.get("ETag") != f'"{upload.sha256}"' or not response.headers.get("OC-FileId"):
            raise ProtocolFailure(f"WebDAV PUT of {upload.name} answered ETag {response.headers.get('ETag')}, "
                                  f"not the sha256 {upload.sha256} of what was sent")
        self.ledger.ack_version(upload, response.headers["OC-FileId"])
        if not name:
            self.dav_names.append(upload.name)

    def direct(self) -> None:
        """POST /api/v1/upload with the whole body; the 201 is the acknowledgement."""
        upload = self.new_upload("direct")
        self.ledger.start_direct(upload)
        response = self.request("POST", f"{self.base_url}/api/v1/upload", data=upload.data(),
                                headers={"x-file-name": upload.name, "Content-Type": "application/octet-stream",
                                         **self.auth})
        if response.status_code != 201:
            raise ProtocolFailure(f"direct upload of {upload.name} answered {response.status_code}: {response.text}")
        body = response.json()
        self.check_file_object(body, upload)
        self.ledger.ack_file(upload, body["id"])

    def new_session(self) -> None:
        """Opens a session and sends its chunks; a kill leaves it in the ledger for a later resume."""
        upload = self.new_upload("session")
        response = self.request("POST", f"{self.base_url}/api/v1/upload/session", headers=self.auth,
                                json={"name": upload.name, "size": upload.size, "type": "application/octet-stream"})
        if response.status_code != 201:
            raise ProtocolFailure(f"opening a session answered {response.status_code}: {response.text}")
        body = response.json()
        upload.file_id = body["id"]
        session = Session(upload, body["uploadUrl"])
        self.ledger.open_session(session)
        self.send_from(session, 0)

    def resume(self, session: Session) -> None:
        """What a client does after a crash: asks for the stored offset, then sends the rest from there.
        Some clients skip the question and resend from the last acknowledged byte: the server then
        skips what it already has (GCS overlap semantics)."""
        with self.ledger.lock:
            self.ledger.figures.sessions_resumed += 1
        if session.tus:  # a tus PATCH must start exactly at the stored offset: always ask first
            offset = self.status(session)
            if offset is not None:
                self.patch_from(session, offset)
            return
        if session.upload.size and self.rng.random() < 0.3:
            self.send_from(session, session.acked)
            return
        offset = self.status(session)
        if offset is not None:
            self.send_from(session, offset)

    def status(self, session: Session) -> int | None:
        """`Content-Range: bytes */TOTAL`: the stored offset (checked against the ledger), or None when
        the answer was a 201 (the session had completed)."""
        if session.tus:
            return self.tus_status(session)
        total = "*" if self.rng.random() < 0.2 else str(session.upload.size)
        response = self.request("PUT", session.upload_url, headers={"Content-Range": f"bytes */{total}"})
        with self.ledger.lock:
            self.ledger.figures.status_queries_checked += 1
        if response.status_code == 201:
            body = response.json()
            self.check_file_object(body, session.upload)
            self.ledger.complete_session(session, body["id"])
            return None
        if response.status_code != 308:
            raise ProtocolFailure(f"status query of {session.upload.name} answered {response.status_code}: "
                                  f"{response.text}")
        offset = stored_offset(response)
        if offset < session.acked:
            raise ProtocolFailure(f"session {session.upload.name} reports {offset} bytes stored, below the "
                                  f"{session.acked} a 308 acknowledged")
        if offset > session.upload.size:
            raise ProtocolFailure(f"session {session.upload.name} reports {offset} bytes, more than its "
                                  f"{session.upload.size}")
        return offset

    def send_from(self, session: Session, offset: int) -> None:
        upload = session.upload
        data = upload.data()
        if upload.size == 0:
            # Nothing to send: the status query of an empty, fully stored session completes it.
            if self.status(session) is not None:
                raise ProtocolFailure(f"the empty session {upload.name} did not complete on its status query")
            return
        while offset < upload.size:
            end = min(offset + self.chunk, upload.size)
            response = self.request("PUT", session.upload_url, data=data[offset:end],
                                    headers={"Content-Range": f"bytes {offset}-{end - 1}/{upload.size}"})
            if end < upload.size:
                if response.status_code != 308:
                    raise ProtocolFailure(f"chunk {offset}-{end - 1} of {upload.name} answered "
                                          f"{response.status_code}: {response.text}")
                stored = stored_offset(response)
                # Exactly the chunk's end, also when it overlapped stored bytes: chunks are aligned, and a
                # kill leaves at most the unacknowledged chunk stored beyond the acknowledged offset.
                if stored != end:
                    raise ProtocolFailure(f"chunk {offset}-{end - 1} of {upload.name} acknowledged {stored} bytes")
                self.ledger.ack_chunk(session, stored)
            else:
                if response.status_code != 201:
                    raise ProtocolFailure(f"last chunk of {upload.name} answered {response.status_code}: "
                                          f"{response.text}")
                body = response.json()
                self.check_file_object(body, upload)
                self.ledger.complete_session(session, body["id"])
            offset = end

    # -- tus ----------------------------------------------------------------------------------------

    def new_tus(self) -> None:
        """POST /api/v1/tus/ (sometimes with a keyHash in the metadata), then PATCHes; an empty upload is
        complete at creation, so until the 201 it counts as in flight like a direct upload."""
        upload = self.new_upload("tus")
        metadata = f"filename {b64(upload.name.encode())},filetype {b64(b'application/octet-stream')}"
        if self.rng.random() < 0.2:
            upload.key = self.new_key_hash()
            metadata += f",keyHash {b64(upload.key.encode())}"
        self.ledger.start_direct(upload)
        response = self.request("POST", f"{self.base_url}/api/v1/tus/", headers={
            **TUS, **self.auth, "Upload-Length": str(upload.size), "Upload-Metadata": metadata})
        if response.status_code != 201 or not response.headers.get("Location"):
            raise ProtocolFailure(f"tus creation of {upload.name} answered {response.status_code}: {response.text}")
        upload.file_id = response.headers.get("Lockr-File-Id", "")
        session = Session(upload, response.headers["Location"], tus=True)
        if upload.size == 0:
            self.ledger.ack_file(upload, upload.file_id)
            return
        self.ledger.open_session(session)
        self.patch_from(session, 0)

    def tus_status(self, session: Session) -> int | None:
        """HEAD: the Upload-Offset (checked against the ledger), or None when it is the whole upload (the
        last PATCH completed the file, whether or not its 204 arrived)."""
        response = self.request("HEAD", session.upload_url, headers=TUS)
        with self.ledger.lock:
            self.ledger.figures.status_queries_checked += 1
        name, size = session.upload.name, session.upload.size
        if response.status_code != 200 or response.headers.get("Upload-Length") != str(size):
            raise ProtocolFailure(f"tus HEAD of {name} answered {response.status_code} with Upload-Length "
                                  f"{response.headers.get('Upload-Length')}, not 200 and {size}")
        offset = int(response.headers["Upload-Offset"])
        if offset < session.acked:
            raise ProtocolFailure(f"tus upload {name} reports Upload-Offset {offset}, below the {session.acked} "
                                  f"a PATCH acknowledged")
        if offset > size:
            raise ProtocolFailure(f"tus upload {name} reports Upload-Offset {offset}, more than its {size}")
        if offset == size:
            self.ledger.complete_session(session, session.upload.file_id)
            return None
        return offset

    def patch_from(self, session: Session, offset: int) -> None:
        """PATCHes from `offset` (sometimes with Upload-Checksum); each 204 must carry the chunk's end as
        Upload-Offset, the last one also the file's id."""
        upload = session.upload
        data = upload.data()
        while offset < upload.size:
            end = min(offset + self.chunk, upload.size)
            piece = data[offset:end]
            headers = {**TUS, "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"}
            if self.rng.random() < 0.3:
                headers["Upload-Checksum"] = "sha256 " + b64(hashlib.sha256(piece).digest())
            response = self.request("PATCH", session.upload_url, data=piece, headers=headers)
            if response.status_code != 204 or response.headers.get("Upload-Offset") != str(end):
                raise ProtocolFailure(f"tus PATCH {offset}-{end - 1} of {upload.name} answered "
                                      f"{response.status_code} with Upload-Offset "
                                      f"{response.headers.get('Upload-Offset')}: {response.text}")
            if end < upload.size:
                self.ledger.ack_chunk(session, end)
            else:
                if response.headers.get("Lockr-File-Id") != upload.file_id:
                    raise ProtocolFailure(f"the last tus PATCH of {upload.name} names file "
                                          f"{response.headers.get('Lockr-File-Id')}, not {upload.file_id}")
                self.ledger.complete_session(session, upload.file_id)
            offset = end

    # -- key changes and deletes --------------------------------------------------------------------

    def new_key_hash(self) -> str:
        return sha256(f"phrase {self.rng.getrandbits(64)}".encode())

    def change_key(self) -> None:
        """POST /api/v1/files/:id/key: set (as a phrase or its hash), change or clear; 200 acknowledges."""
        claim = self.ledger.claim_file(self.rng)
        if claim is None:
            return self.direct()
        file_id, _upload = claim
        current = self.ledger.key_of(file_id)
        pick = self.rng.random()
        if current is not None and pick < 0.35:
            new, body = None, self.rng.choice([{}, {"key": None}])
        elif pick < 0.7:
            phrase = f"phrase {self.rng.getrandbits(64)}"
            new, body = sha256(phrase.encode()), {"key": phrase}
        else:
            new = self.new_key_hash()
            body = {"keyHash": new}
        self.ledger.start_key(file_id, new)
        response = self.request("POST", f"{self.base_url}/api/v1/files/{file_id}/key", json=body, headers=self.auth)
        if response.status_code != 200:
            raise ProtocolFailure(f"key change of {file_id} answered {response.status_code}: {response.text}")
        answer = response.json()
        if answer.get("id") != file_id or answer.get("hasKey") != (new is not None):
            raise ProtocolFailure(f"key change of {file_id} to {'a key' if new else 'none'} answered {answer}")
        self.ledger.ack_key(file_id, new)

    def delete(self) -> None:
        """DELETE /api/v1/files/:id of a file no other client is changing; 204 acknowledges."""
        claim = self.ledger.claim_file(self.rng)
        if claim is None:
            return self.direct()
        file_id, _upload = claim
        self.ledger.start_delete(file_id)
        response = self.request("DELETE", f"{self.base_url}/api/v1/files/{file_id}", headers=self.auth)
        if response.status_code != 204:
            raise ProtocolFailure(f"deleting {file_id} answered {response.status_code}: {response.text}")
        self.ledger.ack_delete(file_id)

    def dav_delete(self) -> None:
        """WebDAV DELETE of one of this client's files (only this client replaces them); 204 acknowledges."""
        with self.ledger.lock:
            current = {upload.name: fid for fid, upload in self.ledger.acked.items() if upload.kind == "dav"}
        self.dav_names = [n for n in self.dav_names if n in current]
        if not self.dav_names:
            return self.dav()
        name = self.rng.choice(self.dav_names)
        file_id = current[name]
        self.ledger.claim_named(file_id)
        self.ledger.start_delete(file_id)
        response = self.request("DELETE", f"{self.dav_root}/{name}", headers=self.auth)
        if response.status_code != 204:
            raise ProtocolFailure(f"WebDAV DELETE of {name} answered {response.status_code}: {response.text}")
        self.ledger.ack_delete(file_id)
        self.dav_names.remove(name)

    @staticmethod
    def check_file_object(body: dict[str, Any], upload: Upload) -> None:
        if body.get("sha256") != upload.sha256 or body.get("size") != upload.size or body.get("name") != upload.name:
            raise ProtocolFailure(f"201 for {upload.name} describes {body}, not size {upload.size} "
                                  f"sha256 {upload.sha256}")
        if upload.file_id and body.get("id") != upload.file_id:
            raise ProtocolFailure(f"session {upload.name} completed as file {body.get('id')}, not {upload.file_id}")
