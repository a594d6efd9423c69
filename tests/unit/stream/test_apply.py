"""The ledger hop on plain records, over an in-memory ledger that folds with the pure core:
change events only for real changes, refusals to the rejected topic, fulfilment, retries."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from atp.core.availability import LocationCounts
from atp.core.ledger import Policy
from atp.core.movements import Effect, Movement
from atp.core.network import Network
from atp.core.reservations import hold_member
from atp.kafka import topics
from stream.apply import Applier
from tests.unit.stream.fakes import (
    NOW,
    ListSink,
    MemoryLedger,
    Reservations,
    counter,
    metrics,
    record,
)

HOUR = 3600 * 1000


def movement(event_id: str, qty: int, *, effect: Effect = Effect.DELTA, **kw) -> Movement:
    fields = {"kind": "ADJUSTED", "occurred_ms": NOW - 1000, "location_id": "WH-NJ", **kw}
    return Movement(
        event_id=event_id,
        sku=fields.pop("sku", "SKU-1"),
        effect=effect,
        qty=qty,
        source="wms",
        **fields,
    )


def counted(qty: int) -> Movement:
    """A cycle count a while before the other movements (which then apply on top of it)."""
    return movement(
        f"count-{qty}", qty, effect=Effect.COUNT, kind="CYCLE_COUNT", occurred_ms=NOW - 9000
    )


def records(*movements: Movement) -> list:
    return [
        record(topics.MOVEMENTS, orjson.dumps(m.to_wire()), offset=i)
        for i, m in enumerate(movements)
    ]


@pytest.fixture
def hop(demo_network: Network):
    sink, ledger, reservations = (
        ListSink(),
        MemoryLedger(Policy(retention_ms=48 * HOUR)),
        Reservations({"R-1"}),
    )
    applier = Applier(
        ledger,
        reservations,
        demo_network,
        sink,
        availability_topic=topics.AVAILABILITY,
        rejected_topic=topics.REJECTED,
        metrics=metrics(),
        clock=lambda: NOW,
    )
    return applier, sink, ledger, reservations


def test_a_change_is_published_once_and_a_repeat_publishes_nothing(hop):
    applier, sink, _, _ = hop
    count = movement("c-1", 40, effect=Effect.COUNT, kind="CYCLE_COUNT")
    asyncio.run(applier.handle(records(count)))
    events = sink.values(topics.AVAILABILITY)
    assert [(e["sku"], e["channel"], e["atp"], e["previous_atp"]) for e in events] == [
        ("SKU-1", "online", 40, 0)
    ]
    asyncio.run(applier.handle(records(count)))  # redelivered: a duplicate
    assert len(sink.values(topics.AVAILABILITY)) == 1
    assert counter(applier._metrics.outcomes, "duplicate") == 1


def test_records_that_are_not_movements_and_movements_too_late_are_rejected(hop):
    applier, sink, ledger, _ = hop
    late = movement("old", 5, occurred_ms=NOW - 49 * HOUR)
    batch = [record(topics.MOVEMENTS, b'{"sku": 1}', 0), *records(late)]
    asyncio.run(applier.handle(batch))
    rejected = sink.values(topics.REJECTED)
    assert [(r["reason"], r["offset"]) for r in rejected] == [("schema", 0), ("too_late", 0)]
    assert ledger.states == {("SKU-1", "WH-NJ"): ledger.states[("SKU-1", "WH-NJ")]}


def test_a_shipment_that_uses_up_a_hold_closes_its_reservation(hop):
    applier, _, ledger, reservations = hop
    asyncio.run(applier.handle(records(counted(10))))
    ledger.holds["SKU-1"] = {hold_member("R-1", "WH-NJ"): 2}
    ship = movement("s", -2, kind="SHIPPED", order_ref="R-1")
    stray = movement("x", -1, kind="SHIPPED", order_ref="NOBODY")
    asyncio.run(applier.handle(records(ship, stray)))
    assert reservations.asked == [("R-1", "fulfil")]
    assert counter(applier._metrics.fulfilment_unmatched) == 1
    assert ledger.counts["SKU-1"]["WH-NJ"].on_hand == 7


def test_while_redis_is_away_the_batch_is_retried_and_applied_once(hop):
    applier, _, ledger, _ = hop
    ledger.fail = 2
    asyncio.run(applier.handle(records(movement("a", 3))))
    assert ledger.calls == 3
    assert ledger.counts["SKU-1"]["WH-NJ"].on_hand == 3
    assert counter(applier._metrics.outcomes, "applied") == 1


def test_reserved_beyond_what_is_left_is_an_oversell_exposure_event(hop):
    applier, sink, ledger, _ = hop
    asyncio.run(applier.handle(records(counted(5))))
    ledger.counts["SKU-1"]["WH-NJ"] = LocationCounts(5, 4)  # 4 units held by reservations
    asyncio.run(applier.handle(records(movement("d", -3, kind="DAMAGED"))))
    [exposure] = [e for e in sink.values(topics.AVAILABILITY) if e.get("type")]
    assert (exposure["type"], exposure["exposure"]) == ("oversell_exposure", 2)
    assert counter(applier._metrics.oversell_exposures) == 1
