"""The ledger's counters (SKUs, pairs, SKUs per status) never drift from the ledger itself, even
when a write's reply is lost at any step and the batch is applied again, as the worker does."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from atp.core.errors import StoreUnavailable
from atp.core.movements import Effect, Movement
from atp.core.network import Network
from atp.store import keys
from atp.store.client import client_from_url
from atp.store.ledger import LedgerStore
from tests.integration.conftest import (
    isolated_redis_url,
    ledger_counters,
    redis_client,
    scan_ledger,
    statuses_counted,
)

pytestmark = pytest.mark.integration


class LosesReply:
    """Wraps a client: the `fail_at`-th pipeline runs on the server, then its reply is lost."""

    def __init__(self, client: aioredis.Redis, fail_at: int) -> None:
        self._client = client
        self._fail_at = fail_at
        self.pipelines = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def pipeline(self, *args: Any, **kwargs: Any) -> Any:
        self.pipelines += 1
        pipe = self._client.pipeline(*args, **kwargs)
        if self.pipelines != self._fail_at:
            return pipe
        run = pipe.execute

        async def execute(*a: Any, **kw: Any) -> Any:
            await run(*a, **kw)
            raise RedisConnectionError("reply lost (test)")

        pipe.execute = execute  # type: ignore[method-assign]
        return pipe


def batch(sku: str, now: int) -> list[Movement]:
    """A SKU's first write: a count, and a shipment naming a reservation (whether or not it
    holds anything, such a write is the one that uses up holds)."""
    return [
        Movement(f"{sku}-c", sku, "WH-NJ", Effect.COUNT, 10, now - 2, "CYCLE_COUNT", "wms"),
        Movement(f"{sku}-s", sku, "WH-NJ", Effect.DELTA, -1, now - 1, "SHIPPED", "wms", "R-1"),
    ]


# The pipelines of one apply on a Redis without the ledger function: 1 is refused ("Function
# not found"), the function is loaded, 2 runs it; a reply lost at either is applied again.
@pytest.mark.parametrize("fail_at", [1, 2])
def test_counters_match_the_ledger_after_a_lost_reply_and_a_replay(
    redis_url: str, demo_network: Network, fail_at: int
) -> None:
    url = isolated_redis_url(redis_url)
    r = redis_client(url)
    r.flushdb()
    r.function_flush()

    async def main() -> None:
        client = client_from_url(url)
        try:
            flaky = LosesReply(client, fail_at)
            store = LedgerStore(flaky, network=demo_network)  # type: ignore[arg-type]
            sku = f"CTR-{uuid.uuid4().hex[:8]}"
            now = time.time_ns() // 1_000_000
            # A failed apply is not committed: the worker applies the batch again.
            with contextlib.suppress(StoreUnavailable):
                await store.apply(batch(sku, now), now)
            await LedgerStore(client, network=demo_network).apply(batch(sku, now), now)
        finally:
            await client.aclose()

    try:
        asyncio.run(main())
        skus, pairs, statuses, _ = scan_ledger(r)
        counters = ledger_counters(r)
        assert (counters.get("skus", 0), counters.get("pairs", 0)) == (skus, pairs) == (1, 1)
        assert statuses_counted(counters) == dict(statuses)
        # Every SKU with a ledger has a status on every channel.
        assert sum(statuses.values()) == skus * len(demo_network.channels)
    finally:
        r.flushdb()
        r.close()


class Watches:
    """Wraps a client: after every pipeline, reads what a gauge refresh would read then."""

    def __init__(self, client: aioredis.Redis, sku: str) -> None:
        self._client = client
        self._stats = keys.stats(sku)
        self.seen: list[dict[bytes, bytes]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def pipeline(self, *args: Any, **kwargs: Any) -> Any:
        pipe = self._client.pipeline(*args, **kwargs)
        run = pipe.execute

        async def execute(*a: Any, **kw: Any) -> Any:
            replies = await run(*a, **kw)
            self.seen.append(await self._client.hgetall(self._stats))
            return replies

        pipe.execute = execute  # type: ignore[method-assign]
        return pipe


def test_a_gauge_refresh_between_round_trips_sees_consistent_counters(
    redis_url: str, demo_network: Network
) -> None:
    """The SKU count and its statuses move in one atomic step, so a reader never sees a SKU
    counted without its status (the gauges are read while the worker writes)."""
    url = isolated_redis_url(redis_url)
    r = redis_client(url)
    r.flushdb()
    sku = f"CTR-{uuid.uuid4().hex[:8]}"

    async def main() -> list[dict[bytes, bytes]]:
        client = client_from_url(url)
        try:
            watched = Watches(client, sku)
            store = LedgerStore(watched, network=demo_network)  # type: ignore[arg-type]
            now = time.time_ns() // 1_000_000
            await store.apply(batch(sku, now), now)
            return watched.seen
        finally:
            await client.aclose()

    try:
        seen = asyncio.run(main())
        assert seen  # read after every round trip
        for stats in seen:
            counts = {k.decode(): int(v) for k, v in stats.items()}
            for channel in demo_network.channels:
                by_status = sum(n for name, n in counts.items() if name.startswith(f"{channel}:"))
                assert by_status == counts.get("skus", 0), counts
    finally:
        r.flushdb()
        r.close()
