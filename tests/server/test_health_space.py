"""/healthz reports each region's free space, and answers 503 "low_space" when a region has less than
min_free_space free (a real small disk, and a threshold above the free space)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import requests


def test_healthz_reports_free_bytes_of_each_region(server: Any) -> None:
    body = requests.get(f"{server.url}/healthz", timeout=10).json()
    assert body["status"] == "ok"
    assert body["regions"]["local"]["freeBytes"] > 0 and body["regions"]["local"]["lowSpace"] is False


def test_healthz_answers_503_when_free_space_is_below_the_threshold(server_factory: Any) -> None:
    server = server_factory(min_free_space="1000TB")
    response = requests.get(f"{server.url}/healthz", timeout=10)
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "low_space" and body["regions"]["local"]["lowSpace"] is True
    assert "local" in body["message"] and "min_free_space" in body["message"]
    assert requests.head(f"{server.url}/healthz", timeout=10).status_code == 503


def test_healthz_names_the_full_region_of_a_small_disk(server_factory: Any, small_disk: Path,
                                                       tmp_path: Path) -> None:
    server = server_factory(regions=f"big={tmp_path / 'big'},small={small_disk}", min_free_space="4MB")
    response = requests.get(f"{server.url}/healthz", timeout=10)
    assert response.status_code == 503
    regions = response.json()["regions"]
    assert regions["small"]["lowSpace"] is True and regions["small"]["freeBytes"] <= 3 * 2**20
    assert regions["big"]["lowSpace"] is False
