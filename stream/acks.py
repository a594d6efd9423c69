"""Acknowledge consumed events only once Redis has made the state they produced durable.

Faust commits the offsets of acknowledged events. If an offset were committed before Redis had
written the state to its append-only file, a Redis crash could lose state whose events Kafka will
never redeliver. So events are acknowledged in rounds: write a fence key, `WAITAOF` for it (the
replication offset is global, so once the fence is fsynced every write acknowledged before it
is too), then acknowledge every event whose batch was written before the fence.

With AOF off there is nothing to wait for and events are acknowledged right after the write.

On Redis Cluster the writes of a batch land on several masters, and each has its own AOF and
replication offset: the fence is written and waited for on every master (a fence key in a slot
that master owns, and WAITAOF on the same connection, in one pipeline per master).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster

from atp import keys
from atp.store import REDIS_DOWN

log = logging.getLogger(__name__)

FENCE_KEY = keys.fence(0)  # on one Redis any key does; this one is in slot 0


def fences(cluster: RedisCluster) -> list[tuple[ClusterNode, str]]:
    """One fence key per master, in a slot that master owns."""
    primaries = {node.name for node in cluster.get_primaries()}
    found: dict[str, tuple[ClusterNode, str]] = {}
    for slot in range(keys.SLOTS):
        node = cluster.nodes_manager.get_node_from_slot(slot)
        if node.name in primaries and node.name not in found:
            found[node.name] = (node, keys.fence(slot))
            if len(found) == len(primaries):
                break
    return list(found.values())


class DurableAcker:
    def __init__(self, client: aioredis.Redis, *, durable: bool = True) -> None:
        self._redis = client
        self._want_durable = durable
        self.durable = False
        self._pending: list[tuple[Any, Any]] = []
        self._have_pending = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._task is not None:
            return
        if self._want_durable:
            self.durable = await self._appendonly()
            if not self.durable:
                log.warning(
                    "Redis runs without AOF: offsets are committed once writes reach Redis "
                    "memory, and a Redis crash can lose acknowledged state"
                )
        if self.durable:
            self._task = asyncio.create_task(self._run(), name="durable-acker")

    async def _appendonly(self) -> bool:
        """AOF is on (on a cluster: on every master)."""
        if isinstance(self._redis, RedisCluster):
            await self._redis.initialize()
            replies = [
                await self._redis.execute_command("CONFIG GET", "appendonly", target_nodes=node)
                for node in self._redis.get_primaries()
            ]
        else:
            replies = [await self._redis.config_get("appendonly")]
        return all(r.get("appendonly", r.get(b"appendonly")) in ("yes", b"yes") for r in replies)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def written(self, stream: Any, events: Sequence[Any]) -> None:
        """The state these events produced is in Redis; ack them once it is durable."""
        if not self.durable:
            for event in events:
                await stream.ack(event)
            return
        self._pending.extend((stream, e) for e in events)
        self._have_pending.set()

    async def _run(self) -> None:
        while True:
            await self._have_pending.wait()
            self._have_pending.clear()
            batch, self._pending = self._pending, []
            await self._fence()
            for stream, event in batch:
                await stream.ack(event)

    async def _fence(self) -> None:
        delay = 0.1
        while True:
            try:
                if await self._fence_all():
                    return
                log.warning("WAITAOF timed out; Redis has not fsynced for 5 s, waiting on")
            except REDIS_DOWN as exc:
                log.warning("Redis unavailable while waiting for durability: %s", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _fence_all(self) -> bool:
        """Write a fence and wait until it is fsynced (on every master); False on a timeout."""
        if not isinstance(self._redis, RedisCluster):
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.incr(FENCE_KEY)
                pipe.execute_command("WAITAOF", 1, 0, 5000)
                _, (local, _) = await pipe.execute()
            return int(local) >= 1
        # A cluster pipeline sends each master's commands in order on one connection.
        async with self._redis.pipeline(transaction=False) as pipe:
            targets = fences(self._redis)
            for node, key in targets:
                pipe.incr(key)
                pipe.execute_command("WAITAOF", 1, 0, 5000, target_nodes=node)
            replies = await pipe.execute()
        return all(int(local) >= 1 for local, _ in replies[1::2])
