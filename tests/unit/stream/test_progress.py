"""A hop's progress per partition, from what its consumer knows (high watermark, last fetch)."""

from __future__ import annotations

import asyncio

from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from atp.core.freshness import PartitionProgress
from stream.consumer import BatchConsumer

NOW = 1_790_000_000_000
TP0, TP1, TP2 = (TopicPartition("stock.movements", n) for n in range(3))


class FetchedConsumer:
    """What `progress()` asks of an AIOKafkaConsumer: assignment, highwater, last fetch and
    the committed offset."""

    def __init__(self, highwater: dict[TopicPartition, int | None]) -> None:
        self._highwater = highwater

    def assignment(self) -> set[TopicPartition]:
        return set(self._highwater)

    def highwater(self, tp: TopicPartition) -> int | None:
        return self._highwater[tp]

    async def committed(self, tp: TopicPartition) -> int | None:
        return None  # the group has committed nothing yet

    def last_poll_timestamp(self, tp: TopicPartition) -> int | None:
        return None if self._highwater[tp] is None else NOW - 200


def hop() -> BatchConsumer:
    async def handle(records: object) -> None:
        return None

    return BatchConsumer(
        ["stock.movements"],
        kafka={"bootstrap_servers": "127.0.0.1:9"},
        group_id="atp-ledger",
        client_id="atp-ledger",
        handle=handle,
        session_timeout_s=6,
        fetch_max_wait_ms=100,
        max_poll_records=10,
        max_partition_fetch_bytes=1024,
        batch_max=10,
        batch_wait_s=0.01,
    )


def record(tp: TopicPartition, offset: int, ts: int) -> ConsumerRecord:
    return ConsumerRecord(tp.topic, tp.partition, offset, ts, 0, b"k", b"v", None, 1, 1, ())


def test_read_to_the_end_is_caught_up_as_of_the_last_fetch_and_behind_is_its_newest_record():
    consumer = hop()
    consumer._consumer = FetchedConsumer({TP0: 10, TP1: 500, TP2: None})  # type: ignore[assignment]
    asyncio.run(consumer._assigned({TP0, TP1, TP2}))  # committed: 0 (nothing committed yet)
    consumer._note_handled([record(TP0, o, NOW - 1_000 + o) for o in range(10)])
    consumer._note_handled([record(TP1, 0, NOW - 60_000), record(TP1, 1, NOW - 59_000)])
    assert consumer.progress() == {
        "atp-ledger/stock.movements/0": PartitionProgress(NOW - 200, caught_up=True),
        "atp-ledger/stock.movements/1": PartitionProgress(NOW - 59_000, caught_up=False),
    }  # partition 2: no fetch response yet


def test_a_partition_with_a_backlog_and_nothing_handled_yet_is_left_out():
    consumer = hop()
    consumer._consumer = FetchedConsumer({TP0: 0, TP1: 7})  # type: ignore[assignment]
    asyncio.run(consumer._assigned({TP0, TP1}))
    assert consumer.progress() == {
        "atp-ledger/stock.movements/0": PartitionProgress(NOW - 200, caught_up=True)
    }
    asyncio.run(consumer._revoked({TP0, TP1}))
    consumer._note_handled([record(TP1, 3, NOW - 5)])
    assert consumer.progress()["atp-ledger/stock.movements/1"].caught_up is False
