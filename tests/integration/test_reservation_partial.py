"""Reservations with `allow_partial`: what fits of each line is held, 409 only when nothing fits,
on one Redis (reserve/make.lua) and on a cluster (the saga of hold/take.lua)."""

from __future__ import annotations

import pytest

from atp.store import keys
from atp.store.outbox import event
from tests.integration import test_reservations as base
from tests.integration.conftest import conforms, redis_client
from tests.integration.test_reservations import AUTH, atp, reserve, rid, seed

pytestmark = pytest.mark.integration
REDIS = ("node", "cluster")  # every test here runs on one Redis and on a cluster
client, sku = base.client, base.sku  # the same fixtures


def test_each_line_holds_what_fits(client, settings, sku):
    seed(settings.redis_url, sku, {"WH-NJ": 5, "WH-IL": 2})
    empty = f"{sku}-NONE"
    r = reserve(
        client,
        {
            "reservation_id": (i := rid()),
            "allow_partial": True,
            "lines": [
                {"sku": sku, "quantity": 4, "location_id": "WH-NJ"},
                {"sku": empty, "quantity": 2},
                {"sku": sku, "quantity": 9},  # what line 0 left: 1 at WH-NJ, 2 at WH-IL
            ],
        },
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["allow_partial"] is True and body["state"] == "held"
    lines = [(ln["requested"], ln["held"], ln["quantity"]) for ln in body["lines"]]
    assert lines == [(4, 4, 4), (2, 0, 2), (9, 3, 9)]
    assert body["lines"][1]["allocations"] == []
    assert body["lines"][2]["allocations"] == [
        {"location_id": "WH-NJ", "quantity": 1},
        {"location_id": "WH-IL", "quantity": 2},
    ]
    assert atp(client, sku) == 0
    assert client.get(f"/v1/reservations/{i}", headers=AUTH).json() == body
    # Released, every unit it held is back.
    assert client.delete(f"/v1/reservations/{i}", headers=AUTH).json()["state"] == "released"
    assert atp(client, sku) == 7
    r = redis_client(settings.redis_url)
    try:
        assert r.hget(keys.stock(sku), "rs:WH-NJ") == b"0"
        assert r.hget(keys.stock(sku), "rs:WH-IL") == b"0"
        # Its `held` event (the outbox's entry, as stock.reservations will carry it) holds to
        # docs/asyncapi.yaml: the request with allow_partial, [] for the line holding nothing.
        held = [
            e
            for key in keys.OUTBOXES
            for entry_id, fields in r.xrange(key)
            if (e := event(entry_id, fields))["reservation_id"] == i and e["type"] == "held"
        ]
        assert len(held) == 1 and conforms("ReservationEvent", held[0]), held
        assert held[0]["allocations"][1] == [] and held[0]["request"]["allow_partial"] is True
    finally:
        r.close()


def test_nothing_fits_is_409_with_every_line_and_the_id_stays_free(client, settings, sku):
    seed(settings.redis_url, sku, {"WH-NJ": 0})
    body = {
        "reservation_id": rid(),
        "allow_partial": True,
        "lines": [{"sku": sku, "quantity": 2}, {"sku": f"{sku}-B", "quantity": 1}],
    }
    r = reserve(client, body)
    assert r.status_code == 409
    assert r.headers["content-type"] == "application/problem+json"
    short = {(x["line"], x["requested"], x["available"]) for x in r.json()["lines"]}
    assert short == {(0, 2, 0), (1, 1, 0)}
    seed(settings.redis_url, sku, {"WH-NJ": 1})  # stock came: the same request now holds
    again = reserve(client, body)
    assert again.status_code == 201
    assert [ln["held"] for ln in again.json()["lines"]] == [1, 0]


def test_all_or_nothing_and_partial_are_different_requests(client, settings, sku):
    seed(settings.redis_url, sku, {"WH-NJ": 10})
    body = {"reservation_id": rid(), "lines": [{"sku": sku, "quantity": 2}]}
    first = reserve(client, body)
    assert first.status_code == 201
    assert first.json()["allow_partial"] is False
    assert [(ln["requested"], ln["held"]) for ln in first.json()["lines"]] == [(2, 2)]
    replay = reserve(client, {**body, "allow_partial": False})  # the default, said out loud
    assert replay.status_code == 201 and replay.headers["idempotent-replayed"] == "true"
    other = reserve(client, {**body, "allow_partial": True})
    assert other.status_code == 409 and other.json()["code"] == "idempotency_conflict"
    assert atp(client, sku) == 8
