"""Sourcing plans: which locations fulfil a basket for one service. Pure; time in.

A plan assigns the basket to locations that have the ATP now: one location when any can take it
all, else the fewest locations that can. Plans rank by parts, then the promise (the latest
part's), then distance, then the locations' configured priority.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from itertools import combinations

from atp.core.network import Network
from atp.core.network.services import Service
from atp.core.planning.candidates import Line, Order, Promise, atp_at, basket_demand, candidates
from atp.core.reservations import allocate

SPLIT_CANDIDATES = 12


@dataclass(frozen=True, slots=True)
class Part:
    promise: Promise
    lines: tuple[Line, ...]


@dataclass(frozen=True, slots=True)
class Plan:
    service: str
    parts: tuple[Part, ...]

    @property
    def promised_by(self) -> datetime:
        return max(p.promise.promised_by for p in self.parts)

    @property
    def cutoff_at(self) -> datetime:
        return min(p.promise.cutoff_at for p in self.parts)

    @property
    def distance_km(self) -> float:
        return sum(p.promise.distance_km for p in self.parts)


@dataclass(slots=True)
class Outcome:
    """Plans for one service, best first, or why there are none."""

    service: str
    plans: list[Plan] = field(default_factory=list)
    reason: str | None = None


def plan(
    network: Network,
    service: Service,
    order: Order,
    *,
    channel: str | None = None,
    max_parts: int = 3,
    max_plans: int = 5,
) -> Outcome:
    """Ranked plans for the basket: single locations if any can take it all, else the fewest
    locations that together can (a line may be split between them only if it must)."""
    channel = channel or service.channel
    promises, why = candidates(network, service, order.dest, order.now, channel)
    if not promises:
        return Outcome(service.id, reason=why)
    demand = basket_demand(order.lines)
    stock = order.stock
    atp = {
        loc_id: {sku: atp_at(network, stock, sku, loc_id, channel) for sku in demand}
        for loc_id in promises
    }
    priority = {loc_id: network.locations[loc_id].priority for loc_id in promises}

    def rank(p: Plan) -> tuple[int, datetime, float, int, tuple[str, ...]]:
        ids = tuple(part.promise.location_id for part in p.parts)
        return (len(p.parts), p.promised_by, p.distance_km, sum(priority[i] for i in ids), ids)

    singles = [
        Plan(service.id, (Part(promises[loc_id], tuple(Line(s, q) for s, q in demand.items())),))
        for loc_id, have in atp.items()
        if all(have[sku] >= q for sku, q in demand.items())
    ]
    if singles:
        return Outcome(service.id, sorted(singles, key=rank)[:max_plans])
    short = {sku: q for sku, q in demand.items() if sum(have[sku] for have in atp.values()) < q}
    if short:
        sku, q = next(iter(short.items()))
        total = sum(have[sku] for have in atp.values())
        return Outcome(
            service.id,
            reason=f"not enough {sku} within {service.id}'s reach: {q} asked, {total} available",
        )
    # Best-placed locations that hold anything asked for, in the order the ranking prefers.
    useful = sorted(
        (i for i in promises if any(atp[i][sku] > 0 for sku in demand)),
        key=lambda i: (promises[i].promised_by, promises[i].distance_km, priority[i], i),
    )[:SPLIT_CANDIDATES]
    for k in range(2, max_parts + 1):
        plans = []
        for combo in combinations(useful, k):
            parts = _allocate(combo, demand, atp)
            if parts is not None:
                plans.append(
                    Plan(service.id, tuple(Part(promises[i], ln) for i, ln in parts.items()))
                )
        if plans:
            return Outcome(service.id, sorted(plans, key=rank)[:max_plans])
    return Outcome(service.id, reason=f"no {max_parts} or fewer locations together hold the basket")


def _allocate(
    combo: tuple[str, ...], demand: Mapping[str, int], atp: Mapping[str, Mapping[str, int]]
) -> dict[str, tuple[Line, ...]] | None:
    """Lines per location of `combo`, or None when it cannot hold the basket or one of its
    locations would get nothing (then a smaller combination is the plan). Each SKU goes where
    `atp.core.reservations.allocate` puts it: whole at the first location of `combo` that has
    it all, else split."""
    parts: dict[str, list[Line]] = {i: [] for i in combo}
    for sku, qty in demand.items():
        placed = allocate(qty, [(i, atp[i][sku]) for i in combo])
        if placed is None:
            return None
        for i, units in placed:
            parts[i].append(Line(sku, units))
    if any(not lines for lines in parts.values()):
        return None
    return {i: tuple(lines) for i, lines in parts.items()}
