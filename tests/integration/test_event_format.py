"""ATP_EVENT_FORMAT=cloudevents: the worker writes stock.availability and stock.reservations as
CloudEvents (the plain event as `data`), each valid for its message of docs/asyncapi.yaml, and
`atp rebuild` restores reservations from them as from the plain format."""

from __future__ import annotations

import asyncio
import re
import uuid

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from atp.kafka import topics
from atp.store import keys
from tests.integration.conftest import RESERVE_TOKEN, conforms, outbox_len, redis_client
from tests.integration.test_faults import run_atp
from tests.integration.test_fulfilment import wait_until, wms
from tests.integration.wms_scenario import produce, read_all

pytestmark = pytest.mark.integration
AUTH = {"Authorization": f"Bearer {RESERVE_TOKEN}"}


def test_topics_in_the_cloudevents_format(settings, processes, demo_network):
    settings = settings.model_copy(update={"event_format": "cloudevents"})
    sku = f"CE-{uuid.uuid4().hex[:8]}"
    processes.settings = settings
    processes.start("worker")
    wms_topic = settings.topic(topics.WMS)
    asyncio.run(
        produce(settings.kafka_bootstrap, wms_topic, [wms(f"{sku}-c", sku, "CYCLE_COUNT", 10)])
    )
    r = redis_client(settings.redis_url)
    try:
        assert wait_until(lambda: r.hget(keys.stock(sku), "oh:WH-NJ") == b"10")
        rid = f"order-{sku}"
        with TestClient(create_app(settings, demo_network)) as api:
            line = {"sku": sku, "quantity": 3}
            made = api.post(
                "/v1/reservations", json={"reservation_id": rid, "lines": [line]}, headers=AUTH
            )
            assert made.status_code == 201
            assert api.post(f"/v1/reservations/{rid}/confirm", headers=AUTH).status_code == 200
        assert wait_until(lambda: outbox_len(r) == 0)

        def read(topic: str) -> list[dict]:
            """This test's events on the topic (it may hold other tests' reservations too)."""
            records = asyncio.run(
                read_all(settings.kafka_bootstrap, settings.topic(topic), 10**6, 3)
            )
            return [e for e in records if e["subject"] in (sku, rid)]

        changes = read(topics.AVAILABILITY)
        assert changes and all(conforms("AvailabilityCloudEvent", e) for e in changes)
        online = next(e for e in changes if e["data"]["channel"] == "online")
        assert (online["type"], online["subject"], online["data"]["atp"]) == (
            "availability.changed",
            sku,
            10,
        )
        assert online["source"] == settings.event_source

        events = wait_until(lambda: len(got := read(topics.RESERVATIONS)) == 2 and got)
        assert [e["type"] for e in events] == ["reservation.held", "reservation.confirmed"]
        assert all(
            conforms("ReservationCloudEvent", e) and e["id"] == e["data"]["event_id"]
            for e in events
        )

        # The record lost: `atp rebuild` reads it back from the wrapped events.
        r.delete(keys.reservation(rid))
        report = run_atp(settings, "rebuild")
        # At least ours: the session's Redis is shared, and this worker's relay may have
        # published reservation events other tests left in the outbox.
        restored = re.search(r"(\d+) restored", report)
        assert restored and int(restored.group(1)) >= 1, report
        assert r.hget(keys.reservation(rid), "state") == b"confirmed"
    finally:
        r.close()
