"""In-store pickup: stores within reach that have the basket, soonest ready first, and "ready by"
via a transfer when the nearest store lacks it. Pure; time in."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, time

from atp.core.availability import LocationCounts, location_atp
from atp.core.geo import distance_km
from atp.core.network import Location, Network
from atp.core.network.services import Service, band_days
from atp.core.planning.candidates import Order, Promise, Stock, atp_at, basket_demand, candidates
from atp.core.promise import at, delivery_day, dispatch


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
    demand = basket_demand(order.lines)
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


@dataclass(frozen=True, slots=True)
class NearbyStore:
    location_id: str
    name: str
    distance_km: float  # rounded to 0.1 km
    atp: int


def pickup_nearby(
    network: Network,
    sku: str,
    counts: Mapping[str, LocationCounts],
    origin: tuple[float, float],
    radius_km: float,
    channel: str = "pickup",
    atp_of: Callable[[Location], int] | None = None,
) -> list[NearbyStore]:
    """Stores of the pickup channel within `radius_km` of `origin` that have ATP for `sku`,
    nearest first (for availability answers with a postal code). `atp_of`: a store's ATP
    when it is not the SKU's own counts' (a kit's, from its components)."""
    if channel not in network.channels:
        return []
    out = []
    for loc in network.channel_locations(channel):
        if loc.coordinates is None:
            continue
        km = distance_km(origin, loc.coordinates)
        if km > radius_km:
            continue
        if atp_of is not None:
            atp = atp_of(loc)
        else:
            c = counts.get(loc.id, LocationCounts())
            atp = location_atp(c.on_hand, c.reserved, network.safety_stock(sku, loc, channel))
        if atp > 0:
            out.append(NearbyStore(loc.id, loc.name, round(km, 1), atp))
    out.sort(key=lambda s: (s.distance_km, s.location_id))
    return out
