"""Commit consumed offsets only once Redis has made the state they produced durable.

If an offset were committed before Redis had written the state to its append-only file, a Redis
crash could lose state whose records Kafka will never redeliver. So offsets are committed in
rounds: a fence (atp.store.durability: a write, then `WAITAOF` for it), then the offsets of
every batch that was written before the fence. The consumer goes on with the next batches
meanwhile: with `appendfsync everysec` a fence waits up to a second, and a round covers every
batch written in it (with `always`, as the service starts Redis, the fence returns at once).

With AOF off there is nothing to wait for and offsets are committed right after the write.

On Redis Cluster the writes of a batch land on several masters: the fence covers every master.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping

import redis.asyncio as aioredis
from aiokafka import TopicPartition

from atp.store.client import REDIS_DOWN
from atp.store.durability import Durability
from stream.retry import Backoff

log = logging.getLogger(__name__)

Offsets = dict[TopicPartition, int]  # the offset of the next record to read, per partition
Commit = Callable[[Offsets], Awaitable[None]]


class DurableAcker:
    def __init__(self, client: aioredis.Redis, commit: Commit, *, durable: bool = True) -> None:
        self._durability = Durability(client)
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
            backoff = Backoff()
            while True:
                try:
                    self.durable = await self._durability.aof_enabled()
                    break
                except REDIS_DOWN as exc:
                    log.warning("Redis unavailable, retrying in %.1fs: %s", backoff.delay_s, exc)
                    await backoff.wait()
            if not self.durable:
                log.warning(
                    "Redis runs without AOF: offsets are committed once writes reach Redis "
                    "memory, and a Redis crash can lose acknowledged state"
                )
        if self.durable:
            self._task = asyncio.create_task(self._run(), name="durable-acker")
        self._started = True

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
        backoff = Backoff()
        while True:
            try:
                if await self._durability.fence():
                    return
                log.warning("WAITAOF timed out; Redis has not fsynced for 5 s, waiting on")
            except REDIS_DOWN as exc:
                log.warning("Redis unavailable while waiting for durability: %s", exc)
                await backoff.wait()
