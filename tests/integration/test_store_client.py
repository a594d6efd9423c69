"""The store's Redis client (atp.store.client_from_url) under the two things a busy day brings:
a reply that never comes, and a burst of concurrent commands; and the API's reader, which sends
concurrent single reads together. Runs on one node here and on the cluster in
cluster/test_store_client.py."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from atp.core.errors import StoreUnavailable
from atp.store import keys
from atp.store.client import REDIS_DOWN, client_from_url, is_cluster_url
from atp.store.stock import StockReader
from atp.tools import embedded
from tests.integration.conftest import redis_client

pytestmark = pytest.mark.integration
REDIS = ("node", "cluster")  # every test here runs on one Redis and on a cluster

# Counts its run, then answers with more than a client may be sent (see replies_lost below).
LOUD_INCR = "redis.call('INCR', KEYS[1]) return string.rep('x', 4000000)"


@contextmanager
def replies_lost(url: str) -> Iterator[None]:
    """The server closes the connection instead of sending a reply over 1 MB (its output
    buffer limit): the command ran, and the client never hears so."""
    client = redis_client(url)
    every_master = {"target_nodes": "primaries"} if is_cluster_url(url) else {}
    client.config_set("client-output-buffer-limit", "normal 1mb 0 0", **every_master)
    try:
        yield
    finally:
        client.config_set("client-output-buffer-limit", "normal 0 0 0", **every_master)
        client.close()


def connected_clients(url: str) -> int:
    """Connections the server (every master, on a cluster) has open right now."""
    client = redis_client(url)
    try:
        if not is_cluster_url(url):
            return int(client.info("clients")["connected_clients"])
        info = client.info("clients", target_nodes="primaries")  # type: ignore[call-arg]
        return sum(int(node["connected_clients"]) for node in info.values())
    finally:
        client.close()


def test_a_lost_reply_is_an_error_not_a_second_run(redis_url):
    """A script whose reply was lost may have run: sending it again would run it twice (a
    reservation's `take` would hold twice). The caller gets the error; nothing is re-sent."""
    key = f"atp:test:{{resend-{uuid.uuid4().hex[:8]}}}"
    check = redis_client(redis_url)

    async def main() -> None:
        client = client_from_url(redis_url)
        try:
            # Connected first (a cluster client's COMMAND reply would be lost too).
            assert await client.incr(key) == 1
            with replies_lost(redis_url), pytest.raises(REDIS_DOWN):
                await client.eval(LOUD_INCR, 1, key)
            assert check.get(key) == b"2"
            # And the client works again after the lost reply.
            assert await client.incr(key) == 3
        finally:
            await client.aclose()

    try:
        asyncio.run(main())
    finally:
        check.close()


def test_a_burst_waits_for_a_few_connections_instead_of_opening_hundreds(redis_url):
    """500 concurrent commands from a new client: all answered, over at most 8 connections.
    On a cluster, each first waits for the client to learn where keys live: redis-py would
    send them to a default node, and answer every fifth MOVED by closing every connection,
    also those the others were using ("Connection closed by server")."""
    key = f"atp:test:{{burst-{uuid.uuid4().hex[:8]}}}"

    async def main() -> tuple[int, int]:
        client = client_from_url(redis_url, max_connections=8)
        try:
            before = connected_clients(redis_url)  # the new client has not connected yet
            replies = await asyncio.gather(*(client.incr(key) for _ in range(500)))
            assert sorted(replies) == list(range(1, 501))
            return before, connected_clients(redis_url)  # the client's connections are open
        finally:
            await client.aclose()

    before, during = asyncio.run(main())
    # Learning a cluster leaves two connections open to the node asked (CLUSTER SLOTS, and
    # COMMAND for the key positions). Without the gate, redis-py's cluster client opened 21.
    assert during - before <= 8 + (2 if is_cluster_url(redis_url) else 0)


def test_concurrent_reads_go_together_and_each_gets_its_own_sku(redis_url):
    tag = uuid.uuid4().hex[:8]
    skus = [f"READ-{tag}-{i}" for i in range(300)]
    seed = redis_client(redis_url)
    for i, sku in enumerate(skus):
        seed.hset(keys.stock(sku), mapping={"oh:WH-NJ": i, "rs:WH-NJ": i // 2, "ts": 1000 + i})
    seed.script_flush()  # the first pipeline meets NOSCRIPT and loads the script
    seed.close()
    calls: list[str] = []

    async def main() -> None:
        client = client_from_url(redis_url, observe=lambda kind, _s: calls.append(kind))
        reader = StockReader(client)
        try:
            now = time.time_ns() // 1_000_000
            records = await asyncio.gather(*(reader.read(sku, now) for sku in skus))
            for i, record in enumerate(records):
                assert record.counts["WH-NJ"].on_hand == i
                assert record.counts["WH-NJ"].reserved == i // 2
                assert record.updated_ms == 1000 + i
            alone = await reader.read(skus[7], now)  # by itself: one EVALSHA
            assert alone.counts["WH-NJ"].on_hand == 7
        finally:
            await client.aclose()

    asyncio.run(main())
    if not is_cluster_url(redis_url):  # the cluster client does not time its pipelines
        # 300 reads: a pipeline, the SCRIPT LOAD after NOSCRIPT, the pipeline of the retried
        # calls; then the lone read's EVALSHA.
        assert calls == ["pipeline", "command", "pipeline", "command"]


def test_reads_waiting_together_all_fail_cleanly_when_redis_is_away():
    async def main() -> None:
        port = embedded.free_port()
        client = client_from_url(f"redis://127.0.0.1:{port}", timeout_s=0.5)
        reader = StockReader(client)
        try:
            results = await asyncio.gather(
                *(reader.read(f"SKU-{i}", 0) for i in range(20)), return_exceptions=True
            )
            assert all(isinstance(r, StoreUnavailable) for r in results), results
            assert len({id(r) for r in results}) == 20  # each request its own error
        finally:
            await client.aclose()

    asyncio.run(main())


def test_after_redis_restarts_only_the_commands_in_flight_fail(tmp_path):
    """Every idle pooled connection is dead after a restart; without care each would fail the
    next request that takes it, long after Redis is back (a product page's 503). The first
    error drops the idle ones, so the next burst connects afresh."""
    port = embedded.free_port()

    def start() -> Any:
        return embedded.start_redis(port, tmp_path / "data", tmp_path, appendonly=False)

    proc = start()

    async def main() -> list[object]:
        client = client_from_url(f"redis://127.0.0.1:{port}/0", timeout_s=1.0)
        try:
            await asyncio.gather(*(client.ping() for _ in range(8)))  # 8 pooled connections
            nonlocal proc
            proc.stop()
            proc = start()
            with contextlib.suppress(*REDIS_DOWN):
                await client.ping()  # one request meets a dead connection
            return await asyncio.gather(*(client.ping() for _ in range(8)), return_exceptions=True)
        finally:
            await client.aclose()

    try:
        results = asyncio.run(main())
    finally:
        proc.stop()
    assert results == [True] * 8, results
