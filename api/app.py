"""Build the FastAPI application from settings and a network; no globals."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api import problems
from api.network_watch import NetworkHolder
from api.routes import availability, health
from atp.network import Network
from atp.settings import Settings
from atp.store import StockReader, client_from_url


def create_app(settings: Settings, network: Network) -> FastAPI:
    holder = NetworkHolder(settings.network_file, network, settings.config_poll_s)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = client_from_url(settings.redis_url, timeout_s=1.0)
        app.state.stock = StockReader(client)
        watcher = asyncio.create_task(holder.watch(), name="network-watch")
        try:
            yield
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            await client.aclose()

    app = FastAPI(
        title="Inventory availability",
        version="0.1.0",
        description="Real-time available-to-promise counts from warehouse, store and 3PL stock.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.networks = holder
    problems.install(app)
    app.include_router(health.router)
    app.include_router(availability.router)
    return app
