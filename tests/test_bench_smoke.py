"""`python -m bench` still runs: a few-second pass over the lockr-local-only rows with tiny sizes."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def smoke_table(tmp_path_factory: pytest.TempPathFactory) -> str:
    if shutil.which("curl") is None:
        pytest.skip("the benchmarks measure with curl, which is not installed")
    tmp = tmp_path_factory.mktemp("bench")
    results = tmp / "table.md"
    proc = subprocess.run([sys.executable, "-m", "bench", "--only", "upload,session,small,scaling,listing", "--size",
                           "2MiB", "--runs", "1", "--no-peers", "--listing-counts", "200,1000", "--small-count", "16",
                           "--results", str(results)],
                          cwd=REPO, env={**{k: v for k, v in os.environ.items() if not k.startswith("LOCKR_BENCH")},
                                         "LOCKR_BENCH_DIR": str(tmp)},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert not [p for p in tmp.iterdir() if p.name.startswith("lockr-bench-")], "temp files were left behind"
    return results.read_text()


def row(table: str, scenario: str, server: str | None = None) -> list[str]:
    for line in table.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if cells[0] == scenario and server in (None, cells[1]):
            return cells
    raise AssertionError(f"no row {scenario!r}{f' of {server}' if server else ''} in\n{table}")


def test_session_upload_row_shows_its_ratio_to_the_direct_uploads_paired_with_it(smoke_table: str) -> None:
    cells = row(smoke_table, "upload 2 MiB, session PUT 8 MiB chunks")
    assert re.fullmatch(r"[\d.]+ MB/s", cells[2])
    assert re.fullmatch(r"[\d.]+x \(this / direct uploads paired with it\)", cells[4])


@pytest.mark.parametrize("clients", ["1 client", "4 clients", "16 clients"])
def test_upload_scaling_has_a_row_per_client_count(smoke_table: str, clients: str) -> None:
    cells = row(smoke_table, f"scaling: {clients} upload 2 MiB in all")
    assert re.fullmatch(r"[\d.]+ MB/s", cells[2]) and cells[3].endswith("MiB")


@pytest.mark.parametrize("count", ["200", "1,000"])
def test_listing_rows_time_the_first_and_a_middle_page_and_walk_every_file(smoke_table: str, count: str) -> None:
    first = row(smoke_table, f"listing, {count} files: first page")
    middle = row(smoke_table, f"listing, {count} files: middle page (cursor)")
    assert re.fullmatch(r"[\d.]+ ms", first[2]) and re.fullmatch(r"[\d.]+ ms", middle[2])
    assert float(middle[2].split()[0]) > 0, "the walk found no middle cursor"
    assert "files/s" in smoke_table.split(f"listing, {count} files: all pages")[1].splitlines()[0]


def test_unknown_group_is_refused_with_the_list_of_groups() -> None:
    proc = subprocess.run([sys.executable, "-m", "bench", "--only", "uploads"], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2
    assert "unknown group(s) uploads" in proc.stderr and "listing" in proc.stderr


def test_naive_tornado_peer_stores_a_put_and_serves_it_back(tmp_path: Path) -> None:
    import requests

    from bench.peers import NaiveTornadoPeer

    peer = NaiveTornadoPeer(tmp_path).start()
    try:
        body = os.urandom(3 * 2**20 + 5)
        assert requests.put(peer.upload_url("one.bin"), data=body, timeout=30).status_code == 201
        assert requests.get(peer.download_url("one.bin"), timeout=30).content == body
    finally:
        peer.stop()


def test_raw_rows_measure_a_durable_write_and_durable_commits(tmp_path: Path) -> None:
    from bench.scenarios import durable_row_commits_per_second, durable_write_seconds
    from lockr_local.server import writeback

    if writeback._sync_file_range is None:
        pytest.skip("the durable-write row pushes writeback with sync_file_range, which exists on Linux only")
    source = tmp_path / "source.bin"
    source.write_bytes(os.urandom(9 * 2**20))
    target = tmp_path / "copy.bin"
    assert durable_write_seconds(source, target) > 0
    assert target.read_bytes() == source.read_bytes()
    assert durable_row_commits_per_second(tmp_path, count=20) > 0
    assert not list(tmp_path.glob("commits.db*"))


@pytest.fixture(scope="module")
def cluster_table(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The cluster group at tiny sizes, with the single-box rows it stands beside."""
    from bench.cluster import cluster_missing

    if shutil.which("curl") is None:
        pytest.skip("the benchmarks measure with curl, which is not installed")
    missing = cluster_missing()
    if missing:
        pytest.skip(missing)
    tmp = tmp_path_factory.mktemp("bench-cluster")
    results = tmp / "table.md"
    proc = subprocess.run([sys.executable, "-m", "bench", "--only", "upload,download,small,cluster", "--size", "2MiB",
                           "--runs", "1", "--no-peers", "--small-count", "20", "--results", str(results)],
                          cwd=REPO, env={**{k: v for k, v in os.environ.items() if not k.startswith("LOCKR_BENCH")},
                                         "LOCKR_BENCH_DIR": str(tmp)},
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert not [p for p in tmp.iterdir() if p.name.startswith("lockr-bench-")], "temp files were left behind"
    return results.read_text()


@pytest.mark.parametrize("scenario", ["upload 2 MiB", "download 2 MiB", "20 x 10 KiB uploads, keep-alive"])
def test_cluster_rows_stand_beside_the_single_box_rows_with_their_ratio(cluster_table: str, scenario: str) -> None:
    single = row(cluster_table, scenario, "lockr-local")
    cluster = row(cluster_table, scenario, "lockr-local PG+S3")
    assert re.fullmatch(r"[\d.]+ (MB|files)/s", single[2]) and cluster[2].split()[1] == single[2].split()[1]
    assert re.fullmatch(r"[\d.]+x \(this / single box\)", cluster[4])


@pytest.mark.parametrize("scenario", ["raw: moto PUT 2 MiB, one request",
                                      "raw: moto multipart upload 2 MiB, 8 MiB parts", "raw: moto GET 2 MiB",
                                      "raw: 10 KiB rows committed one by one (PostgreSQL, synchronous_commit on)"])
def test_cluster_raw_rows_measure_the_object_store_and_postgresql_alone(cluster_table: str, scenario: str) -> None:
    assert re.fullmatch(r"[\d.]+ (MB|files)/s", row(cluster_table, scenario)[2])


def test_cluster_compares_one_node_with_two_behind_nginx(cluster_table: str) -> None:
    from tests.nginx import nginx_binary

    nginx_binary()  # skips where nginx is missing (the bench leaves these rows out there)
    one = row(cluster_table, "16 concurrent 128 KiB uploads through nginx", "1 node PG+S3")
    two = row(cluster_table, "16 concurrent 128 KiB uploads through nginx", "2 nodes PG+S3")
    assert re.fullmatch(r"[\d.]+ MB/s", one[2]) and re.fullmatch(r"[\d.]+ MB/s", two[2])
    assert re.fullmatch(r"[\d.]+x \(this / 1 node\)", two[4])


def test_cluster_group_is_skipped_with_a_message_where_postgresql_is_missing(monkeypatch: pytest.MonkeyPatch,
                                                                           capsys: pytest.CaptureFixture[str],
                                                                           tmp_path: Path) -> None:
    import tests.postgres
    from bench.cluster import run_cluster
    from bench.harness import Table

    monkeypatch.setattr(tests.postgres, "postgres_bin_dir", lambda: None)
    table = Table()
    run_cluster(tmp_path, tmp_path / "source.bin", 1024, 1, 1, table)
    assert table.rows == []
    assert "cluster group skipped: PostgreSQL is not installed" in capsys.readouterr().out


@pytest.mark.parametrize("scenario", ["16 x 10 KiB uploads, keep-alive", "64 x 10 KiB uploads, 8 connections"])
def test_small_file_rows_show_files_per_second_beside_the_durable_commit_ceiling(smoke_table: str,
                                                                                 scenario: str) -> None:
    cells = row(smoke_table, scenario)
    assert re.fullmatch(r"[\d.]+ files/s", cells[2]) and float(cells[2].split()[0]) > 0
    assert re.fullmatch(r"durable-commit ceiling [\d,]+/s", cells[5]), cells


def test_sync_rows_time_sync_once_and_rclone_copy_beside_the_ceiling(tmp_path: Path) -> None:
    """`python -m bench.sync` at tiny sizes: a sync --once row per tree size, rclone copy of the same tree to the
    same server beside it (where rclone is installed), the ceiling measured in the same run."""
    if shutil.which("curl") is None:
        pytest.skip("the benchmark server is signed up to with curl, which is not installed")
    results = tmp_path / "sync.md"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("LOCKR_BENCH")}, "LOCKR_BENCH_DIR": str(tmp_path),
           "LOCKR_BENCH_SIZE": "1MiB", "LOCKR_BENCH_SYNC_FILES": "20,40", "LOCKR_BENCH_SYNC_RESULTS": str(results),
           "LOCKR_BENCH_SYNC_SAMPLES": "3"}
    proc = subprocess.run([sys.executable, "-m", "bench.sync"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    table = results.read_text()
    ceiling = row(table, "raw: 10 KiB rows committed one by one (SQLite WAL, fsync each)")
    assert float(ceiling[2].split()[0]) > 0
    for count in (20, 40):
        ours = row(table, f"initial sync {count} x 10 KiB")
        assert ours[1] == "lockr-local" and re.fullmatch(r"[\d.]+ files/s", ours[2])
        assert ours[5].startswith("durable-commit ceiling")
        if shutil.which("rclone") is not None:
            assert f"| initial sync {count} x 10 KiB | rclone copy (WebDAV) |" in table
