"""The normaliser hop on plain records: movements keyed by SKU, rejections with their reason."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from atp.core.network import Network
from atp.core.sources import ADAPTERS
from atp.kafka import topics
from stream.normalise import ADAPTER_ERROR, Normaliser
from tests.unit.stream.fakes import NOW, ListSink, counter, metrics, record

WMS = {
    "event_id": "E-1",
    "warehouse_id": "WH-NJ",
    "sku": "LEGO-1",
    "kind": "RECEIVED",
    "qty": 24,
    "occurred_at": "2026-11-26T14:03:11Z",
    "order_ref": None,
    "eta": None,
}
POS = {
    "transaction_id": "T-1",
    "store_id": "S-0101",
    "type": "SALE",
    "occurred_at": "2026-11-26T15:20:00-05:00",
    "order_ref": None,
    "lines": [{"sku": "LEGO-1", "qty": 1}, {"sku": "LEGO-2", "qty": 2}],
}


@pytest.fixture
def hop(demo_network: Network) -> tuple[Normaliser, ListSink]:
    sink = ListSink()
    adapters = {t: ADAPTERS[c] for t, c in topics.SOURCES.items()}
    normaliser = Normaliser(
        adapters,
        demo_network,
        sink,
        movements_topic=topics.MOVEMENTS,
        rejected_topic=topics.REJECTED,
        metrics=metrics(),
        clock=lambda: NOW,
    )
    return normaliser, sink


def test_source_messages_become_movements_keyed_by_sku_in_one_send(hop):
    normaliser, sink = hop
    batch = [
        record(topics.WMS, orjson.dumps(WMS), 0),
        record(topics.POS, orjson.dumps(POS), 1),
    ]
    asyncio.run(normaliser.handle(batch))
    assert len(sink.sent) == 1  # the whole batch in one send: the consumer commits after it
    out = sink.to(topics.MOVEMENTS)
    assert [(r.key, orjson.loads(r.value)["event_id"]) for r in out] == [
        (b"LEGO-1", "E-1"),
        (b"LEGO-1", "T-1:0"),
        (b"LEGO-2", "T-1:1"),
    ]
    first = orjson.loads(out[0].value)
    assert (first["qty"], first["produced_ms"]) == (24, NOW - 50)  # the source's Kafka time
    assert {r.timestamp_ms for r in out} == {NOW - 50}  # also the movement records' own
    assert counter(normaliser._metrics.movements, "wms", "RECEIVED") == 1


def test_unusable_input_goes_to_the_rejected_topic_with_its_reason_and_bytes(hop):
    normaliser, sink = hop
    unknown = {**WMS, "warehouse_id": "WH-NOWHERE"}
    batch = [
        record(topics.WMS, b"{not json", 7),
        record(topics.WMS, orjson.dumps(unknown), 8),
        record(topics.WMS, orjson.dumps(WMS), 9),
    ]
    asyncio.run(normaliser.handle(batch))
    rejected = sink.values(topics.REJECTED)
    assert [(r["reason"], r["offset"], r["source_topic"]) for r in rejected] == [
        ("malformed_json", 7, topics.WMS),
        ("unknown_location", 8, topics.WMS),
    ]
    assert rejected[0]["value"] == "{not json" and rejected[0]["rejected_at_ms"] == NOW
    assert len(sink.to(topics.MOVEMENTS)) == 1  # the good one still goes through
    assert counter(normaliser._metrics.rejected, "malformed_json") == 1


def test_an_adapter_bug_rejects_the_message_and_the_batch_goes_on(hop):
    normaliser, sink = hop

    def broken(raw: bytes, network: Network) -> list:
        raise ZeroDivisionError("bug")

    normaliser._adapters = {**normaliser._adapters, topics.TPL: broken}
    batch = [record(topics.TPL, b"{}", 3), record(topics.WMS, orjson.dumps(WMS), 4)]
    asyncio.run(normaliser.handle(batch))
    [reject] = sink.values(topics.REJECTED)
    assert reject["reason"] == ADAPTER_ERROR and "ZeroDivisionError" in reject["message"]
    assert len(sink.to(topics.MOVEMENTS)) == 1
