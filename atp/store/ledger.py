"""The ledger in Redis: the worker's writes of movements, and the ledger's counters.

A batch of movements is applied in one round trip: one call of the ledger's Redis Function
(atp/store/lua/ledger/apply.lua, atp/store/ledger_function.py) per SKU the batch touches, all
pipelined. Each call applies that SKU's movements to the incremental structures of its pairs
(a summary, the kept deltas by time, inbound, receipts), uses up the holds its shipments
fulfil and records its status per channel with the counters, atomically in the SKU's slot.
There is no read-modify-write on the client, so no version conflicts: any worker may apply
any SKU, and a batch applied again changes nothing (applied event ids are skipped).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis

from atp.core.availability import IN_STOCK, LOW_STOCK, OUT_OF_STOCK, LocationCounts
from atp.core.errors import ATPError
from atp.core.ledger import LedgerSummary, Outcome, Policy
from atp.core.movements import Effect, Movement
from atp.core.network import Network
from atp.core.reservations import shipment
from atp.store import keys
from atp.store.client import unavailable_as_error
from atp.store.ledger_function import LedgerFunction, is_missing_function
from atp.store.stock import flat_pairs, parse_stock
from atp.store.summaries import pair_summaries


class StoreConflict(ATPError):
    """The ledger cannot be written as it is (a SKU still has the v2 layout); the batch is not
    acknowledged and is tried again."""

    code = "store_conflict"


# The ledger's counters, kept by ledger/apply.lua in the call that changes them (see there):
# `skus`, `pairs` and `<channel>:<status code>`. One hash per hash slot (`keys.stats`), so the
# script stays in its SKU's slot on Redis Cluster; reading the ledger's size or how many SKUs are
# out of stock sums at most 16,384 small hashes in one pipelined round, never a scan.
STATUS_CODES = {IN_STOCK: "i", LOW_STOCK: "l", OUT_OF_STOCK: "o"}
STATUS_NAMES = {code: name for name, code in STATUS_CODES.items()}

_EFFECT = {Effect.DELTA: "d", Effect.COUNT: "c", Effect.INBOUND: "i"}
_OUTCOME = {
    "a": Outcome.APPLIED,
    "d": Outcome.DUPLICATE,
    "s": Outcome.SUPERSEDED,
    "t": Outcome.TOO_LATE,
}


@dataclass(frozen=True, slots=True)
class SkuChange:
    """Served counts of one SKU before and after a write (for availability change events)."""

    sku: str
    before: dict[str, LocationCounts]
    after: dict[str, LocationCounts]
    # the arrivals expected per location before and after (StockRecord.future)
    future_before: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    future_after: dict[str, list[tuple[int, int]]] = field(default_factory=dict)


@dataclass(slots=True)
class BatchResult:
    outcomes: list[tuple[Movement, Outcome]] = field(default_factory=list)
    skus_written: int = 0
    changes: list[SkuChange] = field(default_factory=list)
    # Holds used up by shipments: (reservation id, location, units)
    consumed: list[tuple[str, str, int]] = field(default_factory=list)
    # Shipments naming a reservation that holds nothing there: (reservation id, sku, location)
    unmatched: list[tuple[str, str, str]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class LedgerStats:
    """The ledger's counters: its size, and SKUs per recorded status per channel."""

    skus: int
    pairs: int
    statuses: dict[tuple[str, str], int]  # (channel, status) -> SKUs


STATS_CHUNK = 256  # stats hashes per pipeline (LedgerStore.stats)


class LedgerStore:
    """The worker's view: apply batches of movements, read the ledger's counters and a pair's
    summary. With `network`, every write records the SKU's status per channel, and the
    SKUs-per-status counters move with it in the same atomic step."""

    def __init__(
        self,
        client: aioredis.Redis,
        policy: Policy = Policy(),
        network: Network | None = None,
    ):
        self._redis = client
        self._policy = policy
        self._function = LedgerFunction(network)

    async def stats(self) -> LedgerStats:
        """The counters ledger/apply.lua keeps, summed over the slots: 16,384 small hashes
        whatever the ledger's size, read in pipelines of STATS_CHUNK. One pipeline of all of
        them held the event loop for up to 124 ms while redis-py packed and parsed it, every
        `ATP_GAUGE_REFRESH_S`, and every movement in flight waited (the worker's freshness
        tail); a chunk holds it for a few milliseconds."""
        rows: list[Any] = []
        stats_keys = keys.stats_keys()
        with unavailable_as_error():
            for start in range(0, len(stats_keys), STATS_CHUNK):
                async with self._redis.pipeline(transaction=False) as pipe:
                    for key in stats_keys[start : start + STATS_CHUNK]:
                        pipe.hgetall(key)
                    rows += await pipe.execute()
        return sum_stats(rows)

    async def apply(self, movements: Sequence[Movement], now_ms: int) -> BatchResult:
        """Apply a batch in one round trip; raises StoreUnavailable when Redis is away and
        StoreConflict when a SKU still has the v2 layout."""
        by_sku: dict[str, list[Movement]] = defaultdict(list)
        for m in movements:
            by_sku[m.sku].append(m)
        calls = [self._call(sku, moves, now_ms) for sku, moves in by_sku.items()]
        with unavailable_as_error():
            replies = await self._run([(k, a) for k, a, _ in calls])
        result = BatchResult()
        for (_, _, order), reply in zip(calls, replies, strict=True):
            _add_reply(result, order, reply)
        return result

    def _call(
        self, sku: str, moves: list[Movement], now_ms: int
    ) -> tuple[list[str], list[str | int], list[Movement]]:
        """KEYS, ARGV and the movements in the order sent (grouped by location)."""
        locs = sorted({m.location_id for m in moves})
        index = {loc: i for i, loc in enumerate(locs, 1)}
        order = sorted(moves, key=lambda m: index[m.location_id])  # stable: batch order kept
        args: list[str | int] = [
            sku,
            now_ms,
            self._policy.retention_ms,
            self._policy.inbound_grace_ms,
            self._policy.journal_entries,
            self._policy.journal_ttl_ms,
            len(locs),
            *locs,
            len(order),
        ]
        for m in order:
            args += [
                index[m.location_id],
                _EFFECT[m.effect],
                m.event_id,
                m.occurred_ms,
                m.qty,
                m.order_ref or "",
                "" if m.eta_ms is None else m.eta_ms,
                "1" if shipment(m) is not None else "0",
                m.source,
                m.kind,
            ]
        return keys.ledger_keys(sku, locs), args, order

    async def _run(self, calls: list[tuple[list[str], list[str | int]]]) -> list[Any]:
        """FCALL per SKU in one pipeline; the calls a master answered "Function not found"
        run again once the library is loaded (they did not run)."""
        replies = await self._pipeline(calls)
        missing = [i for i, r in enumerate(replies) if is_missing_function(r)]
        if missing:
            await self._function.load(self._redis)
            again = await self._pipeline([calls[i] for i in missing])
            for i, reply in zip(missing, again, strict=True):
                replies[i] = reply
        for reply in replies:
            if isinstance(reply, Exception):
                if "ATP_V2_LEDGER" in str(reply):
                    raise StoreConflict(str(reply).removeprefix("ATP_V2_LEDGER "))
                raise reply
        return replies

    async def _pipeline(self, calls: list[tuple[list[str], list[str | int]]]) -> list[Any]:
        name = self._function.name
        async with self._redis.pipeline(transaction=False) as pipe:
            for k, a in calls:
                pipe.execute_command("FCALL", name, len(k), *k, *a)
            return list(await pipe.execute(raise_on_error=False))

    async def summaries(self, sku: str) -> dict[str, LedgerSummary]:
        """Every pair's summary with its inbound (for /explain and tests): two round trips."""
        with unavailable_as_error():
            raw = await self._redis.hgetall(keys.ledger(sku))
            return await pair_summaries(self._redis, sku, raw)


def _add_reply(result: BatchResult, order: list[Movement], reply: list[Any]) -> None:
    codes = reply[0].decode() if isinstance(reply[0], bytes) else reply[0]
    result.outcomes.extend(zip(order, (_OUTCOME[c] for c in codes), strict=True))
    if not int(reply[1]):
        return
    sku = order[0].sku
    before, after, consumed, unmatched = reply[2], reply[3], reply[4], reply[5]
    result.skus_written += 1
    old, new = parse_stock(flat_pairs(before)), parse_stock(flat_pairs(after))
    result.changes.append(SkuChange(sku, old.counts, new.counts, old.future, new.future))
    for i in range(0, len(consumed), 3):
        rid, loc, units = consumed[i : i + 3]
        result.consumed.append((rid.decode(), loc.decode(), int(units)))
    for i in range(0, len(unmatched), 2):
        rid, loc = unmatched[i : i + 2]
        result.unmatched.append((rid.decode(), sku, loc.decode()))


def sum_stats(rows: Sequence[Mapping[bytes | str, bytes | str]]) -> LedgerStats:
    """The counters of every slot's stats hash, added up."""
    skus = pairs = 0
    statuses: dict[tuple[str, str], int] = defaultdict(int)
    for raw in rows:
        for k, v in raw.items():
            name = k.decode() if isinstance(k, bytes) else k
            if name == "skus":
                skus += int(v)
            elif name == "pairs":
                pairs += int(v)
            else:
                channel, _, code = name.rpartition(":")
                if code in STATUS_NAMES:
                    statuses[(channel, STATUS_NAMES[code])] += int(v)
    return LedgerStats(skus, pairs, dict(statuses))
