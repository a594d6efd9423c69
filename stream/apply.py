"""Hop 2: each batch of `stock.movements` folded into the ledger in Redis; then what it changed
(availability and oversell events on `stock.availability`), the reservations its shipments
fulfilled, and the movements too late to place (to `stock.rejected`)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

import orjson
from aiokafka import ConsumerRecord
from opentelemetry import trace

from atp import tracing
from atp.core import webhooks
from atp.core.availability import availability_changes, new_exposures
from atp.core.errors import (
    InvalidTransition,
    ReservationExpired,
    ReservationNotFound,
    StoreUnavailable,
)
from atp.core.ledger import Outcome
from atp.core.movements import Movement
from atp.core.network import Network
from atp.core.sources.common import SCHEMA, TOO_LATE
from atp.store.ledger import BatchResult, StoreConflict
from stream.metrics import WorkerMetrics
from stream.normalise import Sourced
from stream.records import Record, Records, Sink, is_applied, rejected
from stream.retry import Backoff
from stream.traces import hop_span

log = logging.getLogger(__name__)

TOO_LATE_MESSAGE = (
    "older than the retention window and not covered by a newer count; "
    "its effect can no longer be placed safely"
)


class Ledger(Protocol):
    async def apply(self, movements: Sequence[Movement], now_ms: int) -> BatchResult: ...


class Feed(Protocol):
    async def publish(self, changes: Iterable[tuple[str, str]]) -> None: ...


class Reservations(Protocol):
    async def transition(
        self, reservation_id: str, op: str, now_ms: int, ttl_seconds: int | None = None
    ) -> dict[str, Any]: ...


class Applier:
    def __init__(
        self,
        ledger: Ledger,
        reservations: Reservations,
        network: Network,
        sink: Sink,
        *,
        availability_topic: str,
        rejected_topic: str,
        metrics: WorkerMetrics,
        clock: Callable[[], int],
        feed: Feed | None = None,
        cloudevents_source: str | None = None,
    ) -> None:
        self._ledger = ledger
        self._source = cloudevents_source  # ATP_EVENT_FORMAT=cloudevents: wrap each event
        self._feed = feed  # the API's live streams (atp/store/feed.py)
        self._reservations = reservations
        self._network = network
        self._sink = sink
        self._availability = availability_topic
        self._rejected = rejected_topic
        self._metrics = metrics
        self._clock = clock

    async def handle(self, records: Records) -> None:
        """Apply one batch of `stock.movements` and publish what follows from it; returns once
        the ledger has it (the consumer commits the batch once Redis has it on disk:
        stream.acks)."""
        out: list[Record] = []
        batch: list[Sourced] = []
        for record in records:
            if is_applied(record):  # by the one-hop worker that published it (stream.direct)
                continue
            try:
                m = Movement.from_wire(orjson.loads(record.value))  # type: ignore[arg-type]
            except (orjson.JSONDecodeError, KeyError, ValueError, TypeError) as exc:
                out.append(self._reject(record, SCHEMA, f"not a canonical movement: {exc}"))
                continue
            batch.append((m, record))
        if batch:
            out += await self.apply(batch)
        await self._sink.send(out)

    async def apply(self, batch: Sequence[Sourced]) -> list[Record]:
        """Fold the movements into the ledger (retried until Redis has them), use up the holds
        their shipments fulfil, and return the records that follow: change and oversell events,
        and a rejection (of the record it came from) for each movement too late to place."""
        movements = [m for m, _ in batch]
        if tracing.enabled():
            result = await self._apply_traced(batch, movements)
        else:
            result = await self._apply_until_done(movements)
        visible_s = self._clock() / 1000
        for m in movements:  # from the source message reaching Kafka to its count in Redis
            if m.produced_ms is not None:
                self._metrics.freshness.observe(max(0.0, visible_s - m.produced_ms / 1000))
        self._metrics.batch_size.observe(len(movements))
        out, changed = self._events(result)
        if self._feed is not None:
            await self._feed.publish(changed)
        await self._fulfil(result)
        origin = {id(m): record for m, record in batch}
        for m, outcome in result.outcomes:
            self._metrics.outcomes.labels(outcome.value).inc()
            if outcome is Outcome.TOO_LATE:
                message = (
                    f"{TOO_LATE_MESSAGE} (movement {m.event_id} of {m.sku} at {m.location_id})"
                )
                out.append(self._reject(origin[id(m)], TOO_LATE, message))
        return out

    async def _apply_traced(
        self, batch: Sequence[Sourced], movements: list[Movement]
    ) -> BatchResult:
        """As _apply_until_done, with a span per movement whose record carries a trace (its
        SKU, location, event id and outcome); the Redis calls are made under the first."""
        spans = {}
        for m, record in batch:
            span = hop_span("apply movement", record)
            if span is not None:
                span.set_attributes(
                    {"atp.sku": m.sku, "atp.location_id": m.location_id, "atp.event_id": m.event_id}
                )
                spans[id(m)] = span
        first = next(iter(spans.values()), None)
        if first is None:
            return await self._apply_until_done(movements)
        with trace.use_span(first, end_on_exit=False):
            result = await self._apply_until_done(movements)
        for m, outcome in result.outcomes:
            if (span := spans.get(id(m))) is not None:
                span.set_attribute("atp.outcome", outcome.value)
        for span in spans.values():
            span.set_attribute("messaging.batch.message_count", len(batch))
            span.end()
        return result

    async def _apply_until_done(self, batch: Sequence[Movement]) -> BatchResult:
        """Redis trouble stops consumption (nothing is acknowledged) until Redis is back."""
        backoff = Backoff()
        while True:
            started = time.perf_counter()
            try:
                result = await self._ledger.apply(batch, self._clock())
            except (StoreUnavailable, StoreConflict) as exc:
                log.warning(
                    "batch of %d not applied, retrying in %.1fs: %s",
                    len(batch),
                    backoff.delay_s,
                    exc,
                )
                await backoff.wait()
                continue
            self._metrics.apply_seconds.observe(time.perf_counter() - started)
            return result

    def _events(self, result: BatchResult) -> tuple[list[Record], list[tuple[str, str]]]:
        """At most one change event per SKU and channel per batch, only real changes; and an
        event for every location whose oversell exposure appeared or grew. Also the (SKU,
        channel) pairs that changed."""
        at = self._clock()
        records = []
        changed = []
        for change in result.changes:
            future = (change.future_before, change.future_after)
            for c in availability_changes(
                self._network, change.sku, change.before, change.after, future, at
            ):
                self._metrics.availability_events.labels(c.channel).inc()
                changed.append((c.sku, c.channel))
                value = self._value(c.to_event(at), webhooks.CHANGED, c.sku, at)
                records.append(Record(self._availability, c.sku.encode(), value))
            for x in new_exposures(self._network, change.sku, change.before, change.after):
                # Stock lost after it was promised: someone must find the units or call.
                self._metrics.oversell_exposures.inc()
                log.warning(
                    "oversell exposure: %s at %s is short %d", x.sku, x.location_id, x.units
                )
                value = self._value(x.to_event(at), webhooks.EXPOSURE, x.sku, at)
                records.append(Record(self._availability, x.sku.encode(), value))
        return records, changed

    def _value(self, event: dict[str, object], event_type: str, sku: str, at: int) -> bytes:
        if self._source is not None:
            return orjson.dumps(webhooks.topic_value(event, event_type, sku, self._source, at))
        return orjson.dumps(event)

    async def _fulfil(self, result: BatchResult) -> None:
        """Close reservations whose holds shipments used up; report shipments nobody held for."""
        for rid, sku, loc in result.unmatched:
            self._metrics.fulfilment_unmatched.inc()
            log.warning("shipment of %s at %s names %r, which holds nothing there", sku, loc, rid)
        for rid in dict.fromkeys(r for r, _, _ in result.consumed):
            self._metrics.fulfilment_consumed.inc()
            try:
                await self._reservations.transition(rid, "fulfil", self._clock())
            except (ReservationNotFound, InvalidTransition, ReservationExpired):
                pass  # closed meanwhile; the hold it had is used up all the same
            except StoreUnavailable as exc:
                log.warning("reservation %s not marked fulfilled yet: %s", rid, exc)

    def _reject(self, record: ConsumerRecord[bytes, bytes], reason: str, message: str) -> Record:
        self._metrics.rejected.labels(reason).inc()
        return rejected(self._rejected, record, reason, message, self._clock())
