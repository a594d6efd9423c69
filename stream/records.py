"""What the worker's hops take and give: Kafka records in, records to publish out."""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple, Protocol

from aiokafka import ConsumerRecord

from atp.kafka.rejected import rejection

Records = list[ConsumerRecord[bytes, bytes]]


Headers = tuple[tuple[str, bytes], ...]

# The header a one-hop worker (stream.direct) puts on the movements it has applied itself: the
# ledger hop skips them (it applies only what a two-hop normaliser published).
APPLIED: Headers = (("atp-applied", b"1"),)


class Record(NamedTuple):
    """A record to publish; without `timestamp_ms` the producer stamps it with its own clock."""

    topic: str
    key: bytes | None
    value: bytes
    timestamp_ms: int | None = None
    headers: Headers = ()


def is_applied(record: ConsumerRecord[bytes, bytes]) -> bool:
    """Whether a `stock.movements` record was applied by the worker that published it."""
    return any(h == APPLIED[0] for h in record.headers)


class Sink(Protocol):
    """Publishes records and returns once the broker has all of them (stream.forward)."""

    async def send(self, records: Iterable[Record]) -> None: ...


def rejected(
    topic: str, record: ConsumerRecord[bytes, bytes], reason: str, message: str, now_ms: int
) -> Record:
    """The `stock.rejected` record for a consumed record that cannot be used."""
    value = rejection(
        raw=record.value,
        key=record.key,
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        reason=reason,
        message=message,
        now_ms=now_ms,
    )
    return Record(topic, record.key, value)
