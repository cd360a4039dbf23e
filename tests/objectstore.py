"""An S3-compatible server for the tests: moto's standalone server as a separate process on a loopback port,
spoken to only over HTTP (no S3 server installs from Debian's or PyPI's packages here; moto[server] does)."""

from __future__ import annotations

import secrets
import subprocess
import sys
from typing import Any

import requests

from tests.helpers import wait_for
from tests.nginx import free_port

ACCESS_KEY, SECRET_KEY, AWS_REGION = "lockr-test", "lockr-test-secret", "us-east-1"


class S3Server:
    """`python -m moto.server` on 127.0.0.1:PORT; each test gets buckets of its own."""

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> "S3Server":
        self.proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def answers() -> bool:
            assert self.proc is not None and self.proc.poll() is None, "moto server exited"
            try:
                return requests.get(f"{self.endpoint}/moto-api/", timeout=2).status_code < 500
            except requests.ConnectionError:
                return False

        wait_for(answers, timeout=30, message="the moto S3 server")
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=ACCESS_KEY,
                            aws_secret_access_key=SECRET_KEY, region_name=AWS_REGION)

    def new_bucket(self) -> str:
        name = f"lockr-{secrets.token_hex(6)}"
        self.client().create_bucket(Bucket=name)
        return name

    def region_url(self, bucket: str | None = None, prefix: str = "blobs", **options: str) -> str:
        """A region value for `regions`: a new bucket (unless named), credentials in the query."""
        query = {"endpoint": self.endpoint, "region": AWS_REGION, "access_key_id": ACCESS_KEY,
                 "secret_access_key": SECRET_KEY, "addressing_style": "path", **options}
        return f"s3://{bucket or self.new_bucket()}/{prefix}?" + "&".join(f"{k}={v}" for k, v in query.items())
