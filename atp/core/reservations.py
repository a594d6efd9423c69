"""Reservations: the request and its fingerprint, where lines may be held and how they are
placed, the states and transitions, the overdue rule, and the view. Pure.

Redis applies these rules too, atomically (atp/store/lua/hold/ and atp/store/lua/record/); each
script names its Python original here, and tests/integration/test_parity.py runs both.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from atp.core.availability import LocationCounts, location_atp
from atp.core.errors import LocationNotInChannel
from atp.core.fulfilment import Shipped, fulfilled_per_line
from atp.core.movements import Movement
from atp.core.network import Network

# Letters, digits and . _ : - only: the id is part of Redis keys and hold names ('<id>@<loc>').
RESERVATION_ID_PATTERN = r"[A-Za-z0-9._:-]{1,128}"
# States. `pending` marks an id whose holds are being taken (not yet a reservation); `held`
# expires at its `expires_ms`; `confirmed` does not; the last three are closed.
PENDING, HELD, CONFIRMED = "pending", "held", "confirmed"
RELEASED, EXPIRED, FULFILLED = "released", "expired", "fulfilled"
STATES = (PENDING, HELD, CONFIRMED, RELEASED, EXPIRED, FULFILLED)
# The state a reservation is in after each event it publishes on stock.reservations.
STATE_AFTER_EVENT = {
    "held": HELD,
    "extended": HELD,
    "confirmed": CONFIRMED,
    "released": RELEASED,
    "expired": EXPIRED,
    "fulfilled": FULFILLED,
}
# What each change makes of a reservation, as a past participle (messages, metric labels).
DONE = {
    "confirm": "confirmed",
    "extend": "extended",
    "release": "released",
    "expire": "expired",
    "fulfil": "fulfilled",
    "transfer": "transferred",
    "change": "changed",
}
# A transfer moves held units of a reservation between locations; its state stays as it was.
TRANSFERRED = "transferred"
# A reservation's record keeps its transfers as [transfer_id, sku, from, to, units, status]:
# `pending` while the units may be moving (record/transfer.lua, then hold/transfer.lua), `done`
# once moved. Its allocations stay as first held; the moves are applied when it is read.
MOVE_PENDING, MOVE_DONE = "pending", "done"
# A change (new quantities) rewrites the allocations with every done transfer in them: those
# transfers are `applied` from then on (listed, not applied again).
MOVE_APPLIED = "applied"
MAX_MOVES = 100  # per reservation: the record stays small
# A change of quantities keeps the same state; published as `changed`.
CHANGED = "changed"
# A reservation's record keeps its changes as [change_id, fingerprint, status], and until one
# is done also {sku: [locations it may hold at]}, its attempt and its lines. Its status goes
# pending -> cutting -> done, or pending -> aborting, then dropped (record/change.lua).
CHANGE_PENDING, CHANGE_CUTTING, CHANGE_ABORTING = "pending", "cutting", "aborting"
CHANGE_DONE = "done"
MAX_CHANGES = 100


@dataclass(frozen=True, slots=True)
class ReservationLine:
    sku: str
    quantity: int
    location_id: str | None = None


@dataclass(frozen=True, slots=True)
class ReservationRequest:
    reservation_id: str
    lines: tuple[ReservationLine, ...]
    ttl_seconds: int
    channel: str
    allow_partial: bool = False  # hold what fits per line; short only when nothing fits

    def canonical(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "reservation_id": self.reservation_id,
            "channel": self.channel,
            "ttl_seconds": self.ttl_seconds,
            "lines": [
                {"sku": ln.sku, "quantity": ln.quantity, "location_id": ln.location_id}
                for ln in self.lines
            ],
        }
        if self.allow_partial:  # only when set: an all-or-nothing request keeps its fingerprint
            out["allow_partial"] = True
        return out

    @classmethod
    def from_canonical(cls, reservation_id: str, data: dict[str, Any]) -> ReservationRequest:
        """The request back from what `canonical` gave (as a reservation record keeps it)."""
        lines = tuple(
            ReservationLine(ln["sku"], ln["quantity"], ln["location_id"]) for ln in data["lines"]
        )
        partial = bool(data.get("allow_partial", False))
        return cls(reservation_id, lines, data["ttl_seconds"], data["channel"], partial)

    def fingerprint(self) -> str:
        """Equal for the same request, whatever the key order or spacing it was sent with."""
        body = orjson.dumps(self.canonical(), option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(body).hexdigest()


def allocate(quantity: int, available: Sequence[tuple[str, int]]) -> list[tuple[str, int]] | None:
    """Where `quantity` units go among locations with `available` units, in the order given:
    whole at the first location that has them all, else split in that order; None if all of
    them together have too few. (hold/take.lua applies the same rule when it holds a line.)"""
    for loc, units in available:
        if units >= quantity:
            return [(loc, quantity)]
    if sum(units for _, units in available if units > 0) < quantity:
        return None
    parts, left = [], quantity
    for loc, units in available:
        if left > 0 and units > 0:
            take = min(left, units)
            parts.append((loc, take))
            left -= take
    return parts


Candidates = list[tuple[str, int]]  # (location, safety stock there), in the order to try


def hold_lines(
    lines: Sequence[tuple[int, int, Candidates]],
    counts: Mapping[str, LocationCounts],
    partial: bool = False,
) -> tuple[list[tuple[int, list[tuple[str, int]]]], list[tuple[int, int, int]]]:
    """One SKU's lines of a reservation, (index in the request, quantity, candidates), held
    against its counts: per line its parts [(location, units)], and the lines that do not fit
    as (index, requested, available). A line takes the ATP left after the lines before it.
    `partial`: a line that does not fit takes what there is (split in candidate order) and is
    still listed as short. The Python original of place_lines in hold/_prelude.lua
    (tests/integration/test_parity.py)."""
    taken: dict[str, int] = {}
    allocations: list[tuple[int, list[tuple[str, int]]]] = []
    shortages: list[tuple[int, int, int]] = []
    for index, quantity, cands in lines:
        available = []
        for loc, safety in cands:
            c = counts.get(loc, LocationCounts())
            atp = location_atp(c.on_hand, c.reserved, safety)
            available.append((loc, max(0, atp - taken.get(loc, 0))))
        parts = allocate(quantity, available)
        if parts is None:
            total = sum(units for _, units in available)
            shortages.append((index, quantity, total))
            parts = (allocate(total, available) or []) if partial and total > 0 else []
        for loc, units in parts:
            taken[loc] = taken.get(loc, 0) + units
        allocations.append((index, parts))
    return allocations, shortages


def candidates(network: Network, channel: str, line: ReservationLine) -> Candidates:
    """Where a line may be held, with the safety stock there, in the order to try."""
    if line.location_id is not None:
        loc = network.locations.get(line.location_id)
        if loc is None:
            raise LocationNotInChannel(line.location_id, channel, "not in the network")
        why = network.why_not_in_channel(loc, channel)
        if why is not None:
            raise LocationNotInChannel(line.location_id, channel, why)
        return [(loc.id, network.safety_stock(line.sku, loc, channel))]
    # The channel's locations in network-file order: deterministic; smarter ranking is the
    # sourcing plans' job.
    return [
        (loc.id, network.safety_stock(line.sku, loc, channel))
        for loc in network.channel_locations(channel)
    ]


def is_overdue(expires_ms: int, now_ms: int) -> bool:
    """A hold (and a held reservation) stops counting at its expiry: overdue at now >= expires.
    Every script that discounts, gives back or expires holds applies the same rule."""
    return now_ms >= expires_ms


def transition(state: str, op: str, overdue: bool) -> tuple[str, str]:
    """What a change does to a reservation in `state` (overdue: a held one past its expiry):
    (reply, state after), where reply is `ok` (changed), `noop` (nothing to do: a repeat, or
    not due), `invalid` (not possible in this state) or `expired` (a confirm or extend that
    came too late: the caller expires it). The Python original of atp/store/lua/record/."""
    if op == "expire":
        return ("ok", EXPIRED) if overdue else ("noop", state)
    if op == "release":
        if state in (RELEASED, EXPIRED):
            return "noop", state
        if state == FULFILLED:
            return "invalid", state
        return "ok", EXPIRED if overdue else RELEASED
    if op == "fulfil":
        return ("ok", FULFILLED) if state in (HELD, CONFIRMED) else ("noop", state)
    if op == "confirm" and state == CONFIRMED:
        return "noop", state
    if state != HELD:
        return "invalid", state
    if overdue:
        return "expired", state
    return "ok", CONFIRMED if op == "confirm" else HELD


@dataclass(frozen=True, slots=True)
class PendingChange:
    """A change of quantities under way, or whose answer was lost, as the record lists it."""

    change_id: str
    reach: dict[str, list[str]]  # {sku: locations it may hold at}
    attempt: str  # when it began (its hold/ marks are per attempt)
    lines: list[dict[str, Any]] | None  # as asked (Change.canonical())


@dataclass(frozen=True, slots=True)
class Stored:
    """A reservation as its record keeps it."""

    state: str
    request: dict[str, Any]  # ReservationRequest.canonical()
    allocations: list[list[list[Any]]]  # per line: [[location, units], ...]
    created_ms: int
    updated_ms: int
    expires_ms: int
    moves: tuple[tuple[str, str, str, str, int, str], ...] = ()  # transfers, in order
    changes: tuple[tuple[Any, ...], ...] = ()  # changes of quantities, in order
    # Closed by a release or expiry: what shipments had used up ({sku: {location: units}}).
    shipped: Shipped | None = None

    def pending(self) -> tuple[str, str] | None:
        """('transfer' or 'change', its id) while one is pending: a new change waits for it."""
        for tid, *_, status in self.moves:
            if status == MOVE_PENDING:
                return "transfer", tid
        for cid, _, status, *_ in self.changes:
            if status != CHANGE_DONE:
                return "change", cid
        return None

    def pending_change(self) -> PendingChange | None:
        for cid, _, status, *pending in self.changes:
            if status != CHANGE_DONE:
                lines = pending[2] if len(pending) > 2 else None
                return PendingChange(cid, pending[0], str(pending[1]), lines)
        return None

    def hold_locations(self) -> dict[str, list[str]]:
        """The locations it holds stock at, per SKU: where it was held and where any transfer
        (done or not) moved units to."""
        out: dict[str, list[str]] = {}

        def add(sku: str, loc: str) -> None:
            locs = out.setdefault(sku, [])
            if loc not in locs:
                locs.append(loc)

        for line, parts in zip(self.request["lines"], self.allocations, strict=False):
            for loc, _ in parts:
                add(line["sku"], loc)
        for _, sku, _, to, _, _ in self.moves:
            add(sku, to)
        for _, _, status, *pending in self.changes:
            if status != CHANGE_DONE:
                for sku, locs in pending[0].items():
                    for loc in locs:
                        add(sku, loc)
        return out

    def current_allocations(self) -> list[list[list[Any]]]:
        """Per line, where its units are held now: the allocations with every done transfer not
        applied to them yet."""
        out = [[list(p) for p in parts] for parts in self.allocations]
        for _, sku, src, dst, units, status in self.moves:
            if status == MOVE_DONE:
                move_units(self.request["lines"], out, sku, (src, dst), units)
        return out


def move_units(
    lines: Sequence[Mapping[str, Any]],
    allocations: list[list[list[Any]]],
    sku: str,
    route: tuple[str, str],
    units: int,
) -> None:
    """Move `units` of `sku` held at route[0] to route[1], in `allocations` (per line
    [[location, units], ...]): taken from the SKU's lines in request order, each line keeping
    what it moved (at route[1], after its other parts)."""
    src, dst = route
    left = units
    for line, parts in zip(lines, allocations, strict=False):
        if left == 0 or line["sku"] != sku:
            continue
        at_src = sum(q for loc, q in parts if loc == src)
        take = min(at_src, left)
        if take == 0:
            continue
        left -= take
        kept = [[loc, q - take] if loc == src else [loc, q] for loc, q in parts]
        into = next((p for p in kept if p[0] == dst), None)
        if into is None:
            kept.append([dst, take])
        else:
            into[1] += take
        parts[:] = [p for p in kept if p[1] > 0]


def view(
    reservation_id: str, stored: Stored, now_ms: int, shipped: Shipped | None = None
) -> dict[str, Any]:
    """The API's representation of a stored reservation (a held one past expiry reads expired).
    `shipped`: what shipments used up of an open one's holds (a closed one's record keeps it;
    a fulfilled one used up all it held)."""
    state = stored.state
    if state == HELD and is_overdue(stored.expires_ms, now_ms):
        state = EXPIRED
    allocations = stored.current_allocations()
    lines = stored.request["lines"]
    if stored.state == FULFILLED:
        fulfilled = [sum(q for _, q in parts) for parts in allocations]
    else:
        fulfilled = fulfilled_per_line(lines, allocations, stored.shipped or shipped or {})
    return {
        "reservation_id": reservation_id,
        "state": state,
        "channel": stored.request["channel"],
        "created_ms": stored.created_ms,
        "updated_ms": stored.updated_ms,
        "expires_ms": stored.expires_ms if state == HELD else None,
        "allow_partial": stored.request.get("allow_partial", False),
        "lines": [
            {
                "sku": ln["sku"],
                "quantity": ln["quantity"],
                "location_id": ln["location_id"],
                "requested": ln["quantity"],
                "held": sum(q for _, q in parts),
                "fulfilled_quantity": done,
                "allocations": [{"location_id": loc, "quantity": q} for loc, q in parts],
            }
            for ln, parts, done in zip(lines, allocations, fulfilled, strict=True)
        ],
        "transfers": [
            {
                "transfer_id": tid,
                "sku": sku,
                "from_location_id": src,
                "to_location_id": dst,
                "quantity": units,
            }
            for tid, sku, src, dst, units, status in stored.moves
            if status in (MOVE_DONE, MOVE_APPLIED)
        ],
        "changes": [cid for cid, _, status, *_ in stored.changes if status == CHANGE_DONE],
    }


# Movements that hand stock to the customer of a reservation named in their `order_ref`.
FULFILLING_KINDS = frozenset({"SHIPPED", "PICKUP"})


def shipment(m: Movement) -> tuple[str, str, int] | None:
    """(location, reservation id, units) when `m` ships or hands over stock for the reservation
    its `order_ref` names (a warehouse SHIPPED, a store PICKUP); else None."""
    if not m.order_ref or m.kind not in FULFILLING_KINDS:
        return None
    return m.location_id, m.order_ref, -m.qty


def hold_member(reservation_id: str, location_id: str) -> str:
    """The name of a reservation's hold at a location, in a SKU's holds hash."""
    return f"{reservation_id}@{location_id}"


def use_holds(held: Mapping[str, int], shipments: Sequence[tuple[str, str, int]]) -> list[int]:
    """Units each shipment (location, reservation id, units), in order, uses up of the hold it
    names: as much of what is still held as it shipped. 0 where nothing is held (an unknown or
    closed reservation). `held` maps hold members to units; ledger/apply.lua does the same."""
    left = dict(held)
    used = []
    for loc, rid, units in shipments:
        member = hold_member(rid, loc)
        have = left.get(member, 0)
        take = min(have, units) if have > 0 else 0
        left[member] = have - take
        used.append(take)
    return used
