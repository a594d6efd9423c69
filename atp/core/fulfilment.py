"""What shipments used up of a reservation, per line. Pure.

Shipments use up holds per (SKU, location) (atp.core.reservations.use_holds), and Redis keeps
the units used per hold while the reservation is open (ledger/apply.lua); a line's share is
read from its allocations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

# Units shipments used up of a reservation's holds: {sku: {location: units}}.
Shipped = Mapping[str, Mapping[str, int]]


def fulfilled_per_line(
    lines: Sequence[Mapping[str, Any]],
    allocations: Sequence[Sequence[Sequence[Any]]],
    shipped: Shipped,
) -> list[int]:
    """Units each line's shipments used up (`fulfilled_at`, summed per line)."""
    return [sum(at.values()) for at in fulfilled_at(lines, allocations, shipped)]


def fulfilled_at(
    lines: Sequence[Mapping[str, Any]],
    allocations: Sequence[Sequence[Sequence[Any]]],
    shipped: Shipped,
) -> list[dict[str, int]]:
    """Per line, {location: units its shipments used up there}: what was used up at a location
    goes to the SKU's lines that hold there, in request order, each up to what it holds
    there. A line never shows more fulfilled than it holds."""
    left = {(sku, loc): units for sku, per_loc in shipped.items() for loc, units in per_loc.items()}
    out = []
    for line, parts in zip(lines, allocations, strict=True):
        done: dict[str, int] = {}
        for loc, units in parts:
            key = (line["sku"], loc)
            take = min(units, left.get(key, 0))
            if take > 0:
                left[key] -= take
                done[loc] = done.get(loc, 0) + take
        out.append(done)
    return out


def shipped_from_members(
    per_sku: Mapping[str, Sequence[tuple[str, int]]],
) -> dict[str, dict[str, int]]:
    """{sku: {location: units}} from each SKU's (location, units used up) read from Redis,
    leaving out what is 0."""
    return {
        sku: {loc: units for loc, units in pairs if units > 0}
        for sku, pairs in per_sku.items()
        if any(units > 0 for _, units in pairs)
    }
