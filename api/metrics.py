"""The API's Prometheus metrics, built once from a registry passed in, and the timing middleware.

With several uvicorn worker processes (ATP_API_WORKERS > 1) `atp api` points
PROMETHEUS_MULTIPROC_DIR at a fresh directory before the workers start: prometheus_client then
keeps every value in a per-process file there, and /metrics (`exposition`) sums the files of all
workers, so each scrape, whichever worker answers it, reports the totals of the whole API.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.admission import QUEUE_FULL, QUEUE_TIMEOUT
from atp.core.reservations import DONE
from atp.prometheus import with_labels

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
REDIS_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.0)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Error code -> outcome label of atp_reservations_total (bounded: a label here, or the code of
# an error of atp.core.errors).
RESERVATION_OUTCOMES = {
    "insufficient_stock": "short",
    "idempotency_conflict": "conflict",
    "reservation_expired": "expired",
    "reservation_not_found": "not_found",
    "invalid_transition": "invalid_transition",
    "location_not_in_channel": "invalid",
    "unknown_channel": "invalid",
    "store_unavailable": "unavailable",
    "not_held": "not_held",
    "too_many_transfers": "invalid",
    "too_many_changes": "invalid",
    "line_not_in_reservation": "invalid",
    "below_fulfilled": "invalid",
    "reservation_busy": "busy",
}
LOOKUP_KINDS = ("single", "batch", "explain", "movements", "delivery_options", "sourcing_plans")
# The outcomes with a series from the start: made, replayed, each change, each refusal above.
RESERVATION_LABELS = (
    "held",
    "idempotent_replay",
    *DONE.values(),
    *dict.fromkeys(RESERVATION_OUTCOMES.values()),
)


@dataclass(frozen=True)
class ApiMetrics:
    requests: Histogram
    lookups: Counter
    reservations: Counter
    stale: Counter
    oversell: Counter
    redis: Histogram
    refused: Counter
    streams: Gauge
    stream_events: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> ApiMetrics:
        return cls(
            requests=Histogram(
                "atp_api_request_duration_seconds",
                "API request latency, per route template, method and status.",
                ["route", "method", "status"],
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            lookups=with_labels(
                Counter(
                    "atp_availability_lookups_total",
                    "SKUs answered, per kind of request (single, batch, explain, ...).",
                    ["kind"],
                    registry=registry,
                ),
                LOOKUP_KINDS,
            ),
            reservations=with_labels(
                Counter(
                    "atp_reservations_total",
                    "Reservation requests and changes, per outcome.",
                    ["outcome"],
                    registry=registry,
                ),
                RESERVATION_LABELS,
            ),
            stale=Counter(
                "atp_stale_answers_total",
                "Availability answers whose data was older than ATP_STALE_AFTER_S.",
                registry=registry,
            ),
            oversell=Counter(
                "atp_oversell_exposures_observed_total",
                "Locations seen in answers with more reserved than on hand minus safety stock.",
                registry=registry,
            ),
            redis=Histogram(
                "atp_api_redis_seconds",
                "Redis round trips of the API, per call (one command, or one pipeline).",
                ["call"],
                buckets=REDIS_BUCKETS,
                registry=registry,
            ),
            refused=with_labels(
                Counter(
                    "atp_api_overload_refusals_total",
                    "Requests refused with 503 overloaded (api/admission.py), per reason.",
                    ["reason"],
                    registry=registry,
                ),
                [QUEUE_FULL, QUEUE_TIMEOUT],
            ),
            streams=Gauge(
                "atp_api_streams_open",
                "Live availability streams open (GET /v1/stream/availability).",
                registry=registry,
                multiprocess_mode="livesum",
            ),
            stream_events=Counter(
                "atp_api_stream_events_total",
                "Availability events sent on live streams (one per subscriber).",
                registry=registry,
            ),
        )

    def reservation(self, outcome: str) -> None:
        self.reservations.labels(outcome).inc()

    def reservation_refused(self, code: str) -> None:
        self.reservations.labels(RESERVATION_OUTCOMES.get(code, code)).inc()

    def observe_redis(self, call: str, seconds: float) -> None:
        """For `atp.store.client.client_from_url(observe=...)`."""
        self.redis.labels(call).observe(seconds)


def exposition(registry: CollectorRegistry) -> bytes:
    """The /metrics body: this process's registry, or, in multiprocess mode, every worker's
    values summed (read from PROMETHEUS_MULTIPROC_DIR at each scrape)."""
    if os.environ.get(MULTIPROC_ENV):
        combined = CollectorRegistry()
        multiprocess.MultiProcessCollector(combined)
        return generate_latest(combined)
    return generate_latest(registry)


# Live streams last as long as their client stays: their "latency" would be their lifetime.
UNTIMED_PREFIX = "/v1/stream/"


class TimingMiddleware:
    """Times every HTTP request but the live streams; the route label is the matched template,
    so it stays bounded."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(UNTIMED_PREFIX):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route: Any = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(template, scope["method"], str(status[0])).observe(
                time.perf_counter() - started
            )
