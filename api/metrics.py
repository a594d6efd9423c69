"""The API's Prometheus metrics, built once from a registry passed in, and the timing middleware."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


@dataclass(frozen=True)
class ApiMetrics:
    requests: Histogram
    lookups: Counter
    reservations: Counter
    stale: Counter
    oversell: Counter

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
            lookups=Counter(
                "atp_availability_lookups_total",
                "SKUs answered, per kind of request (single, batch, explain).",
                ["kind"],
                registry=registry,
            ),
            reservations=Counter(
                "atp_reservations_total",
                "Reservation requests and changes, per outcome.",
                ["outcome"],
                registry=registry,
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
        )


class TimingMiddleware:
    """Times every HTTP request; the route label is the matched template, so it stays bounded."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
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
