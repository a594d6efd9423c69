"""Reservations against a real Redis: all-or-nothing holds, idempotency, every transition,
expiry with and without the sweeper, the outbox, and API keys."""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from atp.core.movements import Effect, Movement
from atp.store import keys
from atp.store.client import client_from_url
from atp.store.ledger import LedgerStore
from tests.integration.conftest import READ_TOKEN, RESERVE_TOKEN, redis_client

pytestmark = pytest.mark.integration
REDIS = ("node", "cluster")  # every test here runs on one Redis and on a cluster
AUTH = {"Authorization": f"Bearer {RESERVE_TOKEN}"}


def seed(redis_url: str, sku: str, counts: dict[str, int]) -> None:
    now = time.time_ns() // 1_000_000
    moves = [
        Movement(
            f"{sku}-{loc}-{uuid.uuid4().hex[:6]}", sku, loc, Effect.COUNT, qty, now - 1000, "C", "t"
        )
        for loc, qty in counts.items()
    ]

    async def run() -> None:
        client = client_from_url(redis_url)
        try:
            await LedgerStore(client).apply(moves, now)
        finally:
            await client.aclose()

    asyncio.run(run())


@pytest.fixture
def client(settings, demo_network):
    quiet = settings.model_copy(update={"sweep_interval_s": 60.0})  # tests drive expiry
    with TestClient(create_app(quiet, demo_network)) as c:
        yield c


@pytest.fixture
def sku() -> str:
    return f"RS-{uuid.uuid4().hex[:8]}"


def rid() -> str:
    return f"R-{uuid.uuid4().hex[:10]}"


def reserve(client, body):
    return client.post("/v1/reservations", json=body, headers=AUTH)


def atp(client, sku, loc=None):
    body = client.get(f"/v1/availability/{sku}").json()
    if loc is None:
        return body["atp"]
    return next(r["atp"] for r in body["locations"] if r["location_id"] == loc)


def test_a_hold_lowers_atp_until_released(client, settings, sku):
    seed(settings.redis_url, sku, {"WH-NJ": 10})
    r = reserve(
        client,
        {
            "reservation_id": (i := rid()),
            "ttl_seconds": 600,
            "lines": [{"sku": sku, "quantity": 3, "location_id": "WH-NJ"}],
        },
    )
    assert r.status_code == 201
    body = r.json()
    assert body["state"] == "held" and body["expires_at"]
    assert body["lines"][0]["allocations"] == [{"location_id": "WH-NJ", "quantity": 3}]
    assert atp(client, sku, "WH-NJ") == 7
    assert client.get(f"/v1/reservations/{i}", headers=AUTH).json()["state"] == "held"
    released = client.delete(f"/v1/reservations/{i}", headers=AUTH)
    assert released.status_code == 200 and released.json()["state"] == "released"
    assert atp(client, sku, "WH-NJ") == 10
    assert client.delete(f"/v1/reservations/{i}", headers=AUTH).json()["state"] == "released"


def test_short_lines_are_all_listed_and_nothing_is_held(client, settings, sku):
    seed(settings.redis_url, sku, {"WH-NJ": 5, "WH-IL": 2})
    other = f"{sku}-B"
    seed(settings.redis_url, other, {"WH-NJ": 1})
    r = reserve(
        client,
        {
            "reservation_id": rid(),
            "lines": [
                {"sku": sku, "quantity": 5, "location_id": "WH-NJ"},
                {"sku": other, "quantity": 3, "location_id": "WH-NJ"},
                {"sku": sku, "quantity": 9},
            ],
        },
    )
    assert r.status_code == 409
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["code"] == "insufficient_stock"
    short = {(x["line"], x["requested"], x["available"]) for x in problem["lines"]}
    # line 2 competes with line 0 for WH-NJ: only WH-IL's 2 are left for it
    assert short == {(1, 3, 1), (2, 9, 2)}
    assert atp(client, sku) == 7 and atp(client, other) == 1


def test_the_service_chooses_locations_in_channel_order_and_splits_when_it_must(
    client, settings, sku
):
    seed(settings.redis_url, sku, {"WH-NJ": 2, "WH-IL": 5, "WH-CA": 5})
    one = reserve(client, {"reservation_id": rid(), "lines": [{"sku": sku, "quantity": 4}]})
    assert one.json()["lines"][0]["allocations"] == [{"location_id": "WH-IL", "quantity": 4}]
    split = reserve(client, {"reservation_id": rid(), "lines": [{"sku": sku, "quantity": 6}]})
    assert split.json()["lines"][0]["allocations"] == [
        {"location_id": "WH-NJ", "quantity": 2},
        {"location_id": "WH-IL", "quantity": 1},
        {"location_id": "WH-CA", "quantity": 3},
    ]
    assert atp(client, sku) == 2


def test_the_same_request_is_answered_again_and_a_different_one_is_refused(client, settings, sku):
    seed(settings.redis_url, sku, {"WH-NJ": 10})
    body = {"reservation_id": rid(), "lines": [{"sku": sku, "quantity": 2}], "ttl_seconds": 60}
    first = reserve(client, body)
    again = reserve(client, dict(reversed(list(body.items()))))  # same request, other key order
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert atp(client, sku) == 8
    changed = reserve(client, {**body, "lines": [{"sku": sku, "quantity": 3}]})
    assert changed.status_code == 409 and changed.json()["code"] == "idempotency_conflict"


def test_confirm_extend_release_and_what_is_refused(client, settings, sku):
    seed(settings.redis_url, sku, {"WH-NJ": 10})
    i = rid()
    reserve(client, {"reservation_id": i, "lines": [{"sku": sku, "quantity": 4}], "ttl_seconds": 5})
    extended = client.post(
        f"/v1/reservations/{i}/extend", json={"ttl_seconds": 900}, headers=AUTH
    ).json()
    assert extended["state"] == "held"
    confirmed = client.post(f"/v1/reservations/{i}/confirm", headers=AUTH)
    assert confirmed.json()["state"] == "confirmed" and confirmed.json()["expires_at"] is None
    assert client.post(f"/v1/reservations/{i}/confirm", headers=AUTH).status_code == 200
    no_extend = client.post(f"/v1/reservations/{i}/extend", json={"ttl_seconds": 9}, headers=AUTH)
    assert no_extend.status_code == 409 and no_extend.json()["state"] == "confirmed"
    assert atp(client, sku) == 6
    assert client.delete(f"/v1/reservations/{i}", headers=AUTH).json()["state"] == "released"
    assert atp(client, sku) == 10
    again = client.post(f"/v1/reservations/{i}/confirm", headers=AUTH)
    assert again.status_code == 409 and again.json()["code"] == "invalid_transition"
    missing = client.get("/v1/reservations/NOPE-1", headers=AUTH)
    assert missing.status_code == 404 and missing.json()["code"] == "reservation_not_found"


def test_an_expired_hold_stops_counting_before_the_sweeper_runs(client, settings, sku):
    seed(settings.redis_url, sku, {"WH-NJ": 10})
    i = rid()
    reserve(
        client, {"reservation_id": i, "lines": [{"sku": sku, "quantity": 10}], "ttl_seconds": 1}
    )
    assert atp(client, sku) == 0
    time.sleep(1.1)
    assert atp(client, sku) == 10  # the sweeper is off in this client (60 s interval)
    assert client.get(f"/v1/reservations/{i}", headers=AUTH).json()["state"] == "expired"
    late = client.post(f"/v1/reservations/{i}/confirm", headers=AUTH)
    assert late.status_code == 409 and late.json()["code"] == "reservation_expired"
    # Its units can be held by someone else right away.
    assert (
        reserve(
            client, {"reservation_id": rid(), "lines": [{"sku": sku, "quantity": 10}]}
        ).status_code
        == 201
    )


def test_the_sweeper_closes_expired_reservations(settings, demo_network, sku):
    seed(settings.redis_url, sku, {"WH-NJ": 3})
    fast = settings.model_copy(update={"sweep_interval_s": 0.1})
    with TestClient(create_app(fast, demo_network)) as c:
        i = rid()
        reserve(c, {"reservation_id": i, "lines": [{"sku": sku, "quantity": 3}], "ttl_seconds": 1})
        r = redis_client(settings.redis_url)
        deadline = time.monotonic() + 5
        while r.hget(keys.reservation(i), "state") != b"expired" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert r.hget(keys.reservation(i), "state") == b"expired"
        assert r.hget(keys.stock(sku), "rs:WH-NJ") == b"0"
        assert r.zscore(keys.expiring(keys.shard(i)), i) is None

        def pushes() -> int:  # live-stream changes for the SKU: the hold, then its expiry
            return sum(f[b"s"] == sku.encode() for _, f in r.xrange(keys.feed()))

        while pushes() < 2 and time.monotonic() < deadline + 5:  # published in the background
            time.sleep(0.05)
        assert pushes() == 2
        r.close()


def test_every_change_is_in_the_outbox(client, settings, sku):
    seed(settings.redis_url, sku, {"WH-NJ": 3})
    i = rid()
    reserve(client, {"reservation_id": i, "lines": [{"sku": sku, "quantity": 1}]})
    client.post(f"/v1/reservations/{i}/extend", json={"ttl_seconds": 60}, headers=AUTH)
    client.post(f"/v1/reservations/{i}/confirm", headers=AUTH)
    client.delete(f"/v1/reservations/{i}", headers=AUTH)
    r = redis_client(settings.redis_url)
    events = [
        f[b"type"].decode()
        for _, f in r.xrange(keys.outbox(keys.shard(i)))
        if f[b"reservation_id"] == i.encode()
    ]
    r.close()
    assert events == ["held", "extended", "confirmed", "released"]


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({}, 401, "unauthorized"),
        ({"Authorization": "Bearer wrong"}, 401, "unauthorized"),
        ({"Authorization": "Basic abc"}, 401, "unauthorized"),
        ({"Authorization": f"Bearer {READ_TOKEN}"}, 403, "forbidden"),
    ],
)
def test_mutations_need_a_key_with_the_reserve_scope(client, headers, status, code):
    body = {"reservation_id": rid(), "lines": [{"sku": "X", "quantity": 1}]}
    for method, url, kw in [
        ("post", "/v1/reservations", {"json": body}),
        ("post", "/v1/reservations/X/confirm", {}),
        ("post", "/v1/reservations/X/extend", {"json": {"ttl_seconds": 5}}),
        ("delete", "/v1/reservations/X", {}),
        ("get", "/v1/reservations/X", {}),
    ]:
        r = getattr(client, method)(url, headers=headers, **kw)
        assert r.status_code == status, (method, url)
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["code"] == code


def test_a_key_given_as_its_sha256_works_and_reads_can_be_private(settings, demo_network):
    digest = hashlib.sha256(b"s3cret").hexdigest()
    private = settings.model_copy(
        update={"api_keys": f"ops:read:sha256:{digest}", "public_reads": False}
    )
    private = type(settings).model_validate(
        private.model_dump() | {"api_keys": f"ops:read:sha256:{digest}"}
    )
    with TestClient(create_app(private, demo_network)) as c:
        assert c.get("/v1/availability/X").status_code == 401
        ok = c.get("/v1/availability/X", headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"reservation_id": "bad id!", "lines": [{"sku": "X", "quantity": 1}]},
        {"reservation_id": "ok", "lines": []},
        {"reservation_id": "ok", "lines": [{"sku": "X", "quantity": 0}]},
        {"reservation_id": "ok", "lines": [{"sku": "X", "quantity": 1}], "ttl_seconds": 0},
        {"reservation_id": "ok", "lines": [{"sku": "X", "quantity": 1, "location_id": "S-0901"}]},
        {"reservation_id": "ok", "lines": [{"sku": "X", "quantity": 1}], "channel": "moon"},
    ],
)
def test_bad_reservation_requests_are_422(client, body):
    r = reserve(client, body)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"


# Routes anyone may call, whatever the keys: the probes.
PUBLIC = {"/healthz", "/readyz"}


def test_every_route_needs_a_key_when_reads_are_private(settings, demo_network):
    """A documented route added without `route_class=requiring(...)` would answer here."""
    private = type(settings).model_validate(
        settings.model_dump() | {"api_keys": "ops:read:sha256:" + "0" * 64, "public_reads": False}
    )
    app = create_app(private, demo_network)
    checked = 0
    with TestClient(app) as c:
        for template, methods in app.openapi()["paths"].items():
            if template in PUBLIC:
                continue
            path = template.replace("{sku}", "X").replace("{reservation_id}", "X")
            for method in methods:
                r = c.request(method, path, json={})
                assert r.status_code == 401, (method, template, r.status_code)
                assert r.json()["code"] == "unauthorized"
                checked += 1
    assert checked >= 10
