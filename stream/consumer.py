"""Consume a topic in batches straight through aiokafka, below faust's per-event machinery.

faust hands every record to an agent as an event: a coroutine chain, futures, sensor calls and
an acknowledgement per record, about 100 µs each on the development machine, which was most of
the worker's CPU (benchmarks/README.md). `BatchConsumer` owns a plain `AIOKafkaConsumer` in a
consumer group of its own, takes whatever the fetcher has with `getmany`, gives the whole batch
to a handler, and then commits exactly the offsets of that batch:

- Commits are manual (`enable_auto_commit=False`) and come only after the handler says the
  batch's effect is safe: through a `DurableAcker` for the ledger (Redis has fsynced the state),
  or right after the handler returned for hops whose handler returns only once the broker has
  what they produced. A worker killed at any point resumes from a position that is never ahead
  of what is safe; what it sees again is harmless (the ledger skips applied event ids).
- Rebalances: when partitions are revoked, the batch in flight is finished and everything
  written is committed first (bounded by the session timeout). A commit that fails anyway
  (the group moved on: `CommitFailedError`, or the partition is no longer ours) is logged and
  dropped: the new owner reads those records again from the last committed offset, and the
  ledger is idempotent, so they are applied once.
- Fetches wait at most `ATP_FETCH_MAX_WAIT_MS` at the broker; each `getmany` takes at most
  `ATP_MAX_POLL_RECORDS`, and a batch gathers up to `ATP_BATCH_MAX` records, waiting up to
  `ATP_BATCH_WAIT_S` after its first record to fill (as faust's `take` did).
- Lag (`atp_consumer_lag`) per assigned partition: the high watermark aiokafka took from the
  last fetch response (`highwater()`; not ListOffsets, which Tansu answers wrongly for
  multi-record batches, DESIGN.md) minus the group's committed offset, which is read when the
  partition is assigned and then follows this consumer's own commits.
- Progress (`progress()`, for the API's `behind_ms`, atp/core/freshness.py): per assigned
  partition, the broker timestamp of the newest record handled and whether the hop has read
  to the high watermark.
- A handler that raises (a bug: Redis and broker trouble are retried inside) does not lose the
  batch: the consumer seeks back to its first records and tries again after a backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from atp.core.freshness import PartitionProgress
from atp.kafka.security import client_options
from atp.settings import Settings
from stream.acks import DurableAcker, Offsets
from stream.records import Records
from stream.retry import Backoff

log = logging.getLogger(__name__)

# Handles one batch; returns once its effect is written (the acker then decides when to commit).
Handler = Callable[[Records], Awaitable[None]]


class BatchConsumer:
    def __init__(
        self,
        topics: Sequence[str],
        *,
        kafka: Mapping[str, Any],
        group_id: str,
        client_id: str,
        handle: Handler,
        session_timeout_s: float,
        fetch_max_wait_ms: int,
        max_poll_records: int,
        max_partition_fetch_bytes: int,
        batch_max: int,
        batch_wait_s: float,
        make_acker: Callable[[Callable[[Offsets], Awaitable[None]]], DurableAcker] | None = None,
    ) -> None:
        self.topics = list(topics)
        self.group_id = group_id
        self._handle = handle
        self._batch_max = batch_max
        self._batch_wait_s = batch_wait_s
        self._max_poll = max_poll_records
        self._session_timeout_s = session_timeout_s
        self._config: dict[str, Any] = dict(
            **kafka,
            group_id=group_id,
            client_id=client_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=int(session_timeout_s * 1000),
            heartbeat_interval_ms=int(max(0.5, session_timeout_s / 10) * 1000),
            fetch_max_wait_ms=fetch_max_wait_ms,
            max_poll_records=max_poll_records,
            max_partition_fetch_bytes=max_partition_fetch_bytes,
        )
        self._acker = make_acker(self._commit) if make_acker is not None else None
        self._consumer: AIOKafkaConsumer | None = None
        self._committed: dict[TopicPartition, int] = {}  # for the lag: the group's position
        self._handled: dict[TopicPartition, tuple[int, int]] = {}  # next offset, newest timestamp
        self._in_flight = asyncio.Lock()  # held while a batch is handled and handed over
        self._stopping = False
        self._stopped = asyncio.Event()

    @classmethod
    def for_hop(
        cls,
        settings: Settings,
        topics: Sequence[str],
        hop: str,
        handle: Handler,
        make_acker: Callable[[Callable[[Offsets], Awaitable[None]]], DurableAcker] | None = None,
    ) -> BatchConsumer:
        """One hop's consumer, in the group (and with the client id) `<ATP_GROUP_ID>-<hop>`."""
        return cls(
            topics,
            kafka=client_options(settings),
            group_id=f"{settings.group_id}-{hop}",
            client_id=f"{settings.group_id}-{hop}",
            handle=handle,
            session_timeout_s=settings.session_timeout_s,
            fetch_max_wait_ms=settings.fetch_max_wait_ms,
            max_poll_records=settings.max_poll_records,
            max_partition_fetch_bytes=settings.max_partition_fetch_bytes,
            batch_max=settings.batch_max,
            batch_wait_s=settings.batch_wait_s,
            make_acker=make_acker,
        )

    # ---------------------------------------------------------------------------------------
    async def run(self) -> None:
        """Consume until `stop()`; returns after the consumer left its group."""
        if self._acker is not None:
            await self._acker.start()
        consumer = AIOKafkaConsumer(**self._config)
        consumer.subscribe(self.topics, listener=_Listener(self))
        self._consumer = consumer
        try:
            await self._start(consumer)
            backoff = Backoff()
            while not self._stopping:
                records = await self._take(consumer)
                if self._stopping:
                    break  # not handled, not committed: read again after the restart
                if not records:
                    continue
                async with self._in_flight:
                    try:
                        await self._handle(records)
                    except Exception:
                        log.exception(
                            "a batch of %d from %s failed; reading it again in %.1fs",
                            len(records),
                            self.group_id,
                            backoff.delay_s,
                        )
                        self._rewind(consumer, records)
                        await backoff.wait()
                        continue
                    backoff.reset()
                    self._note_handled(records)
                    await self._written(_next_offsets(records))
        finally:
            try:
                if self._stopping:  # commit what is durable (bounded: Redis or broker may hang)
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self._session_timeout_s):
                            await self._flush()
            finally:
                self._consumer = None
            try:
                await consumer.stop()  # leaves the group: its partitions move at once
            finally:
                if self._acker is not None:
                    await self._acker.stop()
                self._stopped.set()

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Finish the batch in flight, commit what is safe, leave the group."""
        self._stopping = True
        if self._consumer is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopped.wait(), timeout_s)

    def lag(self) -> Iterator[tuple[str, int, int]]:
        """(topic, partition, high watermark - committed offset) per assigned partition."""
        consumer = self._consumer
        if consumer is None:
            return
        try:
            for tp in sorted(consumer.assignment()):
                highwater = consumer.highwater(tp)
                if highwater is None:  # no fetch response for it yet
                    continue
                yield tp.topic, tp.partition, max(0, highwater - self._committed.get(tp, 0))
        except (IllegalStateError, KafkaError) as exc:  # between assignments
            log.debug("consumer lag not available: %r", exc)

    def progress(self) -> dict[str, PartitionProgress]:
        """How far this hop has got on each assigned partition, by "<group>/<topic>/<n>":
        read to the end as of the last fetch response, or up to its newest handled record.
        A partition with records left and none handled yet is left out (its time is unknown)."""
        consumer = self._consumer
        out: dict[str, PartitionProgress] = {}
        if consumer is None:
            return out
        try:
            for tp in consumer.assignment():
                highwater = consumer.highwater(tp)
                fetched_ms = consumer.last_poll_timestamp(tp)
                if highwater is None or fetched_ms is None:  # no fetch response for it yet
                    continue
                position, newest = self._handled.get(tp, (self._committed.get(tp, 0), None))
                if position >= highwater:
                    progress = PartitionProgress(fetched_ms, caught_up=True)
                elif newest is not None:
                    progress = PartitionProgress(newest, caught_up=False)
                else:
                    continue
                out[f"{self.group_id}/{tp.topic}/{tp.partition}"] = progress
        except (IllegalStateError, KafkaError, AssertionError) as exc:  # between assignments
            log.debug("progress not available: %r", exc)
        return out

    def _note_handled(self, records: Records) -> None:
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            position, newest = self._handled.get(tp, (0, 0))
            self._handled[tp] = (max(position, r.offset + 1), max(newest, r.timestamp))

    # ---------------------------------------------------------------------------------------
    async def _start(self, consumer: AIOKafkaConsumer) -> None:
        backoff = Backoff(first_s=0.5)
        while True:
            try:
                await consumer.start()
                return
            except KafkaError as exc:
                log.warning(
                    "%s: consumer not started, retrying in %.1fs: %r",
                    self.group_id,
                    backoff.delay_s,
                    exc,
                )
                await backoff.wait()

    async def _take(self, consumer: AIOKafkaConsumer) -> Records:
        """Up to `batch_max` records: what the first `getmany` brings, and more for up to
        `batch_wait_s` while the batch is not full."""
        records: Records = []
        deadline = 0.0
        while len(records) < self._batch_max and not self._stopping:
            if records:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                timeout_ms = max(1, int(left * 1000))
            else:
                timeout_ms = 1000
            got = await consumer.getmany(
                timeout_ms=timeout_ms,
                max_records=min(self._max_poll, self._batch_max - len(records)),
            )
            if not records and got:
                deadline = time.monotonic() + self._batch_wait_s
            for batch in got.values():
                records.extend(batch)
            if not records:
                return records
        return records

    def _rewind(self, consumer: AIOKafkaConsumer, records: Records) -> None:
        first: dict[TopicPartition, int] = {}
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            first[tp] = min(first.get(tp, r.offset), r.offset)
        assigned = consumer.assignment()
        for tp, offset in first.items():
            if tp in assigned:
                consumer.seek(tp, offset)

    async def _written(self, offsets: Offsets) -> None:
        if self._acker is not None:
            await self._acker.written(offsets)
        else:
            await self._commit(offsets)

    async def _flush(self) -> None:
        if self._acker is not None:
            await self._acker.flush()

    async def _commit(self, offsets: Offsets) -> None:
        """Commit these offsets where the partition is still ours. If the group moved on, the
        new owner reads from the last committed offset again; the ledger skips what it has."""
        consumer = self._consumer
        if consumer is None:
            return
        mine = consumer.assignment()
        offsets = {tp: o for tp, o in offsets.items() if tp in mine}
        if not offsets:
            return
        try:
            await consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            log.warning(
                "%s: offsets not committed after a rebalance (the new owner reads those records "
                "again; applying them again changes nothing): %r",
                self.group_id,
                exc,
            )
            return
        except KafkaError as exc:
            log.warning("%s: offsets not committed (read again later): %r", self.group_id, exc)
            return
        for tp, o in offsets.items():
            if o > self._committed.get(tp, -1):
                self._committed[tp] = o

    async def _assigned(self, assigned: set[TopicPartition]) -> None:
        consumer = self._consumer
        for tp in assigned:
            committed = None
            if consumer is not None:
                try:
                    committed = await consumer.committed(tp)
                except KafkaError as exc:
                    log.debug("committed offset of %s not read: %r", tp, exc)
            self._committed[tp] = committed or 0
        log.info("%s: assigned %s", self.group_id, sorted(assigned))

    async def _revoked(self, revoked: set[TopicPartition]) -> None:
        # Hand over cleanly: finish the batch in flight and commit what is durable, so the
        # next owner starts where this one stopped. Bounded: a stuck broker or Redis must not
        # hold the rebalance; what is not committed is read again by the next owner.
        try:
            async with asyncio.timeout(self._session_timeout_s):
                async with self._in_flight:
                    await self._flush()
        except TimeoutError:
            log.warning("%s: revoked before its last batch was committed", self.group_id)
        for tp in revoked:
            self._committed.pop(tp, None)
            self._handled.pop(tp, None)


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: BatchConsumer) -> None:
        self._owner = owner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._owner._revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self._owner._assigned(set(assigned))


def _next_offsets(records: Records) -> Offsets:
    """Per partition, the offset after the batch's last record: what to commit."""
    out: Offsets = {}
    for r in records:
        tp = TopicPartition(r.topic, r.partition)
        if r.offset + 1 > out.get(tp, -1):
            out[tp] = r.offset + 1
    return out
