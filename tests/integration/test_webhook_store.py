"""The webhook store's scripts on one Redis and on a Redis Cluster: queueing (once per message,
capped, never for a deleted subscription), due order, retries and failures, the lease, delete."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from atp.core.webhooks import Subscription
from atp.store import keys
from atp.store.client import client_from_url
from atp.store.webhooks import Message, WebhookStore, attempt_entry

pytestmark = pytest.mark.integration
REDIS = ("node", "cluster")


def run(redis_url: str, body: Callable[[WebhookStore], Awaitable[Any]]) -> Any:
    async def go() -> Any:
        client = client_from_url(redis_url)
        try:
            return await body(WebhookStore(client))
        finally:
            await client.aclose()

    return asyncio.run(go())


def sub() -> Subscription:
    sid = f"wh_{uuid.uuid4().hex[:12]}"
    return Subscription(sid, "https://example.com/h", ("*",), "structured", "whsec_AAAA", 1)


def msg(n: int) -> Message:
    return Message(f"msg_{n}", {"type": "availability.changed", "subject": "S", "data": {}}, 0)


def test_queued_once_capped_and_never_for_a_deleted_subscription(redis_url):
    a, b = sub(), sub()

    async def body(store: WebhookStore) -> None:
        await store.create(a)
        await store.create(b)
        pairs = [(a.id, msg(1)), (a.id, msg(1)), (a.id, msg(2)), (a.id, msg(3)), (b.id, msg(1))]
        assert await store.enqueue(pairs, 1_000, max_pending=2) == (3, 1)  # a: 1, 2; b: 1
        assert (await store.pending(a.id), await store.pending(b.id)) == (2, 1)
        dropped = await store.deliveries(a.id)
        assert [(d["message_id"], d["outcome"]) for d in dropped] == [("msg_3", "dropped")]
        # The same record read again: nothing more.
        assert await store.enqueue([(a.id, msg(1))], 2_000, max_pending=10) == (0, 0)

        assert await store.delete(b.id) and not await store.delete(b.id)
        assert await store.enqueue([(b.id, msg(9))], 3_000, max_pending=10) == (0, 0)
        assert await store.pending(b.id) == 0 and await store.get(b.id) is None

    run(redis_url, body)


def test_due_in_order_retried_later_then_failed_and_kept(redis_url):
    a = sub()

    async def body(store: WebhookStore) -> None:
        await store.create(a)
        await store.enqueue([(a.id, msg(1))], 1_000, 10)
        await store.enqueue([(a.id, msg(2))], 2_000, 10)
        assert [m.id for m in await store.due(a.id, 5_000, limit=10)] == ["msg_1", "msg_2"]
        assert [m.id for m in await store.due(a.id, 1_500, limit=10)] == ["msg_1"]
        first = (await store.due(a.id, 5_000, limit=1))[0]

        entry = attempt_entry(first, 5_000, "retrying", status=500, next_attempt_ms=9_000)
        await store.settle(a.id, first, entry, retry_at_ms=9_000)
        assert [m.id for m in await store.due(a.id, 5_000, limit=10)] == ["msg_2"]
        assert await store.next_due_ms(a.id) == 2_000
        delivered, again = await store.due(a.id, 9_000, limit=10)
        assert (delivered.id, again.id, again.attempts) == ("msg_2", "msg_1", 1)

        await store.settle(a.id, again, attempt_entry(again, 9_500, "failed", status=500), None)
        await store.settle(a.id, delivered, attempt_entry(delivered, 9_600, "delivered"), None)
        assert await store.pending(a.id) == 0
        failed = await store.deliveries(a.id, failed=True)
        assert [(f["message_id"], f["attempt"], f["envelope"]["type"]) for f in failed] == [
            ("msg_1", 2, "availability.changed")
        ]
        log = await store.deliveries(a.id)
        assert [d["outcome"] for d in log] == ["delivered", "failed", "retrying"]

        # Settled again (a second worker after a lost lease): no longer pending, not recorded.
        await store.settle(a.id, delivered, attempt_entry(delivered, 9_700, "delivered"), None)
        assert len(await store.deliveries(a.id)) == 3

    run(redis_url, body)


def test_one_lease_holder_at_a_time(redis_url):
    a = sub()

    async def body(store: WebhookStore) -> None:
        assert await store.lease(a.id, "w1", 30_000)
        assert not await store.lease(a.id, "w2", 30_000)
        assert await store.lease(a.id, "w1", 30_000)  # kept
        assert await store.lease(a.id, "w2", 0)  # giving up what one does not hold: no effect
        assert not await store.lease(a.id, "w2", 30_000)
        assert await store.lease(a.id, "w1", 0)
        assert await store.lease(a.id, "w2", 30_000)

    run(redis_url, body)


def test_delete_leaves_no_key(redis_url):
    a = sub()

    async def body(store: WebhookStore) -> list[int]:
        await store.create(a)
        await store.enqueue([(a.id, msg(1))], 1_000, 10)
        m = (await store.due(a.id, 1_000, 1))[0]
        await store.settle(a.id, m, attempt_entry(m, 1_000, "failed"), None)
        await store.lease(a.id, "w1", 30_000)
        await store.delete(a.id)
        k = keys.webhook_keys(a.id)
        return [await store._redis.exists(key) for key in k.values()]

    assert run(redis_url, body) == [0, 0, 0, 0, 0]
