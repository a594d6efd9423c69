"""The one-hop worker (stream.direct) on plain records, over an in-memory ledger: source messages
applied, their movements published marked as applied (which the ledger hop then skips), and
rejections pointing at the source message."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from atp.core.ledger import Policy
from atp.core.network import Network
from atp.core.sources import ADAPTERS
from atp.kafka import topics
from stream.apply import Applier
from stream.direct import Direct
from stream.normalise import Normaliser
from stream.records import APPLIED
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


def wms(event_id: str, kind: str, qty: int, occurred_at: str = "2026-09-21T13:00:00Z") -> bytes:
    return orjson.dumps(
        {
            "event_id": event_id,
            "warehouse_id": "WH-NJ",
            "sku": "LEGO-1",
            "kind": kind,
            "qty": qty,
            "occurred_at": occurred_at,
            "order_ref": None,
            "eta": None,
        }
    )


@pytest.fixture
def hop(demo_network: Network):
    sink, ledger = ListSink(), MemoryLedger(Policy(retention_ms=48 * HOUR))
    common = {"rejected_topic": topics.REJECTED, "metrics": metrics(), "clock": lambda: NOW}
    adapters = {t: ADAPTERS[c] for t, c in topics.SOURCES.items()}
    normaliser = Normaliser(
        adapters, demo_network, sink, movements_topic=topics.MOVEMENTS, **common
    )
    applier = Applier(
        ledger,
        Reservations(),
        demo_network,
        sink,
        availability_topic=topics.AVAILABILITY,
        **common,
    )
    return Direct(normaliser, applier, sink), applier, sink, ledger


def test_source_messages_reach_the_ledger_and_their_movements_are_published_as_applied(hop):
    direct, _, sink, ledger = hop
    batch = [
        record(topics.WMS, wms("E-1", "CYCLE_COUNT", 40), 0),
        record(topics.WMS, wms("E-2", "SHIPPED", 3, "2026-09-21T13:05:00Z"), 1),
    ]
    asyncio.run(direct.handle(batch))
    assert ledger.counts["LEGO-1"]["WH-NJ"].on_hand == 37
    assert len(sink.sent) == 1  # one send after the apply: the consumer commits after it
    published = sink.to(topics.MOVEMENTS)
    assert [orjson.loads(r.value)["event_id"] for r in published] == ["E-1", "E-2"]
    assert all(r.headers == APPLIED and r.key == b"LEGO-1" for r in published)
    assert all(orjson.loads(r.value)["produced_ms"] == NOW - 50 for r in published)
    [event] = sink.values(topics.AVAILABILITY)
    assert (event["atp"], event["previous_atp"]) == (37, 0)


def test_the_ledger_hop_skips_what_a_one_hop_worker_applied_and_applies_the_rest(hop):
    direct, applier, sink, ledger = hop
    asyncio.run(direct.handle([record(topics.WMS, wms("E-1", "CYCLE_COUNT", 40), 0)]))
    [applied] = sink.to(topics.MOVEMENTS)
    other = orjson.loads(applied.value) | {"event_id": "E-9", "qty": 12}  # a two-hop one
    consumed = [
        record(topics.MOVEMENTS, applied.value, 0, applied.key, applied.headers),
        record(topics.MOVEMENTS, orjson.dumps(other), 1, applied.key),
    ]
    calls = ledger.calls
    asyncio.run(applier.handle(consumed))
    assert ledger.calls == calls + 1
    assert counter(applier._metrics.outcomes, "duplicate") == 0  # E-1 not even tried again
    assert ledger.counts["LEGO-1"]["WH-NJ"].on_hand == 12  # the later count, E-9
    calls = ledger.calls
    asyncio.run(applier.handle(consumed[:1]))
    assert ledger.calls == calls  # nothing to apply: Redis not asked


def test_unusable_and_too_late_input_is_rejected_as_the_source_message(hop):
    direct, _, sink, _ = hop
    late = wms("E-old", "ADJUSTED", -2, "2026-09-01T00:00:00Z")  # weeks before NOW
    asyncio.run(direct.handle([record(topics.WMS, b"{not json", 0), record(topics.WMS, late, 1)]))
    rejected = sink.values(topics.REJECTED)
    assert [(r["reason"], r["source_topic"], r["offset"]) for r in rejected] == [
        ("malformed_json", topics.WMS, 0),
        ("too_late", topics.WMS, 1),
    ]
    assert "E-old" in rejected[1]["message"]
    assert rejected[1]["value"] == late.decode()  # replayable to its source topic as it was
