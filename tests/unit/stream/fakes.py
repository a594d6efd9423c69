"""Stand-ins for the hops' I/O: a sink that keeps what it is given, and a ledger in memory that
applies movements with the same pure code as the Redis store (atp.core.updates)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import orjson
from aiokafka.structs import ConsumerRecord
from prometheus_client import CollectorRegistry

from atp.core.availability import LocationCounts
from atp.core.errors import ReservationNotFound, StoreUnavailable
from atp.core.ledger import LedgerState, Policy, future_inbound
from atp.core.movements import Movement
from atp.core.reservations import hold_member
from atp.core.updates import update_sku
from atp.store.ledger import BatchResult, SkuChange
from stream.metrics import WorkerMetrics
from stream.records import Record

NOW = 1_790_000_000_000


def record(
    topic: str, value: bytes, offset: int = 0, key: bytes | None = None, headers: Any = ()
) -> Any:
    return ConsumerRecord(topic, 0, offset, NOW - 50, 0, key, value, None, 0, len(value), headers)


def metrics() -> WorkerMetrics:
    return WorkerMetrics.create(CollectorRegistry())


def counter(metric: Any, *labels: str) -> float:
    return float(metric.labels(*labels)._value.get() if labels else metric._value.get())


class ListSink:
    def __init__(self) -> None:
        self.sent: list[list[Record]] = []

    async def send(self, records: Iterable[Record]) -> None:
        self.sent.append(list(records))

    def to(self, topic: str) -> list[Record]:
        return [r for batch in self.sent for r in batch if r.topic == topic]

    def values(self, topic: str) -> list[dict[str, Any]]:
        return [orjson.loads(r.value) for r in self.to(topic)]


class MemoryLedger:
    """LedgerStore.apply without Redis; `fail` makes the next calls raise StoreUnavailable."""

    def __init__(self, policy: Policy = Policy()) -> None:
        self.policy = policy
        self.states: dict[tuple[str, str], LedgerState] = {}
        self.counts: dict[str, dict[str, LocationCounts]] = {}
        self.holds: dict[str, dict[str, int]] = {}
        # the served arrivals per SKU and location (StockRecord.future), for SkuChange
        self.future: dict[str, dict[str, list[tuple[int, int]]]] = {}
        self.fail = 0
        self.calls = 0

    async def apply(self, movements: Sequence[Movement], now_ms: int) -> BatchResult:
        self.calls += 1
        if self.fail:
            self.fail -= 1
            raise StoreUnavailable("Redis is unavailable: test")
        result = BatchResult()
        for sku in dict.fromkeys(m.sku for m in movements):
            mine = [m for m in movements if m.sku == sku]
            locs = sorted({m.location_id for m in mine})
            states = {loc: self.states.get((sku, loc)) for loc in locs}
            held = self.holds.setdefault(sku, {})
            counts = self.counts.setdefault(sku, {})
            u = update_sku(sku, mine, states, counts, held, now_ms, self.policy)
            result.outcomes.extend(u.outcomes)
            if not u.writes:
                continue
            for loc, state in u.states.items():
                self.states[(sku, loc)] = state
            for (loc, rid, _), units in zip(u.shipments, u.used, strict=True):
                if held.get(hold_member(rid, loc), 0) > 0:
                    held[hold_member(rid, loc)] -= units
                    result.consumed.append((rid, loc, units))
                else:
                    result.unmatched.append((rid, sku, loc))
            counts.update(u.after)
            future = self.future.setdefault(sku, {})
            future_before = dict(future)
            for loc, state in u.states.items():
                future.pop(loc, None)
                if state.inbound:
                    future[loc] = future_inbound(state)
            result.skus_written += 1
            result.changes.append(SkuChange(sku, u.before, u.after, future_before, dict(future)))
        return result


class Reservations:
    """Records the transitions asked for; `known` are the ids that exist."""

    def __init__(self, known: Iterable[str] = ()) -> None:
        self.known = set(known)
        self.asked: list[tuple[str, str]] = []

    async def transition(
        self, reservation_id: str, op: str, now_ms: int, ttl_seconds: int | None = None
    ) -> dict[str, Any]:
        self.asked.append((reservation_id, op))
        if reservation_id not in self.known:
            raise ReservationNotFound(reservation_id)
        return {"reservation_id": reservation_id, "state": "fulfilled"}
