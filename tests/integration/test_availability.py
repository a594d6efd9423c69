"""Availability answers for product pages: channels, pickup nearby, batches, explanations,
freshness and caching, and network-file reloads, against a real Redis."""

from __future__ import annotations

import time
import uuid

import pytest
import yaml
from fastapi.testclient import TestClient
from redis.asyncio.client import Pipeline
from redis.asyncio.client import Redis as AsyncRedis
from redis.asyncio.cluster import ClusterPipeline

from api.app import create_app
from atp.core.movements import Effect, Movement
from atp.network_file import load_network
from atp.store import keys
from atp.store.client import is_cluster_url
from atp.store.stock import StockReader
from tests.conftest import DEMO_NETWORK
from tests.integration.conftest import redis_client
from tests.integration.conftest import seed as seed_counts

pytestmark = pytest.mark.integration
REDIS = ("node", "cluster")  # every test here runs on one Redis and on a cluster
NOW = time.time_ns() // 1_000_000
DAY = 86_400_000


def count(sku: str, loc: str, qty: int, n: int = 0) -> Movement:
    return Movement(f"{sku}-{loc}-c{n}", sku, loc, Effect.COUNT, qty, NOW - 10_000 + n, "C", "t")


def asn(sku: str, loc: str, qty: int, eta: int, n: int = 0) -> Movement:
    return Movement(
        f"{sku}-{loc}-a{n}", sku, loc, Effect.INBOUND, qty, NOW - 5000, "ASN", "t", None, eta
    )


def seed(redis_url: str, movements: list[Movement]) -> None:
    seed_counts(redis_url, movements, NOW)


@pytest.fixture
def sku() -> str:
    return f"AV-{uuid.uuid4().hex[:8]}"


def test_channels_count_their_own_locations_with_their_own_safety_stock(client, settings, sku):
    # S-0101 ships and offers pickup; S-0102 offers pickup only; WH-NJ only ships.
    seed(
        settings.redis_url,
        [count(sku, "S-0101", 10), count(sku, "S-0102", 10), count(sku, "WH-NJ", 10)],
    )
    online = client.get(f"/v1/availability/{sku}", params={"channel": "online"}).json()
    pickup = client.get(f"/v1/availability/{sku}", params={"channel": "pickup"}).json()
    # online: WH-NJ 10 + S-0101 (10 - 3 held back for online) = 17
    assert online["atp"] == 17 and online["status"] == "in_stock"
    # pickup: S-0101 (10 - 2) + S-0102 (10 - 2) = 16, threshold 2
    assert pickup["atp"] == 16 and pickup["status"] == "in_stock"
    assert {r["location_id"] for r in pickup["locations"]} >= {"S-0101", "S-0102"}
    assert "WH-NJ" not in {r["location_id"] for r in pickup["locations"]}


def test_next_inbound_says_when_it_is_back(client, settings, sku):
    seed(
        settings.redis_url,
        [
            count(sku, "WH-IL", 0),
            asn(sku, "WH-IL", 40, NOW + 7 * DAY),
            asn(sku, "WH-CA", 12, NOW + 3 * DAY, n=1),
        ],
    )
    body = client.get(f"/v1/availability/{sku}").json()
    assert body["status"] == "out_of_stock"
    assert body["next_inbound"]["location_id"] == "WH-CA"
    assert body["next_inbound"]["qty"] == 12


def test_available_to_order_adds_the_inbound_due_within_the_channels_horizon(client, settings, sku):
    # config/network.yaml: online promises 80 % of the inbound due within 14 days; pickup none.
    seed(
        settings.redis_url,
        [
            count(sku, "WH-IL", 5),
            asn(sku, "WH-IL", 20, NOW + 7 * DAY),
            asn(sku, "WH-IL", 10, NOW + 3 * DAY, n=1),  # two arrivals at one location
            asn(sku, "WH-CA", 100, NOW + 20 * DAY, n=2),  # beyond the horizon
            asn(sku, "S-0102", 50, NOW + DAY, n=3),  # a pickup-only store: not online
        ],
    )
    online = client.get(f"/v1/availability/{sku}").json()
    assert online["atp"] == online["available_to_fulfil"] == 5
    assert online["available_to_order"] == 5 + (10 + 20) * 80 // 100
    assert [f["quantity"] for f in online["future"]] == [10, 20]
    assert online["future"][0]["eta"] < online["future"][1]["eta"]
    pickup = client.get(f"/v1/availability/{sku}", params={"channel": "pickup"}).json()
    assert pickup["available_to_order"] == pickup["available_to_fulfil"]
    assert pickup["future"] == []
    batch = client.post("/v1/availability/query", json={"skus": [sku]}).json()["results"][0]
    assert (batch["available_to_order"], batch["future"]) == (29, online["future"])
    explain = client.get(f"/v1/availability/{sku}/explain").json()
    assert (explain["available_to_order"], explain["future"]) == (29, online["future"])
    assert explain["future_stock"] == {
        "horizon_days": 14,
        "limit_units": None,
        "limit_percent": 80,
    }


def test_the_journal_shows_each_movement_with_its_outcome_newest_first(client, settings, sku):
    def delta(eid: str, loc: str, qty: int, at: int) -> Movement:
        return Movement(eid, sku, loc, Effect.DELTA, qty, at, "ADJUSTED", "wms")

    seed_counts(
        settings.redis_url,
        [count(sku, "WH-NJ", 10), delta("d1", "WH-NJ", -3, NOW - 1000)],
        NOW,
    )
    # A repeat, a delta older than the count (already in it), and another location.
    later = [delta("d1", "WH-NJ", -3, NOW - 1000), delta("d0", "WH-NJ", 4, NOW - 20_000)]
    seed_counts(settings.redis_url, [*later, count(sku, "S-0101", 7)], NOW + 50)
    body = client.get(f"/v1/availability/{sku}/movements").json()
    got = [
        (m["event_id"], m["location_id"], m["outcome"], m["on_hand_after"])
        for m in body["movements"]
    ]
    assert got == [  # by when the ledger saw them, then by when they occurred
        ("d1", "WH-NJ", "duplicate", 7),
        (f"{sku}-S-0101-c0", "S-0101", "applied", 7),
        ("d0", "WH-NJ", "superseded", 7),
        ("d1", "WH-NJ", "applied", 7),
        (f"{sku}-WH-NJ-c0", "WH-NJ", "applied", 10),
    ]
    assert body["next"] is None
    counted = body["movements"][1]
    assert (counted["source"], counted["kind"], counted["effect"], counted["quantity"]) == (
        "t", "C", "count", 7,
    )  # fmt: skip
    only = client.get(f"/v1/availability/{sku}/movements", params={"location_id": "S-0101"})
    assert [m["location_id"] for m in only.json()["movements"]] == ["S-0101"]
    # Pages of two walk the same list.
    pages, before = [], None
    while True:
        params = {"limit": 2, **({"before": before} if before else {})}
        page = client.get(f"/v1/availability/{sku}/movements", params=params).json()
        pages += page["movements"]
        before = page["next"]
        if before is None:
            break
    assert pages == body["movements"]
    bad = client.get(f"/v1/availability/{sku}/movements", params={"before": "nonsense"})
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_cursor"
    unknown = client.get(f"/v1/availability/{sku}/movements", params={"location_id": "NOPE"})
    assert unknown.status_code == 422 and unknown.json()["code"] == "unknown_location"
    none = client.get("/v1/availability/NO-SUCH-SKU-1/movements").json()
    assert none["movements"] == [] and none["next"] is None
    # A pair's journal goes when it has had no movement for the retention window (48 h).
    r = redis_client(settings.redis_url)
    try:
        assert 47 * 3600_000 < r.pttl(keys.journal(sku, "WH-NJ")) <= 48 * 3600_000
    finally:
        r.close()


def test_pickup_nearby_lists_stores_with_stock_nearest_first(client, settings, sku):
    seed(
        settings.redis_url,
        [
            count(sku, "S-0101", 9),
            count(sku, "S-0102", 5),
            count(sku, "S-0201", 0),
            count(sku, "S-0301", 50),
        ],
    )
    near = client.get(
        f"/v1/availability/{sku}",
        params={"postal_code": "10003", "radius_km": 50, "include": "none"},
    ).json()
    assert "locations" not in near
    assert [p["location_id"] for p in near["pickup"]] == ["S-0101", "S-0102"]  # not Chicago
    assert near["pickup"][0]["distance_km"] < near["pickup"][1]["distance_km"]
    assert near["pickup"][0]["atp"] == 7  # 9 - 2 held back for pickup
    tight = client.get(
        f"/v1/availability/{sku}", params={"postal_code": "10003", "radius_km": 2}
    ).json()
    assert [p["location_id"] for p in tight["pickup"]] == ["S-0101"]


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"postal_code": "1000"}, "validation"),
        ({"postal_code": "00000"}, "unknown_postal_code"),
        ({"postal_code": "10003", "radius_km": 0}, "validation"),
        ({"postal_code": "10003", "radius_km": 501}, "validation"),
        ({"include": "everything"}, "validation"),
        ({"channel": "moon"}, "unknown_channel"),
    ],
)
def test_bad_parameters_are_problems_never_5xx(client, params, code):
    r = client.get("/v1/availability/ABC", params=params)
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == code


def round_trips(monkeypatch, cluster: bool) -> list[tuple[str, int]]:
    """What the client sends Redis from now on: ("EVALSHA", number of keys) for a command
    sent on its own, ("pipeline", number of commands) for a pipeline."""
    sent: list[tuple[str, int]] = []
    kind = ClusterPipeline if cluster else Pipeline
    pipeline_execute, command = kind.execute, AsyncRedis.execute_command

    async def pipeline(self, *a, **kw):
        sent.append(("pipeline", len(self)))
        return await pipeline_execute(self, *a, **kw)

    async def execute_command(self, *args, **kw):
        if args[0] == "EVALSHA":
            sent.append(("EVALSHA", int(args[2])))
        return await command(self, *args, **kw)

    monkeypatch.setattr(kind, "execute", pipeline)
    if not cluster:  # a cluster client routes through its nodes' own clients
        monkeypatch.setattr(AsyncRedis, "execute_command", execute_command)
    return sent


def test_batch_answers_every_sku_in_one_round_trip(client, settings, sku, monkeypatch):
    seed(settings.redis_url, [count(f"{sku}-1", "WH-NJ", 3), count(f"{sku}-2", "WH-NJ", 30)])
    cluster = is_cluster_url(settings.redis_url)
    sent = round_trips(monkeypatch, cluster)
    skus = [f"{sku}-1", f"{sku}-2", f"{sku}-1", f"{sku}-unknown"]
    r = client.post("/v1/availability/query", json={"skus": skus})
    assert r.status_code == 200
    results = r.json()["results"]
    assert [x["sku"] for x in results] == [f"{sku}-1", f"{sku}-2", f"{sku}-unknown"]
    assert [x["status"] for x in results] == ["low_stock", "in_stock", "out_of_stock"]
    # On one Redis, one script call reads the three distinct SKUs; on a cluster, whose SKUs
    # live in different slots, one pipeline sends each master its share, all at once.
    assert sent == ([("pipeline", 3)] if cluster else [("EVALSHA", 9)])


def test_a_large_batch_is_read_in_calls_of_bounded_size_in_one_round_trip(
    client, settings, sku, monkeypatch
):
    skus = [f"{sku}-{i}" for i in range(120)]
    seed(settings.redis_url, [count(s, "WH-NJ", i + 1) for i, s in enumerate(skus)])
    cluster = is_cluster_url(settings.redis_url)
    sent = round_trips(monkeypatch, cluster)
    r = client.post("/v1/availability/query", json={"skus": skus, "include": "locations"})
    assert r.status_code == 200
    on_hand = [sum(loc["on_hand"] for loc in x["locations"]) for x in r.json()["results"]]
    assert on_hand == list(range(1, 121))
    per_call = StockReader.per_call
    assert [n for what, n in sent if what == "pipeline"] == [
        120 if cluster else -(-120 // per_call)
    ]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"skus": [f"S{i}" for i in range(501)]}, 413, "too_many_skus"),
        ({"skus": []}, 422, "validation"),
        ({"skus": ["ok", ""]}, 422, "invalid_sku"),
        ({"skus": ["ok"], "channel": "moon"}, 422, "unknown_channel"),
        ({"skus": "ok"}, 422, "validation"),
    ],
)
def test_batch_limits_and_bad_input(client, body, status, code):
    r = client.post("/v1/availability/query", json=body)
    assert r.status_code == status
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == code


def test_explain_shows_every_term_and_why_a_location_does_not_count(client, settings, sku):
    seed(
        settings.redis_url,
        [count(sku, "WH-NJ", 4), count(sku, "S-0901", 8), count(sku, "S-0102", 6)],
    )
    # Reserved units are owned by the reservation scripts; set one by hand to see exposure.
    r = redis_client(settings.redis_url)
    r.hset(keys.stock(sku), keys.RESERVED_PREFIX + "WH-NJ", 6)
    r.close()
    body = client.get(f"/v1/availability/{sku}/explain", params={"channel": "online"}).json()
    rows = {row["location_id"]: row for row in body["locations"]}
    nj = rows["WH-NJ"]
    assert (nj["on_hand"], nj["reserved"], nj["safety_stock"], nj["atp"]) == (4, 6, 0, 0)
    assert nj["oversell_exposure"] == 2 and nj["safety_stock_rule"] == "type"
    assert nj["last_count_at"] is not None and nj["counts_for_channel"]
    assert rows["S-0901"]["excluded_because"] == "disabled"
    assert "ship" in rows["S-0102"]["excluded_because"]
    assert rows["S-0101"]["safety_stock_rule"] == "channel online: type"
    assert body["atp"] == 0 and body["status"] == "out_of_stock"


def test_freshness_etag_and_304(client, settings, sku):
    seed(settings.redis_url, [count(sku, "WH-NJ", 4)])
    first = client.get(f"/v1/availability/{sku}")
    assert first.headers["cache-control"] == "max-age=1"
    assert first.json()["age_ms"] >= 0
    assert first.json()["behind_ms"] is None  # no worker of this group has reported
    etag = first.headers["etag"]
    # A worker of the group reports a partition with records left, newest handled 42 s ago.
    r = redis_client(settings.redis_url)
    through = int(time.time() * 1000) - 42_000
    r.hset(keys.progress(settings.group_id), "atp-ledger/stock.movements/3", f"{through}:0")
    r.close()
    time.sleep(0.6)  # the API reads the progress at most every 0.5 s
    behind = client.get(f"/v1/availability/{sku}").json()["behind_ms"]
    assert 42_000 <= behind < 60_000
    batch = client.post("/v1/availability/query", json={"skus": [sku]}).json()
    assert 42_000 <= batch["results"][0]["behind_ms"] < 60_000
    again = client.get(f"/v1/availability/{sku}", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.headers["etag"] == etag  # not in the ETag
    seed(settings.redis_url, [count(sku, "WH-NJ", 5, n=1)])
    changed = client.get(f"/v1/availability/{sku}", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert changed.json()["atp"] == 5


def test_safety_stock_changes_show_without_a_restart(settings, sku, tmp_path):
    path = tmp_path / "network.yaml"
    data = yaml.safe_load(DEMO_NETWORK.read_text())
    path.write_text(yaml.safe_dump(data))
    live = settings.model_copy(update={"network_file": path, "config_poll_s": 0.2})
    seed(settings.redis_url, [count(sku, "WH-NJ", 10)])
    with TestClient(create_app(live, load_network(path))) as c:
        assert c.get(f"/v1/availability/{sku}").json()["atp"] == 10
        data["safety_stock"]["by_sku"] = {sku: 4}
        path.write_text(yaml.safe_dump(data))
        deadline = time.monotonic() + 10
        atp = 10
        while atp == 10 and time.monotonic() < deadline:
            time.sleep(0.1)
            atp = c.get(f"/v1/availability/{sku}").json()["atp"]
        assert atp == 6
        path.write_text("locations: [")  # a broken file is not loaded; answers go on
        time.sleep(0.6)
        assert c.get(f"/v1/availability/{sku}").json()["atp"] == 6
