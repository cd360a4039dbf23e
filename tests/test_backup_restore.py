"""`lockr-local backup` under concurrent uploads and `restore`: every acknowledged file comes back whole."""

from __future__ import annotations

import hashlib
import itertools
import os
import subprocess
import sys
import threading
import time

import requests

from tests.helpers import REPO, ServerProcess, clean_env, create_account, upload, wait_for


def lockr(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lockr_local", *args], capture_output=True, text=True,
                          env=clean_env(), cwd=REPO, timeout=timeout)


class Uploader(threading.Thread):
    """Uploads files of mixed sizes (inline, blob, resumable-sized) until stopped; a second stream
    uploads and deletes at once, so that the backup meets deletions too."""

    SIZES = (700, 90_000, 1_300_000, 0, 20_000)

    def __init__(self, url: str, account: object, churn: bool = False) -> None:
        super().__init__(daemon=True)
        self.url, self.account, self.churn = url, account, churn
        self.acknowledged: list[tuple[float, str, str]] = []  # (when the 201 arrived, id, sha256)
        self.stop = threading.Event()
        self.errors: list[str] = []

    def run(self) -> None:
        with requests.Session() as session:
            for n in itertools.count():
                if self.stop.is_set():
                    return
                data = os.urandom(self.SIZES[n % len(self.SIZES)])
                response = upload(self.url, data, name=f"{'churn' if self.churn else 'keep'}-{n}.bin",
                                  account=self.account, session=session)
                if response.status_code != 201:
                    self.errors.append(response.text)
                    continue
                file_id = response.json()["id"]
                if self.churn:
                    session.delete(f"{self.url}/api/v1/files/{file_id}", headers=self.account.auth, timeout=30)
                else:
                    self.acknowledged.append((time.monotonic(), file_id, hashlib.sha256(data).hexdigest()))


def test_backup_under_concurrent_uploads_restores_every_acknowledged_file(tmp_path):
    server = ServerProcess(tmp_path / "data").start()
    account = create_account(server.url)
    keep, churn = Uploader(server.url, account), Uploader(server.url, account, churn=True)
    keep.start()
    churn.start()
    try:
        wait_for(lambda: len(keep.acknowledged) >= 25, timeout=60, message="25 uploads before the backup")
        started = time.monotonic()
        backup = lockr("backup", str(tmp_path / "backup"), "--data-dir", str(tmp_path / "data"))
        finished = time.monotonic()
        wait_for(lambda: keep.acknowledged[-1][0] > finished, timeout=30, message="an upload after the backup")
    finally:
        keep.stop.set()
        churn.stop.set()
        keep.join(30)
        churn.join(30)
        server.stop()
    assert backup.returncode == 0, backup.stderr
    assert "Backed up" in backup.stderr and "Traceback" not in backup.stderr
    assert not keep.errors and not churn.errors
    before = [(file_id, sha) for when, file_id, sha in keep.acknowledged if when < started]
    during = [file_id for when, file_id, _ in keep.acknowledged if started <= when <= finished]
    assert during, "no upload was acknowledged while the backup ran: the test did not test concurrency"

    restored = lockr("restore", str(tmp_path / "backup"), "--data-dir", str(tmp_path / "restored"))
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert restored.stdout.strip().endswith("clean")
    fsck = lockr("fsck", "--verify", "--data-dir", str(tmp_path / "restored"))
    assert fsck.returncode == 0 and fsck.stdout.strip().endswith("clean"), fsck.stdout

    again = ServerProcess(tmp_path / "restored").start()
    try:
        with requests.Session() as session:
            for file_id, sha in before:
                info = session.get(f"{again.url}/api/v1/files/{file_id}", headers=account.auth, timeout=30)
                assert info.status_code == 200, (file_id, info.text)
                assert info.json()["sha256"] == sha
                body = session.get(info.json()["downloadUrl"], headers=account.auth, timeout=60)
                assert hashlib.sha256(body.content).hexdigest() == sha
    finally:
        again.stop()


def test_restore_refuses_a_folder_that_holds_a_store(tmp_path):
    server = ServerProcess(tmp_path / "data").start()
    try:
        upload(server.url, b"x" * 100_000, account=create_account(server.url))
        assert lockr("backup", str(tmp_path / "backup"), "--data-dir", str(tmp_path / "data")).returncode == 0
        into_live = lockr("restore", str(tmp_path / "backup"), "--data-dir", str(tmp_path / "data"))
        assert into_live.returncode != 0
        assert "is not empty" in into_live.stderr and "Traceback" not in into_live.stderr
        assert requests.get(f"{server.url}/healthz", timeout=10).ok
    finally:
        server.stop()
    second = lockr("backup", str(tmp_path / "backup"), "--data-dir", str(tmp_path / "data"))
    assert second.returncode != 0 and "not empty" in second.stderr
    not_a_backup = lockr("restore", str(tmp_path), "--data-dir", str(tmp_path / "fresh"))
    assert not_a_backup.returncode != 0 and "not a complete lockr-local backup" in not_a_backup.stderr
    assert not (tmp_path / "fresh").exists()
