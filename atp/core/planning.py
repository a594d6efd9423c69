"""Delivery options and sourcing plans: which locations can keep which promise. Pure; time in.

For one destination and one basket, every (service, location) pair gets a promise from its
location's calendar and the service's rules (atp/core/promise.py), or the reason it has none. A plan
assigns the basket to locations that have the ATP now: one location when any can take it all,
else the fewest locations that can. Plans rank by parts, then the promise (the latest part's),
then distance, then the locations' configured priority.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from itertools import combinations
from zoneinfo import ZoneInfo

from atp.core.availability import LocationCounts, location_atp
from atp.core.geo import distance_km
from atp.core.network import Location, Network
from atp.core.network.services import Service, band_days
from atp.core.promise import at, delivery_day, dispatch

# Split plans look at this many best-placed candidate locations at most (combinations grow fast).
SPLIT_CANDIDATES = 12


@dataclass(frozen=True, slots=True)
class Line:
    sku: str
    quantity: int


@dataclass(frozen=True, slots=True)
class Destination:
    point: tuple[float, float]
    zone: ZoneInfo
    postal_code: str | None = None


@dataclass(frozen=True, slots=True)
class Promise:
    """When an order placed now at one location for one service arrives (or is ready)."""

    location_id: str
    distance_km: float
    ready_at: datetime  # leaves the location / ready for pickup
    promised_by: datetime  # latest arrival (end of the window or of the delivery day)
    window_start: datetime | None  # couriers: earliest arrival
    delivery_date: date  # the destination's local date of arrival
    cutoff_at: datetime  # the last order time that keeps this promise


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


Stock = Mapping[str, Mapping[str, LocationCounts]]  # sku -> location -> counts


@dataclass(frozen=True, slots=True)
class Order:
    """What is asked: the basket, the stock read for it, where it goes and when it is placed."""

    lines: Sequence[Line]
    stock: Stock
    dest: Destination
    now: datetime


def promise_for(
    service: Service, loc: Location, dest: Destination, km: float, now: datetime
) -> Promise | str:
    """The promise `loc` can make for `service` to `dest`, or why it can make none."""
    tz = loc.zone
    if service.kind == "pickup":
        d = dispatch(now, tz, loc.calendar, loc.handling, loc.closes or loc.cutoff, loc.opens)
        if d is None:
            return f"{loc.id} has no opening day in the next weeks"
        local = d.ready_at.astimezone(tz).date()
        return Promise(loc.id, km, d.ready_at, d.ready_at, None, local, d.cutoff_at)
    if service.kind == "courier":
        assert service.cutoff is not None
        cutoff = service.cutoff if loc.closes is None else min(service.cutoff, loc.closes)
        d = dispatch(now, tz, loc.calendar, loc.handling, cutoff, loc.opens)
        today = now.astimezone(tz).date()
        if d is None or d.day != today:
            return f"past today's {service.id} cutoff {cutoff:%H:%M} ({loc.timezone}) at {loc.id}"
        if service.window is not None:
            arrive = d.ready_at.astimezone(dest.zone).date()
            start, end = (at(arrive, t, dest.zone) for t in service.window)
            if d.ready_at > start:
                return f"{loc.id} cannot be ready before the {service.id} window starts"
        else:
            assert service.window_minutes is not None
            lo, hi = service.window_minutes
            start, end = d.ready_at + timedelta(minutes=lo), d.ready_at + timedelta(minutes=hi)
        arrival = end.astimezone(dest.zone).date()
        if not service.delivery.is_open(arrival):
            return f"{service.id} does not deliver on {arrival:%A %Y-%m-%d}"
        return Promise(loc.id, km, d.ready_at, end, start, arrival, d.cutoff_at)
    transit = service.transit_days(km)
    if transit is None:
        return f"{loc.id} is {km:.0f} km away, beyond {service.id}'s longest transit band"
    d = dispatch(now, tz, loc.calendar, loc.handling, loc.cutoff, loc.opens)
    if d is None:
        return f"{loc.id} has no working day in the next weeks"
    lands = delivery_day(d.day, transit, service.delivery)
    if lands is None:
        return f"{service.id} has no delivery day in the next weeks"
    return Promise(
        loc.id,
        km,
        d.ready_at,
        at(lands, service.deliver_by, dest.zone),
        None,
        lands,
        d.cutoff_at,
    )


def candidates(
    network: Network, service: Service, dest: Destination, now: datetime, channel: str
) -> tuple[dict[str, Promise], str | None]:
    """Promises of every location that may serve `service` to `dest`; else why none may."""
    eligible = [
        loc
        for loc in network.channel_locations(channel)
        if loc.type in service.location_types
        and service.requires <= loc.capabilities
        and loc.coordinates is not None
    ]
    if not eligible:
        return {}, f"no enabled location in channel {channel} offers {service.id}"
    reach = service.max_distance_km
    reachable = []
    nearest: tuple[float, str] | None = None
    for loc in eligible:
        km = distance_km(dest.point, loc.coordinates)  # type: ignore[arg-type]
        if nearest is None or km < nearest[0]:
            nearest = (km, loc.id)
        if reach is None or km <= reach:
            reachable.append((loc, round(km, 1)))
    if not reachable:
        assert nearest is not None
        return {}, (
            f"no {service.id} location within {reach:g} km "
            f"(nearest: {nearest[1]} at {nearest[0]:.0f} km)"
        )
    promises: dict[str, Promise] = {}
    why = None
    for loc, km in reachable:
        p = promise_for(service, loc, dest, km, now)
        if isinstance(p, Promise):
            promises[loc.id] = p
        else:
            why = why or p
    return promises, None if promises else why


def atp_at(network: Network, stock: Stock, sku: str, location_id: str, channel: str) -> int:
    loc = network.locations[location_id]
    c = stock.get(sku, {}).get(location_id, LocationCounts())
    return location_atp(c.on_hand, c.reserved, network.safety_stock(sku, loc, channel))


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
    demand = _demand(order.lines)
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


def _demand(lines: Sequence[Line]) -> dict[str, int]:
    """Quantities per SKU, in the order first asked (a SKU on two lines counts once)."""
    out: dict[str, int] = {}
    for ln in lines:
        out[ln.sku] = out.get(ln.sku, 0) + ln.quantity
    return out


def _allocate(
    combo: tuple[str, ...], demand: Mapping[str, int], atp: Mapping[str, Mapping[str, int]]
) -> dict[str, tuple[Line, ...]] | None:
    """Lines per location of `combo`, or None when it cannot hold the basket or one of its
    locations would get nothing (then a smaller combination is the plan). A line goes whole to
    the first location in `combo` that has it all; only when none has is it split."""
    parts: dict[str, list[Line]] = {i: [] for i in combo}
    for sku, qty in demand.items():
        whole = next((i for i in combo if atp[i][sku] >= qty), None)
        if whole is not None:
            parts[whole].append(Line(sku, qty))
            continue
        left = qty
        for i in combo:
            take = min(left, atp[i][sku])
            if take > 0:
                parts[i].append(Line(sku, take))
                left -= take
        if left > 0:
            return None
    if any(not lines for lines in parts.values()):
        return None
    return {i: tuple(lines) for i, lines in parts.items()}


@dataclass(frozen=True, slots=True)
class PickupStore:
    promise: Promise
    name: str
    atp: dict[str, int]


@dataclass(frozen=True, slots=True)
class TransferOption:
    store_id: str
    from_location_id: str
    ready_at: datetime
    cutoff_at: datetime  # the source's last order time for this


def pickup_stores(
    network: Network, service: Service, order: Order
) -> tuple[list[PickupStore], TransferOption | None, str | None]:
    """Stores within reach with ATP for the whole basket, soonest ready first; and when the
    nearest store lacks it, the earliest "ready by" there via transfer. Else why none."""
    promises, why = candidates(network, service, order.dest, order.now, service.channel)
    if not promises:
        return [], None, why
    demand = _demand(order.lines)
    stock, now = order.stock, order.now
    stores = []
    for loc_id, p in promises.items():
        have = {sku: atp_at(network, stock, sku, loc_id, service.channel) for sku in demand}
        if all(have[sku] >= q for sku, q in demand.items()):
            stores.append(PickupStore(p, network.locations[loc_id].name, have))
    stores.sort(key=lambda s: (s.promise.ready_at, s.promise.distance_km, s.promise.location_id))
    nearest = min(promises.values(), key=lambda p: (p.distance_km, p.location_id))
    transfer = None
    if service.transfer is not None and nearest.location_id not in {
        s.promise.location_id for s in stores
    }:
        transfer = _transfer(network, service, demand, stock, nearest, now)
    if not stores and transfer is None:
        why = f"no store within {service.max_distance_km:g} km has the basket"
    return stores, transfer, None if stores or transfer else why


def _transfer(
    network: Network,
    service: Service,
    demand: Mapping[str, int],
    stock: Stock,
    store_promise: Promise,
    now: datetime,
) -> TransferOption | None:
    """Ship the basket from one source to the store, then ready it there after handling."""
    rule = service.transfer
    assert rule is not None
    store = network.locations[store_promise.location_id]
    best: tuple[tuple[datetime, int, str], TransferOption] | None = None
    for src in network.channel_locations(rule.channel):
        if src.type not in rule.location_types or src.coordinates is None:
            continue
        if any(atp_at(network, stock, s, src.id, rule.channel) < q for s, q in demand.items()):
            continue
        days = band_days(rule.transit, distance_km(src.coordinates, store.coordinates))  # type: ignore[arg-type]
        shipped = dispatch(now, src.zone, src.calendar, src.handling, src.cutoff, src.opens)
        if days is None or shipped is None:
            continue
        arrival = delivery_day(shipped.day, days, store.calendar)
        if arrival is None:
            continue
        # The transfer arrives as the store opens; handling starts then.
        arrives = at(arrival, store.opens or time(0), store.zone)
        ready = dispatch(
            arrives,
            store.zone,
            store.calendar,
            store.handling,
            store.closes or store.cutoff,
            store.opens,
        )
        if ready is None:
            continue
        key = (ready.ready_at, src.priority, src.id)
        if best is None or key < best[0]:
            best = (key, TransferOption(store.id, src.id, ready.ready_at, shipped.cutoff_at))
    return None if best is None else best[1]
