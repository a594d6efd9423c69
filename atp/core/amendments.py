"""What may change in a reservation once it is held: its units moved to another location (a
transfer) and its lines' quantities (a change). Pure; atp.store.transfers and atp.store.changes
run them, and hold/transfer.lua and hold/change.lua apply them in Redis
(tests/integration/test_parity.py runs both).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from atp.core.availability import LocationCounts, location_atp
from atp.core.errors import BelowFulfilled, LineNotInReservation
from atp.core.fulfilment import Shipped, fulfilled_at
from atp.core.reservations import Candidates, ReservationLine, Stored


@dataclass(frozen=True, slots=True)
class Move:
    """A transfer asked for: move `quantity` held units of `sku` between two locations."""

    transfer_id: str
    sku: str
    from_location_id: str
    to_location_id: str
    quantity: int


def transfer_outcome(
    held_at_source: int, destination: LocationCounts, safety: int, units: int
) -> tuple[str, int]:
    """Whether a reservation may move `units` it holds (held_at_source at the source) to a
    destination with these counts and safety stock: ('moved', units), ('not_held', what it
    holds at the source) or ('short', the destination's ATP). The Python original of
    hold/transfer.lua."""
    if held_at_source < units:
        return "not_held", held_at_source
    atp = location_atp(destination.on_hand, destination.reserved, safety)
    if atp < units:
        return "short", max(0, atp)
    return "moved", units


@dataclass(frozen=True, slots=True)
class Change:
    """New quantities for lines of a reservation, each line named by its SKU and location_id
    (as it was reserved), under the client's `change_id`."""

    change_id: str
    lines: tuple[ReservationLine, ...]

    def canonical(self) -> list[dict[str, Any]]:
        return [
            {"sku": ln.sku, "quantity": ln.quantity, "location_id": ln.location_id}
            for ln in self.lines
        ]

    def fingerprint(self) -> str:
        """Equal for the same lines in the same order, however they were spelled."""
        body = orjson.dumps(self.canonical(), option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(body).hexdigest()


@dataclass(frozen=True, slots=True)
class ChangePlan:
    """What a change does to a reservation's lines (atp.store.changes runs it)."""

    quantities: list[int]  # per line, after the change
    increases: list[tuple[int, int]]  # (line, units to hold besides what it holds)
    cuts: list[list[tuple[str, int]]]  # per line, units to give back [(location, units)]


def plan_change(stored: Stored, change: Change, shipped: Shipped | None = None) -> ChangePlan:
    """Match each of the change's lines to the reservation's line of that SKU and location_id
    and say what changes: an increase holds more (hold/change.lua places it), a decrease gives
    back from the line's last allocations first, of what shipments (`shipped`) have not used
    up. Raises LineNotInReservation when a line names none of them, or the same one twice, or
    one of several alike; BelowFulfilled when it asks for fewer than were shipped."""
    lines = stored.request["lines"]
    current = stored.current_allocations()
    used = fulfilled_at(lines, current, shipped or {})
    quantities = [ln["quantity"] for ln in lines]  # as requested; a named line's changes
    increases: list[tuple[int, int]] = []
    cuts: list[list[tuple[str, int]]] = [[] for _ in lines]
    seen: set[int] = set()
    for asked in change.lines:
        named = [
            i
            for i, ln in enumerate(lines)
            if ln["sku"] == asked.sku and ln["location_id"] == asked.location_id
        ]
        if len(named) != 1 or named[0] in seen:
            why = (
                "twice in the change"
                if named and named[0] in seen
                else ("in none of its lines" if not named else "in more than one of its lines")
            )
            raise LineNotInReservation(asked.sku, asked.location_id, why)
        i = named[0]
        seen.add(i)
        held, fulfilled = sum(q for _, q in current[i]), sum(used[i].values())
        if asked.quantity < fulfilled:
            raise BelowFulfilled(asked.sku, asked.location_id, asked.quantity, fulfilled)
        if asked.quantity > held:
            increases.append((i, asked.quantity - held))
        elif asked.quantity < held:
            left = [[loc, q - used[i].get(loc, 0)] for loc, q in current[i]]
            cuts[i] = shrink([p for p in left if p[1] > 0], held - asked.quantity)
        quantities[i] = asked.quantity
    return ChangePlan(quantities, increases, cuts)


def shrink(parts: Sequence[Sequence[Any]], units: int) -> list[tuple[str, int]]:
    """Which of a line's allocations [[location, units], ...] give back `units`: the last
    ones first (the first are where it was held whole, or first)."""
    out, left = [], units
    for loc, held in reversed(parts):
        take = min(left, held)
        if take > 0:
            out.append((loc, take))
            left -= take
    return out


def preferred(cands: Candidates, parts: Sequence[Sequence[Any]]) -> Candidates:
    """A line's candidates for more units: where it holds already first (in its order), then
    the rest as the channel orders them."""
    held = [loc for loc, _ in parts]
    first = [c for loc in held for c in cands if c[0] == loc]
    return first + [c for c in cands if c[0] not in held]


def changed_allocations(
    current: Sequence[Sequence[Sequence[Any]]],
    cuts: Sequence[Sequence[tuple[str, int]]],
    placed: Mapping[int, Sequence[Sequence[Any]]],
) -> list[list[list[Any]]]:
    """The lines' allocations after a change: `current` less `cuts`, plus what was `placed`
    per line (added to a location it holds at, else after its other allocations)."""
    out = [[list(p) for p in parts] for parts in current]
    for i, line_cuts in enumerate(cuts):
        for loc, units in line_cuts:
            for p in out[i]:
                if p[0] == loc:
                    p[1] -= units
    for i, parts in placed.items():
        for loc, units in parts:
            into = next((p for p in out[i] if p[0] == loc), None)
            if into is None:
                out[i].append([loc, units])
            else:
                into[1] += units
    return [[p for p in parts if p[1] > 0] for parts in out]


def cut_holds(held: Mapping[str, int], cuts: Sequence[tuple[str, int]]) -> dict[str, int]:
    """Units a decrease gives back per hold member: what it asks, as far as the hold has them
    (a shipment may have used some). The Python original of the `cut` of hold/change.lua."""
    left = dict(held)
    out: dict[str, int] = {}
    for member, units in cuts:
        take = max(0, min(units, left.get(member, 0)))
        left[member] = left.get(member, 0) - take
        out[member] = out.get(member, 0) + take
    return out
