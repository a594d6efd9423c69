"""Publish many records at once and return only when the broker has every one of them.

faust's `topic.send` costs a coroutine chain, a future and sensor calls per record; the
normaliser sends one or more movements per source message, and that per-record cost made the
forwarding hop the worker's bottleneck (benchmarks/README.md). `Forwarder` owns a plain aiokafka
producer and hands it whole record batches instead: records are grouped per topic partition into
`BatchBuilder`s (`create_batch`/`send_batch`), and `send` returns once every batch is
acknowledged.

- Partitions are chosen exactly as faust's producer (aiokafka's default partitioner) chooses
  them for a keyed record: murmur2 of the key over the topic's partitions. So a SKU's movements
  land on the same partition of `stock.movements`, whichever producer sent them.
- `acks="all"`: a batch counts as delivered only once every in-sync replica has it. On the
  embedded single-node Tansu that costs nothing over `acks=1` (measured); on a replicated Kafka
  it is what makes "the broker has the movements" survive the loss of a leader, and the caller
  acknowledges (commits) the source events right after. No `enable_idempotence`: Tansu has no
  idempotent producer (DESIGN.md); a retried batch may be stored twice, which the ledger's event
  ids make harmless.
- A batch that fails is sent again after a backoff until it succeeds: like Redis trouble in the
  ledger agent, broker trouble stops the agent (nothing is acknowledged) instead of losing data.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, ProducerClosed
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder

from stream.records import Record
from stream.retry import Backoff

log = logging.getLogger(__name__)


class Forwarder:
    def __init__(
        self,
        kafka: Mapping[str, Any],
        *,
        client_id: str,
        linger_ms: int = 0,
        max_batch_bytes: int = 16384,
        request_timeout_ms: int = 40_000,
    ) -> None:
        # aiokafka wants its producer created inside the event loop: see `start`.
        self._config = dict(
            **kafka,
            client_id=client_id,
            acks="all",
            enable_idempotence=False,
            linger_ms=linger_ms,
            max_batch_size=max_batch_bytes,
            max_request_size=max(1_048_576, max_batch_bytes),
            request_timeout_ms=request_timeout_ms,
        )
        self._producer: AIOKafkaProducer | None = None
        self._partitioner = DefaultPartitioner()
        # (topic, key) -> partition, for the current partition count of the topic; murmur2 is
        # pure Python, and the same SKUs come back again and again.
        self._partition_cache: dict[tuple[str, bytes], tuple[int, int]] = {}
        self._lock = asyncio.Lock()
        self._stopped = False

    async def start(self) -> AIOKafkaProducer:
        """Start the producer (once; `send` calls this)."""
        async with self._lock:
            if self._stopped:
                raise ProducerClosed()
            if self._producer is None:
                producer = AIOKafkaProducer(**self._config)
                try:
                    await producer.start()
                except BaseException:
                    await producer.stop()
                    raise
                self._producer = producer
            return self._producer

    async def stop(self) -> None:
        """Deliver what is queued, then close; later `send`s raise `ProducerClosed`."""
        async with self._lock:
            self._stopped = True
            if self._producer is not None:
                await self._producer.stop()

    async def send(self, records: Iterable[Record]) -> None:
        """Publish every record; return once the broker has acknowledged all of them.

        Records of one partition are sent in order. A batch that fails is sent again (with
        everything else that failed) after a backoff, until the broker takes it; the ledger does
        not depend on the order of movements.
        """
        pending = list(records)
        backoff = Backoff()
        while pending:
            try:
                producer = self._producer or await self.start()
            except ProducerClosed:
                raise
            except KafkaError as exc:
                log.warning("producer not started, trying again in %.1fs: %r", backoff.delay_s, exc)
            else:
                pending = await self._send_once(producer, pending)
                if not pending:
                    return
                log.warning(
                    "%d records not acknowledged, sending again in %.1fs",
                    len(pending),
                    backoff.delay_s,
                )
            await backoff.wait()

    async def _send_once(self, producer: AIOKafkaProducer, records: list[Record]) -> list[Record]:
        """Send the records in per-partition batches; return the records that failed."""
        open_batches: dict[tuple[str, int], tuple[BatchBuilder, list[Record]]] = {}
        submitted: list[tuple[asyncio.Future[object], list[Record]]] = []
        failed: list[Record] = []

        async def submit(topic: str, partition: int, batch: BatchBuilder, recs: list[Record]):
            try:
                fut = await producer.send_batch(batch, topic, partition=partition)
            except ProducerClosed:
                raise
            except KafkaError as exc:
                log.warning("batch of %d for %s/%d refused: %r", len(recs), topic, partition, exc)
                failed.extend(recs)
            else:
                submitted.append((fut, recs))

        partitions = {
            t: sorted(await producer.partitions_for(t)) for t in {r.topic for r in records}
        }
        for rec in records:
            tp = (rec.topic, self._partition(rec.topic, rec.key, partitions[rec.topic]))
            entry = open_batches.get(tp)
            if entry is None:
                entry = open_batches[tp] = (producer.create_batch(), [])
            if _append(entry[0], rec) is None:
                # Full: hand it over and start the next one (an empty batch takes any record).
                await submit(*tp, *entry)
                entry = open_batches[tp] = (producer.create_batch(), [])
                if _append(entry[0], rec) is None:
                    raise RuntimeError("an empty aiokafka batch refused a record")  # never drop
            entry[1].append(rec)
        for tp, entry in open_batches.items():
            await submit(*tp, *entry)

        results = await asyncio.gather(*(fut for fut, _ in submitted), return_exceptions=True)
        for (_, recs), result in zip(submitted, results, strict=True):
            if isinstance(result, ProducerClosed):
                raise result
            if isinstance(result, BaseException):
                log.warning("batch of %d not delivered: %r", len(recs), result)
                failed.extend(recs)
        return failed

    def _partition(self, topic: str, key: bytes | None, ids: list[int]) -> int:
        # What aiokafka's `send` (and so faust's producer) does for a record without an explicit
        # partition: the default partitioner over the topic's partitions (sorted by id).
        if key is None:
            return self._partitioner(None, ids, ids)
        cached = self._partition_cache.get((topic, key))
        if cached is not None and cached[0] == len(ids):
            return cached[1]
        partition = self._partitioner(key, ids, ids)
        if len(self._partition_cache) >= 100_000:
            self._partition_cache.clear()
        self._partition_cache[(topic, key)] = (len(ids), partition)
        return partition


def _append(batch: BatchBuilder, rec: Record) -> object:
    """Add a record to an aiokafka batch; None when the batch is full."""
    return batch.append(
        timestamp=rec.timestamp_ms, key=rec.key, value=rec.value, headers=list(rec.headers)
    )
