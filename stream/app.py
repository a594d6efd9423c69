"""The worker: a faust app running two batch consumers, the normaliser and the ledger.

    source topics --normalise--> stock.movements (keyed by SKU) --apply--> Redis
                     \\--> stock.rejected (unusable input, with its reason)

Both hops consume below faust's per-event machinery, which was most of the worker's CPU and,
on the normaliser hop, the tail of its freshness (benchmarks/README.md): each is a
`stream.batch.BatchConsumer`, a plain aiokafka consumer in a group of its own, run as a faust
task. The normaliser (group `<ATP_GROUP_ID>-normalise`) turns each `getmany` batch of the three
source topics into canonical movements and rejections and commits once the broker has all of
them. The ledger (group `<ATP_GROUP_ID>-ledger`) folds each batch of `stock.movements` with the
`LedgerStore` and commits its offsets once Redis has the state durably (`stream.acks`).
Delivery is at least once; the ledger makes replays harmless. faust still runs the process:
its web server (`/metrics`), the timers and the tasks.

Records both hops produce go through one `stream.forward.Forwarder` per worker, a whole batch at
a time, rather than faust's per-record `topic.send`; and every consumer fetches with a short wait
(`ATP_FETCH_MAX_WAIT_MS`), so movements reach the ledger soon after they are written.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import faust
import orjson
from prometheus_client import CollectorRegistry, generate_latest

from atp.core.availability import (
    availability_changes,
    channel_statuses,
    new_exposures,
)
from atp.core.errors import (
    InvalidMovement,
    InvalidTransition,
    ReservationExpired,
    ReservationNotFound,
    StoreUnavailable,
)
from atp.core.ledger import Outcome, Policy
from atp.core.movements import Movement
from atp.core.network import Network
from atp.core.sources import ADAPTERS, Adapter
from atp.core.sources.common import SCHEMA, TOO_LATE
from atp.kafka import topics
from atp.kafka.rejected import rejection
from atp.settings import Settings
from atp.store.client import client_from_url
from atp.store.ledger import BatchResult, LedgerStore, StoreConflict
from atp.store.reservations import ReservationStore
from stream.acks import DurableAcker, Offsets
from stream.batch import BatchConsumer, Handler, Records
from stream.fetch import use_fetch_wait
from stream.forward import Forwarder, Record
from stream.metrics import ConsumerLag, WorkerMetrics
from stream.relay import OutboxRelay

log = logging.getLogger(__name__)

HOUR_MS = 3600 * 1000
ADAPTER_ERROR = "adapter_error"  # an adapter raised something other than InvalidMovement: a bug


def wire(m: Movement, produced_ms: int | float | None) -> dict[str, object]:
    out = m.to_wire()
    out["produced_ms"] = None if produced_ms is None else int(produced_ms)
    return out


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def batch_consumer(
    settings: Settings,
    topic_names: list[str],
    hop: str,
    handle: Handler,
    make_acker: Callable[[Callable[[Offsets], Awaitable[None]]], DurableAcker] | None = None,
) -> BatchConsumer:
    """One hop's consumer, in the group (and with the client id) `<ATP_GROUP_ID>-<hop>`."""
    return BatchConsumer(
        topic_names,
        bootstrap=settings.kafka_bootstrap,
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


def create_app(
    settings: Settings, network: Network, registry: CollectorRegistry | None = None
) -> faust.App:
    registry = registry if registry is not None else CollectorRegistry()
    metrics = WorkerMetrics.create(registry)
    app = faust.App(
        settings.group_id,
        broker=[f"kafka://{hp}" for hp in settings.kafka_bootstrap.split(",")],
        value_serializer="raw",
        key_serializer="raw",
        store="memory://",
        datadir=str(settings.data_dir / "worker"),
        web_enabled=True,
        web_bind=settings.worker_web_host,
        web_host=settings.worker_web_host,
        web_port=settings.worker_web_port,
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=max(0.5, settings.session_timeout_s / 10),
        consumer_auto_offset_reset="earliest",
        topic_partitions=settings.partitions,
        topic_replication_factor=1,
        # Tansu has no idempotent or transactional producer (DESIGN.md): at-least-once it is.
        processing_guarantee="at_least_once",
        broker_max_poll_records=settings.max_poll_records,
        consumer_max_fetch_size=settings.max_partition_fetch_bytes,
    )
    use_fetch_wait(app, settings.fetch_max_wait_ms)
    movements_name = settings.topic(topics.MOVEMENTS)
    rejected_name = settings.topic(topics.REJECTED)
    forwarder = Forwarder(
        settings.kafka_bootstrap,
        client_id=f"{settings.group_id}-forward",
        max_batch_bytes=settings.forward_batch_bytes,
    )

    @app.on_before_shutdown.connect
    async def stop_forwarder(app: faust.App, **kwargs: Any) -> None:
        # Sent after faust's consumer stopped and its streams drained, where faust flushes its
        # own producer. The normaliser finishes its batch (the forwarder still runs), commits
        # and leaves its group; the ledger's consumer does the same with what is durable; then
        # what is queued is delivered.
        await normaliser.stop()
        await ledger.stop()
        await forwarder.stop()

    redis = client_from_url(settings.redis_url)
    policy = Policy(
        retention_ms=int(settings.retention_hours * HOUR_MS),
        inbound_grace_ms=int(settings.inbound_grace_hours * HOUR_MS),
    )

    store = LedgerStore(redis, policy, statuses=channel_statuses(network))
    availability_name = settings.topic(topics.AVAILABILITY)
    reservations = ReservationStore(redis, int(settings.reservation_replay_hours * HOUR_MS))
    relay = OutboxRelay(redis, forwarder, settings.topic(topics.RESERVATIONS))

    @app.task
    async def relay_outbox() -> None:
        """Reservation changes from the Redis outbox to stock.reservations (see stream.relay)."""
        await relay.run()

    def reject(msg: Any, reason: str, message: str) -> Record:
        """The `stock.rejected` record for a Kafka message (a faust event's `message` or an
        aiokafka `ConsumerRecord`), sent with the batch's other records."""
        metrics.rejected.labels(reason).inc()
        return Record(
            rejected_name,
            msg.key,
            rejection(
                raw=msg.value,
                key=msg.key,
                topic=msg.topic,
                partition=msg.partition,
                offset=msg.offset,
                reason=reason,
                message=message,
                now_ms=now_ms(),
            ),
        )

    adapters = {settings.topic(t): ADAPTERS[contract] for t, contract in topics.SOURCES.items()}

    async def normalise(records: Records) -> None:
        """One batch from the source topics: canonical movements to `stock.movements`, the
        unusable to `stock.rejected`. Returns once the broker has all of them; the batch
        consumer then commits the batch."""
        out: list[Record] = []
        for record in records:
            adapter: Adapter = adapters[record.topic]
            produced = record.timestamp  # the source message's Kafka timestamp, epoch ms
            try:
                movements = adapter(record.value, network)  # type: ignore[arg-type]
            except InvalidMovement as err:
                out.append(reject(record, err.code, err.message))
                continue
            except Exception as exc:  # an adapter bug must not stop the stream
                log.exception("adapter for %s failed on offset %s", record.topic, record.offset)
                out.append(reject(record, ADAPTER_ERROR, f"could not be read: {exc!r}"[:300]))
                continue
            for m in movements:
                metrics.movements.labels(m.source, m.kind).inc()
                out.append(Record(movements_name, m.sku.encode(), orjson.dumps(wire(m, produced))))
        await forwarder.send(out)

    normaliser = batch_consumer(settings, list(adapters), "normalise", normalise)

    @app.task
    async def normalise_sources() -> None:
        """The source topics -> stock.movements, in batches below faust's per-event machinery."""
        await normaliser.run()

    async def apply(records: Records) -> None:
        """One batch of `stock.movements`: fold it into the ledger in Redis, publish what it
        changed and what was refused; the batch consumer commits it once Redis has it on disk."""
        out: list[Record] = []
        batch: list[Movement] = []
        origin: dict[int, Any] = {}
        for record in records:
            try:
                m = Movement.from_wire(orjson.loads(record.value))  # type: ignore[arg-type]
            except (orjson.JSONDecodeError, KeyError, ValueError, TypeError) as exc:
                out.append(reject(record, SCHEMA, f"not a canonical movement: {exc}"))
                continue
            origin[id(m)] = record
            batch.append(m)
        result = await _apply_until_done(store, batch)
        visible = time.time()
        for m in batch:  # from the source message reaching Kafka to its count in Redis
            if m.produced_ms is not None:
                metrics.freshness.observe(max(0.0, visible - m.produced_ms / 1000))
        metrics.batch_size.observe(len(batch))
        out += availability_events(result)
        await fulfil(result)
        for m, outcome in result.outcomes:
            metrics.outcomes.labels(outcome.value).inc()
            if outcome is Outcome.TOO_LATE:
                out.append(
                    reject(
                        origin[id(m)],
                        TOO_LATE,
                        "older than the retention window and not covered by a newer count; "
                        "its effect can no longer be placed safely",
                    )
                )
        await forwarder.send(out)

    ledger = batch_consumer(
        settings,
        [movements_name],
        "ledger",
        apply,
        make_acker=lambda commit: DurableAcker(redis, commit, durable=settings.durable_acks),
    )

    @app.task
    async def apply_movements() -> None:
        """stock.movements -> the ledger, in batches below faust's per-event machinery."""
        await ledger.run()

    def availability_events(result: BatchResult) -> list[Record]:
        """At most one change event per SKU and channel per batch, only real changes; and an
        event for every location whose oversell exposure appeared or grew."""
        at = now_ms()
        records = []
        for change in result.changes:
            for c in availability_changes(network, change.sku, change.before, change.after):
                metrics.availability_events.labels(c.channel).inc()
                records.append(
                    Record(availability_name, c.sku.encode(), orjson.dumps(c.to_event(at)))
                )
            for x in new_exposures(network, change.sku, change.before, change.after):
                # Stock lost after it was promised: someone must find the units or call.
                metrics.oversell_exposures.inc()
                log.warning(
                    "oversell exposure: %s at %s is short %d", x.sku, x.location_id, x.units
                )
                records.append(
                    Record(availability_name, x.sku.encode(), orjson.dumps(x.to_event(at)))
                )
        return records

    async def fulfil(result: BatchResult) -> None:
        """Close reservations whose holds shipments used up; report shipments nobody held for."""
        for rid, sku, loc in result.unmatched:
            metrics.fulfilment_unmatched.inc()
            log.warning("shipment of %s at %s names %r, which holds nothing there", sku, loc, rid)
        for rid in dict.fromkeys(r for r, _, _ in result.consumed):
            metrics.fulfilment_consumed.inc()
            try:
                await reservations.transition(rid, "fulfil", now_ms())
            except (ReservationNotFound, InvalidTransition, ReservationExpired):
                pass  # closed meanwhile; the hold it had is used up all the same
            except StoreUnavailable as exc:
                log.warning("reservation %s not marked fulfilled yet: %s", rid, exc)

    async def _apply_until_done(store: LedgerStore, batch: Sequence[Movement]) -> BatchResult:
        """Redis trouble stops consumption (nothing is acked) until Redis is back."""
        delay = 0.1
        while True:
            started = time.perf_counter()
            try:
                result = await store.apply(batch, now_ms())
                metrics.apply_seconds.observe(time.perf_counter() - started)
                return result
            except (StoreUnavailable, StoreConflict) as exc:
                log.warning(
                    "batch of %d not applied, retrying in %.1fs: %s", len(batch), delay, exc
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    @app.timer(settings.gauge_refresh_s)
    async def refresh_gauges() -> None:
        """Ledger size and SKUs per status from the counters the ledger writes keep: one small
        hash read, however large the ledger (see atp/lua/apply_ledger.lua)."""
        try:
            metrics.set_ledger_stats(await store.stats(), network.channels)
        except StoreUnavailable as exc:
            log.debug("ledger gauges not refreshed: %s", exc)

    # faust itself consumes nothing now but its leader-election topic: both hops' lag is theirs.
    registry.register(ConsumerLag(lambda: itertools.chain(normaliser.lag(), ledger.lag())))

    @app.page("/metrics")
    async def metrics_page(web: Any, request: Any) -> Any:
        # aiohttp refuses a charset inside content_type; Prometheus reads UTF-8 by default.
        return web.bytes(generate_latest(registry), content_type="text/plain; version=0.0.4")

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        return web.json({"status": "ok"})

    return app


def run_worker(settings: Settings, network: Network) -> None:
    """Create the topics, then run the faust worker until SIGINT/SIGTERM."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(topics.ensure_topics(settings))
    finally:
        loop.close()
    asyncio.set_event_loop(asyncio.new_event_loop())
    app = create_app(settings, network)
    # What is loaded by now lives as long as the process: out of the collector's sight. And
    # fewer young-generation collections: faust makes several objects per record, and at the
    # default threshold (700) collections took about 5% of the worker's time under load
    # (benchmarks/README.md, profile).
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
    worker = faust.Worker(app, loglevel=settings.log_level.upper(), quiet=True)
    worker.execute_from_commandline()
