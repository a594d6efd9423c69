"""Webhook subscriptions and their messages in Redis (the keys: atp.store.keys, `{wh}`).

The API makes, lists and deletes subscriptions; the worker's webhook hop enqueues a message per
(event, subscription) and the worker holding a subscription's lease sends its due messages and
records each attempt. Every change that touches more than one key is one script
(atp/store/lua/webhook/), all keys in the `{wh}` slot. A message's id is stable
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

    def encode(self) -> bytes:
        return orjson.dumps({"envelope": self.envelope, "attempts": self.attempts})

    @classmethod
    def decode(cls, message_id: str, raw: bytes) -> Message:
        d = orjson.loads(raw)
        return cls(message_id, d["envelope"], int(d["attempts"]))


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
        k = keys.webhook_keys(subscription_id)
        subs = keys.webhook_subscriptions()
        script = self._scripts["webhook/delete.lua"]
        with unavailable_as_error():
            existed = await script(keys=[subs, *k.values()], args=[subscription_id])
        return bool(existed)

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
    ) -> tuple[int, int]:
        """Queue (subscription id, message) pairs, due now, in one atomic step; a message
        already pending is left as it is, one for a subscription deleted meanwhile is not
        queued. Returns how many were queued, and how many were dropped because their
        subscription already had `max_pending` (each drop is logged in its delivery log)."""
        if not messages:
            return 0, 0
        subs = list(dict.fromkeys(sid for sid, _ in messages))
        index = {sid: i for i, sid in enumerate(subs, 1)}
        script_keys = [keys.webhook_subscriptions()]
        for sid in subs:
            k = keys.webhook_keys(sid)
            script_keys += [k["due"], k["msg"], k["log"]]
        args: list[Any] = [now_ms, max_pending, LOG_KEEP]
        for sid, msg in messages:
            entry = orjson.dumps(attempt_entry(msg, now_ms, "dropped", error="backlog full"))
            args += [index[sid], sid, msg.id, msg.encode(), entry]
        with unavailable_as_error():
            queued, dropped, _ = await self._scripts["webhook/enqueue.lua"](
                keys=script_keys, args=args
            )
        return int(queued), int(dropped)

    async def lease(self, subscription_id: str, owner: str, lease_ms: int) -> bool:
        """Take or keep the right to send the subscription's messages for `lease_ms`; with 0,
        give it up (another worker may take it at once)."""
        script = self._scripts["webhook/lease.lua"]
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
        again = Message(msg.id, msg.envelope, msg.attempts + 1)
        failed = {**entry, "envelope": msg.envelope} if entry["outcome"] == "failed" else None
        args = [
            subscription_id,
            msg.id,
            "" if retry_at_ms is None else retry_at_ms,
            "" if retry_at_ms is None else again.encode(),
            orjson.dumps(entry),
            "" if failed is None else orjson.dumps(failed),
            LOG_KEEP,
            FAILED_KEEP,
        ]
        script_keys = [keys.webhook_subscriptions(), k["due"], k["msg"], k["log"], k["failed"]]
        with unavailable_as_error():
            await self._scripts["webhook/settle.lua"](keys=script_keys, args=args)


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
