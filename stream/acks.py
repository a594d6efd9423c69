"""Commit consumed offsets only once Redis has made the state they produced durable.

If an offset were committed before Redis had written the state to its append-only file, a Redis
crash could lose state whose records Kafka will never redeliver. So offsets are committed in
rounds: write a fence key, `WAITAOF` for it (the replication offset is global, so once the fence
is fsynced every write acknowledged before it is too), then commit the offsets of every batch
that was written before the fence. The consumer goes on with the next batches meanwhile: with
`appendfsync everysec` a fence waits up to a second, and a round covers every batch written
in it (with `always`, as the service starts Redis, the fence returns at once).

With AOF off there is nothing to wait for and offsets are committed right after the write.

On Redis Cluster the writes of a batch land on several masters, and each has its own AOF and
replication offset: the fence is written and waited for on every master (a fence key in a slot
that master owns, and WAITAOF on the same connection, in one pipeline per master).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping

import redis.asyncio as aioredis
from aiokafka import TopicPartition
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


Offsets = dict[TopicPartition, int]  # the offset of the next record to read, per partition
Commit = Callable[[Offsets], Awaitable[None]]


class DurableAcker:
    def __init__(self, client: aioredis.Redis, commit: Commit, *, durable: bool = True) -> None:
        self._redis = client
        self._commit = commit
        self._want_durable = durable
        self.durable = False
        self._pending: Offsets = {}
        self._have_pending = asyncio.Event()
        self._round = asyncio.Lock()  # one fence-and-commit round at a time
        self._task: asyncio.Task[None] | None = None
        self._started = False

    async def start(self) -> None:
        """Learn whether Redis has AOF on (retried while Redis is away)."""
        if self._started:
            return
        if self._want_durable:
            delay = 0.1
            while True:
                try:
                    self.durable = await self._appendonly()
                    break
                except REDIS_DOWN as exc:
                    log.warning("Redis unavailable, retrying in %.1fs: %s", delay, exc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
            if not self.durable:
                log.warning(
                    "Redis runs without AOF: offsets are committed once writes reach Redis "
                    "memory, and a Redis crash can lose acknowledged state"
                )
        if self.durable:
            self._task = asyncio.create_task(self._run(), name="durable-acker")
        self._started = True

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

    async def written(self, offsets: Mapping[TopicPartition, int]) -> None:
        """The state of the records before these offsets is in Redis: commit them once it is
        durable (now, without AOF)."""
        if not self.durable:
            await self._commit(dict(offsets))
            return
        for tp, offset in offsets.items():
            if offset > self._pending.get(tp, -1):
                self._pending[tp] = offset
        self._have_pending.set()

    async def flush(self) -> None:
        """Fence and commit everything written so far (before a rebalance or a stop)."""
        if self.durable:
            await self._one_round()

    async def _run(self) -> None:
        while True:
            await self._have_pending.wait()
            await self._one_round()

    async def _one_round(self) -> None:
        async with self._round:
            self._have_pending.clear()
            batch, self._pending = self._pending, {}
            if not batch:
                return
            await self._fence()
            await self._commit(batch)

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
