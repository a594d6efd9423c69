"""Delivery options and sourcing plans over real Redis with the demo network.

Order times are fixed with `now` (allowed here by ATP_ALLOW_NOW_OVERRIDE) so promises are exact;
the stock is written through the real ledger store.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from atp.core.movements import Effect, Movement
from atp.core.network import Network
from atp.settings import Settings
from tests.integration.conftest import READ_TOKEN, RESERVE_TOKEN, seed

pytestmark = pytest.mark.integration
NOW_MS = time.time_ns() // 1_000_000
TUESDAY_10AM = "2026-11-17T10:00:00-05:00"
TUESDAY_2PM = "2026-11-17T14:00:00-05:00"
RESERVE = {"Authorization": f"Bearer {RESERVE_TOKEN}"}


def counts(redis_url: str, **per_location: dict[str, int]) -> None:
    """counts(url, S_0101={"A": 5}): absolute counts, as a store's cycle count would set them."""
    seed(
        redis_url,
        [
            Movement(
                f"{sku}-{loc}-{uuid.uuid4().hex[:6]}",
                sku,
                loc.replace("_", "-"),
                Effect.COUNT,
                n,
                NOW_MS - 1000,
                "C",
                "t",
            )
            for loc, skus in per_location.items()
            for sku, n in skus.items()
        ],
        NOW_MS,
    )


@pytest.fixture
def api(settings: Settings, demo_network: Network) -> Iterator[TestClient]:
    with TestClient(
        create_app(settings.model_copy(update={"allow_now_override": True}), demo_network)
    ) as c:
        yield c


@pytest.fixture
def skus() -> tuple[str, str]:
    run = uuid.uuid4().hex[:8]
    return f"DL-A-{run}", f"DL-B-{run}"


def options(api: TestClient, sku_qty: dict[str, int], to: dict[str, object], now: str) -> dict:
    r = api.post(
        "/v1/delivery-options?explain=true",
        json={
            "lines": [{"sku": s, "quantity": q} for s, q in sku_qty.items()],
            "destination": to,
            "now": now,
        },
    )
    assert r.status_code == 200, r.text
    return r.json()


def by_service(body: dict) -> dict[str, dict]:
    return {o["service"]: o for o in body["options"]}


def test_same_day_only_within_reach_and_before_cutoff(api, settings, skus):
    a, _ = skus
    counts(settings.redis_url, S_0101={a: 10}, WH_NJ={a: 10})
    morning = options(api, {a: 1}, {"postal_code": "10003"}, TUESDAY_10AM)
    offered = by_service(morning)
    assert offered["same_day"]["location_id"] == "S-0101"
    assert offered["same_day"]["window_start"] == "2026-11-17T17:00:00-05:00"
    assert offered["same_day"]["promised_by"] == "2026-11-17T21:00:00-05:00"
    # 13:00 cutoff minus the store's hour of handling: order within 2 hours
    assert offered["same_day"]["cutoff_at"] == "2026-11-17T12:00:00-05:00"
    assert offered["same_day"]["order_within_seconds"] == 2 * 3600
    assert offered["express"]["promised_by"] == "2026-11-17T13:00:00-05:00"
    assert offered["standard"]["delivery_date"] == "2026-11-18"
    # soonest first: pickup ready at 11:00, then express, same day, next day, standard
    assert [o["service"] for o in morning["options"]] == [
        "pickup",
        "express",
        "same_day",
        "next_day",
        "standard",
    ]

    afternoon = options(api, {a: 1}, {"postal_code": "10003"}, TUESDAY_2PM)
    assert "same_day" not in by_service(afternoon)
    reasons = {n["service"]: n["reason"] for n in afternoon["not_offered"]}
    assert "cutoff" in reasons["same_day"]
    assert "express" in by_service(afternoon)  # the 19:00 express cutoff is still ahead

    denver = options(api, {a: 1}, {"postal_code": "80206"}, TUESDAY_10AM)
    assert "same_day" not in by_service(denver) and "express" not in by_service(denver)
    reasons = {n["service"]: n["reason"] for n in denver["not_offered"]}
    assert "within 40 km" in reasons["same_day"]
    assert denver["destination"]["timezone"] == "America/Denver"
    assert by_service(denver)["standard"]["promised_by"].endswith("20:00:00-07:00")


def test_pickup_lists_only_stores_with_atp(api, settings, skus):
    a, _ = skus
    # stores keep 2 back for pickup: Union Square has none to give, Brooklyn 3
    counts(settings.redis_url, S_0101={a: 2}, S_0102={a: 5}, WH_NJ={a: 40})
    pickup = by_service(options(api, {a: 1}, {"postal_code": "10003"}, TUESDAY_10AM))["pickup"]
    assert [s["location_id"] for s in pickup["stores"]] == ["S-0102"]
    assert pickup["stores"][0]["atp"] == {a: 3}
    assert pickup["stores"][0]["ready_by"] == "2026-11-17T11:00:00-05:00"
    assert pickup["location_id"] == "S-0102"
    # the nearest store lacks it: ready there by transfer from the New Jersey warehouse
    assert pickup["transfer"]["location_id"] == "S-0101"
    assert pickup["transfer"]["from_location_id"] == "WH-NJ"


def test_a_basket_splits_only_when_no_location_has_it_all(api, settings, skus):
    a, b = skus
    counts(settings.redis_url, S_0101={a: 9}, WH_NJ={b: 9})
    body = {
        "lines": [{"sku": a, "quantity": 2}, {"sku": b, "quantity": 1}],
        "destination": {"postal_code": "10003"},
        "service": "standard",
        "now": TUESDAY_10AM,
    }
    split = api.post("/v1/sourcing-plans", json=body).json()
    best = split["plans"][0]
    assert best["split"] is True and len(best["parts"]) == 2
    assert {p["location_id"]: p["lines"] for p in best["parts"]} == {
        "S-0101": [{"sku": a, "quantity": 2}],
        "WH-NJ": [{"sku": b, "quantity": 1}],
    }
    # once Union Square also has B, one location can do it all: no split is offered at all
    counts(settings.redis_url, S_0101={b: 9})
    single = api.post("/v1/sourcing-plans", json=body).json()
    assert single["plans"] and all(not p["split"] for p in single["plans"])
    assert single["plans"][0]["parts"][0]["location_id"] == "S-0101"


def test_reserve_holds_the_first_plan_that_still_fits(api, settings, skus):
    a, _ = skus
    # Two locations can each take the order; a competing hold takes the first one's stock.
    counts(settings.redis_url, WH_NJ={a: 2}, WH_IL={a: 2})
    body = {
        "lines": [{"sku": a, "quantity": 2}],
        "destination": {"postal_code": "10003"},
        "now": TUESDAY_10AM,
        "reserve": {"reservation_id": f"r-{a}", "ttl_seconds": 60},
    }
    first = api.post("/v1/sourcing-plans", json=body, headers=RESERVE)
    assert first.status_code == 200, first.text
    held = first.json()
    assert held["reserved_plan"] == 1
    assert held["reservation"]["state"] == "held"
    allocations = held["reservation"]["lines"][0]["allocations"]
    assert allocations == [{"location_id": "WH-NJ", "quantity": 2}]

    replay = api.post("/v1/sourcing-plans", json=body, headers=RESERVE)
    assert replay.headers.get("Idempotent-Replayed") == "true"
    assert replay.json()["reservation"]["lines"] == held["reservation"]["lines"]

    # the next order's plans no longer include New Jersey; it gets Illinois
    other = {**body, "reserve": {"reservation_id": f"r2-{a}", "ttl_seconds": 60}}
    second = api.post("/v1/sourcing-plans", json=other, headers=RESERVE).json()
    assert second["reservation"]["lines"][0]["allocations"] == [
        {"location_id": "WH-IL", "quantity": 2}
    ]
    # and a third finds nothing left: 409 with the reason, nothing held
    third = {**body, "reserve": {"reservation_id": f"r3-{a}", "ttl_seconds": 60}}
    refused = api.post("/v1/sourcing-plans", json=third, headers=RESERVE)
    assert refused.status_code == 409
    assert refused.headers["content-type"] == "application/problem+json"
    assert "not enough" in refused.json()["detail"]


def test_reserving_needs_the_reserve_scope(api, settings, skus):
    a, _ = skus
    body = {
        "lines": [{"sku": a, "quantity": 1}],
        "destination": {"postal_code": "10003"},
        "reserve": {"reservation_id": f"r-{a}"},
    }
    assert api.post("/v1/sourcing-plans", json=body).status_code == 401
    read_only = {"Authorization": f"Bearer {READ_TOKEN}"}
    assert api.post("/v1/sourcing-plans", json=body, headers=read_only).status_code == 403


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"destination": {"postal_code": "10003", "lat": 1, "lon": 2}}, "validation"),
        ({"destination": {"lat": 40.7}}, "validation"),
        ({"destination": {"postal_code": "00000"}}, "unknown_postal_code"),
        ({"destination": {"lat": 30.0, "lon": -40.0}}, "destination_out_of_area"),
        ({"destination": {"postal_code": "10003"}, "now": "2026-11-17T10:00:00"}, "validation"),
        ({"destination": {"postal_code": "10003"}, "service": "teleport"}, "unknown_service"),
        ({"destination": {"postal_code": "10003"}, "channel": "tv"}, "unknown_channel"),
    ],
)
def test_bad_requests_get_a_problem_that_says_why(api, skus, body, code):
    r = api.post("/v1/sourcing-plans", json={"lines": [{"sku": skus[0], "quantity": 1}], **body})
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == code


def test_now_is_refused_unless_settings_allow_it(client, skus):
    r = client.post(
        "/v1/delivery-options",
        json={
            "lines": [{"sku": skus[0], "quantity": 1}],
            "destination": {"postal_code": "10003"},
            "now": TUESDAY_10AM,
        },
    )
    assert r.status_code == 422 and r.json()["code"] == "now_not_allowed"
    assert "ATP_ALLOW_NOW_OVERRIDE" in r.json()["detail"]


def test_a_point_destination_uses_the_nearest_zip_time_zone(api, settings, skus):
    a, _ = skus
    counts(settings.redis_url, WH_CA={a: 5})
    body = options(api, {a: 1}, {"lat": 37.79, "lon": -122.41}, TUESDAY_10AM)
    assert body["destination"]["timezone"] == "America/Los_Angeles"
    assert by_service(body)["standard"]["promised_by"].endswith("-08:00")
