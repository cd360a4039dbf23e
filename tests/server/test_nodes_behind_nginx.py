"""Two `lockr-local serve` processes on one PostgreSQL database and one bucket region, behind a real nginx
that sends requests to them in turn (round robin, bodies streamed both ways): what a client of the
proxy sees when its requests land on either node, and when one node is killed mid-request. What two
nodes share without a proxy in between is tested in test_postgresql.py."""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import shutil
import socket
import subprocess
import threading
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import psycopg
import pytest
import requests

from lockr_local.config import load_settings
from lockr_local.server.cluster import _SESSION_LOCK_CLASS
from tests.helpers import REPO, Account, ServerProcess, create_account, stored_offset, wait_for
from tests.nginx import free_port, nginx_binary, running_nginx
from tests.server.session_tools import open_session, put_chunk

MiB = 2**20

README = REPO / "README.md"


def nginx_config_from_readme(proxy_port: int, node_ports: list[int]) -> str:
    """The README's nginx block for several nodes, with its TLS lines taken out and the test's addresses
    put in: the proxy the tests run is the one operators are told to run."""
    text = README.read_text()
    section = text[text.index("## Operators: several nodes"):]
    match = re.search(r"```nginx\n(.*?)```", section, flags=re.DOTALL)
    assert match, "the README's several-nodes section has no nginx block"
    config = match.group(1)
    for directive in ("client_max_body_size 0;", "proxy_request_buffering off;", "proxy_buffering off;",
                      "proxy_http_version 1.1;", "proxy_pass http://lockr_nodes;"):
        assert directive in config, directive
    upstreams = re.findall(r"^\s*server (10\.0\.0\.\d+:8080);", config, flags=re.MULTILINE)
    assert len(upstreams) == len(node_ports), upstreams
    for upstream, port in zip(upstreams, node_ports):
        config = config.replace(f"server {upstream};", f"server 127.0.0.1:{port};")
    assert "listen 443 ssl;" in config
    config = config.replace("listen 443 ssl;", f"listen 127.0.0.1:{proxy_port};")
    return re.sub(r"^\s*ssl_\w+\s.*$", "", config, flags=re.MULTILINE)


@dataclass
class Cluster:
    """The proxy's address, the nodes behind it, where each writes its logs, and the shared stores."""

    url: str
    nodes: list[ServerProcess]
    access_logs: list[Path]
    server_logs: list[Path]
    pg_url: str
    s3: Any
    bucket: str
    nginx_folder: Path

    def requests_seen(self, node: int) -> list[dict[str, Any]]:
        """The node's access log (JSON lines): one entry per request it answered."""
        path = self.access_logs[node]
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def agents_seen(self, node: int) -> list[str]:
        return [entry["user_agent"] for entry in self.requests_seen(node)]

    def node_that_answered(self, agent: str) -> int:
        """Which node answered the request sent with User-Agent `agent` (each test names its requests)."""
        return int(wait_for(lambda: next((i + 1 for i in range(len(self.nodes)) if agent in self.agents_seen(i)), 0),
                            message=f"a node to log the request {agent!r}")) - 1


@pytest.fixture
def cluster_behind_nginx(tmp_path: Path, pg_url: str, s3_server: Any) -> Iterator[Callable[..., Cluster]]:
    """Starts two nodes (with extra LOCKR_* settings) on a new database and bucket, and nginx in front of them."""
    nginx_binary()  # skips before anything starts, where nginx is missing
    running = ExitStack()

    def start(**settings: str) -> Cluster:
        bucket = s3_server.new_bucket()
        proxy_port = free_port()
        nodes, access_logs, server_logs = [], [], []
        for name in ("a", "b"):
            access_logs.append(tmp_path / f"access-{name}.log")
            server_logs.append(tmp_path / f"server-{name}.log")
            env = {"LOCKR_DATABASE_URL": pg_url, "LOCKR_REGIONS": f"local={s3_server.region_url(bucket)}",
                   "LOCKR_TRUSTED_PROXIES": "127.0.0.1", "LOCKR_LOG_LEVEL": "info",
                   "LOCKR_ACCESS_LOG": str(access_logs[-1]), "LOCKR_ACCESS_LOG_FORMAT": "json",
                   "LOCKR_INLINE_MAX": "0",  # every file in the bucket, none in the database
                   **{f"LOCKR_{key.upper()}": value for key, value in settings.items()}}
            node = ServerProcess(tmp_path / f"data-{name}", env=env, log_file=server_logs[-1])
            running.callback(node.stop)
            nodes.append(node.start())
        config = nginx_config_from_readme(proxy_port, [node.port for node in nodes])
        running.enter_context(running_nginx(tmp_path / "nginx", config, proxy_port))
        return Cluster(f"http://127.0.0.1:{proxy_port}", nodes, access_logs, server_logs, pg_url, s3_server, bucket,
                       tmp_path / "nginx")

    with running:
        yield start


def named(agent: str, account: Account | None = None) -> dict[str, str]:
    return {"User-Agent": agent, **(account.auth if account else {})}


def session_locks_held(pg_url: str) -> int:
    """How many upload sessions some node is writing right now (their advisory locks, cluster.py)."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = %s "
                           "AND objsubid = 2 AND granted", (_SESSION_LOCK_CLASS,)).fetchone()
    return int(row[0]) if row else 0


def test_a_sessions_chunks_alternate_between_the_nodes_and_complete_with_the_right_sha256(cluster_behind_nginx):
    cluster = cluster_behind_nginx()
    alice = create_account(cluster.url, "alice")
    chunk = 1 * MiB
    data = hashlib.sha256(b"seed").digest() * (7 * chunk // 32) + b"end"  # 7 MiB: parts and a tail
    session = open_session(cluster.url, len(data), account=alice)
    assert session["uploadUrl"].startswith(cluster.url + "/"), session["uploadUrl"]
    offsets = list(range(0, len(data), chunk))
    for index, first in enumerate(offsets):
        answer = put_chunk(session["uploadUrl"], data[first:first + chunk], first, len(data),
                           headers=named(f"chunk-{index}"))
        expected = (200, 201) if index == len(offsets) - 1 else (308,)
        assert answer.status_code in expected, answer.text
    assert answer.json()["sha256"] == hashlib.sha256(data).hexdigest()

    # Each node answered every other chunk, and the hash state carried over between them each time.
    first_node = cluster.node_that_answered("chunk-0")
    answered_by = [cluster.node_that_answered(f"chunk-{index}") for index in range(len(offsets))]
    assert answered_by == [(first_node + index) % 2 for index in range(len(offsets))]

    fetched = requests.get(answer.json()["downloadUrl"], headers=alice.auth, timeout=60)
    assert fetched.status_code == 200 and hashlib.sha256(fetched.content).hexdigest() == hashlib.sha256(data).hexdigest()


def send_part_of_a_chunk(url: str, data: bytes, first: int, total: int, agent: str, sent: int) -> socket.socket:
    """A chunk PUT whose first `sent` body bytes are on the wire and the rest never will be."""
    parts = re.match(r"http://([^/:]+):(\d+)(/.*)", url)
    assert parts is not None, url
    conn = socket.create_connection((parts.group(1), int(parts.group(2))), timeout=30)
    conn.sendall((f"PUT {parts.group(3)} HTTP/1.1\r\nHost: {parts.group(1)}:{parts.group(2)}\r\n"
                  f"User-Agent: {agent}\r\nContent-Length: {len(data)}\r\n"
                  f"Content-Range: bytes {first}-{first + len(data) - 1}/{total}\r\n\r\n").encode() + data[:sent])
    return conn


def test_a_node_killed_mid_chunk_loses_nothing_acknowledged_and_the_client_resumes_on_the_other(
        cluster_behind_nginx):
    cluster = cluster_behind_nginx()
    alice = create_account(cluster.url, "alice")
    chunk = 1 * MiB
    data = hashlib.sha256(b"kill").digest() * (6 * chunk // 32)
    url = open_session(cluster.url, len(data), account=alice)["uploadUrl"]
    for index in range(2):
        assert put_chunk(url, data[index * chunk:(index + 1) * chunk], index * chunk, len(data),
                         headers=named(f"chunk-{index}")).status_code == 308
    acknowledged = 2 * chunk

    # Round robin: the request after the one node X answered goes to the other node.
    probe = requests.put(url, headers={"Content-Range": f"bytes */{len(data)}", **named("probe")}, timeout=30)
    assert probe.status_code == 308 and probe.headers["Range"] == f"bytes=0-{acknowledged - 1}"
    victim = 1 - cluster.node_that_answered("probe")
    cut = send_part_of_a_chunk(url, data[acknowledged:acknowledged + chunk], acknowledged, len(data),
                               "doomed-chunk", sent=chunk // 2)
    wait_for(lambda: session_locks_held(cluster.pg_url) == 1, timeout=15,
             message="a node to start writing the doomed chunk")
    cluster.nodes[victim].kill()
    # The lock went with the killed node's connection: that node was the one writing the chunk.
    wait_for(lambda: session_locks_held(cluster.pg_url) == 0, timeout=15, message="the killed node's lock to go")
    cut.settimeout(30)
    answer = b""
    try:
        while chunk_of_answer := cut.recv(65536):
            answer += chunk_of_answer
    except OSError:
        pass  # reset: the proxy gave up on the request too
    cut.close()
    assert not answer.startswith(b"HTTP/1.1 308"), answer[:200]  # never acknowledged

    # The client asks what is stored (through the proxy, which now reaches the other node) and resumes.
    offset = stored_offset(url, len(data))
    assert offset >= acknowledged, offset
    for first in range(offset, len(data), chunk):
        answer_ = put_chunk(url, data[first:first + chunk], first, len(data), headers=named(f"resumed-{first}"))
        assert answer_.status_code in ((200, 201) if first + chunk >= len(data) else (308,)), answer_.text
    stored = answer_.json()
    assert stored["sha256"] == hashlib.sha256(data).hexdigest()
    resumed = [f"resumed-{first}" for first in range(offset, len(data), chunk)]
    assert {cluster.node_that_answered(agent) for agent in resumed} == {1 - victim}
    fetched = requests.get(stored["downloadUrl"], headers=alice.auth, timeout=60)
    assert fetched.status_code == 200 and fetched.content == data


def test_a_signed_link_made_through_one_node_downloads_through_both(cluster_behind_nginx):
    cluster = cluster_behind_nginx()
    alice = create_account(cluster.url, "alice")
    data = b"shared by link, kept in the bucket"
    stored = requests.post(f"{cluster.url}/api/v1/upload", data=data, timeout=30,
                           headers={"x-file-name": "shared.txt", **alice.auth}).json()
    link = requests.post(f"{cluster.url}/api/v1/files/{stored['id']}/link", json={"expiresIn": 600}, timeout=30,
                         headers=named("make-link", alice)).json()["url"]
    assert link.startswith(cluster.url + "/"), link
    for attempt in range(2):
        fetched = requests.get(link, headers=named(f"follow-{attempt}"), timeout=30)
        assert fetched.status_code == 200 and fetched.content == data
    # One of the two downloads was verified by the node that did not sign the link.
    assert {cluster.node_that_answered("follow-0"), cluster.node_that_answered("follow-1")} == {0, 1}
    tampered = requests.get(link.replace("sig=", "sig=0"), timeout=30)
    assert tampered.status_code in (403, 404), tampered.text


def test_password_guesses_through_the_proxy_meet_one_limit_on_both_nodes(cluster_behind_nginx):
    burst = 4
    cluster = cluster_behind_nginx(rate_login="0.001", rate_login_burst=str(burst))
    create_account(cluster.url, "alice")
    statuses = [requests.post(f"{cluster.url}/api/v1/login", json={"identifier": "alice", "password": f"guess {i}"},
                              headers=named(f"guess-{i}"), timeout=30).status_code for i in range(2 * burst)]
    assert statuses == [401] * burst + [429] * burst
    # Each node saw only `burst` guesses, fewer than its own limit would let by: it refused some all the
    # same, because the other node's guesses counted too.
    # A node writes its access-log line after the answer has left: wait for all of them.
    def guesses_logged(node: int) -> list[int]:
        return [entry["status"] for entry in cluster.requests_seen(node) if entry["user_agent"].startswith("guess-")]

    wait_for(lambda: len(guesses_logged(0)) + len(guesses_logged(1)) == 2 * burst,
             message="both nodes to log every guess")
    for node in (0, 1):
        answered = guesses_logged(node)
        assert len(answered) == burst and 401 in answered and 429 in answered, (node, answered)


def test_expired_sessions_are_reaped_once_by_two_running_nodes(cluster_behind_nginx):
    cluster = cluster_behind_nginx(session_expiry="3", reap_interval="1", log_level="debug")
    alice = create_account(cluster.url, "alice")
    sessions = []
    for index in range(4):
        url = open_session(cluster.url, 2 * MiB, name=f"s{index}.bin", account=alice)["uploadUrl"]
        assert put_chunk(url, b"x" * MiB, 0, 2 * MiB, headers=named(f"s{index}-chunk")).status_code == 308
        sessions.append(url)
    bucket = cluster.s3.client()
    assert bucket.list_objects_v2(Bucket=cluster.bucket, Prefix="blobs/partial/").get("KeyCount", 0) > 0

    # The test holds the session rows, so that a reaper run that found them expired waits to delete them:
    # two nodes reaping at once would then both hold the same rows. One waits; the other skips its runs.
    with psycopg.connect(cluster.pg_url) as holder:
        holder.execute("SELECT session_id FROM uploadsession FOR UPDATE").fetchall()

        def one_run_waits_and_the_other_node_skips() -> bool:
            with psycopg.connect(cluster.pg_url, autocommit=True) as conn:
                waiting = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                       "AND datname = current_database()").fetchone()
            skipped = any("skipping the reaper run" in log.read_text() for log in cluster.server_logs)
            return bool(waiting and waiting[0] >= 1 and skipped)

        wait_for(one_run_waits_and_the_other_node_skips, timeout=20, interval=0.2,
                 message="one node's reaper run to wait for the rows while the other node skips its own")
        holder.rollback()

    def sessions_left() -> int:
        with psycopg.connect(cluster.pg_url, autocommit=True) as conn:
            return int(conn.execute("SELECT count(*) FROM uploadsession").fetchone()[0])

    wait_for(lambda: sessions_left() == 0, timeout=30, interval=0.2, message="the expired sessions to be reaped")
    wait_for(lambda: bucket.list_objects_v2(Bucket=cluster.bucket, Prefix="blobs/partial/").get("KeyCount", 0) == 0,
             timeout=15, message="the reaped sessions' stored bytes to go")
    assert not bucket.list_multipart_uploads(Bucket=cluster.bucket).get("Uploads")
    reaped = [int(match) for log in cluster.server_logs
              for match in re.findall(r"reaped (\d+) expired upload sessions", log.read_text())]
    assert sum(reaped) == len(sessions), reaped
    assert all(requests.put(url, headers={"Content-Range": "bytes */*"}, timeout=30).status_code == 404
               for url in sessions)


def test_a_node_starting_while_another_stores_an_upload_leaves_that_upload_whole(cluster_behind_nginx):
    cluster = cluster_behind_nginx()
    writer = cluster.nodes[0]
    alice = create_account(writer.url, "alice")
    data = hashlib.sha256(b"in flight").digest() * (MiB // 32)
    bucket = cluster.s3.client()

    def objects() -> list[str]:
        listed = bucket.list_objects_v2(Bucket=cluster.bucket, Prefix="blobs/objects/")
        return [entry["Key"] for entry in listed.get("Contents", [])]

    def account_bytes() -> tuple[int, int]:
        with psycopg.connect(cluster.pg_url, autocommit=True) as conn:
            row = conn.execute("SELECT used_bytes, reserved_bytes FROM account WHERE username = 'alice'").fetchone()
        return int(row[0]), int(row[1])

    # The test holds alice's account row: the writer node stores the bytes, then waits to record them.
    with psycopg.connect(cluster.pg_url) as holder:
        holder.execute("SELECT id FROM account WHERE username = 'alice' FOR UPDATE").fetchall()
        upload = http.client.HTTPConnection("127.0.0.1", writer.port, timeout=60)
        upload.request("POST", "/api/v1/upload", body=data, headers={
            "x-file-name": "in-flight.bin", "Content-Type": "application/octet-stream", **alice.auth})
        wait_for(lambda: len(objects()) == 1, timeout=30, message="the writer node to store the upload's bytes")

        # Meanwhile the other node restarts, and its start-up clean-up runs.
        restart = threading.Thread(target=cluster.nodes[1].restart, daemon=True)
        restart.start()
        restart.join(20)
        started = not restart.is_alive()
        bytes_after_the_start = objects()
        holder.rollback()
    answer = upload.getresponse()
    body = json.loads(answer.read())
    upload.close()
    restart.join(60)
    assert bytes_after_the_start != [], "the starting node deleted the bytes of an upload in flight"
    assert started, "the node's start waited for the other node's upload"
    assert answer.status == 201, body
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    assert account_bytes() == (len(data), 0)
    for attempt in range(2):  # through the proxy: from each node once
        fetched = requests.get(body["downloadUrl"].replace(writer.url, cluster.url), headers=alice.auth, timeout=60)
        assert fetched.status_code == 200 and fetched.content == data, attempt


def readme_block(language: str, first_line: str) -> str:
    """The code block of the README's several-nodes section in `language` whose first line names `first_line`."""
    text = README.read_text()
    section = text[text.index("## Operators: several nodes"):text.index("## Keeping data safe")]
    blocks = [block for block in re.findall(rf"```{language}\n(.*?)```", section, flags=re.DOTALL)
              if first_line in block.splitlines()[0]]
    assert len(blocks) == 1, f"no single {language} block for {first_line} in the README"
    return str(blocks[0])


def test_the_readme_node_config_and_environment_file_load_as_one_nodes_settings(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(readme_block("toml", "/etc/lockr-local/config.toml").replace("/var/lib/lockr-local",
                                                                                   str(tmp_path / "data")))
    env: dict[str, str] = {}
    for line in readme_block("sh", "/etc/lockr-local/node.env").splitlines():
        if line.strip() and not line.startswith("#"):
            name, value = line.split("=", 1)
            assert " " not in value and "#" not in value, f"systemd would keep this in the value: {line!r}"
            env[name] = value
    settings = load_settings(config_file=str(config), env=env)
    assert settings.host == "10.0.0.11" and settings.database_url.startswith("postgresql://")
    assert settings.public_url == "https://files.example.org" and settings.trusted_proxies == ("10.0.0.10",)
    assert list(settings.bucket_regions) == ["local"] and not settings.region_paths  # no region in a folder
    assert not settings.signup and not settings.guest_uploads and settings.secret_key == "..."
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(env)


def test_the_readme_systemd_drop_in_on_the_shipped_unit_passes_systemd_analyze_verify(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    drop_in = readme_block("ini", "lockr-local.service.d/node.conf")
    assert "EnvironmentFile=/etc/lockr-local/node.env" in drop_in
    (tmp_path / "node.env").write_text("LOCKR_HOST=10.0.0.11\n")
    unit = (REPO / "packaging" / "lockr-local.service").read_text() + "\n" + drop_in
    # verify wants ExecStart= and EnvironmentFile= to exist: point them at stand-ins, the rest as written.
    unit = re.sub(r"ExecStart=/\S+lockr-local", "ExecStart=/bin/true", unit)
    unit = unit.replace("/etc/lockr-local/node.env", str(tmp_path / "node.env"))
    copy = tmp_path / "lockr-local.service"
    copy.write_text(unit)
    result = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True, timeout=60)
    problems = [line for line in (result.stdout + result.stderr).splitlines() if str(copy) in line]
    assert result.returncode == 0 and not problems, result.stdout + result.stderr
