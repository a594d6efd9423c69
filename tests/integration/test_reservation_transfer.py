"""Transfers of held units between locations (POST /v1/reservations/{id}/transfer), on one
Redis and on a cluster: checked at the destination in the same step, idempotent by
transfer_id, refused with problem+json and nothing moved, and covered by every later change."""

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


def transfer(client, i, **body):
    body = {"transfer_id": "t1", "from_location_id": "WH-NJ", "to_location_id": "WH-IL", **body}
    return client.post(f"/v1/reservations/{i}/transfer", json=body, headers=AUTH)


def held_at(client, sku, i):
    """Units of `sku` the reservation holds per location, as it reads."""
    out: dict[str, int] = {}
    for ln in client.get(f"/v1/reservations/{i}", headers=AUTH).json()["lines"]:
        for a in ln["allocations"] if ln["sku"] == sku else []:
            out[a["location_id"]] = out.get(a["location_id"], 0) + a["quantity"]
    return out


def test_held_units_move_only_when_the_destination_can_take_them(client, settings, sku):
    seed(settings.redis_url, sku, {"WH-NJ": 5, "WH-IL": 2})
    line = {"sku": sku, "quantity": 4, "location_id": "WH-NJ"}
    i = rid()
    assert reserve(client, {"reservation_id": i, "lines": [line]}).status_code == 201
    # WH-IL has 2: three cannot go there, and nothing moves.
    r = transfer(client, i, sku=sku, quantity=3)
    assert r.status_code == 409 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "insufficient_stock"
    assert r.json()["lines"] == [
        {"sku": sku, "location_id": "WH-IL", "requested": 3, "available": 2}
    ]
    assert held_at(client, sku, i) == {"WH-NJ": 4}
    assert (atp(client, sku, "WH-NJ"), atp(client, sku, "WH-IL")) == (1, 2)
    # Two can, and do.
    r = transfer(client, i, sku=sku, quantity=2)
    assert r.status_code == 200, r.text
    assert r.json()["transfers"] == [
        {
            "transfer_id": "t1",
            "sku": sku,
            "from_location_id": "WH-NJ",
            "to_location_id": "WH-IL",
            "quantity": 2,
        }
    ]
    assert held_at(client, sku, i) == {"WH-NJ": 2, "WH-IL": 2}
    assert r.json()["lines"][0]["held"] == 4
    assert (atp(client, sku, "WH-NJ"), atp(client, sku, "WH-IL")) == (3, 0)
    # The same transfer again is answered, not made twice; the id with other values is refused.
    again = transfer(client, i, sku=sku, quantity=2)
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == r.json()
    conflict = transfer(client, i, sku=sku, quantity=1).json()
    assert conflict["code"] == "idempotency_conflict" and "new transfer_id" in conflict["detail"]
    # More than it holds at the source.
    r = transfer(client, i, sku=sku, quantity=3, transfer_id="t2")
    assert (r.status_code, r.json()["code"], r.json()["held"]) == (409, "not_held", 2)
    assert (atp(client, sku, "WH-NJ"), atp(client, sku, "WH-IL")) == (3, 0)
    # Released: every unit back, where it was moved to too.
    assert client.delete(f"/v1/reservations/{i}", headers=AUTH).json()["state"] == "released"
    assert (atp(client, sku, "WH-NJ"), atp(client, sku, "WH-IL")) == (5, 2)
    r = redis_client(settings.redis_url)
    try:
        assert r.hmget(keys.stock(sku), "rs:WH-NJ", "rs:WH-IL") == [b"0", b"0"]
        assert r.hgetall(keys.holds(sku)) == {}
        moved = [
            e
            for key in keys.OUTBOXES
            for entry_id, fields in r.xrange(key)
            if (e := event(entry_id, fields))["reservation_id"] == i and e["type"] == "transferred"
        ]
        assert len(moved) == 1 and conforms("ReservationEvent", moved[0]), moved
        assert (moved[0]["quantity"], moved[0]["to_location_id"]) == (2, "WH-IL")
    finally:
        r.close()


@pytest.mark.parametrize("confirm", [False, True])
def test_moved_units_keep_the_holds_expiry_and_a_confirm_covers_them(
    client, settings, sku, confirm
):
    seed(settings.redis_url, sku, {"WH-NJ": 3, "WH-IL": 3})
    line = {"sku": sku, "quantity": 3, "location_id": "WH-NJ"}
    body = {"reservation_id": (i := rid()), "ttl_seconds": 600, "lines": [line]}
    assert reserve(client, body).status_code == 201
    if confirm:
        assert client.post(f"/v1/reservations/{i}/confirm", headers=AUTH).status_code == 200
    assert transfer(client, i, sku=sku, quantity=1).status_code == 200
    r = redis_client(settings.redis_url)
    try:
        scores = dict(r.zrange(keys.expiry(sku), 0, -1, withscores=True))
        if confirm:
            assert scores == {}
        else:
            assert set(scores) == {f"{i}@WH-NJ".encode(), f"{i}@WH-IL".encode()}
            assert len(set(scores.values())) == 1
            # Confirmed after the transfer: neither hold expires any more.
            assert client.post(f"/v1/reservations/{i}/confirm", headers=AUTH).status_code == 200
            assert r.zrange(keys.expiry(sku), 0, -1) == []
        assert r.hmget(keys.stock(sku), "rs:WH-NJ", "rs:WH-IL") == [b"2", b"1"]
    finally:
        r.close()


def test_what_a_transfer_refuses(client, settings, sku):
    seed(settings.redis_url, sku, {"WH-NJ": 3, "WH-IL": 3})
    missing = transfer(client, rid(), sku=sku, quantity=1)
    assert (missing.status_code, missing.json()["code"]) == (404, "reservation_not_found")
    line = {"sku": sku, "quantity": 2, "location_id": "WH-NJ"}
    i = rid()
    assert reserve(client, {"reservation_id": i, "lines": [line]}).status_code == 201
    same = transfer(client, i, sku=sku, quantity=1, to_location_id="WH-NJ")
    assert (same.status_code, same.json()["code"]) == (422, "same_location")
    nowhere = transfer(client, i, sku=sku, quantity=1, to_location_id="WH-NOPE")
    assert (nowhere.status_code, nowhere.json()["code"]) == (422, "location_not_in_channel")
    assert held_at(client, sku, i) == {"WH-NJ": 2}
    assert client.delete(f"/v1/reservations/{i}", headers=AUTH).status_code == 200
    closed = transfer(client, i, sku=sku, quantity=1)
    assert (closed.status_code, closed.json()["code"]) == (409, "invalid_transition")
    assert (atp(client, sku, "WH-NJ"), atp(client, sku, "WH-IL")) == (3, 3)
