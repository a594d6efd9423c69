"""Changes of quantities: new quantities for lines of a held or confirmed reservation, all or
nothing (a decrease always fits; an increase is checked where the line may be held), under the
client's change id.

The record lives in the reservation's slot and the holds in each SKU's, so a change is a saga
of single-slot scripts, and the same code runs on one Redis and on a cluster:

1. `record/change.lua` begin: the change is listed as pending (with every location it may hold
   at, so a release from then on covers them) and gets an attempt. Another pending transfer or
   change refuses it (409 reservation_busy, naming that one: repeat it to finish it); a change
   id seen before is a replay (done) or a retry (pending: the same attempt).
2. `hold/change.lua` place, SKU by SKU in sorted order: each SKU's increases are held at once
   or not at all; once one is short the rest are only checked (every short line is reported),
   and what was placed is undone, then the change aborted.
3. `hold/change.lua` cut, SKU by SKU: the decreases give back (never refused).
4. `record/change.lua` commit: the new quantities and allocations (done transfers folded in),
   published as `changed`.

Each step's mark (per SKU and attempt) makes a retry of the same change do nothing twice, so a
change whose answer was lost is finished by asking it again. Until then it is pending: its
units are held (a release gives them back) and a new change or transfer waits for it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import orjson

from atp.core.amendments import Change, ChangePlan, changed_allocations, plan_change, preferred
from atp.core.errors import (
    ChangeConflict,
    InsufficientStock,
    InvalidTransition,
    LocationNotInChannel,
    ReservationBusy,
    ReservationExpired,
    ReservationNotFound,
    TooManyChanges,
)
from atp.core.fulfilment import Shipped
from atp.core.network import Network
from atp.core.reservations import (
    CONFIRMED,
    HELD,
    MAX_CHANGES,
    ReservationLine,
    Stored,
    candidates,
)
from atp.store import keys, shipments
from atp.store.client import unavailable_as_error
from atp.store.replies import busy

if TYPE_CHECKING:
    from atp.store.reservations import ReservationStore


async def change(
    store: ReservationStore, rid: str, asked: Change, network: Network, now_ms: int
) -> tuple[bool, dict[str, Any]]:
    """Apply the change: (True, the reservation after), or (False, it) when this change id was
    done before. Raises InsufficientStock (every short line; nothing changed),
    LineNotInReservation, ChangeConflict, ReservationBusy, TooManyChanges, or what the
    reservation's state refuses (not found, expired, closed)."""
    fingerprint = asked.fingerprint()
    with unavailable_as_error():
        stored = await store.stored(rid)
        # A line it does not have, or one below what shipped: refused before anything is written.
        plan_change(stored, asked, await _shipped(store, rid, stored))
        try:
            reach = orjson.dumps(_reach(stored, asked, network))
        except LocationNotInChannel:
            await _drop_unplaceable(store, rid, asked, fingerprint, stored, now_ms)
            raise
        begin = ("begin", asked.change_id, fingerprint, reach, MAX_CHANGES, asked.canonical())
        begun = await _record(store, rid, now_ms, *begin[:5], orjson.dumps(begin[5]))
        if begun[0] == "aborting":  # an earlier attempt was being aborted: finish that first
            run = _Run(store, rid, asked, fingerprint, begun[1], now_ms, stored)
            await run.abandon()
            begun = await _record(store, rid, now_ms, *begin[:5], orjson.dumps(begin[5]))
        if begun[0] == "replay":
            return False, await store.get(rid, now_ms)
        if begun[0] != "begun":
            raise _gone(rid, asked)
        # Read again: no transfer or other change can start from now until this one ends.
        run = _Run(store, rid, asked, fingerprint, begun[1], now_ms, await store.stored(rid))
        if await run.apply(network):  # a line down to what shipped: all may be used up now
            await store.transition(rid, "fulfil", now_ms)
        return True, await store.get(rid, now_ms)


async def _shipped(store: ReservationStore, rid: str, stored: Stored) -> Shipped:
    """What shipments used up of its holds so far (none once it is closed)."""
    if stored.state not in (HELD, CONFIRMED):
        return {}
    return await shipments.used_up(store.client, rid, stored.hold_locations())


async def _drop_unplaceable(
    store: ReservationStore, rid: str, asked: Change, fingerprint: str, stored: Stored, now_ms: int
) -> None:
    """This change is pending but a line of it can no longer be held where it may be (the
    network changed): abort it (what it placed goes back), unless it is past its cuts."""
    pending = stored.pending_change()
    if pending is None or pending.change_id != asked.change_id:
        return
    run = _Run(store, rid, asked, fingerprint, pending.attempt, now_ms, stored)
    if (await run.record("abort", pending.attempt))[0] == "aborting":
        await run.abandon()


class _Run:
    """One attempt of a change, once begun: steps 2 to 4."""

    def __init__(
        self,
        store: ReservationStore,
        rid: str,
        asked: Change,
        fingerprint: str,
        attempt: str,
        now_ms: int,
        stored: Stored,
    ) -> None:
        self.store, self.rid, self.asked, self.now_ms = store, rid, asked, now_ms
        self.fingerprint, self.attempt, self.stored = fingerprint, attempt, stored
        self.marks: dict[str, str] = {}

    def mark(self, skus: Iterable[str]) -> None:
        self.marks = {
            sku: keys.change_mark(sku, self.rid, self.asked.change_id, self.attempt)
            for sku in sorted(skus)
        }

    async def apply(self, network: Network) -> bool:
        """Run it; True when shipments had used up part of its holds."""
        shipped = await _shipped(self.store, self.rid, self.stored)
        plan = plan_change(self.stored, self.asked, shipped)
        increases, cuts = _per_sku(self.stored, plan, network)
        self.mark({*increases, *cuts})
        placed = await self.place(plan, increases)
        if cuts:  # from here on it cannot be aborted: what is given back may be sold
            if (await self.record("cutting", self.attempt))[0] != "ok":
                raise _gone(self.rid, self.asked)
            for sku, pairs in sorted(cuts.items()):
                if (await self.hold(sku, "cut", *pairs))[0] == "undone":
                    raise _gone(self.rid, self.asked)
        await self.commit(plan, placed)
        for mark in self.marks.values():  # done: its marks now only answer late runners
            ttl = keys.mark_ttl_ms(self.store.replay_ttl_ms)
            await self.store.client.pexpireat(mark, self.now_ms + ttl)
        return bool(shipped)

    async def abandon(self) -> None:
        """Finish aborting this attempt: give back what it placed, then forget it."""
        self.mark({ln.sku for ln in self.asked.lines})
        await self.undo()
        await self.record("drop", self.attempt)

    async def hold(self, sku: str, phase: str, *args: Any) -> list[Any]:
        score = self.stored.expires_ms if self.stored.state == HELD else ""
        return await self.store.run_hold(
            "change",
            sku,
            self.rid,
            self.now_ms,
            phase,
            keys.mark_ttl_ms(self.store.replay_ttl_ms),
            score,
            *args,
            extra_keys=[self.marks[sku]],
        )

    async def undo(self) -> None:
        for sku in self.marks:
            await self.hold(sku, "undo")

    async def place(
        self, plan: ChangePlan, increases: dict[str, list[Any]]
    ) -> dict[int, list[list[Any]]]:
        """Hold the increases, SKU by SKU: what each line got; all undone and the change
        aborted when any is short."""
        placed: dict[int, list[list[Any]]] = {}
        shortages: list[list[int]] = []
        for sku, lines in sorted(increases.items()):
            reply = await self.hold(sku, "check" if shortages else "place", *lines)
            if reply[0] == "undone":
                raise _gone(self.rid, self.asked)
            if reply[0] == "short":
                shortages += orjson.loads(reply[1])
            elif reply[0] == "placed":
                placed.update((line, parts) for line, parts in orjson.loads(reply[1]))
        if shortages:
            # Aborted in the record first, so that no other runner of this attempt can cut or
            # commit; given back then (and forgotten): a crash in between leaves it
            # `aborting`, and the next request that meets it finishes the abort.
            if (await self.record("abort", self.attempt))[0] != "aborting":
                raise _gone(self.rid, self.asked, "is being finished by another request")
            await self.undo()
            await self.record("drop", self.attempt)
            raise InsufficientStock(_short_lines(self.stored, plan, shortages))
        return placed

    async def commit(self, plan: ChangePlan, placed: dict[int, list[list[Any]]]) -> None:
        stored = self.stored
        allocations = changed_allocations(stored.current_allocations(), plan.cuts, placed)
        request = dict(stored.request)
        request["lines"] = [
            {**ln, "quantity": q}
            for ln, q in zip(stored.request["lines"], plan.quantities, strict=True)
        ]
        try:
            done = await self.record(
                "commit",
                self.attempt,
                orjson.dumps(request),
                orjson.dumps(allocations),
                orjson.dumps(self.asked.canonical()),
            )
        except (InvalidTransition, ReservationExpired, ReservationNotFound):
            # Closed or overdue since it began (a release gave back what it held then); what
            # it placed since goes back too. Its decreases stand: they only gave back.
            await self.undo()
            raise
        if done[0] == "gone":
            raise _gone(self.rid, self.asked)

    async def record(self, step: str, *args: Any) -> list[str]:
        return await _record(
            self.store, self.rid, self.now_ms, step, self.asked.change_id, self.fingerprint, *args
        )


async def cover(
    store: ReservationStore, rid: str, op: str, now_ms: int, ttl_seconds: int | None, after: Stored
) -> None:
    """After a confirm or extend: a change still pending places its new holds on what that
    set, not on the expiry it read (and what it placed moves onto it now)."""
    pending = after.pending_change()
    if pending is None or op not in ("confirm", "extend") or after.state not in (HELD, CONFIRMED):
        return
    score = "" if op == "confirm" else now_ms + (ttl_seconds or 0) * 1000
    for sku in sorted(pending.reach):
        mark = keys.change_mark(sku, rid, pending.change_id, pending.attempt)
        await store.run_hold(
            "change",
            sku,
            rid,
            now_ms,
            "expiry",
            keys.mark_ttl_ms(store.replay_ttl_ms),
            score,
            extra_keys=[mark],
        )


async def fence(store: ReservationStore, rid: str, now_ms: int, closed: Stored) -> None:
    """After a reservation closed: a change of it not done gives back what it placed and can
    place nothing more (its marks are undone), so no hold outlives it."""
    pending = closed.pending_change()
    if pending is None:
        return
    skus = {*pending.reach, *(ln["sku"] for ln in pending.lines or [])}
    ttl = keys.mark_ttl_ms(store.replay_ttl_ms)
    for sku in sorted(skus):
        mark = keys.change_mark(sku, rid, pending.change_id, pending.attempt)
        await store.run_hold("change", sku, rid, now_ms, "undo", ttl, "", extra_keys=[mark])


async def _record(store: ReservationStore, rid: str, now_ms: int, *args: Any) -> list[str]:
    reply = await store.run_record("change", rid, now_ms, *args)
    if reply[0] == "change_conflict":
        raise ChangeConflict(rid, args[1])
    if reply[0] == "too_many":
        raise TooManyChanges(rid, MAX_CHANGES)
    if reply[0] == "busy":
        raise busy(rid, reply)
    return reply


def _gone(rid: str, asked: Change, why: str = "was given up by another attempt") -> ReservationBusy:
    return ReservationBusy(rid, "change", asked.change_id, why)


def _line_candidates(
    stored: Stored, network: Network, line: int, parts: list[list[Any]]
) -> list[tuple[str, int]]:
    ln = stored.request["lines"][line]
    req_line = ReservationLine(ln["sku"], ln["quantity"], ln["location_id"])
    return preferred(candidates(network, stored.request["channel"], req_line), parts)


def _reach(stored: Stored, asked: Change, network: Network) -> dict[str, list[str]]:
    """Every location the change may hold at, per SKU (listed on the record while it runs)."""
    plan = plan_change(stored, asked)
    current = stored.current_allocations()
    out: dict[str, list[str]] = defaultdict(list)
    for line, _ in plan.increases:
        sku = stored.request["lines"][line]["sku"]
        for loc, _ in _line_candidates(stored, network, line, current[line]):
            if loc not in out[sku]:
                out[sku].append(loc)
    return dict(out)


def _per_sku(
    stored: Stored, plan: ChangePlan, network: Network
) -> tuple[dict[str, list[Any]], dict[str, list[Any]]]:
    """ARGV of hold/change.lua per SKU: the increases (place_lines) and the cuts (pairs)."""
    current = stored.current_allocations()
    lines: dict[str, list[Any]] = defaultdict(list)
    counts: dict[str, int] = defaultdict(int)
    for line, units in plan.increases:
        sku = stored.request["lines"][line]["sku"]
        cands = _line_candidates(stored, network, line, current[line])
        lines[sku] += [line, units, len(cands), *(x for c in cands for x in c)]
        counts[sku] += 1
    increases = {sku: [counts[sku], *args] for sku, args in lines.items()}
    cuts: dict[str, list[Any]] = defaultdict(list)
    for line, line_cuts in enumerate(plan.cuts):
        sku = stored.request["lines"][line]["sku"]
        for loc, units in line_cuts:
            cuts[sku] += [loc, units]
    return increases, dict(cuts)


def _short_lines(
    stored: Stored, plan: ChangePlan, shortages: list[list[int]]
) -> list[dict[str, object]]:
    """The short lines a 409 lists: the quantity asked and what the line could hold (what it
    holds and what is available besides)."""
    current = stored.current_allocations()
    out = []
    for line, extra, available in sorted(shortages):
        ln = stored.request["lines"][line]
        held = sum(q for _, q in current[line])
        out.append(
            {
                "line": line,
                "sku": ln["sku"],
                "location_id": ln["location_id"],
                "requested": held + extra,
                "available": held + available,
            }
        )
    return out
