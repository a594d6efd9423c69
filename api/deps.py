"""What a route may use, and who may call it.

The app builds one `Services` at start (api/app.py, in its lifespan, where the Redis client is
made); a route takes `request: Request` and reads it with `services_of(request)`. A router
says which scope its callers need with `route_class=requiring("read")`: the check runs before
the route's parameters and body are read. Neither is a FastAPI dependency: each dependency costs
a route about 20 us per request in FastAPI's resolver (benchmarks/api.md, "Dependencies").
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from fastapi import Request
from fastapi.routing import APIRoute
from starlette.responses import Response

from api.auth import Authenticator
from api.live import LiveHub
from api.metrics import ApiMetrics
from api.network_watch import Watched
from api.problems import InvalidRequest
from atp.core.kits import Catalog
from atp.core.network import Network
from atp.settings import Settings
from atp.store.progress import BehindReader
from atp.store.reservations import ReservationStore
from atp.store.stock import StockReader
from atp.store.webhooks import WebhookStore


@dataclass(frozen=True)
class Services:
    settings: Settings
    networks: Watched[Network]  # the network file, reloaded when it changes
    stock: StockReader
    reservations: ReservationStore
    metrics: ApiMetrics
    auth: Authenticator
    clock: Callable[[], int]  # epoch milliseconds
    behind: BehindReader  # how far behind the stream the counts are (`behind_ms`)
    live: LiveHub  # the live streams of this process (api/live.py)
    webhooks: WebhookStore  # webhook subscriptions (the worker sends the messages)
    catalogs: Watched[Catalog]  # the catalogue file (kits), reloaded when it changes

    @property
    def network(self) -> Network:
        """The network in force now (read it once per request)."""
        return self.networks.current

    @property
    def catalog(self) -> Catalog:
        """The catalogue in force now (read it once per request)."""
        return self.catalogs.current

    def refuse_kits(self, skus: Iterable[str]) -> None:
        """Kits are answered in availability; a reservation or a delivery promise names their
        components for now (422 kit_not_reservable, saying which)."""
        catalog = self.catalog
        for sku in skus:
            parts = catalog.components(sku)
            if parts is not None:
                made_of = ", ".join(f"{p.quantity} x {p.sku}" for p in parts)
                raise InvalidRequest(
                    "kit_not_reservable",
                    f"{sku} is a kit ({made_of}): reserve or promise its components",
                    sku=sku,
                    components=[{"sku": p.sku, "quantity": p.quantity} for p in parts],
                )

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock() / 1000, UTC)

    def check_ttl(self, ttl_seconds: int) -> None:
        """A hold may last at most ATP_MAX_RESERVATION_TTL_S."""
        limit = self.settings.max_reservation_ttl_s
        if ttl_seconds > limit:
            raise InvalidRequest(
                "ttl_too_long", f"ttl_seconds {ttl_seconds} is over the limit of {limit}"
            )


def services_of(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


class ScopedRoute(APIRoute):
    """A route whose caller's API key must hold `scope` (api/auth.py)."""

    scope: ClassVar[str]

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        scope = self.scope

        async def checked(request: Request) -> Response:
            services_of(request).auth.require(request, scope)
            return await handler(request)

        return checked


def requiring(scope: str) -> type[APIRoute]:
    """The route class of a router whose callers need `scope`:
    `APIRouter(..., route_class=requiring("reserve"))`."""
    return type(f"Requires{scope.title()}Route", (ScopedRoute,), {"scope": scope})
