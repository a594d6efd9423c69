"""Reading `stock.rejected` and replaying selected records to their source topic.

The end of a partition is taken from the high watermark of fetch responses, not from a
ListOffsets request: Tansu answers the latter wrongly for multi-record batches (DESIGN.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

from atp import topics
from atp.settings import Settings
from stream.rejects import original_bytes


@dataclass(frozen=True)
class Filter:
    reason: str | None = None
    source: str | None = None  # source topic, with or without the prefix
    since_ms: int | None = None
    until_ms: int | None = None

    def matches(self, record: dict[str, Any], prefix: str) -> bool:
        if self.reason and record.get("reason") != self.reason:
            return False
        if self.source and record.get("source_topic") not in (self.source, prefix + self.source):
            return False
        at = record.get("rejected_at_ms", 0)
        if self.since_ms is not None and at < self.since_ms:
            return False
        return not (self.until_ms is not None and at > self.until_ms)


async def read(
    settings: Settings, flt: Filter = Filter(), idle_s: float = 2.0
) -> list[dict[str, Any]]:
    """Every rejected record matching `flt`, oldest first per partition."""
    topic = settings.topic(topics.REJECTED)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False, group_id=None
    )
    await consumer.start()
    # Let aiokafka's background task start before anything can stop the consumer: stopped
    # before its first step, aiokafka 0.14's close() raises CancelledError (seen when the
    # topic does not exist yet and we return at once).
    await asyncio.sleep(0)
    out: list[dict[str, Any]] = []
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        if not tps:
            return out
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        idle = 0.0
        while idle < idle_s:
            batch = await consumer.getmany(timeout_ms=250, max_records=5000)
            idle = 0.0 if batch else idle + 0.25
            for msgs in batch.values():
                for m in msgs:
                    record = orjson.loads(m.value)
                    record["rejected_offset"] = f"{m.partition}:{m.offset}"
                    if flt.matches(record, settings.topic_prefix):
                        out.append(record)
            if await _caught_up(consumer, tps):
                break
    finally:
        await consumer.stop()
    return out


async def _caught_up(consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> bool:
    for tp in tps:
        high = consumer.highwater(tp)
        if high is None or await consumer.position(tp) < high:
            return False
    return True


async def replay(settings: Settings, records: Iterable[dict[str, Any]]) -> int:
    """Send each record's original key and bytes back to its source topic."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    n = 0
    try:
        sends = []
        for r in records:
            value = original_bytes(r, "value")
            if value is None:
                continue
            sends.append(
                await producer.send(r["source_topic"], value=value, key=original_bytes(r, "key"))
            )
            n += 1
        await asyncio.gather(*sends)
    finally:
        await producer.stop()
    return n
