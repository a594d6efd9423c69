"""Shipments fulfil reservations once; reservation events reach Kafka, also after an outage;
availability changes are published."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from atp.kafka import topics
from atp.store import keys
from atp.store.client import client_for
from atp.store.reservations import ReservationStore
from atp.tools import embedded
from tests.integration.conftest import (
    RESERVE_TOKEN,
    conforms,
    isolated_redis_url,
    outbox_len,
    redis_client,
)
from tests.integration.test_pipeline import metric
from tests.integration.wms_scenario import produce, read_all

pytestmark = pytest.mark.integration
REDIS = ("node", "cluster")  # every test here runs on one Redis and on a cluster
AUTH = {"Authorization": f"Bearer {RESERVE_TOKEN}"}


def wms(
    event_id: str,
    sku: str,
    kind: str,
    qty: int,
    order_ref: str | None = None,
    eta: datetime | None = None,
    warehouse: str = "WH-NJ",
) -> tuple:
    at = datetime.now(UTC).isoformat(timespec="milliseconds")
    body = {
        "event_id": event_id,
        "warehouse_id": warehouse,
        "sku": sku,
        "kind": kind,
        "qty": qty,
        "occurred_at": at,
        "order_ref": order_ref,
        "eta": None if eta is None else eta.isoformat(timespec="milliseconds"),
    }
    return warehouse.encode(), orjson.dumps(body)


def wait_until(check, timeout_s: float = 60.0):
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def test_a_shipment_fulfils_its_reservation_once(settings, processes, demo_network):
    sku = f"F-{uuid.uuid4().hex[:8]}"
    worker = processes.start("worker")
    wms_topic = settings.topic(topics.WMS)
    asyncio.run(
        produce(settings.kafka_bootstrap, wms_topic, [wms(f"{sku}-c", sku, "CYCLE_COUNT", 10)])
    )
    r = redis_client(settings.redis_url)
    assert wait_until(lambda: r.hget(keys.stock(sku), "oh:WH-NJ") == b"10")

    with TestClient(create_app(settings, demo_network)) as api:
        rid = f"order-{sku}"
        line = {"sku": sku, "quantity": 3, "location_id": "WH-NJ"}
        assert (
            api.post(
                "/v1/reservations", json={"reservation_id": rid, "lines": [line]}, headers=AUTH
            ).status_code
            == 201
        )
        api.post(f"/v1/reservations/{rid}/confirm", headers=AUTH)
        assert api.get(f"/v1/availability/{sku}").json()["atp"] == 7

        shipped = wms(f"{sku}-s", sku, "SHIPPED", 3, order_ref=rid)
        stray = wms(f"{sku}-x", sku, "SHIPPED", 1, order_ref="NO-SUCH-ORDER")
        # The shipment twice (a redelivery), and a shipment for an unknown reservation.
        asyncio.run(produce(settings.kafka_bootstrap, wms_topic, [shipped, shipped, stray]))
        assert wait_until(lambda: r.hget(keys.stock(sku), "oh:WH-NJ") == b"6")
        assert wait_until(
            lambda: api.get(f"/v1/reservations/{rid}", headers=AUTH).json()["state"] == "fulfilled"
        )
        body = api.get(f"/v1/availability/{sku}").json()
        nj = next(x for x in body["locations"] if x["location_id"] == "WH-NJ")
        assert (nj["on_hand"], nj["reserved"], nj["atp"]) == (6, 0, 6)

        # Promised, then lost: 5 held, 4 damaged. The exposure is published.
        line = {"sku": sku, "quantity": 5, "location_id": "WH-NJ"}
        assert (
            api.post(
                "/v1/reservations",
                json={"reservation_id": f"{rid}-2", "lines": [line]},
                headers=AUTH,
            ).status_code
            == 201
        )
        damaged = wms(f"{sku}-d", sku, "DAMAGED", 4)
        asyncio.run(produce(settings.kafka_bootstrap, wms_topic, [damaged]))
        assert wait_until(lambda: r.hget(keys.stock(sku), "oh:WH-NJ") == b"2")
        # An ASN due in 3 days: online may promise 80 % of it (config/network.yaml).
        due = datetime.now(UTC) + timedelta(days=3)
        inbound = wms(f"{sku}-asn", sku, "ASN", 10, eta=due)
        asyncio.run(produce(settings.kafka_bootstrap, wms_topic, [inbound]))
        assert wait_until(lambda: r.hget(keys.stock(sku), "ib:WH-NJ") is not None)
    assert r.hget(keys.holds(sku), f"{rid}@WH-NJ") is None
    r.close()
    metrics_url = f"http://127.0.0.1:{settings.worker_web_port}/metrics"
    assert metric(metrics_url, "atp_fulfilment_unmatched_total", "") == 1
    assert worker.alive()

    # Every change of the reservation reached stock.reservations, in order.
    def relayed() -> list[str]:
        events = asyncio.run(
            read_all(settings.kafka_bootstrap, settings.topic(topics.RESERVATIONS), 10**6, 2)
        )
        return [e["type"] for e in events if e["reservation_id"] == rid]

    wait_until(lambda: relayed() == ["held", "confirmed", "fulfilled"], 60)
    assert relayed() == ["held", "confirmed", "fulfilled"]
    events = asyncio.run(
        read_all(settings.kafka_bootstrap, settings.topic(topics.RESERVATIONS), 10**6, 2)
    )
    assert events and all(conforms("ReservationEvent", e) for e in events)

    # Availability changes were published: back in stock at 10, and the drop to 6.
    changes = asyncio.run(
        read_all(settings.kafka_bootstrap, settings.topic(topics.AVAILABILITY), 10**6, 5)
    )
    online = [c for c in changes if c["sku"] == sku and c.get("channel") == "online"]
    first = online[0]
    assert (first["previous_status"], first["status"], first["atp"]) == (
        "out_of_stock",
        "low_stock",  # 10 is at the online channel's threshold
        10,
    )
    assert first["back_in_stock"] is True
    # Count; shipment; damage; ASN. Holds and releases by the API publish nothing themselves:
    # the worker publishes when it writes, with the reservations of that moment.
    assert [c["atp"] for c in online] == [10, 6, 0, 0]
    # The ASN moved only available to order (online promises 80 % of it; pickup nothing).
    assert [c["available_to_order"] for c in online] == [10, 6, 0, 8]
    assert online[-1]["previous_available_to_order"] == 0
    pickup = [c for c in changes if c["sku"] == sku and c.get("channel") == "pickup"]
    assert all(c["atp"] != c["previous_atp"] for c in pickup)
    exposures = [c for c in changes if c["sku"] == sku and c.get("type") == "oversell_exposure"]
    assert [(x["location_id"], x["on_hand"], x["reserved"], x["exposure"]) for x in exposures] == [
        ("WH-NJ", 2, 5, 3)
    ]
    # What the worker published is what docs/asyncapi.yaml says it publishes.
    for c in changes:
        assert conforms("OversellExposure" if "type" in c else "AvailabilityChanged", c), c
    # Only real changes are published.
    assert all(
        (c["previous_status"], c["previous_atp"], c["previous_available_to_order"])
        != (c["status"], c["atp"], c["available_to_order"])
        for c in online
    )


def test_shipments_of_part_of_a_reservation_show_per_line_and_outlive_its_close(
    settings, processes, demo_network
):
    """A shipment of fewer units than held uses up those and leaves the rest held; the line
    shows them as `fulfilled_quantity`, and a release or an expiry keeps that count (in the
    record and in its event) while the per-hold counts in the SKU's slot are dropped."""
    sku = f"P-{uuid.uuid4().hex[:8]}"
    worker = processes.start("worker")
    wms_topic = settings.topic(topics.WMS)

    def ship(*movements: tuple) -> None:
        asyncio.run(produce(settings.kafka_bootstrap, wms_topic, list(movements)))

    ship(wms(f"{sku}-c", sku, "CYCLE_COUNT", 20))
    r = redis_client(settings.redis_url)
    assert wait_until(lambda: r.hget(keys.stock(sku), "oh:WH-NJ") == b"20")
    with TestClient(create_app(settings, demo_network)) as api:

        def reserve(rid: str, qty: int) -> None:
            line = {"sku": sku, "quantity": qty, "location_id": "WH-NJ"}
            body = {"reservation_id": rid, "lines": [line]}
            assert api.post("/v1/reservations", json=body, headers=AUTH).status_code == 201

        def lines(rid: str) -> list[tuple[int, int]]:
            got = api.get(f"/v1/reservations/{rid}", headers=AUTH).json()
            return [(ln["held"], ln["fulfilled_quantity"]) for ln in got["lines"]]

        released, fulfilled, expired = f"{sku}-rel", f"{sku}-ful", f"{sku}-exp"
        reserve(released, 5)
        reserve(fulfilled, 2)
        reserve(expired, 3)
        assert lines(released) == [(5, 0)]
        first = wms(f"{sku}-s1", sku, "SHIPPED", 2, order_ref=released)
        ship(first, first, wms(f"{sku}-s2", sku, "SHIPPED", 1, order_ref=fulfilled))
        assert wait_until(lambda: lines(released) == [(5, 2)])  # the repeat is a duplicate
        assert wait_until(lambda: lines(fulfilled) == [(2, 1)])
        ship(wms(f"{sku}-s3", sku, "SHIPPED", 1, order_ref=released))
        assert wait_until(lambda: lines(released) == [(5, 3)])
        nj = api.get(f"/v1/availability/{sku}").json()["locations"][0]
        assert (nj["on_hand"], nj["reserved"]) == (16, 2 + 1 + 3)
        assert api.get(f"/v1/reservations/{released}", headers=AUTH).json()["state"] == "held"

        # Released: the 2 units still held come back; the 3 shipped stay counted.
        done = api.delete(f"/v1/reservations/{released}", headers=AUTH).json()
        assert (done["state"], done["lines"][0]["fulfilled_quantity"]) == ("released", 3)
        assert lines(released) == [(5, 3)]
        # The rest of `fulfilled` ships: it closes, every held unit used up.
        ship(wms(f"{sku}-s4", sku, "SHIPPED", 1, order_ref=fulfilled))
        ok = lambda: api.get(f"/v1/reservations/{fulfilled}", headers=AUTH).json()["state"]  # noqa: E731
        assert wait_until(lambda: ok() == "fulfilled")
        assert lines(fulfilled) == [(2, 2)]
        # Expired after one of its 3 shipped (the sweeper's own step, at a later time).
        ship(wms(f"{sku}-s5", sku, "SHIPPED", 1, order_ref=expired))
        assert wait_until(lambda: lines(expired) == [(3, 1)])
        late = int(time.time() * 1000) + 3600 * 1000

        async def expire() -> dict:
            client = client_for(settings)
            try:
                store = ReservationStore(client, settings.reservation_replay_ms)
                return await store.transition(expired, "expire", late)
            finally:
                await client.aclose()

        gone = asyncio.run(expire())
        assert (gone["state"], gone["lines"][0]["fulfilled_quantity"]) == ("expired", 1)
        assert lines(expired) == [(3, 1)]
        nj = api.get(f"/v1/availability/{sku}").json()["locations"][0]
        assert (nj["on_hand"], nj["reserved"]) == (14, 0)
    # Nothing of the three is left in the SKU's slot.
    assert r.hgetall(keys.shipped(sku)) == {}
    assert r.hgetall(keys.holds(sku)) == {}
    r.close()

    def closes() -> dict[str, dict]:
        events = asyncio.run(
            read_all(settings.kafka_bootstrap, settings.topic(topics.RESERVATIONS), 10**6, 2)
        )
        mine = [e for e in events if e["reservation_id"].startswith(sku)]
        assert all(conforms("ReservationEvent", e) for e in mine)
        return {e["type"]: e for e in mine if e["type"] in ("released", "expired", "fulfilled")}

    assert wait_until(lambda: len(closes()) == 3, 60)
    events = closes()
    assert events["released"]["shipped"] == {sku: {"WH-NJ": 3}}
    assert events["expired"]["shipped"] == {sku: {"WH-NJ": 1}}
    assert "shipped" not in events["fulfilled"]  # it used up all it held
    assert worker.alive()


def test_a_change_after_a_partial_shipment_gives_back_only_what_is_still_held(
    settings, processes, demo_network
):
    """Units a shipment used up are the line's: a decrease gives back only what is still held
    (not from a location whose hold shipped), a line cannot go below what shipped (409
    below_fulfilled), and a change down to what shipped fulfils the reservation."""
    sku = f"PC-{uuid.uuid4().hex[:8]}"
    worker = processes.start("worker")
    wms_topic = settings.topic(topics.WMS)

    def send(*movements: tuple) -> None:
        asyncio.run(produce(settings.kafka_bootstrap, wms_topic, list(movements)))

    send(
        wms(f"{sku}-nj", sku, "CYCLE_COUNT", 3),
        wms(f"{sku}-il", sku, "CYCLE_COUNT", 2, warehouse="WH-IL"),
    )
    r = redis_client(settings.redis_url)
    assert wait_until(lambda: r.hget(keys.stock(sku), "oh:WH-IL") == b"2")
    rid = f"{sku}-r"
    url = f"/v1/reservations/{rid}"
    with TestClient(create_app(settings, demo_network)) as api:

        def change(cid: str, qty: int):
            body = {"change_id": cid, "lines": [{"sku": sku, "quantity": qty}]}
            return api.patch(url, json=body, headers=AUTH)

        def line() -> dict:
            return api.get(url, headers=AUTH).json()["lines"][0]

        def where(body: dict) -> list[tuple[str, int]]:
            return [(a["location_id"], a["quantity"]) for a in body["allocations"]]

        body = {"reservation_id": rid, "lines": [{"sku": sku, "quantity": 5}]}
        made = api.post("/v1/reservations", json=body, headers=AUTH).json()
        assert where(made["lines"][0]) == [("WH-NJ", 3), ("WH-IL", 2)]
        send(wms(f"{sku}-s", sku, "SHIPPED", 2, order_ref=rid, warehouse="WH-IL"))
        assert wait_until(lambda: line()["fulfilled_quantity"] == 2)

        refused = change("c1", 1)
        assert refused.status_code == 409
        assert refused.headers["content-type"] == "application/problem+json"
        assert (refused.json()["code"], refused.json()["fulfilled_quantity"]) == (
            "below_fulfilled",
            2,
        )
        # Down to 3: the 2 that go back are NJ's (IL's hold was used up by the shipment).
        down = change("c2", 3)
        assert down.status_code == 200, down.json()
        got = down.json()["lines"][0]
        assert (got["held"], got["fulfilled_quantity"], where(got)) == (
            3,
            2,
            [("WH-NJ", 1), ("WH-IL", 2)],
        )
        locs = {x["location_id"]: x for x in api.get(f"/v1/availability/{sku}").json()["locations"]}
        assert (locs["WH-NJ"]["on_hand"], locs["WH-NJ"]["reserved"]) == (3, 1)
        assert (locs["WH-IL"]["on_hand"], locs["WH-IL"]["reserved"]) == (0, 0)
        # Down to what shipped: nothing is left to ship, so it is fulfilled.
        last = change("c3", 2)
        assert last.status_code == 200, last.json()
        assert (last.json()["state"], last.json()["lines"][0]["fulfilled_quantity"]) == (
            "fulfilled",
            2,
        )
        assert api.get(f"/v1/availability/{sku}").json()["atp"] == 3
    assert r.hgetall(keys.shipped(sku)) == {}
    assert r.hgetall(keys.holds(sku)) == {}
    r.close()
    assert worker.alive()


def test_reservation_events_made_while_kafka_is_away_arrive_when_it_is_back(
    settings, demo_network, tmp_path, processes
):
    sku = f"O-{uuid.uuid4().hex[:8]}"
    # A Redis of its own (another database; on the cluster, which has one, emptied first), so
    # this test's outbox holds only its own events, and a broker that is not running yet.
    port = embedded.free_port()
    isolated = settings.model_copy(
        update={
            "redis_url": isolated_redis_url(settings.redis_url),
            "kafka_bootstrap": f"127.0.0.1:{port}",
        }
    )
    client = redis_client(isolated.redis_url)
    client.hset(keys.stock(sku), "oh:WH-NJ", 5)
    with TestClient(create_app(isolated, demo_network)) as api:
        for i in range(3):
            r = api.post(
                "/v1/reservations",
                json={"reservation_id": f"{sku}-{i}", "lines": [{"sku": sku, "quantity": 1}]},
                headers=AUTH,
            )
            assert r.status_code == 201  # reservations work without the broker
        api.delete(f"/v1/reservations/{sku}-0", headers=AUTH)
    assert outbox_len(client) == 4
    broker = embedded.start_broker(port, tmp_path / "broker2")
    try:
        processes.settings = isolated
        processes.start("worker")
        events = asyncio.run(
            read_all(isolated.kafka_bootstrap, isolated.topic(topics.RESERVATIONS), 4, timeout_s=90)
        )
        assert sorted((e["reservation_id"], e["type"]) for e in events) == [
            (f"{sku}-0", "held"),
            (f"{sku}-0", "released"),
            (f"{sku}-1", "held"),
            (f"{sku}-2", "held"),
        ]
        assert wait_until(lambda: outbox_len(client) == 0, 10)
    finally:
        processes.stop_all()
        broker.stop()
        client.flushdb()
        client.close()
