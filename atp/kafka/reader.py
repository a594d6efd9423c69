"""Reading a topic from its beginning to the end it had when reading started.

The end of each partition is the high watermark of the first fetch response for it, not a
ListOffsets answer, which Tansu gets wrong for multi-record batches (DESIGN.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Callable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord, TopicPartition

from atp.core.errors import ATPError

log = logging.getLogger(__name__)


class ReadError(ATPError):
    """The broker stopped answering before the topic was read to its end."""

    code = "kafka_read"


Chunk = list[ConsumerRecord[bytes, bytes]]


async def read_to_end(
    kafka: Mapping[str, Any],
    topic: str,
    on_total: Callable[[int], None],
    max_records: int = 5000,
    idle_timeout_s: float = 60.0,
) -> AsyncGenerator[Chunk, None]:
    """Every record of `topic` from its beginning to the end it had when reading started,
    in chunks of one partition; `on_total` is told how many records that is before the first.

    The end of each partition is the high watermark of the first fetch response for it.
    Records written after that are left to the running workers.
    """
    consumer = await _started(kafka)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not tps:
            log.warning("topic %s does not exist: nothing to read", topic)
            on_total(0)
            return
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        first = {tp: await consumer.position(tp) for tp in tps}
        ends, early = await _ends(consumer, tps, max_records, idle_timeout_s)
        on_total(sum(max(0, ends[tp] - first[tp]) for tp in tps))

        def within(records: Chunk) -> Chunk:
            tp = TopicPartition(topic, records[0].partition)
            return [r for r in records if r.offset < ends[tp]]

        for records in early:
            if chunk := within(records):
                yield chunk
        pending = set(tps)
        deadline = time.monotonic() + idle_timeout_s
        while True:
            for tp in list(pending):
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
                    consumer.pause(tp)
            if not pending:
                return
            if time.monotonic() > deadline:
                raise ReadError(f"no records from {topic} for {idle_timeout_s:.0f} s")
            batch = await consumer.getmany(*pending, timeout_ms=500, max_records=max_records)
            for records in batch.values():
                deadline = time.monotonic() + idle_timeout_s
                if chunk := within(records):
                    yield chunk
    finally:
        await consumer.stop()


async def _started(kafka: Mapping[str, Any]) -> AIOKafkaConsumer:
    consumer = AIOKafkaConsumer(
        **kafka,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=100,
        max_partition_fetch_bytes=1_048_576,
    )
    try:
        await consumer.start()
    except BaseException:
        await consumer.stop()  # or aiokafka complains about an unclosed consumer
        raise
    # Let aiokafka's background task start before anything can stop the consumer: stopped
    # before its first step, aiokafka 0.14's close() raises CancelledError (seen when the topic
    # does not exist yet and the reader returns at once).
    await asyncio.sleep(0)
    return consumer


async def _ends(
    consumer: AIOKafkaConsumer, tps: list[TopicPartition], max_records: int, idle_timeout_s: float
) -> tuple[dict[TopicPartition, int], list[Chunk]]:
    """The end of each partition (the high watermark of its first fetch response), and the
    records those fetches brought."""
    ends: dict[TopicPartition, int] = {}
    early: list[Chunk] = []
    deadline = time.monotonic() + idle_timeout_s
    while len(ends) < len(tps):
        if time.monotonic() > deadline:
            raise ReadError(f"the broker did not answer fetches for {tps[0].topic}")
        batch = await consumer.getmany(timeout_ms=200, max_records=max_records)
        early += batch.values()
        for tp in tps:
            high = consumer.highwater(tp)
            if high is not None:
                ends.setdefault(tp, high)
    return ends, early
