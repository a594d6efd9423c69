"""The API against a real Redis: the answers product pages get, and the errors they can act on."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import yaml
from fastapi.testclient import TestClient

from api.app import create_app
from atp.core.movements import Effect, Movement
from atp.kafka import topics
from atp.store.client import client_from_url
from atp.store.ledger import LedgerStore
from tests.integration.conftest import seed as seed_counts

pytestmark = pytest.mark.integration
NOW = 1_795_701_791_000


def movement(sku: str, loc: str, qty: int, effect: Effect = Effect.COUNT, n: int = 0) -> Movement:
    return Movement(f"{sku}-{loc}-{n}", sku, loc, effect, qty, NOW - 1000 + n, "X", "test")


def seed(redis_url: str, movements: list[Movement]) -> None:
    seed_counts(redis_url, movements, NOW)


@pytest.fixture
def sku() -> str:
    return f"API-{uuid.uuid4().hex[:8]}"


def test_availability_sums_the_channel_with_safety_stock(client, settings, sku):
    seed(
        settings.redis_url,
        [
            movement(sku, "WH-NJ", 5),
            movement(sku, "S-0101", 4),  # store, online: safety stock 3 -> atp 1
            movement(sku, "S-0102", 50),  # pickup-only store: not in `online`
            movement(sku, "S-0901", 50),  # disabled store
        ],
    )
    r = client.get(f"/v1/availability/{sku}", params={"channel": "online"})
    assert r.status_code == 200
    body = r.json()
    assert (body["sku"], body["channel"], body["atp"], body["status"]) == (
        sku,
        "online",
        6,
        "low_stock",
    )
    rows = {row["location_id"]: row for row in body["locations"]}
    assert rows["WH-NJ"] == {
        "location_id": "WH-NJ",
        "type": "warehouse",
        "on_hand": 5,
        "reserved": 0,
        "safety_stock": 0,
        "atp": 5,
    }
    assert rows["S-0101"]["safety_stock"] == 3 and rows["S-0101"]["atp"] == 1
    assert "S-0102" not in rows and "S-0901" not in rows
    assert body["updated_at"].startswith("20") and body["updated_at"].endswith("+00:00")


def test_in_stock_above_the_threshold(client, settings, sku):
    seed(settings.redis_url, [movement(sku, "WH-IL", 11)])
    assert client.get(f"/v1/availability/{sku}").json()["status"] == "in_stock"


def test_an_unknown_sku_is_out_of_stock_not_an_error(client):
    r = client.get("/v1/availability/NEVER-SEEN-1")
    assert r.status_code == 200
    body = r.json()
    assert (body["atp"], body["status"], body["updated_at"]) == (0, "out_of_stock", None)


@pytest.mark.parametrize("bad", ["%20%01", "x" * 129, "a%7Fb"])
def test_an_invalid_sku_is_a_problem(client, bad):
    r = client.get(f"/v1/availability/{bad}")
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["code"] == "invalid_sku" and body["status"] == 422 and body["detail"]


def test_an_unknown_channel_names_the_known_ones(client):
    r = client.get("/v1/availability/ABC", params={"channel": "moon"})
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["known_channels"] == ["online", "pickup"]


def test_unknown_routes_are_problems_too(client):
    r = client.get("/v2/nothing")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"


def test_health_ready_and_docs(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200
    assert "/v1/availability/{sku}" in client.get("/openapi.json").json()["paths"]


def test_the_kafka_contract_is_served_and_linked_from_the_docs(client):
    r = client.get("/asyncapi.yaml")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/yaml")
    served = yaml.safe_load(r.content)
    assert served["asyncapi"] == "3.0.0"
    assert {c["address"] for c in served["channels"].values()} == set(topics.ALL)
    assert "(/asyncapi.yaml)" in client.get("/openapi.json").json()["info"]["description"]


def test_redis_away_is_a_quick_503_with_retry_after(settings, demo_network):
    from atp.tools.embedded import free_port

    down = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    with TestClient(create_app(down, demo_network)) as c:
        r = c.get("/v1/availability/ABC")
        assert r.status_code == 503
        assert r.headers["retry-after"] == "1"
        assert r.headers["content-type"] == "application/problem+json"
        assert c.get("/readyz").status_code == 503


def test_two_workers_writing_one_sku_at_once_lose_nothing(settings, sku):
    """Each SKU's movements are applied in one atomic call: two workers (say, around a
    rebalance) applying batches of the same SKU at the same time both land, and a batch seen
    again by the other worker changes nothing."""

    async def scenario() -> tuple[int, int]:
        client = client_from_url(settings.redis_url)
        first, second = LedgerStore(client), LedgerStore(client)
        try:
            await first.apply([movement(sku, "WH-NJ", 10, Effect.DELTA, 1)], NOW)
            batches = [[movement(sku, "WH-NJ", 1, Effect.DELTA, 10 + i)] for i in range(20)]
            await asyncio.gather(
                *((first if i % 2 else second).apply(batch, NOW) for i, batch in enumerate(batches))
            )
            once = (await first.summaries(sku))["WH-NJ"].on_hand
            await asyncio.gather(*(second.apply(batch, NOW) for batch in batches))
            return once, (await second.summaries(sku))["WH-NJ"].on_hand
        finally:
            await client.aclose()

    once, again = asyncio.run(scenario())
    assert once == again == 10 + 20
