"""What a batch of movements does to one SKU: the fold per location, the holds its shipments use
up, and the served counts before and after. Pure; the store reads the inputs and writes this."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from atp.core.availability import LocationCounts
from atp.core.ledger import LedgerState, Outcome, Policy, fold
from atp.core.movements import Movement
from atp.core.reservations import hold_member, shipment, use_holds


@dataclass(frozen=True, slots=True)
class SkuUpdate:
    sku: str
    outcomes: list[tuple[Movement, Outcome]]
    states: dict[str, LedgerState]  # the locations whose ledger state changed, and their state
    shipments: list[tuple[str, str, int]]  # (location, reservation id, units) newly applied
    used: list[int]  # units of its hold each shipment uses up (atp.core.reservations.use_holds)
    before: dict[str, LocationCounts]
    after: dict[str, LocationCounts]

    @property
    def writes(self) -> bool:
        """Whether there is anything to write (not when every movement was a repeat)."""
        return bool(self.states or self.shipments)


def hold_members(movements: Sequence[Movement]) -> list[str]:
    """The holds the movements' shipments may use up: read them with the ledger."""
    members = set()
    for m in movements:
        ship = shipment(m)
        if ship is not None:
            members.add(hold_member(ship[1], ship[0]))
    return sorted(members)


def update_sku(
    sku: str,
    movements: Sequence[Movement],
    states: Mapping[str, LedgerState | None],
    counts: Mapping[str, LocationCounts],
    held: Mapping[str, int],
    now_ms: int,
    policy: Policy,
) -> SkuUpdate:
    """Fold one SKU's movements into the ledger states of its locations (`states`: the stored
    state per location the movements touch, None where there is none yet), given its served
    `counts` and the units `held` by the holds its shipments name."""
    outcomes: list[tuple[Movement, Outcome]] = []
    changed: dict[str, LedgerState] = {}
    shipments: list[tuple[str, str, int]] = []
    for loc, stored in states.items():
        state = stored if stored is not None else LedgerState()
        moves = [m for m in movements if m.location_id == loc]
        new, outs = fold(state, moves, now_ms, policy)
        for m, out in zip(moves, outs, strict=True):
            outcomes.append((m, out))
            ship = shipment(m) if out is Outcome.APPLIED else None
            if ship is not None:
                shipments.append(ship)
        if stored is None or new != stored:
            changed[loc] = new
    used = use_holds(held, shipments)
    before = dict(counts)
    after = dict(before)
    for loc, state in changed.items():
        after[loc] = LocationCounts(state.on_hand, before.get(loc, LocationCounts()).reserved)
    for (loc, _, _), units in zip(shipments, used, strict=True):
        c = after.get(loc, LocationCounts())
        after[loc] = LocationCounts(c.on_hand, c.reserved - units)
    return SkuUpdate(sku, outcomes, changed, shipments, used, before, after)
