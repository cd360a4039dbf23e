"""GET /metrics: Prometheus text that counts requests, bytes, refusals and sessions; off by default (404),
and behind metrics_token when one is set."""

from __future__ import annotations

import re
from typing import Any

import pytest
import requests

from lockr_local.server.metrics import route_label
from tests.helpers import create_account, error_code, upload
from tests.server.session_tools import open_session

SAMPLE = re.compile(r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)'
                    r'(?:\{(?P<labels>(?:[^}"]|"(?:[^"\\]|\\.)*")*)\})? (?P<value>\S+)$')
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_exposition(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Samples of the Prometheus text format (0.0.4): every non-comment line must parse."""
    samples = {}
    types = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            types[name] = kind
            continue
        if not line or line.startswith("#"):
            continue
        match = SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        labels = frozenset(LABEL.findall(match.group("labels") or ""))
        samples[(match.group("name"), labels)] = float(match.group("value"))
    assert types, "no # TYPE lines"
    return samples


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def scrape(url: str, **headers: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = requests.get(f"{url}/metrics", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return parse_exposition(response.text)


def test_metrics_are_off_by_default_and_answer_404(server: Any) -> None:
    response = requests.get(f"{server.url}/metrics", timeout=10)
    assert response.status_code == 404
    assert error_code(response) == "not_found"


def test_metrics_count_requests_bytes_sessions_refusals_and_free_space(server_factory: Any) -> None:
    server = server_factory(metrics=True, rate_guest=0.001, rate_guest_burst=3)
    account = create_account(server.url)
    stored = upload(server.url, b"m" * 200_000, "m.bin", account=account).json()
    assert requests.get(stored["downloadUrl"], headers=account.auth, timeout=10).content == b"m" * 200_000
    open_session(server.url, 1000, "open.bin", account)
    assert requests.get(f"{server.url}/no/such/page", timeout=10).status_code == 404
    statuses = [requests.get(f"{server.url}/api/v1/files/{'0' * 32}", timeout=10).status_code for _ in range(5)]
    assert 429 in statuses

    samples = scrape(server.url)
    assert value(samples, "lockr_http_requests_total", route="/api/v1/upload", method="POST", status="201") == 1
    assert value(samples, "lockr_http_requests_total", route="/api/v1/download/{}/{}", method="GET",
                 status="200") == 1
    assert value(samples, "lockr_http_requests_total", route="unmatched", method="GET", status="404") == 1
    assert value(samples, "lockr_rate_limited_total") == statuses.count(429)
    assert value(samples, "lockr_http_received_bytes_total") >= 200_000
    assert value(samples, "lockr_http_sent_bytes_total") >= 200_000
    assert value(samples, "lockr_upload_sessions_open") == 1
    assert value(samples, "lockr_uploads_in_flight") == 0
    assert value(samples, "lockr_http_requests_in_flight") == 1  # the scrape itself
    assert value(samples, "lockr_region_free_bytes", region="local") > 0
    assert value(samples, "lockr_blob_commit_seconds_count") == 1  # 200 KB is past inline_max: a blob
    assert value(samples, "lockr_blob_commit_seconds_bucket", le="+Inf") == 1
    assert value(samples, "lockr_db_record_seconds_count") == 1


def test_metrics_token_is_required_when_set(server_factory: Any) -> None:
    server = server_factory(metrics=True, metrics_token="scrape-secret")
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        response = requests.get(f"{server.url}/metrics", headers=headers, timeout=10)
        assert response.status_code == 401
        assert error_code(response) == "unauthorized"
    samples = scrape(server.url, Authorization="Bearer scrape-secret")
    assert value(samples, "lockr_http_requests_total", route="/metrics", method="GET", status="401") == 2


@pytest.mark.parametrize("pattern, label", [
    (r"/api/v1/files/([0-9a-fA-F]{1,64})/key", "/api/v1/files/{}/key"),
    (r"/api/v1/tus/?", "/api/v1/tus"),
    (r"/dav(?:/.*)?", "/dav"),
    (r"/", "/"),
])
def test_route_labels_name_the_pattern_without_its_regex(pattern: str, label: str) -> None:
    assert route_label(pattern) == label
