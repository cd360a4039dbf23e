"""The `cluster` group: lockr-local on PostgreSQL + a region in an S3 bucket, one node and two behind nginx,
measured beside the single-box rows of the same run, with what bounds them measured alone (the S3 server's
PUT and GET, PostgreSQL's commits).

PostgreSQL and the S3 server are started the way the tests start them (tests/postgres.py: a private
cluster in a temp folder, here with its durability settings on; tests/objectstore.py: moto's standalone
server, a separate process spoken to over HTTP). moto keeps objects in one Python process and is no
production store: its own PUT and GET rows are the ceiling the lockr-local rows are read against.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import statistics
import time
from contextlib import ExitStack
from pathlib import Path

import requests

from bench.harness import LockrServer, Row, Table, curl, make_file, settle_disk
from bench.scenarios import (
    MB, SCALING_TOTAL_MAX, concurrent_uploads, scenario_big_download, scenario_big_upload, scenario_small_files,
    size_label,
)
from bench.targets import LockrTarget

CLUSTER = "lockr-local PG+S3"
NODE_CLIENTS = 16  # concurrent uploads in the 1-node vs 2-node rows: enough for a second node to matter
MOTO_PART = 8 * 2**20  # lockr-local's part size (server/s3store.py PART_SIZE), for the raw multipart row


def cluster_missing() -> str:
    """Why the group cannot run here ("" when it can)."""
    from tests.postgres import postgres_bin_dir

    if postgres_bin_dir() is None:
        return "PostgreSQL is not installed (Debian: apt-get install postgresql)"
    for module, package in (("moto", "moto[server]"), ("boto3", "boto3"), ("psycopg", "psycopg[binary]")):
        if importlib.util.find_spec(module) is None:
            return f"{package} is not installed (pip install -e '.[test]')"
    return ""


class ClusterStack:
    """PostgreSQL (durable) and moto's S3 server for the run; `store()` gives a new database and bucket as a
    node's settings."""

    def __init__(self, resources: ExitStack) -> None:
        from tests.objectstore import S3Server
        from tests.postgres import PostgresCluster, postgres_bin_dir

        bin_dir = postgres_bin_dir()
        assert bin_dir is not None
        self.postgres = PostgresCluster(bin_dir, durable=True).start()
        resources.callback(self.postgres.stop)
        self.s3 = S3Server().start()
        resources.callback(self.s3.stop)

    def store(self) -> dict[str, str]:
        database = self.postgres.url(self.postgres.create_database())
        return {"LOCKR_DATABASE_URL": database, "LOCKR_REGIONS": f"local={self.s3.region_url()}",
                "LOCKR_TRUSTED_PROXIES": "127.0.0.1"}


def bench_raw_cluster(stack: ClusterStack, source: Path, size: int, table: Table) -> None:
    """The ceilings: moto storing and serving the same file with no lockr-local in between (one PUT by curl,
    a multipart upload with lockr-local's part size and parts in flight, a GET by curl), and PostgreSQL
    committing 10 KiB rows one by one (what each small upload stored in the database costs at least)."""
    from lockr_local.config import parse_bucket_url
    from lockr_local.server.s3store import make_client

    s3 = stack.s3
    bucket = s3.new_bucket()
    client = make_client(parse_bucket_url(s3.region_url(bucket)))  # the client (and settings) the server uses
    put_url, get_url = (client.generate_presigned_url(method, Params={"Bucket": bucket, "Key": "raw.bin"})
                        for method in ("put_object", "get_object"))
    settle_disk(warm=[source])
    elapsed, _ = curl([put_url, "-X", "PUT", "-T", str(source), "-H", "Expect:"])
    table.add(Row(f"raw: moto PUT {size_label(size)}, one request", "moto", size / MB / elapsed, "MB/s",
                  note="curl, presigned URL"))
    from boto3.s3.transfer import TransferConfig

    config = TransferConfig(multipart_threshold=MOTO_PART, multipart_chunksize=MOTO_PART, max_concurrency=2)
    settle_disk(warm=[source])
    started = time.perf_counter()
    client.upload_file(str(source), bucket, "raw-multipart.bin", Config=config)
    table.add(Row(f"raw: moto multipart upload {size_label(size)}, 8 MiB parts", "moto",
                  size / MB / (time.perf_counter() - started), "MB/s", note="boto3, 2 parts in flight"))
    elapsed, _ = curl([get_url, "-o", "/dev/null"])
    table.add(Row(f"raw: moto GET {size_label(size)}", "moto", size / MB / elapsed, "MB/s", note="curl"))
    client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "raw.bin"}, {"Key": "raw-multipart.bin"}]})
    table.add(Row("raw: 10 KiB rows committed one by one (PostgreSQL, synchronous_commit on)", "machine",
                  postgres_commits_per_second(stack), "files/s"))


def postgres_commits_per_second(stack: ClusterStack, count: int = 1000, size: int = 10 * 1024) -> float:
    import psycopg

    name = stack.postgres.create_database(empty=True)
    try:
        with psycopg.connect(stack.postgres.url(name), autocommit=True) as connection:
            connection.execute("CREATE TABLE files (id TEXT PRIMARY KEY, data BYTEA)")
            data = os.urandom(size)
            started = time.perf_counter()
            for index in range(count):
                connection.execute("INSERT INTO files VALUES (%s, %s)", (f"file-{index}", data))
            return count / (time.perf_counter() - started)
    finally:
        stack.postgres.drop_database(name)


def delete_all(server: LockrServer) -> None:
    """Deletes the bench account's files (moto keeps every object it holds in its temp files and memory)."""
    headers = {"Authorization": f"Bearer {server.token}"}
    while True:
        page = requests.get(f"{server.url}/api/v1/files", params={"limit": 1000}, headers=headers, timeout=60)
        page.raise_for_status()
        files = page.json()["files"]
        if not files:
            return
        for file in files:
            requests.delete(f"{server.url}/api/v1/files/{file['id']}", headers=headers, timeout=60).raise_for_status()


def nginx_blocks(port: int, nodes: list[LockrServer]) -> str:
    """Round robin over `nodes` with the settings of packaging/reverse-proxy.md (no request buffering)."""
    upstream = f"lockr{port}"
    servers = "\n".join(f"        server {node.url.removeprefix('http://')};" for node in nodes)
    return f"""
    upstream {upstream} {{
{servers}
        keepalive 32;
    }}
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 0;
        proxy_request_buffering off;
        proxy_buffering off;
        proxy_http_version 1.1;
        location / {{
            proxy_pass http://{upstream};
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header Connection "";
        }}
    }}
"""


def scenario_nodes(node_a: LockrServer, env: dict[str, str], work: Path, size: int, runs: int, table: Table,
                   clients: int = NODE_CLIENTS) -> None:
    """`clients` concurrent uploads through nginx to one node, and to two nodes on the same database and
    bucket (round robin), alternating run by run so both face the same store; median of `runs` each."""
    from tests.nginx import free_port, running_nginx

    each = max(min(size, SCALING_TOTAL_MAX) // clients, 1)
    path = make_file(work / f"nodes-{each}.bin", each)
    node_b = LockrServer(work / "cluster-b", env=env, token=node_a.token)
    one_port, two_port = free_port(), free_port()
    blocks = nginx_blocks(one_port, [node_a]) + nginx_blocks(two_port, [node_a, node_b])
    speeds: dict[int, list[float]] = {1: [], 2: []}
    peaks: dict[int, int] = {1: 0, 2: 0}
    try:
        with running_nginx(work / "cluster-nginx", blocks, two_port):
            for run in range(runs):
                for nodes, port in ((1, one_port), (2, two_port)):
                    target = LockrTarget(node_a, CLUSTER, url=f"http://127.0.0.1:{port}")
                    elapsed, peak, failed = concurrent_uploads(target, path, clients, f"nodes{nodes}-{run}")
                    speeds[nodes].append(clients * each / MB / elapsed)
                    peaks[nodes] = max(peaks[nodes], peak)
                    if failed:  # a figure of failed uploads would measure nothing
                        raise RuntimeError(f"{failed} of {clients} uploads through nginx to {nodes} node(s) failed")
                    delete_all(node_a)
    finally:
        node_b.stop()
        shutil.rmtree(work / "cluster-b", ignore_errors=True)
        shutil.rmtree(work / "cluster-nginx", ignore_errors=True)
    scenario = f"{clients} concurrent {size_label(each)} uploads through nginx"
    one = statistics.median(speeds[1])
    table.add(Row(scenario, "1 node PG+S3", one, "MB/s", peaks[1]))
    two = statistics.median(speeds[2])
    table.add(Row(scenario, "2 nodes PG+S3", two, "MB/s", peaks[2], "RSS: node A",
                  paired_ratio=two / one if one else None, paired_label="this / 1 node"))


def pair_with_single_box(table: Table) -> None:
    """Each PG+S3 row's ratio column: its figure over the single box's in the same scenario, when it ran."""
    for row in table.rows:
        if row.server != CLUSTER:
            continue
        single = [r for r in table.rows if r.scenario == row.scenario and r.server == "lockr-local"]
        if single and single[0].value:
            row.paired_ratio = row.value / single[0].value
            row.paired_label = "this / single box"


def run_cluster(work: Path, source: Path, size: int, runs: int, small_count: int, table: Table) -> None:
    """The group: raw ceilings, then one node on PostgreSQL + S3 (upload, download, small files), then one
    node vs two behind nginx. Skipped with a note where PostgreSQL or moto is missing (the node rows alone
    where nginx is)."""
    missing = cluster_missing()
    if missing:
        print(f"  (cluster group skipped: {missing})", flush=True)
        return
    print("\nlockr-local on PostgreSQL + an S3 region (moto):", flush=True)
    with ExitStack() as resources:
        stack = ClusterStack(resources)
        bench_raw_cluster(stack, source, size, table)
        env = stack.store()
        node_a = LockrServer(work / "cluster-a", env=env)
        try:
            target = LockrTarget(node_a, CLUSTER)
            scenario_big_upload(target, source, size, runs, table)
            scenario_big_download(target, size, runs, table)
            delete_all(node_a)
            small = make_file(work / "small.bin", 10 * 1024)
            scenario_small_files(target, small, small_count, max(runs, 5), table)
            delete_all(node_a)
            if shutil.which("nginx") is None:
                print("  (1 node vs 2 nodes skipped: nginx is not installed; apt-get install nginx-light)")
            else:
                scenario_nodes(node_a, env, work, size, runs, table)
        finally:
            node_a.stop()
            shutil.rmtree(work / "cluster-a", ignore_errors=True)
    pair_with_single_box(table)
