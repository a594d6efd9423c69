"""The API's /metrics: request latency by route template, lookups, reservations per outcome."""

from __future__ import annotations

import re
import uuid

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from tests.integration.conftest import RESERVE_TOKEN
from tests.integration.test_reservations import seed

pytestmark = pytest.mark.integration


def value(text: str, name: str, labels: str = "") -> float:
    pattern = re.escape(name) + (r"\{" + labels + r"\}" if labels else "") + r" ([0-9.e+-]+)"
    found = re.search(pattern, text)
    return float(found.group(1)) if found else 0.0


def test_metrics_count_what_happened(settings, demo_network):
    sku = f"M-{uuid.uuid4().hex[:8]}"
    seed(settings.redis_url, sku, {"WH-NJ": 1})
    auth = {"Authorization": f"Bearer {RESERVE_TOKEN}"}
    with TestClient(create_app(settings, demo_network)) as c:
        c.get(f"/v1/availability/{sku}")
        c.post("/v1/availability/query", json={"skus": [sku, "OTHER"]})
        c.get("/v1/availability/bad%01")
        line = {"sku": sku, "quantity": 1, "location_id": "WH-NJ"}
        c.post(
            "/v1/reservations", json={"reservation_id": f"m1-{sku}", "lines": [line]}, headers=auth
        )
        c.post(
            "/v1/reservations", json={"reservation_id": f"m2-{sku}", "lines": [line]}, headers=auth
        )
        text = c.get("/metrics").text
    assert value(text, "atp_availability_lookups_total", 'kind="single"') == 1
    assert value(text, "atp_availability_lookups_total", 'kind="batch"') == 2
    assert value(text, "atp_reservations_total", 'outcome="held"') == 1
    assert value(text, "atp_reservations_total", 'outcome="short"') == 1
    route = 'method="GET",route="/v1/availability/{sku}",status="200"'
    assert value(text, "atp_api_request_duration_seconds_count", route) == 1
    bad = 'method="GET",route="/v1/availability/{sku}",status="422"'
    assert value(text, "atp_api_request_duration_seconds_count", bad) == 1
