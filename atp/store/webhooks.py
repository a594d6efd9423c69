"""Webhook subscriptions and their messages in Redis (the keys: atp.store.keys, `{wh}`).

The API makes, lists and deletes subscriptions; the worker's webhook hop enqueues a message per
(event, subscription) and the worker holding a subscription's lease sends its due messages and
records each attempt. Every change is one MULTI in the `{wh}` slot. A message's id is stable
(made from the Kafka record it came from), so a record read twice is enqueued once while it is
pending; delivery is at least once and receivers dedupe by `webhook-id`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from atp.core.webhooks import Subscription
from atp.store import keys
from atp.store.client import unavailable_as_error
from atp.store.scripts import Scripts

LOG_KEEP = 100  # attempts shown per subscription
FAILED_KEEP = 1000  # messages given up on, kept per subscription


@dataclass(frozen=True, slots=True)
class Message:
    """A pending message: its CloudEvent, and how many attempts it has had."""

    id: str
    envelope: dict[str, Any]
    attempts: int
    first_ms: int

    def encode(self) -> bytes:
        return orjson.dumps(
            {"envelope": self.envelope, "attempts": self.attempts, "first_ms": self.first_ms}
        )

    @classmethod
    def decode(cls, message_id: str, raw: bytes) -> Message:
        d = orjson.loads(raw)
        return cls(message_id, d["envelope"], int(d["attempts"]), int(d["first_ms"]))


class WebhookStore:
    def __init__(self, client: aioredis.Redis | RedisCluster) -> None:
        self._redis = client
        self._scripts = Scripts(client)

    # Subscriptions (the API)

    async def create(self, sub: Subscription) -> None:
        with unavailable_as_error():
            await self._redis.hset(
                keys.webhook_subscriptions(), sub.id, orjson.dumps(sub.to_dict())
            )

    async def get(self, subscription_id: str) -> Subscription | None:
        with unavailable_as_error():
            raw = await self._redis.hget(keys.webhook_subscriptions(), subscription_id)
        return None if raw is None else Subscription.from_dict(orjson.loads(raw))

    async def all(self) -> list[Subscription]:
        with unavailable_as_error():
            raw = await self._redis.hgetall(keys.webhook_subscriptions())
        subs = [Subscription.from_dict(orjson.loads(v)) for v in raw.values()]
        return sorted(subs, key=lambda s: (s.created_ms, s.id))

    async def delete(self, subscription_id: str) -> bool:
        """Remove the subscription with its pending messages, log and failures."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hdel(keys.webhook_subscriptions(), subscription_id)
            pipe.delete(*keys.webhook_keys(subscription_id).values())
            with unavailable_as_error():
                removed, _ = await pipe.execute()
        return bool(removed)

    async def deliveries(self, subscription_id: str, failed: bool = False) -> list[Any]:
        """The newest attempts first, or the messages given up on."""
        key = keys.webhook_keys(subscription_id)["failed" if failed else "log"]
        with unavailable_as_error():
            raw = await self._redis.lrange(key, 0, -1)
        return [orjson.loads(r) for r in raw]

    async def pending(self, subscription_id: str) -> int:
        with unavailable_as_error():
            return int(await self._redis.zcard(keys.webhook_keys(subscription_id)["due"]))

    # Messages (the worker)

    async def enqueue(
        self, messages: list[tuple[str, Message]], now_ms: int, max_pending: int
    ) -> tuple[int, list[tuple[str, Message]]]:
        """Queue (subscription id, message) pairs, due now; a message already pending is left
        as it is. Returns how many were queued, and those dropped because their subscription
        already had `max_pending` (each dropped one is logged in its subscription's log)."""
        if not messages:
            return 0, []
        subs = list(dict.fromkeys(sid for sid, _ in messages))
        async with self._redis.pipeline(transaction=True) as pipe:
            for sid in subs:
                pipe.zcard(keys.webhook_keys(sid)["due"])
            with unavailable_as_error():
                room = {
                    s: max_pending - int(n) for s, n in zip(subs, await pipe.execute(), strict=True)
                }
        queued, dropped = 0, []
        async with self._redis.pipeline(transaction=True) as pipe:
            for sid, msg in messages:
                k = keys.webhook_keys(sid)
                if room[sid] <= 0:
                    dropped.append((sid, msg))
                    self._log(pipe, k, attempt_entry(msg, now_ms, "dropped", error="backlog full"))
                    continue
                room[sid] -= 1
                queued += 1
                pipe.hsetnx(k["msg"], msg.id, msg.encode())
                pipe.zadd(k["due"], {msg.id: now_ms}, nx=True)
            with unavailable_as_error():
                await pipe.execute()
        return queued, dropped

    async def lease(self, subscription_id: str, owner: str, lease_ms: int) -> bool:
        """Take or keep the right to send the subscription's messages for `lease_ms`; with 0,
        give it up (another worker may take it at once)."""
        script = self._scripts["webhook_lease.lua"]
        with unavailable_as_error():
            got = await script(
                keys=[keys.webhook_keys(subscription_id)["lease"]], args=[owner, lease_ms]
            )
        return bool(got)

    async def due(self, subscription_id: str, now_ms: int, limit: int) -> list[Message]:
        """The oldest messages due by `now_ms`, at most `limit`."""
        k = keys.webhook_keys(subscription_id)
        with unavailable_as_error():
            ids = await self._redis.zrangebyscore(k["due"], "-inf", now_ms, start=0, num=limit)
            if not ids:
                return []
            raw = await self._redis.hmget(k["msg"], ids)
        return [
            Message.decode(i.decode(), r) for i, r in zip(ids, raw, strict=True) if r is not None
        ]

    async def next_due_ms(self, subscription_id: str) -> int | None:
        with unavailable_as_error():
            first = await self._redis.zrange(
                keys.webhook_keys(subscription_id)["due"], 0, 0, withscores=True
            )
        return int(first[0][1]) if first else None

    async def settle(
        self,
        subscription_id: str,
        msg: Message,
        entry: dict[str, Any],
        retry_at_ms: int | None,
    ) -> None:
        """Record an attempt: the message goes (delivered, or given up on and kept in
        `failed`), or waits until `retry_at_ms` with one more attempt counted. Nothing is
        written for a subscription deleted meanwhile."""
        k = keys.webhook_keys(subscription_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hexists(keys.webhook_subscriptions(), subscription_id)
            with unavailable_as_error():
                (exists,) = await pipe.execute()
        if not exists:
            return
        async with self._redis.pipeline(transaction=True) as pipe:
            if retry_at_ms is None:
                pipe.zrem(k["due"], msg.id)
                pipe.hdel(k["msg"], msg.id)
                if entry["outcome"] == "failed":
                    failed = {**entry, "envelope": msg.envelope}
                    pipe.lpush(k["failed"], orjson.dumps(failed))
                    pipe.ltrim(k["failed"], 0, FAILED_KEEP - 1)
            else:
                again = Message(msg.id, msg.envelope, msg.attempts + 1, msg.first_ms)
                pipe.hset(k["msg"], msg.id, again.encode())
                pipe.zadd(k["due"], {msg.id: retry_at_ms}, xx=True)
            self._log(pipe, k, entry)
            with unavailable_as_error():
                await pipe.execute()

    @staticmethod
    def _log(pipe: Any, k: dict[str, str], entry: dict[str, Any]) -> None:
        pipe.lpush(k["log"], orjson.dumps(entry))
        pipe.ltrim(k["log"], 0, LOG_KEEP - 1)


def attempt_entry(
    msg: Message,
    at_ms: int,
    outcome: str,
    *,
    status: int | None = None,
    error: str | None = None,
    duration_ms: int | None = None,
    next_attempt_ms: int | None = None,
) -> dict[str, Any]:
    """One line of a subscription's delivery log (GET /v1/webhooks/{id}/deliveries)."""
    return {
        "message_id": msg.id,
        "type": msg.envelope.get("type"),
        "subject": msg.envelope.get("subject"),
        "attempt": msg.attempts + 1,
        "at_ms": at_ms,
        "outcome": outcome,
        "status": status,
        "error": error,
        "duration_ms": duration_ms,
        "next_attempt_ms": next_attempt_ms,
    }
