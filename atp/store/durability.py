"""Whether Redis keeps what it acknowledged, and a fence that returns once it has.

A fence writes a key and runs `WAITAOF` for it: the replication offset is global, so once the
fence is fsynced every write acknowledged before it is too. On Redis Cluster each master has its
own AOF and offset: the fence is written and waited for on every master (a key in a slot that
master owns, and WAITAOF on the same connection, in one pipeline per master).
"""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster

from atp.store import keys

FENCE_KEY = keys.fence(0)  # on one Redis any key does; this one is in slot 0
WAIT_MS = 5000


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


class Durability:
    def __init__(self, client: aioredis.Redis) -> None:
        self._redis = client

    async def aof_enabled(self) -> bool:
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

    async def fence(self) -> bool:
        """Write a fence and wait until it is fsynced (on every master); False if that took
        longer than WAIT_MS."""
        if not isinstance(self._redis, RedisCluster):
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.incr(FENCE_KEY)
                pipe.execute_command("WAITAOF", 1, 0, WAIT_MS)
                _, (local, _) = await pipe.execute()
            return int(local) >= 1
        # A cluster pipeline sends each master's commands in order on one connection.
        async with self._redis.pipeline(transaction=False) as pipe:
            for node, key in fences(self._redis):
                pipe.incr(key)
                pipe.execute_command("WAITAOF", 1, 0, WAIT_MS, target_nodes=node)
            replies = await pipe.execute()
        return all(int(local) >= 1 for local, _ in replies[1::2])
