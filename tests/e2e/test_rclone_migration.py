"""The one-switch migration with the real rclone: `rclone sync SRC lockr:ACCOUNT` into lockr-local.

A local folder stands in for the S3 bucket. The remote is the one `lockr-local rclone-config` prints.
LOCKR_RCLONE_BIG_MB sets the large file's size (200 MB by default, the issue's case).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests

from lockr_local.server.models import InlineBlob
from tests.helpers import REPO, Account, clean_env, create_account

RCLONE = shutil.which("rclone")
pytestmark = pytest.mark.skipif(RCLONE is None, reason="rclone is not installed (Debian package 'rclone')")

BIG_MB = int(os.environ.get("LOCKR_RCLONE_BIG_MB", "200"))
MTIME = 1_650_000_000  # fixed source times, so kept modification times can be checked


class Rclone:
    """rclone with its own config file, holding the remote `lockr-local rclone-config` printed."""

    def __init__(self, config: Path) -> None:
        self.config = config

    def add_remote(self, server_url: str, token: str, name: str = "lockr") -> None:
        printed = subprocess.run([sys.executable, "-m", "lockr_local", "rclone-config", "--endpoint", server_url,
                                  "--token", token, "--name", name], capture_output=True, text=True, check=True,
                                 env=clean_env(), cwd=REPO).stdout
        with self.config.open("a") as handle:
            handle.write(printed)

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        # The remotes are wholly in the config file: no RCLONE_* or AWS_* (e.g. a CA bundle the s3 backend
        # cannot load for plain HTTP) from the developer's shell.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RCLONE_", "AWS_"))}
        env["RCLONE_CONFIG"] = str(self.config)
        assert RCLONE is not None
        return subprocess.run([RCLONE, *args], capture_output=True, text=True, env=env, timeout=timeout)

    def sync(self, source: Path, remote: str, *extra: str) -> dict[str, Any]:
        """The seed's command; returns rclone's final stats (from its JSON log)."""
        result = self.run("sync", str(source), remote, "--transfers=16", "--checkers=8", "--use-json-log", "-v",
                          *extra)
        assert result.returncode == 0, result.stderr[-3000:]
        return final_stats(result.stderr)


def final_stats(log: str) -> dict[str, Any]:
    stats = [json.loads(line)["stats"] for line in log.splitlines() if line.startswith("{") and '"stats"' in line]
    assert stats, log[-2000:]
    return stats[-1]


def make_tree(root: Path, big_mb: int = BIG_MB) -> dict[str, bytes | Path]:
    """A bucket-like tree: nested folders, empty files, unicode names and one large file."""
    files: dict[str, bytes] = {
        "top.txt": b"top level\n",
        "empty.txt": b"",
        "nested/deeper/deepest/data.bin": bytes(range(256)) * 300,
        "nested/empty-too": b"",
        "nested/deeper/notes.md": b"# notes\n" * 100,
        "ünïcødé/日本語 ファイル.txt": "こんにちは\n".encode(),
        "spaces in name/a b (1).txt": b"spaces\n",
    }
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.utime(path, (MTIME, MTIME))
    big = root / "media" / "big.bin"
    big.parent.mkdir(parents=True, exist_ok=True)
    block = hashlib.sha256(b"lockr").digest() * 32768  # 1 MiB, varied enough for the hashes to mean something
    with big.open("wb") as handle:
        for index in range(big_mb):
            handle.write(index.to_bytes(4, "big") + block[4:])
    os.utime(big, (MTIME, MTIME))
    return {**files, "media/big.bin": big}


def local_files(root: Path) -> dict[str, Path]:
    return {p.relative_to(root).as_posix(): p for p in root.rglob("*") if p.is_file()}


def api_files(server: Any, account: Account) -> dict[str, dict[str, Any]]:
    files: dict[str, dict[str, Any]] = {}
    cursor = None
    while True:
        params = {"limit": "1000", **({"cursor": cursor} if cursor else {})}
        page = requests.get(f"{server.url}/api/v1/files", params=params, headers=account.auth, timeout=30).json()
        files.update({f["name"]: f for f in page["files"]})
        cursor = page["next"]
        if not cursor:
            return files


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


@pytest.fixture
def rclone(tmp_path: Path) -> Rclone:
    return Rclone(tmp_path / "rclone.conf")


@pytest.fixture
def alice(server: Any, rclone: Rclone) -> Account:
    account = create_account(server.url, "alice")
    rclone.add_remote(server.url, account.token)
    return account


def test_sync_migrates_the_tree_and_a_second_run_transfers_nothing(server: Any, rclone: Rclone, alice: Account,
                                                                   tmp_path: Path) -> None:
    source = tmp_path / "bucket"
    make_tree(source)
    expected = local_files(source)

    stats = rclone.sync(source, "lockr:alice")
    assert stats["transfers"] == len(expected)
    assert stats["errors"] == 0

    check = rclone.run("check", str(source), "lockr:alice")
    assert check.returncode == 0, check.stderr
    assert f"{len(expected)} matching files" in check.stderr

    migrated = api_files(server, alice)
    assert set(migrated) == set(expected)
    for name, path in expected.items():
        assert migrated[name]["size"] == path.stat().st_size
        assert migrated[name]["sha256"] == sha256_of(path)
    for name in ("ünïcødé/日本語 ファイル.txt", "nested/empty-too"):
        download = requests.get(migrated[name]["downloadUrl"], headers=alice.auth, timeout=60)
        assert download.content == expected[name].read_bytes()
    big = hashlib.sha256()
    with requests.get(migrated["media/big.bin"]["downloadUrl"], headers=alice.auth, timeout=120,
                      stream=True) as response:
        for piece in response.iter_content(1 << 20):
            big.update(piece)
    assert big.hexdigest() == sha256_of(expected["media/big.bin"])
    assert {f["region"] for f in migrated.values()} == {server.settings.default_region}

    listing = json.loads(rclone.run("lsjson", "-R", "--files-only", "lockr:alice").stdout)
    assert {e["Path"]: e["Size"] for e in listing} == {n: p.stat().st_size for n, p in expected.items()}
    assert {e["ModTime"] for e in listing} == {"2022-04-15T05:20:00Z"}

    again = rclone.sync(source, "lockr:alice")
    assert again["transfers"] == 0
    assert again["checks"] == len(expected)
    assert {n: f["id"] for n, f in api_files(server, alice).items()} == {n: f["id"] for n, f in migrated.items()}


def test_changed_and_deleted_source_files_propagate(server: Any, rclone: Rclone, alice: Account,
                                                    tmp_path: Path) -> None:
    source = tmp_path / "bucket"
    make_tree(source, big_mb=1)
    rclone.sync(source, "lockr:alice")
    before = api_files(server, alice)

    (source / "top.txt").write_bytes(b"changed, and longer than before\n")
    same_size = source / "nested/deeper/notes.md"
    same_size.write_bytes(b"# NOTES\n" * 100)
    os.utime(same_size, (MTIME + 60, MTIME + 60))
    (source / "empty.txt").unlink()
    shutil.rmtree(source / "spaces in name")

    stats = rclone.sync(source, "lockr:alice")
    assert stats["transfers"] == 2
    assert stats["deletes"] == 2
    assert rclone.run("check", str(source), "lockr:alice").returncode == 0

    after = api_files(server, alice)
    assert set(after) == set(local_files(source))
    assert after["top.txt"]["sha256"] == hashlib.sha256(b"changed, and longer than before\n").hexdigest()
    assert after["nested/deeper/deepest/data.bin"]["id"] == \
        before["nested/deeper/deepest/data.bin"]["id"]
    dirs = rclone.run("lsf", "--dirs-only", "lockr:alice").stdout.split()
    assert "spaces in name/" not in dirs
    # The two files rclone deleted wait in the trash, which counts in the quota until it is emptied.
    trash = requests.get(f"{server.url}/api/v1/trash", headers=alice.auth, timeout=30).json()
    assert trash["count"] == 2
    used = server.ctx.db.run_sync(server.ctx.service.account_by_username, "alice").used_bytes
    assert used == sum(f["size"] for f in after.values()) + trash["bytes"]


def test_another_accounts_remote_cannot_see_or_touch_the_files(server: Any, rclone: Rclone, alice: Account,
                                                                tmp_path: Path) -> None:
    source = tmp_path / "bucket"
    make_tree(source, big_mb=1)
    rclone.sync(source, "lockr:alice")
    bob = create_account(server.url, "bob")
    rclone.add_remote(server.url, bob.token, name="bob")
    stray = tmp_path / "stray.txt"
    stray.write_bytes(b"from bob")

    for args in (("lsf", "-R", "bob:alice"), ("cat", "bob:alice/top.txt"), ("delete", "bob:alice"),
                 ("copyto", str(stray), "bob:alice/stray.txt"), ("purge", "bob:alice/nested")):
        result = rclone.run(*args, "--retries=1", "--low-level-retries=1")
        assert result.returncode != 0, args
        assert "top level" not in result.stdout and "data.bin" not in result.stdout
    assert set(api_files(server, alice)) == set(local_files(source))
    assert api_files(server, bob) == {}
    assert rclone.run("lsf", "bob:bob").returncode == 0


def test_quota_gives_an_rclone_error_and_no_partial_file(server: Any, rclone: Rclone, alice: Account,
                                                         tmp_path: Path) -> None:
    service = server.ctx.service
    account = server.ctx.db.run_sync(service.account_by_username, "alice")
    server.ctx.db.run_sync(service.set_quota, account.id, 1_500_000)
    source = tmp_path / "bucket"
    (source / "small").mkdir(parents=True)
    (source / "small" / "fits.txt").write_bytes(b"fits\n")
    (source / "too-big.bin").write_bytes(b"x" * 2_000_000)

    result = rclone.run("sync", str(source), "lockr:alice", "--retries=1", "--low-level-retries=1")
    assert result.returncode != 0
    assert "quota" in result.stderr
    files = api_files(server, alice)
    assert set(files) == {"small/fits.txt"}
    blobs = [p for p in (Path(server.settings.data_dir) / "blobs").rglob("*") if p.is_file()]
    inline = server.ctx.db.run_sync(InlineBlob.select().count)  # small files' bytes kept in the database
    assert len(blobs) + inline == 1


def test_the_plan_size_limit_gives_an_rclone_error(server_factory: Any, rclone: Rclone, tmp_path: Path) -> None:
    server = server_factory(account_max_object="1MB")
    alice = create_account(server.url, "alice")
    rclone.add_remote(server.url, alice.token)
    source = tmp_path / "bucket"
    source.mkdir()
    (source / "big.bin").write_bytes(b"x" * 1_500_000)
    (source / "ok.txt").write_bytes(b"ok")

    result = rclone.run("sync", str(source), "lockr:alice", "--retries=1", "--low-level-retries=1", "-vv")
    assert result.returncode != 0
    assert "413" in result.stderr or "too large" in result.stderr.lower()
    assert set(api_files(server, alice)) == {"ok.txt"}, result.stderr[-4000:]


def test_synced_objects_land_in_the_default_region(server_factory: Any, rclone: Rclone, tmp_path: Path) -> None:
    server = server_factory(regions=f"near={tmp_path}/near,far={tmp_path}/far", default_region="far")
    alice = create_account(server.url, "alice")
    rclone.add_remote(server.url, alice.token)
    source = tmp_path / "bucket"
    make_tree(source, big_mb=1)
    rclone.sync(source, "lockr:alice")
    migrated = api_files(server, alice)
    assert set(migrated) == set(local_files(source))
    assert {f["region"] for f in migrated.values()} == {"far"}
    assert not [p for p in (tmp_path / "near").rglob("*") if p.is_file()]


def test_basic_auth_with_an_obscured_password_works_too(server: Any, rclone: Rclone, tmp_path: Path) -> None:
    alice = create_account(server.url, "alice", password="a long password")
    obscured = rclone.run("obscure", alice.password).stdout.strip()
    rclone.config.write_text(f"[basic]\ntype = webdav\nurl = {server.url}/dav/\nvendor = owncloud\n"
                             f"user = {alice.email}\npass = {obscured}\n")
    source = tmp_path / "bucket"
    make_tree(source, big_mb=1)
    rclone.sync(source, "basic:alice")
    assert rclone.run("check", str(source), "basic:alice").returncode == 0
    assert set(api_files(server, alice)) == set(local_files(source))


def test_rclone_about_reports_the_quota(server: Any, rclone: Rclone, alice: Account, tmp_path: Path) -> None:
    source = tmp_path / "bucket"
    source.mkdir()
    (source / "a.bin").write_bytes(b"x" * 1000)
    rclone.sync(source, "lockr:alice")
    about = json.loads(rclone.run("about", "--json", "lockr:alice").stdout)
    assert about["used"] == 1000
    assert about["total"] == server.settings.default_quota


def readme_migration_commands() -> list[str]:
    """The shell commands of the README's migration walkthrough, as written."""
    text = (REPO / "README.md").read_text()
    section = text.split("## Migrating with rclone (one switch)", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_the_readme_migration_works_as_written(server: Any, tmp_path: Path) -> None:
    """The README's commands, with an rclone 'local' remote named s3 standing in for the bucket."""
    alice = create_account(server.url, "alice")
    commands = readme_migration_commands()
    assert commands[0].startswith("rclone config create s3 s3 ")
    commands[0] = "rclone config create s3 local"
    script = "\n".join(commands).replace("~/.config/rclone/rclone.conf", '"$RCLONE_CONFIG"')
    script = script.replace("http://127.0.0.1:8080", server.url)
    bucket = tmp_path / "your-source-bucket"
    make_tree(bucket, big_mb=2)
    env = clean_env(TOKEN=alice.token, RCLONE_CONFIG=str(tmp_path / "rclone.conf"),
                    PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    env = {k: v for k, v in env.items() if not k.startswith("RCLONE_") or k == "RCLONE_CONFIG"}
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "0 differences found" in result.stderr
    assert set(api_files(server, alice)) == set(local_files(bucket))


# -- from a real S3 bucket -------------------------------------------------------------------------------
# Names an S3 bucket may hold that lockr-local takes (no backslash, no control or leading/trailing-space
# segments; see README "Names"): URL-special and shell-special characters, quotes, non-Latin scripts, emoji,
# a decomposed (NFD) accent that lockr-local stores as NFC, and a 200-byte segment.
ODD_NAMES = [
    "odd/hash#tag.txt", "odd/percent%41%zz.txt", "odd/question?mark=1&x=2.txt", "odd/plus+sign and  spaces.txt",
    "odd/colon:star*pipe|angle<>.txt", "odd/quotes 'single' \"double\" `back`.txt", "odd/[brackets] {braces} (p).txt",
    "odd/semi;comma,at@dollar$bang!caret^tilde~.txt", "odd/-leading-dash.txt", "odd/.hidden", "odd/trailing.dot.",
    "ünïcødé/日本語 ファイル.txt", "ünïcødé/Ελληνικά/Кириллица.md", "ünïcødé/עברית ועربية.txt", "emoji/🎉 party 👨‍👩‍👧.txt",
    "nfd/cafe\u0301 decomposed.txt", "long/" + "x" * 200 + ".bin",
]


def fill_bucket(client: Any, bucket: str, count: int = 120) -> dict[str, bytes]:
    """A few hundred objects in nested "folders": sizes from empty to past the inline limit and one past a
    multipart part (9 MiB), plus ODD_NAMES; returns key -> bytes."""
    import random
    import unicodedata

    rng = random.Random(19)
    objects: dict[str, bytes] = {}
    for index in range(count - len(ODD_NAMES) - 1):
        depth = rng.randrange(1, 5)
        folder = "/".join(f"d{rng.randrange(4)}" for _ in range(depth))
        size = rng.choice([0, 1, 100, 4096, 65_536, 65_537, 200_000])
        objects[f"tree/{folder}/file-{index:04d}.bin"] = rng.randbytes(size)
    objects["big/nine-mib.bin"] = rng.randbytes(9 * 2**20)
    for name in ODD_NAMES:
        objects[name] = f"{unicodedata.normalize('NFC', name)}\n".encode()
    for key, data in objects.items():
        client.put_object(Bucket=bucket, Key=key, Body=data)
    return objects


@pytest.mark.both_databases
@pytest.mark.blob_backends("folder", "s3")
def test_sync_from_an_s3_bucket_transfers_everything_and_a_second_sync_nothing(
        server: Any, rclone: Rclone, alice: Account, s3_server: Any) -> None:
    """The seed's migration from a real S3 bucket (moto's server, rclone's s3 backend) into lockr-local, on the
    single box and on PostgreSQL + a bucket region."""
    import unicodedata

    source_bucket = s3_server.new_bucket()
    objects = fill_bucket(s3_server.client(), source_bucket)
    from tests.objectstore import ACCESS_KEY, AWS_REGION, SECRET_KEY

    with rclone.config.open("a") as handle:
        handle.write(f"\n[src]\ntype = s3\nprovider = Other\nendpoint = {s3_server.endpoint}\n"
                     f"access_key_id = {ACCESS_KEY}\nsecret_access_key = {SECRET_KEY}\nregion = {AWS_REGION}\n"
                     "force_path_style = true\n")
    expected = {unicodedata.normalize("NFC", key): data for key, data in objects.items()}

    result = rclone.run("sync", f"src:{source_bucket}", "lockr:alice", "--transfers=16", "--checkers=8",
                        "--use-json-log", "-v")
    assert result.returncode == 0, result.stderr[-3000:]
    stats = final_stats(result.stderr)
    assert (stats["transfers"], stats["errors"]) == (len(objects), 0)

    migrated = api_files(server, alice)
    assert set(migrated) == set(expected)
    assert {name: (f["size"], f["sha256"]) for name, f in migrated.items()} == \
        {name: (len(data), hashlib.sha256(data).hexdigest()) for name, data in expected.items()}
    listing = json.loads(rclone.run("lsjson", "-R", "--files-only", "lockr:alice").stdout)
    assert {unicodedata.normalize("NFC", e["Path"]): e["Size"] for e in listing} == \
        {name: len(data) for name, data in expected.items()}
    check = rclone.run("check", f"src:{source_bucket}", "lockr:alice")  # MD5 on both sides
    assert check.returncode == 0, check.stderr[-3000:]
    assert f"{len(objects)} matching files" in check.stderr
    for name in ("big/nine-mib.bin", "odd/question?mark=1&x=2.txt", "emoji/🎉 party 👨‍👩‍👧.txt"):
        download = requests.get(migrated[name]["downloadUrl"], headers=alice.auth, timeout=60)
        assert download.content == expected[name], name

    again = rclone.run("sync", f"src:{source_bucket}", "lockr:alice", "--transfers=16", "--checkers=8",
                       "--use-json-log", "-v")
    assert again.returncode == 0, again.stderr[-3000:]
    stats = final_stats(again.stderr)
    assert (stats["transfers"], stats["deletes"], stats["errors"]) == (0, 0, 0), again.stderr[-3000:]
    assert stats["checks"] == len(objects)
    assert {n: f["id"] for n, f in api_files(server, alice).items()} == {n: f["id"] for n, f in migrated.items()}
