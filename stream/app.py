"""The worker: a faust app that runs two batch consumers (the normaliser and the ledger hop),
the reservation outbox relay, the ledger gauges, and the `/metrics` and `/healthz` pages.

    source topics --normalise--> stock.movements (keyed by SKU) --apply--> Redis
                     \\--> stock.rejected (unusable input, with its reason)

Each hop is a `BatchConsumer` (a plain aiokafka consumer in a group of its own, below faust's
per-event machinery; benchmarks/README.md) handing batches to `stream.normalise.Normaliser` and
`stream.apply.Applier`; with `ATP_HOPS=1` the first hop applies too (`stream.direct.Direct`).
Delivery is at least once; the ledger makes replays harmless.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
from typing import Any

import faust
from faust.types.auth import CredentialsT
from prometheus_client import CollectorRegistry, generate_latest

from atp import tracing
from atp.core.errors import ATPError, StoreUnavailable
from atp.core.freshness import PartitionProgress
from atp.core.network import Network
from atp.kafka import topics
from atp.kafka.security import client_options
from atp.settings import Settings
from atp.startup import redis_access_or_exit
from atp.store.client import client_for
from atp.store.migrate import find_v2_ledger
from atp.store.progress import write_progress
from stream.metrics import ConsumerLag, WorkerMetrics
from stream.parts import Parts

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 1.0  # atp.core.freshness.SILENT_AFTER_MS assumes reports this often


def create_app(
    settings: Settings, network: Network, registry: CollectorRegistry | None = None
) -> faust.App:
    registry = registry if registry is not None else CollectorRegistry()
    metrics = WorkerMetrics.create(registry, network.channels)
    parts = Parts.build(settings, network, metrics)
    app = faust_app(settings)
    jobs = (*(hop.run for hop in parts.hops), parts.relay.run)
    for job in (*jobs, parts.webhook_hop.run, parts.webhooks.run):
        app.task(job)

    @app.on_before_shutdown.connect
    async def stop_hops(app: faust.App, **kwargs: Any) -> None:
        # Each hop finishes its batch (the forwarder still runs), commits what is safe and
        # leaves its group; then what is queued is delivered.
        for hop in (*parts.hops, parts.webhook_hop):
            await hop.stop()
        await parts.webhooks.stop()
        await parts.forwarder.stop()

    @app.timer(settings.gauge_refresh_s)
    async def refresh_gauges() -> None:
        """Ledger size and SKUs per status, from the counters the ledger writes keep."""
        try:
            metrics.set_ledger_stats(await parts.store.stats(), network.channels)
        except StoreUnavailable as exc:
            log.debug("ledger gauges not refreshed: %s", exc)

    @app.timer(PROGRESS_EVERY_S)
    async def report_progress() -> None:
        """How far each hop has got, for the API's `behind_ms` (atp/core/freshness.py)."""
        progress: dict[str, PartitionProgress] = {}
        for hop in parts.hops:
            progress.update(hop.progress())
        try:
            await write_progress(parts.redis, settings.group_id, progress)
        except StoreUnavailable as exc:
            log.debug("progress not written: %s", exc)

    consumers = (*parts.hops, parts.webhook_hop)
    registry.register(ConsumerLag(lambda: itertools.chain(*(h.lag() for h in consumers))))

    @app.page("/metrics")
    async def metrics_page(web: Any, request: Any) -> Any:
        # aiohttp refuses a charset inside content_type; Prometheus reads UTF-8 by default.
        return web.bytes(generate_latest(registry), content_type="text/plain; version=0.0.4")

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        return web.json({"status": "ok"})

    return app


def faust_credentials(settings: Settings) -> CredentialsT | None:
    """The connection of atp.kafka.security.client_options, in faust's terms (faust turns them
    back into the same aiokafka options)."""
    options = client_options(settings)
    protocol, context = options["security_protocol"], options.get("ssl_context")
    if protocol == "PLAINTEXT":
        return None
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    if "sasl_oauth_token_provider" in options:
        return faust.OAuthCredentials(
            oauth_cb=options["sasl_oauth_token_provider"], ssl_context=context
        )
    return faust.SASLCredentials(
        username=options["sasl_plain_username"],
        password=options["sasl_plain_password"],
        mechanism=options["sasl_mechanism"],
        ssl_context=context,
    )


def faust_app(settings: Settings) -> faust.App:
    """faust runs the process: its web server, the timers and the tasks; it consumes nothing of
    ours (faust's own consumer reads only its leader-election topic)."""
    return faust.App(
        settings.group_id,
        broker=[f"kafka://{hp}" for hp in settings.kafka_bootstrap.split(",")],
        broker_credentials=faust_credentials(settings),
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
    )


def run_worker(settings: Settings, network: Network) -> None:
    """Create the topics, then run the faust worker until SIGINT/SIGTERM."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    redis_access_or_exit(settings)
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(topics.ensure_topics(settings))
        v2 = loop.run_until_complete(_v2_ledger(settings))
    except ATPError as exc:  # the broker or Redis refused the connection settings
        log.error("%s", exc.message)
        raise SystemExit(2) from None
    finally:
        loop.close()
    if v2 is not None:
        log.error(
            "Redis has a ledger in the v2 layout (%s): stop every worker, run `atp migrate`, "
            "then start them again (docs/operations.md, Upgrades)",
            v2,
        )
        raise SystemExit(2)
    asyncio.set_event_loop(asyncio.new_event_loop())
    tracing.setup("atp-worker")  # off unless OTEL_EXPORTER_OTLP_ENDPOINT is set
    app = create_app(settings, network)
    # What is loaded by now lives as long as the process: out of the collector's sight. And
    # fewer young-generation collections: faust makes several objects per record, and at the
    # default threshold (700) collections took about 5% of the worker's time under load
    # (benchmarks/README.md, profile).
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
    worker = faust.Worker(app, loglevel=settings.log_level.upper(), quiet=True)
    worker.execute_from_commandline()


async def _v2_ledger(settings: Settings) -> str | None:
    """A v2 ledger key in Redis, if any (None also when Redis cannot be asked now: then the
    ledger function refuses each v2 SKU it meets, loudly)."""
    client = client_for(settings)
    try:
        return await find_v2_ledger(client)
    except StoreUnavailable as exc:
        log.warning("could not check Redis for a v2 ledger: %s", exc)
        return None
    finally:
        await client.aclose()
