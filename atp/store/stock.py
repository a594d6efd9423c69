"""What the API serves: a SKU's counts, inbound and holds past expiry, in one round trip."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from atp.core.availability import LocationCounts
from atp.core.journal import Entry
from atp.core.kits import Component
from atp.core.ledger import LedgerSummary
from atp.store import keys
from atp.store.client import REDIS_DOWN, unavailable, unavailable_as_error
from atp.store.scripts import eval_pipelined, eval_replies, load_script
from atp.store.summaries import pair_summaries


@dataclass(frozen=True, slots=True)
class StockRecord:
    counts: dict[str, LocationCounts]
    inbound: dict[str, tuple[int, int]]  # the next arrival per location
    updated_ms: int | None
    # every expected arrival per location, earliest first (the next one and those after it)
    future: dict[str, list[tuple[int, int]]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class KitStock:
    """A kit's components with what is served for each (atp.core.kits)."""

    sku: str
    parts: tuple[Component, ...]
    records: tuple[StockRecord, ...]  # per part

    def counts(self) -> dict[str, dict[str, LocationCounts]]:
        return {p.sku: r.counts for p, r in zip(self.parts, self.records, strict=True)}

    def updated_ms(self) -> int | None:
        """When the newest of its components' counts was written (None: none was)."""
        return max((r.updated_ms for r in self.records if r.updated_ms is not None), default=None)


class StockReader:
    """The API's view: what is served for a SKU, in one round trip.

    Reads go through `read_stock.lua`, which also names the units of holds past their expiry,
    so a held reservation stops counting at expires_at even before the sweeper closes it. On
    one Redis a call reads up to `per_call` SKUs (one command instead of one per SKU: redis-py
    packs and parses each command, some 10 us a SKU in a batch of 100); on a cluster, whose
    SKUs live in different slots, one SKU per call, pipelined.
    """

    per_call = 50  # SKUs per script call: bounds how long one call keeps Redis busy

    def __init__(self, client: aioredis.Redis):
        self._redis = client
        self._read = client.register_script(load_script("read_stock.lua"))
        self._chunk = 1 if isinstance(client, RedisCluster) else self.per_call
        self._waiting: list[tuple[str, int, asyncio.Future[StockRecord]]] = []
        self._batches: set[asyncio.Task[None]] = set()

    async def read(self, sku: str, now_ms: int) -> StockRecord:
        """One SKU. Reads asked for in the same turn of the event loop go to Redis together:
        a single EVALSHA when alone, one pipeline when several. Under load, concurrent product
        pages share a round trip instead of each paying redis-py's per-call cost; alone, a
        read waits one loop turn (microseconds) longer."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[StockRecord] = loop.create_future()
        self._waiting.append((sku, now_ms, answer))
        if len(self._waiting) == 1:
            loop.call_soon(self._send_waiting)
        return await answer

    def _send_waiting(self) -> None:
        batch, self._waiting = self._waiting, []
        task = asyncio.ensure_future(self._read_batch(batch))
        self._batches.add(task)
        task.add_done_callback(self._batches.discard)

    async def _read_replies(self, skus: Sequence[str], now_ms: int) -> list[Any]:
        """Per SKU, the script's reply or the error its call got."""
        if len(skus) <= self._chunk:
            # Called directly, redis-py loads the script only after NOSCRIPT; in a pipeline it
            # would first send SCRIPT EXISTS.
            ks = [k for sku in skus for k in keys.sku_keys(sku)]
            return list(await self._read(keys=ks, args=[now_ms]))
        chunks = [skus[i : i + self._chunk] for i in range(0, len(skus), self._chunk)]
        calls = [([k for sku in c for k in keys.sku_keys(sku)], [now_ms]) for c in chunks]
        replies: list[Any] = []
        for chunk, reply in zip(
            chunks, await eval_replies(self._redis, self._read, calls), strict=True
        ):
            replies += [reply] * len(chunk) if isinstance(reply, Exception) else reply
        return replies

    async def _read_batch(self, batch: list[tuple[str, int, asyncio.Future[StockRecord]]]) -> None:
        try:
            # One `now` for the lot: the latest of the requests, which arrived in the same turn
            # of the event loop (a hold due in between counts as overdue for all of them).
            now_ms = max(now for _, now, _ in batch)
            replies = await self._read_replies([sku for sku, _, _ in batch], now_ms)
        except Exception as exc:  # every waiter gets the failure
            for _, _, answer in batch:
                if not answer.done():
                    answer.set_exception(_read_error(exc))
            return
        except BaseException:  # cancelled (shutdown): so are the waiters
            for _, _, answer in batch:
                answer.cancel()
            raise
        for (_, _, answer), reply in zip(batch, replies, strict=True):
            if answer.done():  # its request was cancelled meanwhile
                continue
            if isinstance(reply, Exception):
                answer.set_exception(_read_error(reply))
            else:
                flat, overdue = reply
                answer.set_result(parse_stock(flat_pairs(flat), flat_pairs(overdue)))

    async def read_many(self, skus: Sequence[str], now_ms: int) -> list[StockRecord]:
        """Several SKUs in one round trip."""
        with unavailable_as_error():
            rows = await self._read_replies(skus, now_ms)
            for row in rows:
                if isinstance(row, Exception):
                    raise row
        return [parse_stock(flat_pairs(flat), flat_pairs(overdue)) for flat, overdue in rows]

    async def read_kit(self, sku: str, parts: Sequence[Component], now_ms: int) -> KitStock:
        """A kit's components, in one round trip."""
        records = await self.read_many([p.sku for p in parts], now_ms)
        return KitStock(sku, tuple(parts), tuple(records))

    async def read_with_ledger(
        self, sku: str, now_ms: int
    ) -> tuple[StockRecord, dict[str, LedgerSummary]]:
        """Served counts and every location's ledger summary with its inbound (for /explain):
        the counts and the ledger hash in one round trip, the pairs' inbound in a second."""
        with unavailable_as_error():
            [(flat, overdue)], ledger = await eval_pipelined(
                self._redis,
                self._read,
                [(keys.sku_keys(sku), [now_ms])],
                then=[("HGETALL", keys.ledger(sku))],
            )
            summaries = await pair_summaries(self._redis, sku, ledger)
        return parse_stock(flat_pairs(flat), flat_pairs(overdue)), summaries

    async def journals(self, sku: str, location_id: str | None) -> dict[str, list[Entry]]:
        """The journal of each of the SKU's locations (or of one), newest first: the ledger
        hash names the locations, then one pipeline reads their lists."""
        with unavailable_as_error():
            if location_id is not None:
                locs = [location_id]
            else:
                fields = await self._redis.hkeys(keys.ledger(sku))
                prefix = keys.LEDGER_PREFIX.encode()
                locs = sorted(f[len(prefix) :].decode() for f in fields if f.startswith(prefix))
            async with self._redis.pipeline(transaction=False) as pipe:
                for loc in locs:
                    pipe.lrange(keys.journal(sku, loc), 0, -1)
                lists = await pipe.execute()
        return {loc: [Entry.decode(x) for x in raw] for loc, raw in zip(locs, lists, strict=True)}

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except REDIS_DOWN:
            return False


def _read_error(exc: Exception) -> Exception:
    return unavailable(exc) if isinstance(exc, REDIS_DOWN) else exc


def flat_pairs(flat: list[bytes]) -> list[tuple[bytes, bytes]]:
    """A Redis flat field/value reply (HGETALL from a script) as pairs."""
    return list(zip(flat[::2], flat[1::2], strict=True))


def parse_stock(
    raw: dict[bytes, bytes] | list[tuple[bytes, bytes]],
    overdue: list[tuple[bytes, bytes]] = (),  # type: ignore[assignment]
) -> StockRecord:
    """The served hash, minus the units of overdue holds (location, units) per location."""
    on_hand: dict[str, int] = {}
    reserved: dict[str, int] = {}
    inbound: dict[str, tuple[int, int]] = {}
    later: dict[str, list[tuple[int, int]]] = {}
    updated_ms = None
    items = raw.items() if isinstance(raw, dict) else raw
    for k, v in items:
        name = k.decode()
        if name.startswith(keys.ON_HAND_PREFIX):
            on_hand[name[len(keys.ON_HAND_PREFIX) :]] = int(v)
        elif name.startswith(keys.RESERVED_PREFIX):
            reserved[name[len(keys.RESERVED_PREFIX) :]] = int(v)
        elif name.startswith(keys.INBOUND_PREFIX):
            eta, qty = v.split(b":")
            inbound[name[len(keys.INBOUND_PREFIX) :]] = (int(eta), int(qty))
        elif name.startswith(keys.LATER_INBOUND_PREFIX):
            later[name[len(keys.LATER_INBOUND_PREFIX) :]] = [
                (int(eta), int(qty)) for eta, qty in (x.split(b":") for x in v.split(b","))
            ]
        elif name == keys.UPDATED_FIELD:
            updated_ms = int(v)
    for loc, units in overdue:
        name = loc.decode()
        reserved[name] = max(0, reserved.get(name, 0) - int(units))
    counts = {
        loc: LocationCounts(on_hand.get(loc, 0), reserved.get(loc, 0))
        for loc in on_hand.keys() | reserved.keys()
    }
    future = {loc: [first, *later.get(loc, ())] for loc, first in inbound.items()}
    return StockRecord(counts, inbound, updated_ms, future)
