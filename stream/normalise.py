"""Hop 1: source messages (the three source topics) to canonical movements on `stock.movements`,
keyed by SKU, and what cannot be used to `stock.rejected` with its reason."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import replace

import orjson
from aiokafka import ConsumerRecord

from atp import tracing
from atp.core.errors import InvalidMovement
from atp.core.movements import Movement
from atp.core.network import Network
from atp.core.sources import Adapter
from atp.core.sources.common import ADAPTER_ERROR
from stream.metrics import WorkerMetrics
from stream.records import APPLIED, Record, Records, Sink, rejected
from stream.traces import end, hop_span

log = logging.getLogger(__name__)


# A movement and the consumed record it came from (a source message, or a stock.movements record).
Sourced = tuple[Movement, ConsumerRecord[bytes, bytes]]


class Normaliser:
    def __init__(
        self,
        adapters: Mapping[str, Adapter],
        network: Network,
        sink: Sink,
        *,
        movements_topic: str,
        rejected_topic: str,
        metrics: WorkerMetrics,
        clock: Callable[[], int],
    ) -> None:
        """`adapters` by source topic name."""
        self._adapters = adapters
        self._network = network
        self._sink = sink
        self._movements = movements_topic
        self._rejected = rejected_topic
        self._metrics = metrics
        self._clock = clock

    async def handle(self, records: Records) -> None:
        """One batch: its movements and rejections, published; returns once the broker has all
        of them (the consumer then commits the batch)."""
        _, out = self.convert(records)
        await self._sink.send(out)

    def convert(
        self, records: Records, *, applied: bool = False
    ) -> tuple[list[Sourced], list[Record]]:
        """The batch's movements, each with the source record it came from, and the records to
        publish: every movement for `stock.movements` and every rejection, in batch order.
        `applied`: the caller applies the movements itself (stream.direct); their records say
        so, and the ledger hop skips them."""
        headers = APPLIED if applied else ()
        network = self._network
        movements: list[Sourced] = []
        out: list[Record] = []
        traced = tracing.enabled()
        for record in records:
            span = hop_span(f"normalise {record.topic}", record) if traced else None
            adapter = self._adapters[record.topic]
            try:
                converted = adapter(record.value, network)  # type: ignore[arg-type]
            except InvalidMovement as err:
                out.append(self._reject(record, err.code, err.message))
                end(span, "atp.rejected", err.code)
                continue
            except Exception as exc:  # an adapter bug must not stop the stream
                log.exception("adapter for %s failed on offset %s", record.topic, record.offset)
                out.append(self._reject(record, ADAPTER_ERROR, f"could not be read: {exc!r}"[:300]))
                end(span, "atp.rejected", ADAPTER_ERROR)
                continue
            # The source message's Kafka timestamp, epoch ms: in the movement (freshness
            # metrics) and as the movement record's own, so that the ledger hop's progress
            # (`behind_ms`) is measured from when the source message arrived.
            produced = int(record.timestamp)
            carried = headers
            if span is not None:
                end(span, "atp.movements", len(converted))
                carried = headers + tracing.headers_of(span)
            for m in converted:
                m = replace(m, produced_ms=produced)
                self._metrics.movements.labels(m.source, m.kind).inc()
                movements.append((m, record))
                value = orjson.dumps(m.to_wire())
                out.append(Record(self._movements, m.sku.encode(), value, produced, carried))
        return movements, out

    def _reject(self, record: ConsumerRecord[bytes, bytes], reason: str, message: str) -> Record:
        self._metrics.rejected.labels(reason).inc()
        return rejected(self._rejected, record, reason, message, self._clock())
