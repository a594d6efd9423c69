"""What a route may use, as one typed provider: `svc: Svc` in a route's parameters.

The app builds one `Services` at start (api/app.py, in its lifespan, where the Redis client is
made) and FastAPI hands it to every route and to the auth check, resolved once per request.
Tests can put their own in place with `app.dependency_overrides[services]`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request

from api.auth import Authenticator
from api.metrics import ApiMetrics
from api.network_watch import NetworkHolder
from api.problems import InvalidRequest
from atp.api_keys import ApiKey
from atp.core.network import Network
from atp.settings import Settings
from atp.store.progress import BehindReader
from atp.store.reservations import ReservationStore
from atp.store.stock import StockReader


@dataclass(frozen=True)
class Services:
    settings: Settings
    networks: NetworkHolder  # the network file, reloaded when it changes
    stock: StockReader
    reservations: ReservationStore
    metrics: ApiMetrics
    auth: Authenticator
    clock: Callable[[], int]  # epoch milliseconds
    behind: BehindReader  # how far behind the stream the counts are (`behind_ms`)

    @property
    def network(self) -> Network:
        """The network in force now (read it once per request)."""
        return self.networks.current

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock() / 1000, UTC)

    def check_ttl(self, ttl_seconds: int) -> None:
        """A hold may last at most ATP_MAX_RESERVATION_TTL_S."""
        limit = self.settings.max_reservation_ttl_s
        if ttl_seconds > limit:
            raise InvalidRequest(
                "ttl_too_long", f"ttl_seconds {ttl_seconds} is over the limit of {limit}"
            )


async def services(request: Request) -> Services:
    # async: FastAPI calls it on the event loop, not in its thread pool.
    return request.app.state.services  # type: ignore[no-any-return]


Svc = Annotated[Services, Depends(services)]


def requires(scope: str) -> Callable[..., Awaitable[ApiKey | None]]:
    """A dependency that checks the caller's key has `scope`: `Depends(requires("reserve"))`."""

    async def check(request: Request, svc: Svc) -> ApiKey | None:
        return svc.auth.require(request, scope)

    return check
