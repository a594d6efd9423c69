"""`atp rebuild`: restore a wiped Redis from Kafka.

It reads two topics, each from its beginning to the end it had when the rebuild started:

1. `stock.reservations`: the last state of every reservation (its events carry the request,
   the allocations and every expiry), put back with its holds (`ReservationStore.restore`).
2. `stock.movements`: replayed through the same `LedgerStore` fold the worker uses. The fold
   is idempotent and order-insensitive, so the ledger and counts come out as the workers left
   them; and shipments that name a reservation use up its holds again as they did the first
   time, which is why reservations are restored first.

The end of a partition is the high watermark of the first fetch response, not a ListOffsets
answer, which Tansu gets wrong for multi-record batches (DESIGN.md).

Each batch of movements (a minute of broker time at most) is folded with `now` = the broker
timestamp of its newest record, about when a worker applied it: the retention window moves
through the replay as it moved through the original run, so what was in time then is in time
now. (With the wall clock, every delta older than ATP_RETENTION_HOURS would be refused as too
late.)

Running it again, or on a Redis that is not empty, only adds what is missing: applied event ids
are skipped and reservations that exist are left alone.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord

from atp.clock import now_ms
from atp.core.amendments import Change
from atp.core.errors import (
    ATPError,
    InvalidTransition,
    ReservationExpired,
    ReservationNotFound,
    StoreUnavailable,
)
from atp.core.movements import Movement
from atp.core.network import Network
from atp.core.reservations import (
    CHANGE_DONE,
    CHANGED,
    CONFIRMED,
    HELD,
    MOVE_APPLIED,
    MOVE_DONE,
    STATE_AFTER_EVENT,
    TRANSFERRED,
    ReservationLine,
    ReservationRequest,
)
from atp.core.webhooks import unwrapped
from atp.kafka import topics
from atp.kafka.connect import check_connection
from atp.kafka.reader import read_to_end
from atp.kafka.security import client_options
from atp.settings import Settings
from atp.store import shipments
from atp.store.client import REDIS_DOWN, client_for
from atp.store.ledger import LedgerStore, StoreConflict
from atp.store.reservations import ReservationStore
from atp.store.restore import restore

log = logging.getLogger(__name__)

BATCH_MAX = 20_000  # movements per ledger write of the replay
BATCH_SPAN_MS = 60_000  # broker time one batch may span (its `now` is its newest record's)


class RebuildError(ATPError):
    code = "rebuild"


class Progress(Protocol):
    def begin(self, topic: str, total: int) -> None: ...

    def advance(self, topic: str, n: int) -> None: ...


class NoProgress:
    def begin(self, topic: str, total: int) -> None:
        pass

    def advance(self, topic: str, n: int) -> None:
        pass


@dataclass
class Report:
    reservations: Counter[str] = field(default_factory=Counter)  # restored, exists, gone, ...
    movements: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)  # the ledger's outcomes
    not_canonical: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        r, o = self.reservations, self.outcomes
        return (
            f"reservations: {r['restored']} restored, {r['exists']} already there, "
            f"{r['gone']} past their replay window, {r['incomplete']} without their held event; "
            f"movements: {self.movements} read, {o['applied']} applied, "
            f"{o['duplicate']} duplicate, {o['superseded']} superseded, {o['too_late']} too late, "
            f"{self.not_canonical} not canonical; {self.seconds:.1f} s"
        )


@dataclass
class LastState:
    """What a reservation's events say about it, as of its last event."""

    reservation_id: str
    state: str
    request: dict[str, Any] | None  # None: its `held` event is not in the topic
    allocations: list[Any] | None
    created_ms: int
    updated_ms: int
    expires_ms: int
    # Its transfers, as its record keeps them, each with when it was made.
    moves: list[tuple[list[Any], int]] = field(default_factory=list)
    # Its changes of quantities, as its record keeps them.
    changes: list[list[str]] = field(default_factory=list)
    # The fingerprint of the request it was made with (a change keeps it: a repeat of that
    # request is answered).
    fingerprint: str | None = None
    # Closed by a release or expiry: what shipments had used up of its holds.
    shipped: dict[str, dict[str, int]] | None = None

    def record_expires_ms(self, replay_ttl_ms: int) -> int | None:
        """When Redis drops the record (as record/commit.lua and the changes set it); None:
        never."""
        if self.state == CONFIRMED:
            return None
        if self.state == HELD:
            return self.expires_ms + replay_ttl_ms
        return self.updated_ms + replay_ttl_ms  # closed at its last event


def last_states(events: Iterable[Mapping[str, Any]]) -> dict[str, LastState]:
    """The state each reservation's events leave it in; any order, repeats ignored.

    Events are ordered by their outbox id (a Redis stream id: time, then sequence), not by
    their place in the topic: two relays may publish one reservation's events out of order.
    """
    unique = {e["event_id"]: e for e in events}
    out: dict[str, LastState] = {}
    for e in sorted(unique.values(), key=lambda e: _stream_id(e["event_id"])):
        rid, kind, at = e["reservation_id"], e["type"], int(e["at_ms"])
        if kind == TRANSFERRED:  # units moved; the state is as it was
            _transferred(out.get(rid), e, at)
            continue
        if kind == CHANGED:  # new quantities; the state is as it was
            _changed(out.get(rid), e, at)
            continue
        state = STATE_AFTER_EVENT.get(kind)
        if state is None:
            log.warning("reservation event %s has an unknown type %r", e["event_id"], kind)
            continue
        if kind == "held":  # also a new reservation under an id whose record had expired
            out[rid] = LastState(
                rid, state, e["request"], e["allocations"], at, at, int(e["expires_ms"])
            )
            continue
        s = out.setdefault(rid, LastState(rid, state, None, None, at, at, 0))
        s.state, s.updated_ms = state, at
        s.shipped = e.get("shipped")
        if e.get("expires_ms") is not None:
            s.expires_ms = int(e["expires_ms"])
    return out


def _transferred(s: LastState | None, e: Mapping[str, Any], at: int) -> None:
    """Apply a `transferred` event to what the events before it said (nothing to apply it to
    when the `held` event is not in the topic)."""
    if s is None or s.request is None or s.allocations is None:
        return
    route = [e["from_location_id"], e["to_location_id"]]
    s.moves.append(([e["transfer_id"], e["sku"], *route, int(e["quantity"]), MOVE_DONE], at))
    s.updated_ms = at


def _changed(s: LastState | None, e: Mapping[str, Any], at: int) -> None:
    """Apply a `changed` event: its request and allocations are the reservation's from then
    on, with every transfer before it in them (as record/change.lua keeps them)."""
    if s is None or s.request is None or s.allocations is None:
        return
    if s.fingerprint is None:
        s.fingerprint = ReservationRequest.from_canonical(s.reservation_id, s.request).fingerprint()
    s.request, s.allocations = e["request"], e["allocations"]
    for move, _ in s.moves:
        if move[5] == MOVE_DONE:
            move[5] = MOVE_APPLIED
    lines = tuple(
        ReservationLine(ln["sku"], ln["quantity"], ln["location_id"]) for ln in e["lines"]
    )
    s.changes.append([e["change_id"], Change(e["change_id"], lines).fingerprint(), CHANGE_DONE])
    s.updated_ms = at


def _stream_id(event_id: str) -> tuple[int, int]:
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq or 0)


async def rebuild(
    settings: Settings,
    network: Network,
    progress: Progress | None = None,
    clock: Callable[[], int] = now_ms,
) -> Report:
    """Reservations from stock.reservations, then ledger and counts from stock.movements;
    `clock` gives the time (epoch ms) for what is past its time now."""
    progress = progress or NoProgress()
    started = time.perf_counter()
    report = Report()
    redis = client_for(settings, timeout_s=10.0)
    try:
        try:
            await redis.ping()
        except REDIS_DOWN as exc:
            raise RebuildError(f"Redis at {settings.redis_url} is unavailable: {exc}") from exc
        await check_connection(settings, timeout_s=10.0)
        reservations = ReservationStore(redis, settings.reservation_replay_ms)
        await _restore_reservations(settings, reservations, progress, report, clock())
        store = LedgerStore(redis, settings.ledger_policy, network=network)
        consumed = await _replay_movements(settings, store, progress, report, clock)
        # Holds used up by the replayed shipments: close the reservations they used up whole,
        # as the worker does (where that was published already, they came back closed).
        for rid in consumed:
            with contextlib.suppress(ReservationNotFound, InvalidTransition, ReservationExpired):
                await reservations.transition(rid, "fulfil", clock())
    except (StoreUnavailable, StoreConflict) as exc:
        raise RebuildError(f"{exc.message}; running `atp rebuild` again is safe") from exc
    except KafkaError as exc:
        raise RebuildError(
            f"the broker at {settings.kafka_bootstrap} failed: {exc!r}; "
            "running `atp rebuild` again is safe"
        ) from exc
    finally:
        await redis.aclose()
    report.seconds = time.perf_counter() - started
    return report


async def _restore_reservations(
    settings: Settings, store: ReservationStore, progress: Progress, report: Report, now: int
) -> None:
    topic = settings.topic(topics.RESERVATIONS)
    events: list[dict[str, Any]] = []
    reader = read_to_end(client_options(settings), topic, lambda n: progress.begin(topic, n))
    async with contextlib.aclosing(reader):
        async for records in reader:
            events += (unwrapped(orjson.loads(r.value)) for r in records)
            progress.advance(topic, len(records))
    replay_ttl_ms = settings.reservation_replay_ms
    for s in last_states(events).values():
        expires_at = s.record_expires_ms(replay_ttl_ms)
        if s.request is None or s.allocations is None:
            report.reservations["incomplete"] += 1
            log.warning("reservation %s: its held event is not in %s", s.reservation_id, topic)
        elif expires_at is not None and expires_at <= now:
            report.reservations["gone"] += 1  # Redis would have dropped it by now
        else:
            restored = await restore(
                store,
                s.reservation_id,
                s.state,
                s.request,
                s.allocations,
                (s.created_ms, s.updated_ms, s.expires_ms),
                expires_at,
                s.moves,
                replay_ttl_ms,
                s.changes,
                s.fingerprint,
                shipments.as_arg(s.shipped or {}),
            )
            report.reservations["restored" if restored else "exists"] += 1


async def _replay_movements(
    settings: Settings,
    store: LedgerStore,
    progress: Progress,
    report: Report,
    clock: Callable[[], int],
) -> list[str]:
    """Fold stock.movements into Redis; returns the reservations whose holds shipments used.

    Records are applied per partition in batches of at most BATCH_MAX that span at most
    BATCH_SPAN_MS of broker time, each with `now` = its newest record's timestamp (the time
    its source message reached the broker, stamped by the normaliser): close to when a worker
    applied each of them, whatever the topic's rate. Large batches write each SKU once for
    many of its movements.
    """
    topic = settings.topic(topics.MOVEMENTS)
    consumed: dict[str, None] = {}
    pending: dict[int, list[ConsumerRecord[bytes, bytes]]] = {}

    async def flush(records: list[ConsumerRecord[bytes, bytes]]) -> None:
        batch = []
        for r in records:
            try:
                batch.append(Movement.from_wire(orjson.loads(r.value)))
            except (orjson.JSONDecodeError, KeyError, ValueError, TypeError):
                report.not_canonical += 1  # the worker rejected it too
        if batch:
            now = max(r.timestamp for r in records)
            result = await store.apply(batch, now if now > 0 else clock())
            report.outcomes.update(outcome.value for _, outcome in result.outcomes)
            consumed.update(dict.fromkeys(rid for rid, _, _ in result.consumed))
        report.movements += len(records)
        progress.advance(topic, len(records))

    reader = read_to_end(client_options(settings), topic, lambda n: progress.begin(topic, n))
    async with contextlib.aclosing(reader):
        async for records in reader:
            for r in records:
                held = pending.setdefault(r.partition, [])
                if held and (
                    len(held) >= BATCH_MAX or abs(r.timestamp - held[0].timestamp) > BATCH_SPAN_MS
                ):
                    await flush(held)
                    held.clear()
                held.append(r)
    for held in pending.values():
        if held:
            await flush(held)
    return list(consumed)
