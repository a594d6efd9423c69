"""Relay the reservation outbox (a Redis stream) to the `stock.reservations` topic.

The API appends every reservation change to its shard's outbox (`atp:v2:{r<n>}:outbox`, 16
shards, see atp/keys.py) in the same atomic step as the change itself, so no change is lost if
Kafka is away or a process dies between Redis and Kafka. Workers read every shard's outbox as
one Redis consumer group per shard, publish each entry keyed by
reservation id, and acknowledge (and delete) entries only once the broker has them. Entries
a dead worker had read but not published are claimed by another after `claim_idle_ms`.
Delivery is at least once: each record carries its outbox id as `event_id` for consumers
that dedupe.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from atp import keys
from atp.store import REDIS_DOWN
from stream.forward import Forwarder, Record

log = logging.getLogger(__name__)

GROUP = "relay"


class OutboxRelay:
    def __init__(
        self,
        client: aioredis.Redis,
        forwarder: Forwarder,
        topic: str,
        *,
        batch: int = 500,
        block_ms: int = 1000,
        claim_idle_ms: int = 30_000,
    ) -> None:
        self._redis = client
        self._forwarder = forwarder
        self._topic = topic
        self._batch = batch
        self._block_ms = block_ms
        self._claim_idle_ms = claim_idle_ms
        self.consumer = f"{socket.gethostname()}-{os.getpid()}"
        self.relayed = 0

    async def _ensure_group(self) -> None:
        for outbox in keys.OUTBOXES:
            try:
                # From the start: entries written before any relay ran are relayed too.
                await self._redis.xgroup_create(outbox, GROUP, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def step(self) -> int:
        """Relay one batch from every shard (claimed stale entries first, then new ones);
        returns its size. Waits up to `block_ms` (polling) when every shard is empty."""
        entries = await self._read()
        if not entries:
            # Shards live on different masters: no single blocking read covers them all, so
            # poll, ten times per block_ms.
            deadline = time.monotonic() + self._block_ms / 1000
            while not entries and time.monotonic() < deadline:
                await asyncio.sleep(self._block_ms / 10_000)
                entries = await self._read()
        if not entries:
            return 0
        records = [Record(self._topic, f[b"reservation_id"], _event(i, f)) for _, i, f in entries]
        await self._forwarder.send(records)  # returns once the broker has all of them
        by_shard: dict[str, list[bytes]] = {}
        for outbox, i, _ in entries:
            by_shard.setdefault(outbox, []).append(i)
        async with self._redis.pipeline(transaction=False) as pipe:
            for outbox, ids in by_shard.items():
                pipe.xack(outbox, GROUP, *ids)
                pipe.xdel(outbox, *ids)
            await pipe.execute()
        self.relayed += len(entries)
        return len(entries)

    async def _read(self) -> list[tuple[str, bytes, dict[bytes, bytes]]]:
        """Up to `batch` entries per shard: stale ones claimed, else new ones; one pipeline."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for outbox in keys.OUTBOXES:
                pipe.xautoclaim(
                    outbox, GROUP, self.consumer, self._claim_idle_ms, "0-0", count=self._batch
                )
            claims = await pipe.execute()
        fresh = [o for o, (_, claimed, _) in zip(keys.OUTBOXES, claims, strict=True) if not claimed]
        news: list[Any] = []
        if fresh:
            async with self._redis.pipeline(transaction=False) as pipe:
                for outbox in fresh:
                    pipe.xreadgroup(GROUP, self.consumer, {outbox: ">"}, count=self._batch)
                news = await pipe.execute()
        found: list[tuple[str, bytes, dict[bytes, bytes]]] = []
        for outbox, (_, claimed, _) in zip(keys.OUTBOXES, claims, strict=True):
            found += [(outbox, i, f) for i, f in claimed]
        for outbox, reply in zip(fresh, news, strict=True):
            found += [(outbox, i, f) for i, f in (reply[0][1] if reply else [])]
        # Claimed entries already deleted come back empty.
        return [(o, i, f) for o, i, f in found if f]

    async def run(self) -> None:
        delay = 0.1
        while True:
            try:
                await self._ensure_group()
                while True:
                    await self.step()
                    delay = 0.1
            except asyncio.CancelledError:
                raise
            except REDIS_DOWN as exc:
                log.warning("outbox relay: Redis unavailable, retrying in %.1fs: %s", delay, exc)
            except Exception:
                log.exception("outbox relay failed, retrying in %.1fs", delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


def _event(entry_id: bytes, fields: dict[bytes, bytes]) -> bytes:
    event: dict[str, Any] = {"event_id": entry_id.decode()}
    for k, v in fields.items():
        name = k.decode()
        if name in ("allocations", "request"):
            event[name] = orjson.loads(v)
        elif name in ("at", "expires_ms"):
            event["at_ms" if name == "at" else name] = int(v) if v else None
        else:
            event[name] = v.decode()
    return orjson.dumps(event)
