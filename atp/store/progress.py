"""The stream's progress in Redis: the worker writes it, the API reads it for `behind_ms`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from atp.core.errors import StoreUnavailable
from atp.core.freshness import PartitionProgress, behind_ms
from atp.store import keys
from atp.store.client import unavailable_as_error

log = logging.getLogger(__name__)


async def write_progress(
    client: aioredis.Redis, group_id: str, progress: Mapping[str, PartitionProgress]
) -> None:
    """One HSET of every partition's progress ("<hop>/<topic>/<partition>" -> encoded)."""
    if not progress:
        return
    mapping = {field: p.encode() for field, p in progress.items()}
    with unavailable_as_error():
        await client.hset(keys.progress(group_id), mapping=mapping)


async def read_progress(client: aioredis.Redis, group_id: str) -> list[PartitionProgress]:
    with unavailable_as_error():
        raw = await client.hgetall(keys.progress(group_id))
    out = []
    for field, value in raw.items():
        try:
            out.append(PartitionProgress.decode(_text(value)))
        except ValueError:
            log.warning("progress of %r not understood: %r", field, value)
    return out


class BehindReader:
    """`behind_ms` for the API's answers, reading the progress at most every `refresh_ms`.

    Answers share one read (a product page's lookups cost no extra round trip); concurrent
    callers that find it old wait for the same refresh. When it cannot be read the last known
    progress is used and ages, so a stalled read shows as growing `behind_ms`; an availability
    answer never fails for it.
    """

    def __init__(
        self,
        client: aioredis.Redis,
        group_id: str,
        clock: Callable[[], int],
        refresh_ms: int = 500,
    ) -> None:
        self._redis = client
        self._group = group_id
        self._clock = clock
        self._refresh_ms = refresh_ms
        self._progress: list[PartitionProgress] = []
        self._read_at: int | None = None
        self._refreshing: asyncio.Task[None] | None = None

    async def behind_ms(self) -> int | None:
        now = self._clock()
        if self._read_at is None or now - self._read_at >= self._refresh_ms:
            if self._refreshing is None:
                self._refreshing = asyncio.ensure_future(self._refresh(now))
            await asyncio.shield(self._refreshing)
        return behind_ms(self._progress, self._clock())

    async def _refresh(self, now: int) -> None:
        try:
            self._progress = await read_progress(self._redis, self._group)
        except StoreUnavailable as exc:
            log.debug("stream progress not read: %s", exc)
        except RedisError as exc:  # e.g. an ACL without HGETALL: the answers go on without it
            log.warning("stream progress not read (behind_ms stays as last read): %r", exc)
        finally:
            self._read_at = now
            self._refreshing = None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
