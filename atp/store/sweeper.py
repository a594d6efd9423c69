"""The API's sweeper: held reservations past their expiry are closed, and half-made ones (their
attempt got no answer and nobody asked again within the takeover time) give back their holds.
Reads discount overdue holds before the sweeper gets to them; the sweeper makes it final."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

import orjson

from atp.core.errors import ATPError, ReservationNotFound, StoreUnavailable
from atp.core.network import Network
from atp.core.reservations import PENDING, ReservationRequest
from atp.store import keys
from atp.store.client import REDIS_DOWN
from atp.store.reservations import ReservationStore

log = logging.getLogger(__name__)


class Sweeper:
    def __init__(
        self,
        store: ReservationStore,
        limit: int = 200,
        on_expired: Callable[[Iterable[str]], None] | None = None,
    ) -> None:
        """`on_expired`: told the SKUs of the reservations a round closed (their units are back
        on sale; the API's live streams push them)."""
        self._store = store
        self._redis = store.client
        self._limit = limit
        self._on_expired = on_expired

    async def _due(self, indexes: list[str], now_ms: int) -> list[list[bytes]]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for index in indexes:
                pipe.zrangebyscore(index, "-inf", now_ms, 0, self._limit)
            return await pipe.execute()  # type: ignore[no-any-return]

    async def expire_due(self, now_ms: int) -> int:
        """Close held reservations whose expiry has passed (every shard); how many."""
        try:
            due = await self._due(keys.EXPIRINGS, now_ms)
        except REDIS_DOWN:
            return 0
        closed = 0
        skus: dict[str, None] = {}  # in order, each once
        try:
            for index, rids in zip(keys.EXPIRINGS, due, strict=True):
                for rid in rids:
                    try:
                        view = await self._store.transition(rid.decode(), "expire", now_ms)
                        closed += 1
                        skus.update((ln["sku"], None) for ln in view["lines"])
                    except ReservationNotFound:
                        await self._redis.zrem(index, rid)  # the record itself is gone
                    except StoreUnavailable:
                        return closed
            return closed
        finally:
            if skus and self._on_expired is not None:
                self._on_expired(skus)

    async def abandon_stale(self, network: Network, now_ms: int) -> int:
        """Half-made reservations past the takeover time give back what they hold, and their
        id is free again (abandon); how many."""
        try:
            due = await self._due(keys.PENDINGS, now_ms)
        except REDIS_DOWN:
            return 0
        abandoned = 0
        for index, rids in zip(keys.PENDINGS, due, strict=True):
            for rid in rids:
                try:
                    abandoned += await self.abandon(rid.decode(), network, now_ms)
                    await self._redis.zrem(index, rid)
                except REDIS_DOWN:
                    return abandoned
        return abandoned

    async def abandon(self, rid: str, network: Network, now_ms: int) -> bool:
        """Give back what a half-made reservation holds and free its id (once nobody can take
        it over any more); False when it is not pending (any more)."""
        raw = await self._redis.hgetall(keys.reservation(rid))
        record = {k.decode(): v.decode() for k, v in raw.items()}
        if record.get("state") != PENDING:
            return False  # made, aborted or gone since: nothing to do
        canonical = orjson.loads(record["request"])
        req = ReservationRequest.from_canonical(rid, canonical)
        try:
            _, locs = self._store.plan(req, network)
        except ATPError as exc:  # the network changed since: its holds go at their expiry
            log.warning("half-made reservation %s left to its expiry: %s", rid, exc.message)
            return False
        attempt = int(record["expires_ms"])
        await self._store.give_back(rid, now_ms, locs, attempt)
        await self._store.run_record("abort", rid, now_ms, record["fingerprint"], attempt)
        log.info("half-made reservation %s abandoned: nobody asked again", rid)
        return True
