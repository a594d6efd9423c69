"""Reading `stock.rejected` and replaying selected records to their source topic."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from atp.kafka import topics
from atp.kafka.connect import check_connection
from atp.kafka.reader import read_to_end
from atp.kafka.rejected import original_bytes
from atp.kafka.security import client_options
from atp.settings import Settings


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


async def read(settings: Settings, flt: Filter = Filter()) -> list[dict[str, Any]]:
    """Every rejected record matching `flt`, oldest first per partition, up to the end the
    topic had when reading started."""
    await check_connection(settings, timeout_s=10.0)
    topic = settings.topic(topics.REJECTED)
    out: list[dict[str, Any]] = []
    reader = read_to_end(client_options(settings), topic, lambda total: None)
    async with contextlib.aclosing(reader):
        async for chunk in reader:
            for m in chunk:
                record = orjson.loads(m.value)
                record["rejected_offset"] = f"{m.partition}:{m.offset}"
                if flt.matches(record, settings.topic_prefix):
                    out.append(record)
    return out


async def replay(settings: Settings, records: Iterable[dict[str, Any]]) -> int:
    """Send each record's original key and bytes back to its source topic."""
    await check_connection(settings, timeout_s=10.0)
    producer = AIOKafkaProducer(**client_options(settings), acks="all")
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
