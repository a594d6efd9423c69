"""Which locations can keep which promise: per (service, location), the promise an order placed
now can get (atp/core/promise.py: calendars and cutoffs), or the reason it has none. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from atp.core.availability import LocationCounts, location_atp
from atp.core.geo import distance_km
from atp.core.network import Location, Network
from atp.core.network.services import Service
from atp.core.promise import at, delivery_day, dispatch


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


def basket_demand(lines: Sequence[Line]) -> dict[str, int]:
    """Quantities per SKU, in the order first asked (a SKU on two lines counts once)."""
    out: dict[str, int] = {}
    for ln in lines:
        out[ln.sku] = out.get(ln.sku, 0) + ln.quantity
    return out
