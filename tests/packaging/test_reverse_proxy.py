"""packaging/reverse-proxy.md's nginx configuration, run for real in front of the server with TLS."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from tests.helpers import REPO, ServerProcess
from tests.nginx import free_port, nginx_binary, running_nginx

HOST = "files.example.org"


def nginx_block_from_docs() -> str:
    text = (REPO / "packaging" / "reverse-proxy.md").read_text()
    match = re.search(r"```nginx\n(.*?)```", text, flags=re.DOTALL)
    assert match, "reverse-proxy.md has no nginx example"
    return match.group(1)


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[tuple[str, Path, Path]]:
    """The server behind nginx as the docs configure it; yields (https base URL, CA cert, nginx folder)."""
    nginx_binary()  # skips before the certificate and the server are made, where nginx is missing
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    folder = tmp_path / "nginx"
    folder.mkdir()
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={HOST}",
                    "-addext", f"subjectAltName=DNS:{HOST}", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)

    server = ServerProcess(tmp_path / "data", env={"LOCKR_TRUSTED_PROXIES": "127.0.0.1,::1"}).start()
    http_port, https_port = free_port(), free_port()
    block = nginx_block_from_docs()
    block = re.sub(r"^\s*listen \[::\].*$", "", block, flags=re.MULTILINE)  # the test host may lack IPv6
    block = block.replace("listen 80;", f"listen 127.0.0.1:{http_port};")
    block = block.replace("listen 443 ssl;", f"listen 127.0.0.1:{https_port} ssl;")
    block = re.sub(r"ssl_certificate\s+\S+;", f"ssl_certificate {cert};", block)
    block = re.sub(r"ssl_certificate_key\s+\S+;", f"ssl_certificate_key {key};", block)
    assert "http://127.0.0.1:8080" in block
    block = block.replace("http://127.0.0.1:8080", f"http://127.0.0.1:{server.port}")
    try:
        with running_nginx(folder, block, https_port):
            yield f"https://{HOST}:{https_port}", cert, folder
    finally:
        server.stop()


def curl(base_url: str, cert: Path, *args: str) -> subprocess.CompletedProcess[str]:
    port = base_url.rsplit(":", 1)[1]
    return subprocess.run(["curl", "--silent", "--show-error", "--cacert", str(cert),
                           "--resolve", f"{HOST}:{port}:127.0.0.1", *args], capture_output=True, text=True,
                          timeout=120)


def test_upload_through_nginx_streams_large_bodies_and_links_use_the_public_https_address(
        proxied: tuple[str, Path, Path], tmp_path: Path) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    base_url, cert, folder = proxied
    signup = curl(base_url, cert, "-X", "POST", "-H", "Content-Type: application/json", "--data",
                  json.dumps({"username": "carol", "email": "carol@example.com", "password": "correct horse"}),
                  f"{base_url}/api/v1/account")
    assert signup.returncode == 0, signup.stderr
    token = json.loads(signup.stdout)["token"]

    payload = os.urandom(12 * 2**20)  # well over nginx's default 1 MB body limit
    (tmp_path / "big.bin").write_bytes(payload)
    uploaded = curl(base_url, cert, "-X", "POST", "--data-binary", f"@{tmp_path / 'big.bin'}",
                    "-H", "x-file-name: big.bin", "-H", "Content-Type: application/octet-stream",
                    "-H", f"Authorization: Bearer {token}", f"{base_url}/api/v1/upload")
    assert uploaded.returncode == 0, uploaded.stderr
    info = json.loads(uploaded.stdout)
    assert info["sha256"] == hashlib.sha256(payload).hexdigest(), uploaded.stdout
    # X-Forwarded-Proto/-Host from the trusted proxy make the links point at the proxy, over https.
    assert info["downloadUrl"].startswith(f"{base_url}/api/v1/download/"), info["downloadUrl"]

    downloaded = tmp_path / "back.bin"
    fetched = curl(base_url, cert, "--fail", "--output", str(downloaded), info["downloadUrl"])
    assert fetched.returncode == 0, fetched.stderr
    assert downloaded.read_bytes() == payload

    log = (folder / "error.log").read_text()
    assert "buffered to a temporary file" not in log, "nginx spooled the body to disk instead of streaming it"
    assert not any((folder / "client_body").rglob("*.*")), log


def test_plain_http_is_redirected_to_https(proxied: tuple[str, Path, Path]) -> None:
    base_url, cert, folder = proxied
    conf = (folder / "nginx.conf").read_text()
    http_port = re.search(r"listen 127\.0\.0\.1:(\d+);", conf).group(1)
    result = subprocess.run(["curl", "--silent", "--output", "/dev/null", "--write-out", "%{http_code} %{redirect_url}",
                             "-H", f"Host: {HOST}", f"http://127.0.0.1:{http_port}/healthz"],
                            capture_output=True, text=True, timeout=60)
    status, location = result.stdout.split(" ", 1)
    assert status == "301" and location.startswith(f"https://{HOST}"), result.stdout
