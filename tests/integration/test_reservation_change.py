"""Changes of quantities (PATCH /v1/reservations/{id}), on one Redis and on a cluster: all or
nothing across SKUs, decreases always, increases checked where the line may be held,
idempotent by change_id, refused with problem+json and nothing changed, published as
`changed`, and covered by a release."""

from __future__ import annotations

import uuid

import pytest

from atp.store import changes, keys
from atp.store.outbox import event
from tests.integration import test_reservations as base
from tests.integration.conftest import conforms, redis_client
from tests.integration.test_reservation_transfer import held_at, transfer
from tests.integration.test_reservations import AUTH, atp, reserve, rid, seed

pytestmark = pytest.mark.integration
REDIS = ("node", "cluster")  # every test here runs on one Redis and on a cluster
client, sku = base.client, base.sku  # the same fixtures


@pytest.fixture
def sku2() -> str:
    return f"SKU2-{uuid.uuid4().hex[:8]}"


def change(client, i, *lines, change_id="c1"):
    body = {"change_id": change_id, "lines": list(lines)}
    return client.patch(f"/v1/reservations/{i}", json=body, headers=AUTH)


def quantities(r):
    return [(ln["sku"], ln["quantity"], ln["held"]) for ln in r.json()["lines"]]


def events(settings, i, kind):
    r = redis_client(settings.redis_url)
    try:
        return [
            e
            for key in keys.OUTBOXES
            for entry_id, fields in r.xrange(key)
            if (e := event(entry_id, fields))["reservation_id"] == i and e["type"] == kind
        ]
    finally:
        r.close()


def test_an_increase_that_does_not_fit_changes_nothing_in_any_line(client, settings, sku, sku2):
    seed(settings.redis_url, sku, {"WH-NJ": 10})
    seed(settings.redis_url, sku2, {"WH-NJ": 4})
    lines = [
        {"sku": sku, "quantity": 3, "location_id": "WH-NJ"},
        {"sku": sku2, "quantity": 2, "location_id": "WH-NJ"},
    ]
    i = rid()
    assert reserve(client, {"reservation_id": i, "lines": lines}).status_code == 201
    # sku fits (3 -> 8), sku2 does not (2 -> 7 of 4): neither changes.
    r = change(
        client,
        i,
        {"sku": sku, "quantity": 8, "location_id": "WH-NJ"},
        {"sku": sku2, "quantity": 7, "location_id": "WH-NJ"},
    )
    assert r.status_code == 409 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "insufficient_stock"
    assert r.json()["lines"] == [
        {"line": 1, "sku": sku2, "location_id": "WH-NJ", "requested": 7, "available": 4}
    ]
    assert (atp(client, sku, "WH-NJ"), atp(client, sku2, "WH-NJ")) == (7, 2)
    assert held_at(client, sku, i) == {"WH-NJ": 3}
    # A new change id (the one refused is forgotten: it may be asked again): one up, one down.
    r = change(
        client,
        i,
        {"sku": sku, "quantity": 8, "location_id": "WH-NJ"},
        {"sku": sku2, "quantity": 1, "location_id": "WH-NJ"},
        change_id="c2",
    )
    assert r.status_code == 200, r.text
    assert quantities(r) == [(sku, 8, 8), (sku2, 1, 1)]
    assert r.json()["changes"] == ["c2"]
    assert (atp(client, sku, "WH-NJ"), atp(client, sku2, "WH-NJ")) == (2, 3)
    # The same change again is answered, not made twice; the id with other lines is refused.
    again = change(
        client,
        i,
        {"sku": sku, "quantity": 8, "location_id": "WH-NJ"},
        {"sku": sku2, "quantity": 1, "location_id": "WH-NJ"},
        change_id="c2",
    )
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == r.json()
    other = change(client, i, {"sku": sku, "quantity": 1, "location_id": "WH-NJ"}, change_id="c2")
    assert (other.status_code, other.json()["code"]) == (409, "idempotency_conflict")
    assert (atp(client, sku, "WH-NJ"), atp(client, sku2, "WH-NJ")) == (2, 3)
    [published] = events(settings, i, "changed")
    assert conforms("ReservationEvent", published), published
    assert published["change_id"] == "c2"
    assert [ln["quantity"] for ln in published["request"]["lines"]] == [8, 1]
    assert published["allocations"] == [[["WH-NJ", 8]], [["WH-NJ", 1]]]
    # Released: every unit back.
    assert client.delete(f"/v1/reservations/{i}", headers=AUTH).json()["state"] == "released"
    assert (atp(client, sku, "WH-NJ"), atp(client, sku2, "WH-NJ")) == (10, 4)
    r = redis_client(settings.redis_url)
    try:
        assert r.hgetall(keys.holds(sku)) == {} and r.hgetall(keys.holds(sku2)) == {}
    finally:
        r.close()


def test_a_line_grows_where_it_is_held_first_and_shrinks_from_its_last_location(
    client, settings, sku
):
    seed(settings.redis_url, sku, {"WH-NJ": 0, "WH-IL": 10})
    i = rid()
    line = {"sku": sku, "quantity": 5}  # the channel chooses (WH-NJ first, when it can)
    assert reserve(client, {"reservation_id": i, "lines": [line]}).status_code == 201
    assert held_at(client, sku, i) == {"WH-IL": 5}
    seed(settings.redis_url, sku, {"WH-NJ": 3})
    # More: where it is held first, though the channel would try WH-NJ first.
    r = change(client, i, {"sku": sku, "quantity": 7})
    assert r.status_code == 200, r.text
    assert held_at(client, sku, i) == {"WH-IL": 7}
    # More than is left there: split, where it is held first.
    r = change(client, i, {"sku": sku, "quantity": 11}, change_id="c2")
    assert r.status_code == 200, r.text
    assert held_at(client, sku, i) == {"WH-IL": 10, "WH-NJ": 1}
    # Fewer: from its last location first.
    r = change(client, i, {"sku": sku, "quantity": 4}, change_id="c3")
    assert r.status_code == 200, r.text
    assert held_at(client, sku, i) == {"WH-IL": 4}
    assert (atp(client, sku, "WH-NJ"), atp(client, sku, "WH-IL")) == (3, 6)
    r = change(client, i, {"sku": sku, "quantity": 0}, change_id="c4")
    assert quantities(r) == [(sku, 0, 0)] and r.json()["state"] == "held"
    assert r.json()["changes"] == ["c1", "c2", "c3", "c4"]
    assert (atp(client, sku, "WH-NJ"), atp(client, sku, "WH-IL")) == (3, 10)


@pytest.mark.parametrize("step", ["place", "commit"])
@pytest.mark.parametrize("op", ["extend", "confirm"])
def test_new_holds_follow_an_extend_or_confirm_made_while_the_change_ran(
    client, settings, sku, monkeypatch, op, step
):
    """An extend or a confirm that lands after a change read the reservation (here just
    before the step that places its increase, or the one that commits it) decides the new
    hold's expiry: the change does not leave it on the expiry it read (the hold would be
    given back early while the reservation still counts it; a confirmed one would lose it)."""
    seed(settings.redis_url, sku, {"WH-NJ": 2, "WH-IL": 10})
    i = rid()
    line = {"sku": sku, "quantity": 2}  # held at WH-NJ; more goes to WH-IL, a new hold
    assert reserve(client, {"reservation_id": i, "lines": [line]}).status_code == 201
    real = getattr(changes._Run, step)

    async def late(run, plan, *args):
        await run.store.transition(i, op, run.now_ms, 3600)
        return await real(run, plan, *args)

    monkeypatch.setattr(changes._Run, step, late)
    r = change(client, i, {"sku": sku, "quantity": 5})
    assert r.status_code == 200, r.text
    assert held_at(client, sku, i) == {"WH-NJ": 2, "WH-IL": 3}
    assert r.json()["state"] == ("held" if op == "extend" else "confirmed")
    redis = redis_client(settings.redis_url)
    try:
        expires = redis.hget(keys.reservation(i), "expires_ms")
        scores = {loc: redis.zscore(keys.expiry(sku), f"{i}@{loc}") for loc in ("WH-NJ", "WH-IL")}
    finally:
        redis.close()
    if op == "extend":
        assert scores == {"WH-NJ": float(expires), "WH-IL": float(expires)}
    else:
        assert scores == {"WH-NJ": None, "WH-IL": None}


def test_a_change_after_a_transfer_starts_from_where_the_units_are(client, settings, sku):
    seed(settings.redis_url, sku, {"WH-NJ": 5, "WH-IL": 5})
    i = rid()
    body = {"reservation_id": i, "lines": [{"sku": sku, "quantity": 4}]}
    assert reserve(client, body).status_code == 201
    assert client.post(f"/v1/reservations/{i}/confirm", headers=AUTH).status_code == 200
    assert transfer(client, i, sku=sku, quantity=3).status_code == 200
    assert held_at(client, sku, i) == {"WH-NJ": 1, "WH-IL": 3}
    r = change(client, i, {"sku": sku, "quantity": 2})
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "confirmed"
    assert held_at(client, sku, i) == {"WH-NJ": 1, "WH-IL": 1}
    # The transfer is still listed, and still answered as done.
    assert [t["transfer_id"] for t in r.json()["transfers"]] == ["t1"]
    again = transfer(client, i, sku=sku, quantity=3)
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert held_at(client, sku, i) == {"WH-NJ": 1, "WH-IL": 1}
    assert (atp(client, sku, "WH-NJ"), atp(client, sku, "WH-IL")) == (4, 4)
    r = redis_client(settings.redis_url)
    try:
        assert r.zrange(keys.expiry(sku), 0, -1) == []  # confirmed: nothing expires
    finally:
        r.close()


def test_what_a_change_refuses(client, settings, sku):
    seed(settings.redis_url, sku, {"WH-NJ": 3})
    missing = change(client, rid(), {"sku": sku, "quantity": 1})
    assert (missing.status_code, missing.json()["code"]) == (404, "reservation_not_found")
    i = rid()
    line = {"sku": sku, "quantity": 2, "location_id": "WH-NJ"}
    assert reserve(client, {"reservation_id": i, "lines": [line]}).status_code == 201
    unknown = change(client, i, {"sku": sku, "quantity": 1})  # reserved at WH-NJ
    assert (unknown.status_code, unknown.json()["code"]) == (422, "line_not_in_reservation")
    twice = change(client, i, line, line)
    assert (twice.status_code, twice.json()["code"]) == (422, "duplicate_line")
    negative = change(client, i, {**line, "quantity": -1})
    assert negative.status_code == 422
    assert held_at(client, sku, i) == {"WH-NJ": 2}
    assert client.delete(f"/v1/reservations/{i}", headers=AUTH).status_code == 200
    closed = change(client, i, {**line, "quantity": 1})
    assert (closed.status_code, closed.json()["code"]) == (409, "invalid_transition")
    assert atp(client, sku, "WH-NJ") == 3
