"""The ledger in Redis: the worker's writes of folded movements, and the ledger's counters.

A batch of movements is applied in three steps: one pipelined read of every SKU the batch
touches, the pure update per SKU (`atp.core.updates.update_sku`: the fold, the holds shipments
use up, the counts before and after), and one pipelined round of `apply_ledger.lua` calls, each
writing one SKU atomically and only if its version and those holds are still what was read.
A SKU that moved meanwhile (another worker wrote it, for instance right after a rebalance, or a
reservation changed a hold) is read and folded again; replays are harmless because applied
event ids are skipped.
"""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis.asyncio as aioredis

from atp.core.availability import IN_STOCK, LOW_STOCK, OUT_OF_STOCK, LocationCounts
from atp.core.errors import ATPError
from atp.core.ledger import LedgerState, Outcome, Policy, next_inbound
from atp.core.movements import Movement
from atp.core.updates import SkuUpdate, hold_members, update_sku
from atp.store import keys
from atp.store.client import unavailable_as_error
from atp.store.scripts import eval_pipelined, load_script
from atp.store.stock import parse_stock


class StoreConflict(ATPError):
    """A SKU kept changing under us; the batch is not acknowledged and will be redelivered."""

    code = "store_conflict"


# The ledger's counters, kept by apply_ledger.lua in the write that changes them (see there):
# `skus`, `pairs` and `<channel>:<status code>`. One hash per hash slot (`keys.stats`), so the
# script stays in its SKU's slot on Redis Cluster; reading the ledger's size or how many SKUs are
# out of stock sums at most 16,384 small hashes in one pipelined round, never a scan.
STATUS_CODES = {IN_STOCK: "i", LOW_STOCK: "l", OUT_OF_STOCK: "o"}
STATUS_NAMES = {code: name for name, code in STATUS_CODES.items()}

# A SKU's status per channel from its counts: [(channel, status), ...] (atp.core.availability).
StatusFn = Callable[[str, Mapping[str, LocationCounts]], Sequence[tuple[str, str]]]


@dataclass(frozen=True, slots=True)
class SkuChange:
    """Served counts of one SKU before and after a write (for availability change events)."""

    sku: str
    before: dict[str, LocationCounts]
    after: dict[str, LocationCounts]


@dataclass(slots=True)
class BatchResult:
    outcomes: list[tuple[Movement, Outcome]] = field(default_factory=list)
    skus_written: int = 0
    conflicts: int = 0
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
    """The worker's view: read, fold and write ledger state for batches of movements.

    With `statuses`, every write that moves a SKU's counts also records the SKU's status per
    channel, and the SKUs-per-status counters move with it in the same atomic step. A write
    whose shipments use up reservations' holds computes what they use from the holds read with
    the ledger (`atp.core.reservations.use_holds`), and the script refuses it, as it refuses a moved
    version, if the holds changed since: so the status it records is that of its counts.
    """

    def __init__(
        self,
        client: aioredis.Redis,
        policy: Policy = Policy(),
        max_attempts: int = 16,
        statuses: StatusFn | None = None,
    ):
        self._redis = client
        self._policy = policy
        self._max_attempts = max_attempts
        self._statuses = statuses
        self._apply_script = client.register_script(load_script("apply_ledger.lua"))

    def _status_args(self, sku: str, counts: Mapping[str, LocationCounts]) -> list[str | int]:
        if self._statuses is None:
            return [0]
        pairs = self._statuses(sku, counts)
        return [len(pairs), *(x for ch, st in pairs for x in (ch, STATUS_CODES[st]))]

    async def stats(self) -> LedgerStats:
        """The counters apply_ledger.lua keeps, summed over the slots: 16,384 small hashes
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

    async def _write(
        self, calls: list[tuple[str, list[bytes | str | int]]]
    ) -> list[tuple[int | None, list[tuple[str, str, int]], list[tuple[str, str]]]]:
        """One pipelined round of apply_ledger.lua; per SKU (new version, holds consumed,
        shipments that found no hold), or (None, [], []) where the write was refused."""
        replies = await eval_pipelined(
            self._redis, self._apply_script, [(keys.ledger_keys(sku), args) for sku, args in calls]
        )
        out: list[tuple[int | None, list[tuple[str, str, int]], list[tuple[str, str]]]] = []
        for reply in replies:
            if not reply[0]:
                out.append((None, [], []))
                continue
            consumed = [(r, loc, int(u)) for r, loc, u in orjson.loads(reply[2])]
            unmatched = [(r, loc) for r, loc in orjson.loads(reply[3])]
            out.append((int(reply[1]), consumed, unmatched))
        return out

    async def apply(self, movements: Sequence[Movement], now_ms: int) -> BatchResult:
        """Apply a batch; raises StoreUnavailable when Redis is away, StoreConflict on livelock."""
        by_sku: dict[str, list[Movement]] = defaultdict(list)
        for m in movements:
            by_sku[m.sku].append(m)
        result = BatchResult()
        pending = list(by_sku)
        with unavailable_as_error():
            for attempt in range(self._max_attempts):
                conflicted = await self._attempt(pending, by_sku, now_ms, result)
                if not conflicted:
                    return result
                result.conflicts += len(conflicted)
                pending = conflicted
                # Jittered backoff, so writers racing for one SKU do not collide in lockstep.
                await asyncio.sleep(random.uniform(0, 0.001 * 2 ** min(attempt, 8)))
        raise StoreConflict(
            f"{len(pending)} SKUs kept changing during {self._max_attempts} attempts"
        )

    async def _attempt(
        self,
        skus: list[str],
        by_sku: dict[str, list[Movement]],
        now_ms: int,
        result: BatchResult,
    ) -> list[str]:
        """One read-fold-write round; adds what was written to `result`, returns conflicts."""
        planned: list[tuple[SkuUpdate, bytes]] = []
        for sku, (version, states, counts, held) in zip(
            skus, await self._read(skus, by_sku), strict=True
        ):
            update = update_sku(sku, by_sku[sku], states, counts, held, now_ms, self._policy)
            if update.writes:
                planned.append((update, version))
            else:
                result.outcomes.extend(update.outcomes)  # nothing to write: repeats, all of them
        if not planned:
            return []
        replies = await self._write(
            [(u.sku, self._write_args(u, version, now_ms)) for u, version in planned]
        )
        conflicted = []
        for (update, _), (written, consumed, unmatched) in zip(planned, replies, strict=True):
            if written is None:
                conflicted.append(update.sku)  # its outcomes are recomputed by the next attempt
                continue
            result.skus_written += 1
            result.outcomes.extend(update.outcomes)
            result.consumed.extend(consumed)
            result.unmatched.extend((r, update.sku, loc) for r, loc in unmatched)
            result.changes.append(SkuChange(update.sku, update.before, update.after))
        return conflicted

    async def _read(
        self, skus: list[str], by_sku: dict[str, list[Movement]]
    ) -> list[
        tuple[bytes, dict[str, LedgerState | None], dict[str, LocationCounts], dict[str, int]]
    ]:
        """One pipelined read: per SKU its ledger version, the ledger state of every location
        its movements touch, its served counts, and the holds its shipments may use up."""
        locs_of = {sku: sorted({m.location_id for m in by_sku[sku]}) for sku in skus}
        members_of = {sku: hold_members(by_sku[sku]) for sku in skus}
        async with self._redis.pipeline(transaction=False) as pipe:
            for sku in skus:
                fields = [keys.VERSION_FIELD] + [keys.LEDGER_PREFIX + loc for loc in locs_of[sku]]
                pipe.hmget(keys.ledger(sku), fields)
                pipe.hgetall(keys.stock(sku))
                if members_of[sku]:
                    pipe.hmget(keys.holds(sku), members_of[sku])
            rows = iter(await pipe.execute())
        out = []
        for sku in skus:
            row, stock = next(rows), parse_stock(next(rows))
            held: dict[str, int] = {}
            if members_of[sku]:
                found = zip(members_of[sku], next(rows), strict=True)
                held = {m: int(units) for m, units in found if units is not None}
            states = {
                loc: LedgerState.from_list(orjson.loads(raw)) if raw else None
                for loc, raw in zip(locs_of[sku], row[1:], strict=True)
            }
            out.append((row[0] or b"0", states, stock.counts, held))
        return out

    def _write_args(self, u: SkuUpdate, version: bytes, now_ms: int) -> list[bytes | str | int]:
        """ARGV of apply_ledger.lua for one SKU's update (see its header)."""
        groups: list[bytes | str | int] = []
        for loc, state in u.states.items():
            inbound = next_inbound(state)
            ib = "" if inbound is None else f"{inbound[0]}:{inbound[1]}"
            groups += [loc, orjson.dumps(state.to_list()), state.on_hand, ib]
        fulfil = [x for s, n in zip(u.shipments, u.used, strict=True) for x in (*s, n)]
        status = self._status_args(u.sku, u.after) if u.after != u.before else [0]
        return [
            version,
            now_ms,
            len(u.states),
            *groups,
            len(u.shipments),
            *fulfil,
            *status,
        ]

    async def ledger_state(self, sku: str, location_id: str) -> LedgerState | None:
        raw = await self._redis.hget(keys.ledger(sku), keys.LEDGER_PREFIX + location_id)
        return None if raw is None else LedgerState.from_list(orjson.loads(raw))


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
