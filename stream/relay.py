"""Relay the reservation outbox (a Redis stream) to the `stock.reservations` topic.

The API appends every reservation change to `atp:v1:outbox` in the same atomic step as the
change itself, so no change is lost if Kafka is away or a process dies between Redis and
Kafka. Workers read the outbox as one Redis consumer group, publish each entry keyed by
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
        try:
            # From the start of the stream: entries written before any relay ran are relayed too.
            await self._redis.xgroup_create(keys.OUTBOX, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def step(self) -> int:
        """Relay one batch (claimed stale entries first, then new ones); returns its size."""
        _, claimed, _ = await self._redis.xautoclaim(
            keys.OUTBOX, GROUP, self.consumer, self._claim_idle_ms, "0-0", count=self._batch
        )
        entries = claimed
        if not entries:
            reply = await self._redis.xreadgroup(
                GROUP, self.consumer, {keys.OUTBOX: ">"}, count=self._batch, block=self._block_ms
            )
            entries = reply[0][1] if reply else []
        entries = [
            (i, f) for i, f in entries if f
        ]  # claimed entries already deleted come back empty
        if not entries:
            return 0
        records = [Record(self._topic, f[b"reservation_id"], _event(i, f)) for i, f in entries]
        await self._forwarder.send(records)  # returns once the broker has all of them
        ids = [i for i, _ in entries]
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.xack(keys.OUTBOX, GROUP, *ids)
            pipe.xdel(keys.OUTBOX, *ids)
            await pipe.execute()
        self.relayed += len(ids)
        return len(ids)

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
