"""Build the FastAPI application from settings and a network; no globals."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api import problems
from api.routes import availability, health
from atp.network import Network
from atp.settings import Settings
from atp.store import StockReader, client_from_url


def create_app(settings: Settings, network: Network) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = client_from_url(settings.redis_url, timeout_s=1.0)
        app.state.stock = StockReader(client)
        try:
            yield
        finally:
            await client.aclose()

    app = FastAPI(
        title="Inventory availability",
        version="0.1.0",
        description="Real-time available-to-promise counts from warehouse, store and 3PL stock.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.network = network
    problems.install(app)
    app.include_router(health.router)
    app.include_router(availability.router)
    return app
