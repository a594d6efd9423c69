"""Relay the reservation outbox (atp.store.outbox) to the `stock.reservations` topic.

No change is lost if Kafka is away or a process dies between Redis and Kafka: entries are
deleted only once the broker has them. Workers read every shard's outbox as one Redis consumer
group per shard and publish each entry keyed by reservation id. Delivery is at least once:
each record carries its outbox id as `event_id` for consumers that dedupe.
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

from atp.core import webhooks
from atp.store.client import REDIS_DOWN
from atp.store.outbox import Outbox, event
from stream.records import Record, Sink
from stream.retry import Backoff

log = logging.getLogger(__name__)


class OutboxRelay:
    def __init__(
        self,
        client: aioredis.Redis,
        forwarder: Sink,
        topic: str,
        *,
        batch: int = 500,
        block_ms: int = 1000,
        claim_idle_ms: int = 30_000,
        cloudevents_source: str | None = None,
    ) -> None:
        consumer = f"{socket.gethostname()}-{os.getpid()}"
        self._outbox = Outbox(client, consumer, batch=batch, claim_idle_ms=claim_idle_ms)
        self._forwarder = forwarder
        self._topic = topic
        self._block_ms = block_ms
        self._source = cloudevents_source  # ATP_EVENT_FORMAT=cloudevents: wrap each event
        self.relayed = 0

    async def step(self) -> int:
        """Relay one batch from every shard (claimed stale entries first, then new ones);
        returns its size. Waits up to `block_ms` (polling) when every shard is empty."""
        entries = await self._outbox.read()
        if not entries:
            # Shards live on different masters: no single blocking read covers them all, so
            # poll, ten times per block_ms.
            deadline = time.monotonic() + self._block_ms / 1000
            while not entries and time.monotonic() < deadline:
                await asyncio.sleep(self._block_ms / 10_000)
                entries = await self._outbox.read()
        if not entries:
            return 0
        records = [
            Record(self._topic, f[b"reservation_id"], orjson.dumps(self._value(event(i, f))))
            for _, i, f in entries
        ]
        await self._forwarder.send(records)  # returns once the broker has all of them
        await self._outbox.done(entries)
        self.relayed += len(entries)
        return len(entries)

    def _value(self, ev: dict[str, Any]) -> dict[str, Any]:
        if self._source is None:
            return ev
        kind, rid = f"reservation.{ev['type']}", ev["reservation_id"]
        return webhooks.topic_value(ev, kind, rid, self._source, ev["at_ms"], ev["event_id"])

    async def run(self) -> None:
        backoff = Backoff()
        while True:
            try:
                await self._outbox.ensure_groups()
                while True:
                    await self.step()
                    backoff.reset()
            except asyncio.CancelledError:
                raise
            except REDIS_DOWN as exc:
                log.warning(
                    "outbox relay: Redis unavailable, retrying in %.1fs: %s", backoff.delay_s, exc
                )
            except Exception:
                log.exception("outbox relay failed, retrying in %.1fs", backoff.delay_s)
            await backoff.wait()
