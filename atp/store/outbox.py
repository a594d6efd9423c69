"""The reservation outbox: every shard's Redis stream of reservation events, read as one Redis
consumer group per shard, and entries deleted once they are published.

Reservation scripts append each change to its shard's outbox (`atp:v2:{r<n>}:outbox`, see
atp/store/keys.py) in the same atomic step as the change. Entries a reader took but did not
finish are claimed by another after `claim_idle_ms`.
"""

from __future__ import annotations

from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from atp.store import keys

GROUP = "relay"

Entry = tuple[str, bytes, dict[bytes, bytes]]  # (outbox key, entry id, fields)


class Outbox:
    def __init__(
        self, client: aioredis.Redis, consumer: str, *, batch: int, claim_idle_ms: int
    ) -> None:
        self._redis = client
        self.consumer = consumer
        self._batch = batch
        self._claim_idle_ms = claim_idle_ms

    async def ensure_groups(self) -> None:
        for outbox in keys.OUTBOXES:
            try:
                # From the start: entries written before any relay ran are relayed too.
                await self._redis.xgroup_create(outbox, GROUP, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def read(self) -> list[Entry]:
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
        found: list[Entry] = []
        for outbox, (_, claimed, _) in zip(keys.OUTBOXES, claims, strict=True):
            found += [(outbox, i, f) for i, f in claimed]
        for outbox, reply in zip(fresh, news, strict=True):
            found += [(outbox, i, f) for i, f in (reply[0][1] if reply else [])]
        # Claimed entries already deleted come back empty.
        return [(o, i, f) for o, i, f in found if f]

    async def done(self, entries: list[Entry]) -> None:
        """Acknowledge and delete published entries."""
        by_shard: dict[str, list[bytes]] = {}
        for outbox, i, _ in entries:
            by_shard.setdefault(outbox, []).append(i)
        async with self._redis.pipeline(transaction=False) as pipe:
            for outbox, ids in by_shard.items():
                pipe.xack(outbox, GROUP, *ids)
                pipe.xdel(outbox, *ids)
            await pipe.execute()


def event(entry_id: bytes, fields: dict[bytes, bytes]) -> dict[str, Any]:
    """An outbox entry as the `stock.reservations` record carries it (its id as `event_id`)."""
    out: dict[str, Any] = {"event_id": entry_id.decode()}
    for k, v in fields.items():
        name = k.decode()
        if name in ("allocations", "request", "lines", "shipped"):  # `lines` on `changed`
            out[name] = orjson.loads(v)
        elif name in ("at", "expires_ms"):
            out["at_ms" if name == "at" else name] = int(v) if v else None
        elif name == "quantity":  # on `transferred`
            out[name] = int(v)
        else:
            out[name] = v.decode()
    return out
