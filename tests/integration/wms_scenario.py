"""Warehouse traffic for tests, with the on-hand it implies computed the plain way."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

WAREHOUSES = ("WH-NJ", "WH-IL", "WH-CA")


@dataclass
class Scenario:
    messages: list[tuple[bytes, bytes]] = field(default_factory=list)
    expected: dict[tuple[str, str], int] = field(default_factory=dict)


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def warehouse_traffic(
    run: str, skus: int, events: int, seed: int, start_ms: int | None = None
) -> Scenario:
    """Counts first, then mixed deltas and occasional recounts, one second apart, in time order."""
    rng = random.Random(seed)
    at = start_ms if start_ms is not None else time.time_ns() // 1_000_000 - 3600_000
    sc = Scenario()
    names = [f"{run}-SKU-{i:03d}" for i in range(skus)]
    pairs = [(s, w) for s in names for w in WAREHOUSES]

    def emit(event_id: str, sku: str, wh: str, kind: str, qty: int) -> None:
        nonlocal at
        at += 1000
        body = {
            "event_id": event_id,
            "warehouse_id": wh,
            "sku": sku,
            "kind": kind,
            "qty": qty,
            "occurred_at": iso(at),
            "order_ref": None,
            "eta": None,
        }
        sc.messages.append((wh.encode(), orjson.dumps(body)))
        if kind == "CYCLE_COUNT":
            sc.expected[(sku, wh)] = qty
        else:
            sign = -1 if kind in ("SHIPPED", "DAMAGED", "TRANSFER_OUT") else 1
            sc.expected[(sku, wh)] = sc.expected.get((sku, wh), 0) + sign * qty

    n = 0
    for sku, wh in pairs[: max(1, len(pairs) * 2 // 3)]:
        n += 1
        emit(f"{run}-E{n}", sku, wh, "CYCLE_COUNT", rng.randint(10, 100))
    while n < events:
        n += 1
        sku, wh = rng.choice(pairs)
        kind = rng.choice(
            [
                "RECEIVED",
                "SHIPPED",
                "SHIPPED",
                "ADJUSTED",
                "DAMAGED",
                "TRANSFER_IN",
                "TRANSFER_OUT",
                "CYCLE_COUNT",
            ]
        )
        qty = rng.randint(0, 80) if kind == "CYCLE_COUNT" else rng.randint(1, 5)
        emit(f"{run}-E{n}", sku, wh, kind, qty)
    return sc


def expected_from(messages: list[tuple[bytes, bytes]]) -> dict[tuple[str, str], int]:
    """On-hand per (SKU, warehouse) implied by messages sent in time order, repeats ignored."""
    seen: set[str] = set()
    out: dict[tuple[str, str], int] = {}
    for _, raw in messages:
        m = orjson.loads(raw)
        if m["event_id"] in seen:
            continue
        seen.add(m["event_id"])
        key = (m["sku"], m["warehouse_id"])
        if m["kind"] == "CYCLE_COUNT":
            out[key] = m["qty"]
        else:
            sign = -1 if m["kind"] in ("SHIPPED", "DAMAGED", "TRANSFER_OUT") else 1
            out[key] = out.get(key, 0) + sign * m["qty"]
    return out


async def produce(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=5)
    await producer.start()
    try:
        for key, value in messages:
            await producer.send(topic, value=value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


async def read_all(
    bootstrap: str, topic: str, want: int, timeout_s: float = 30.0, *, headers: bool = False
) -> list[dict]:
    """Read a topic from the beginning until `want` records arrived or the time is up; with
    `headers`, each value also has its record's headers under "_headers"."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    records: list[dict] = []
    try:
        parts = consumer.partitions_for_topic(topic)
        deadline = time.monotonic() + timeout_s
        while not parts and time.monotonic() < deadline:
            await consumer._client.force_metadata_update()
            parts = consumer.partitions_for_topic(topic)
            await asyncio.sleep(0.2)
        consumer.assign([TopicPartition(topic, p) for p in parts or ()])
        await consumer.seek_to_beginning()
        while len(records) < want and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for msgs in batch.values():
                for m in msgs:
                    value = orjson.loads(m.value)
                    if headers:
                        value["_headers"] = [(k, bytes(v)) for k, v in m.headers]
                    records.append(value)
    finally:
        await consumer.stop()
    return records


async def stage_on_hand(settings, network) -> tuple[dict, dict]:
    """On-hand per (SKU, location) folded from the source topics, and from stock.movements."""
    from atp.core.errors import InvalidMovement
    from atp.core.ledger import LedgerState, Policy, fold
    from atp.core.movements import Movement
    from atp.core.sources import ADAPTERS
    from atp.kafka import topics

    now = time.time_ns() // 1_000_000
    from_sources: dict = {}
    for source in topics.SOURCES:
        for raw in await read_raw(settings.kafka_bootstrap, settings.topic(source)):
            try:
                for m in ADAPTERS[topics.SOURCES[source]](raw, network):
                    from_sources.setdefault((m.sku, m.location_id), []).append(m)
            except InvalidMovement:
                pass
    from_movements: dict = {}
    for raw in await read_raw(settings.kafka_bootstrap, settings.topic(topics.MOVEMENTS)):
        m = Movement.from_wire(orjson.loads(raw))
        from_movements.setdefault((m.sku, m.location_id), []).append(m)
    return tuple(
        {k: fold(LedgerState(), ms, now, Policy())[0].on_hand for k, ms in stage.items()}
        for stage in (from_sources, from_movements)
    )


async def read_raw(bootstrap: str, topic: str, idle_s: float = 3.0) -> list[bytes]:
    """Every record of a topic, read until nothing new arrives for `idle_s`."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    out: list[bytes] = []
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        idle = 0.0
        while idle < idle_s:
            batch = await consumer.getmany(timeout_ms=500)
            idle = 0.0 if batch else idle + 0.5
            for msgs in batch.values():
                out.extend(m.value for m in msgs)
    finally:
        await consumer.stop()
    return out
