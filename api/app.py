"""Build the FastAPI application from settings and a network; no globals."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from redis import asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from api import problems
from api.admission import AdmissionMiddleware
from api.auth import Authenticator
from api.body_limit import BodyLimitMiddleware
from api.deps import Services
from api.live import LiveHub, end_streams_on_exit
from api.metrics import ApiMetrics, TimingMiddleware
from api.network_watch import Watched
from api.routes import availability, console, delivery, health, live, reservations, webhooks
from api.routes.availability import origin_of
from api.routes.live import live_answer
from atp import tracing
from atp.api_keys import parse_api_keys
from atp.catalog_file import load_catalog
from atp.clock import now_ms
from atp.core.geo import nearest_timezone, zip_coordinates
from atp.core.kits import Catalog
from atp.core.network import Network
from atp.network_file import load_network
from atp.settings import Settings
from atp.store.client import REDIS_DOWN, client_for
from atp.store.feed import MAX_ENTRIES, ChangeFeed
from atp.store.progress import BehindReader
from atp.store.reservations import ReservationStore
from atp.store.stock import StockReader
from atp.store.sweeper import Sweeper
from atp.store.webhooks import WebhookStore

log = logging.getLogger(__name__)
SHUTDOWN_WAIT_S = 5.0


def create_app(
    settings: Settings,
    network: Network,
    registry: CollectorRegistry | None = None,
    clock: Callable[[], int] = now_ms,
    catalog: Catalog | None = None,
) -> FastAPI:
    """`catalog`: the kits; by default read from ATP_CATALOG_FILE (its error stops here)."""
    registry = registry if registry is not None else CollectorRegistry()
    metrics = ApiMetrics.create(registry)
    poll_s = settings.config_poll_s
    holder = Watched(settings.network_file, network, load_network, "network file", poll_s)
    if catalog is None:
        catalog = load_catalog(settings.catalog_file)
    catalogs = Watched(settings.catalog_file, catalog, load_catalog, "catalogue file", poll_s)
    keys = parse_api_keys(settings.api_keys.get_secret_value())
    if not keys:
        log.warning("no API keys (ATP_API_KEYS): reservation endpoints refuse every request")
    auth = Authenticator(keys, public_reads=settings.public_reads)

    lifespan = _lifespan(settings, (holder, catalogs), metrics, auth, clock)
    # Off unless OTEL_EXPORTER_OTLP_ENDPOINT is set; on, FastAPI's own telemetry makes a span
    # per request (and per dependency and endpoint) and redis-py's calls are traced under it.
    tracing.setup("atp-api")
    app = FastAPI(
        title="Inventory availability",
        version="0.1.0",
        description="Real-time available-to-promise counts from warehouse, store and 3PL stock. "
        "What it reads from and writes to Kafka: [the AsyncAPI document](/asyncapi.yaml).",
        lifespan=lifespan,
    )
    app.state.registry = registry
    app.add_middleware(
        AdmissionMiddleware,
        limit=settings.api_max_in_flight,
        max_queued=settings.api_max_queued,
        max_wait_s=settings.api_queue_wait_s,
        refused=metrics.refused,
    )
    # Before admission: a body too large is refused without taking a slot.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.api_max_body_bytes)
    app.add_middleware(TimingMiddleware, metrics=metrics)  # outermost: refusals are timed too
    problems.install(app)
    app.include_router(health.router)
    app.include_router(availability.router)
    app.include_router(reservations.router)
    app.include_router(delivery.router)
    app.include_router(live.router)
    app.include_router(webhooks.router)
    app.include_router(console.router)
    if settings.bench_endpoints:
        from api.routes import bench

        app.include_router(bench.router)
    if settings.demo_page:
        from api.routes import demo

        app.include_router(demo.router)
    return app


def _lifespan(
    settings: Settings,
    files: tuple[Watched[Network], Watched[Catalog]],
    metrics: ApiMetrics,
    auth: Authenticator,
    clock: Callable[[], int],
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """At start: the Redis client and the services routes use, the network watch and the
    reservation sweeper; at stop, all of it, bounded in time."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The ZIP table (about 43,000 records) and the network are loaded once and never freed:
        # move them out of the garbage collector's sight, or every full collection walks them
        # (measured: 130-150 ms pauses under load, benchmarks/api.md).
        zip_coordinates("00000")
        nearest_timezone((0.0, 0.0))  # builds the ZIP time-zone grid
        gc.freeze()
        client = client_for(settings, timeout_s=2.0, observe=metrics.observe_redis)
        if isinstance(client, RedisCluster):
            # Learn the cluster's slots now, not lazily under the first burst of requests.
            with contextlib.suppress(*REDIS_DOWN):
                await client.initialize()
        svc = _services(settings, files, client, metrics, auth, clock)
        app.state.services = svc
        end_streams_on_exit(svc.live)
        tasks = [
            asyncio.create_task(files[0].watch(), name="network-watch"),
            asyncio.create_task(files[1].watch(), name="catalogue-watch"),
            asyncio.create_task(sweep(svc), name="reservation-sweeper"),
            asyncio.create_task(svc.live.run(), name="live-streams"),
        ]
        try:
            yield
        finally:
            svc.live.close()
            await _stop(tasks, client.aclose())

    return lifespan


async def sweep(svc: Services) -> None:
    """Close held reservations past their expiry (reads discount them before that), and give
    back what half-made reservations hold once nobody can take them over any more."""
    sweeper = Sweeper(svc.reservations, on_expired=svc.live.notify)
    while True:
        await asyncio.sleep(svc.settings.sweep_interval_s)
        try:
            closed = await sweeper.expire_due(svc.clock())
            if closed:
                log.info("expired %d reservations", closed)
            await sweeper.abandon_stale(svc.network, svc.clock())
        except Exception:  # the sweeper must outlive any one bad round
            log.exception("reservation sweep failed")


async def _stop(tasks: list[asyncio.Task[None]], close_redis: Coroutine[Any, Any, None]) -> None:
    """Shutdown is bounded: what does not finish in time is logged and left behind, so a stuck
    Redis connection can never keep the process from exiting."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SHUTDOWN_WAIT_S
    stuck = set(tasks)
    while stuck and (left := deadline - loop.time()) > 0:
        # Asked again until it stops: a cancellation can be lost. redis-py sends a command
        # under asyncio.wait_for, which on Python 3.11 drops a cancellation that arrives as
        # the send completes; the live streams' loop then ran on, and on a cluster the API
        # took the whole 5 s to stop.
        for task in stuck:
            task.cancel()
        _, stuck = await asyncio.wait(stuck, timeout=min(0.1, left))
    for task in stuck:
        log.warning("%s did not stop within %.0fs", task.get_name(), SHUTDOWN_WAIT_S)
    closing = asyncio.create_task(close_redis, name="redis-close")
    if not (await asyncio.wait([closing], timeout=SHUTDOWN_WAIT_S))[0]:
        log.warning("Redis connections not closed within %.0fs", SHUTDOWN_WAIT_S)


def _services(
    settings: Settings,
    files: tuple[Watched[Network], Watched[Catalog]],
    client: aioredis.Redis,
    metrics: ApiMetrics,
    auth: Authenticator,
    clock: Callable[[], int],
) -> Services:
    """What the routes use, on this Redis client."""
    svc = Services(
        settings,
        files[0],
        StockReader(client),
        ReservationStore(
            client,
            settings.reservation_replay_ms,
            int(settings.reservation_takeover_s * 1000),
            feed_entries=MAX_ENTRIES,
        ),
        metrics,
        auth,
        clock,
        BehindReader(client, settings.group_id, clock),
        LiveHub(
            ChangeFeed(client),
            lambda key: live_answer(svc, key, origin_of(key[2])),
            max_connections=settings.stream_max_connections,
            on_event=metrics.stream_events.inc,
            watches=lambda sku: (p.sku for p in svc.catalog.components(sku) or ()),
        ),
        WebhookStore(client),
        files[1],
    )
    return svc
