"""Available-to-promise: the one ATP formula, and how per-location counts add up per channel."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence, Set
from dataclasses import dataclass

from atp.core.network import Location, Network

IN_STOCK = "in_stock"
LOW_STOCK = "low_stock"
OUT_OF_STOCK = "out_of_stock"


def location_atp(on_hand: int, reserved: int, safety_stock: int) -> int:
    """The ATP formula of DESIGN.md; the only place it is written."""
    return max(0, on_hand - reserved - safety_stock)


def oversell_exposure(on_hand: int, reserved: int, safety_stock: int) -> int:
    """Units held for customers beyond what is there to give them (0 when none)."""
    return max(0, reserved - (on_hand - safety_stock))


def stock_status(atp: int, low_stock_threshold: int) -> str:
    if atp <= 0:
        return OUT_OF_STOCK
    if atp <= low_stock_threshold:
        return LOW_STOCK
    return IN_STOCK


@dataclass(frozen=True, slots=True)
class LocationCounts:
    """What the store serves for one (SKU, location)."""

    on_hand: int = 0
    reserved: int = 0


NO_COUNTS = LocationCounts()  # a location with nothing of the SKU (frozen: safe to share)


@dataclass(frozen=True, slots=True)
class Inbound:
    location_id: str
    eta_ms: int
    qty: int


# Not frozen: a frozen dataclass sets each field through object.__setattr__, which made its
# construction 2.4 times as slow, and a batch of 100 SKUs builds one per channel location.
@dataclass(slots=True)
class LocationAvailability:
    location_id: str
    type: str
    on_hand: int
    reserved: int
    safety_stock: int
    atp: int

    def as_dict(self) -> dict[str, str | int]:
        """The JSON object of one location (what `dataclasses.asdict` gives, at a tenth of its
        cost: asdict deep-copies every field, and a product page answer has one per location)."""
        return {
            "location_id": self.location_id,
            "type": self.type,
            "on_hand": self.on_hand,
            "reserved": self.reserved,
            "safety_stock": self.safety_stock,
            "atp": self.atp,
        }


@dataclass(frozen=True, slots=True)
class FutureSupply:
    """What a channel may promise of its expected inbound: `arrivals` (eta_ms, qty) at its
    locations with an eta within its horizon, summed per eta, earliest first, and `promisable`,
    their total capped by the channel's limit."""

    promisable: int = 0
    arrivals: tuple[tuple[int, int], ...] = ()


NO_FUTURE = FutureSupply()


def future_supply(
    network: Network,
    channel_id: str,
    future: Mapping[str, Sequence[tuple[int, int]]],
    now_ms: int,
) -> FutureSupply:
    """The channel's promisable future supply (its `future_stock` rule; none without one)."""
    rule = network.channel(channel_id).future_stock
    if rule is None or not future:
        return NO_FUTURE
    members = network.channel_members(channel_id)
    until = now_ms + rule.horizon_ms
    by_eta: dict[int, int] = {}
    for loc, arrivals in future.items():
        if loc in members:
            for eta, qty in arrivals:
                if eta <= until:
                    by_eta[eta] = by_eta.get(eta, 0) + qty
    return FutureSupply(rule.promisable(sum(by_eta.values())), tuple(sorted(by_eta.items())))


@dataclass(frozen=True, slots=True)
class ChannelAvailability:
    sku: str
    channel: str
    atp: int  # available to fulfil: on hand, less holds and safety stock
    status: str
    locations: list[LocationAvailability]
    updated_ms: int | None
    next_inbound: Inbound | None = None
    future: FutureSupply = NO_FUTURE

    @property
    def available_to_order(self) -> int:
        """Available to fulfil plus the promisable future supply."""
        return self.atp + self.future.promisable


def location_availability(
    loc: Location, counts: LocationCounts, safety: int
) -> LocationAvailability:
    on_hand, reserved = counts.on_hand, counts.reserved
    atp = location_atp(on_hand, reserved, safety)
    return LocationAvailability(loc.id, loc.type, on_hand, reserved, safety, atp)


def channel_availability(
    network: Network,
    channel_id: str,
    sku: str,
    counts: Mapping[str, LocationCounts],
    updated_ms: int | None,
    inbound: Mapping[str, tuple[int, int]] | None = None,
    future: FutureSupply = NO_FUTURE,
) -> ChannelAvailability:
    """Sum the ATP of the channel's enabled locations; unknown SKUs simply have no counts.
    `future`: the channel's `future_supply` (available to order is ATP plus its promisable)."""
    rows = [
        location_availability(loc, counts.get(loc.id, NO_COUNTS), safety)
        for loc, safety in network.channel_safety_stock(channel_id, sku)
    ]
    next_inbound = earliest_inbound(inbound or {}, network.channel_members(channel_id))
    return summed(network, channel_id, sku, rows, updated_ms, next_inbound, future)


def summed(
    network: Network,
    channel_id: str,
    sku: str,
    rows: list[LocationAvailability],
    updated_ms: int | None,
    next_inbound: Inbound | None = None,
    future: FutureSupply = NO_FUTURE,
) -> ChannelAvailability:
    """The channel's answer from its locations' rows: their ATP summed, and its status."""
    total = sum(r.atp for r in rows)
    return ChannelAvailability(
        sku=sku,
        channel=channel_id,
        atp=total,
        status=stock_status(total, network.channel(channel_id).low_stock_threshold),
        locations=rows,
        updated_ms=updated_ms,
        next_inbound=next_inbound,
        future=future,
    )


@dataclass(frozen=True, slots=True)
class LocationTerms:
    """Every term of the ATP formula at one location, for one channel (for /explain)."""

    location: Location
    counts: LocationCounts
    safety_stock: int
    safety_rule: str  # which rule set the safety stock (atp.core.network.Network.safety_rule)
    excluded_because: str | None  # why the location does not count for the channel, or None
    atp: int  # 0 where it does not count
    oversell_exposure: int


def explain(
    network: Network, channel_id: str, sku: str, counts: Mapping[str, LocationCounts]
) -> list[LocationTerms]:
    """The terms at every location of the network, in file order, whether it counts or not."""
    rows = []
    for loc in network.locations.values():
        c = counts.get(loc.id, LocationCounts())
        safety, rule = network.safety_rule(sku, loc, channel_id)
        why_not = network.why_not_in_channel(loc, channel_id)
        atp = location_atp(c.on_hand, c.reserved, safety) if why_not is None else 0
        exposure = oversell_exposure(c.on_hand, c.reserved, safety)
        rows.append(LocationTerms(loc, c, safety, rule, why_not, atp, exposure))
    return rows


def channel_total(
    network: Network, channel_id: str, sku: str, counts: Mapping[str, LocationCounts]
) -> tuple[int, str]:
    """The channel's ATP and status as `channel_availability` gives them, summed over only the
    locations that have counts (the others add nothing), without building the breakdown: the
    worker computes it for every SKU it writes."""
    members = network.channel_members(channel_id)
    total = 0
    for location_id, c in counts.items():
        if location_id in members:
            loc = network.locations[location_id]
            total += location_atp(c.on_hand, c.reserved, network.safety_stock(sku, loc, channel_id))
    return total, stock_status(total, network.channel(channel_id).low_stock_threshold)


def channel_status(
    network: Network, channel_id: str, sku: str, counts: Mapping[str, LocationCounts]
) -> str:
    """The channel's status (recorded with every ledger write for the `atp_skus` gauges)."""
    return channel_total(network, channel_id, sku, counts)[1]


def channel_statuses(
    network: Network,
) -> Callable[[str, Mapping[str, LocationCounts]], list[tuple[str, str]]]:
    """A SKU's status per channel, recorded with every ledger write that moves a count (the
    worker's and `atp rebuild`'s): the `atp_skus` gauges count them."""

    def statuses(sku: str, counts: Mapping[str, LocationCounts]) -> list[tuple[str, str]]:
        return [(ch, channel_status(network, ch, sku, counts)) for ch in network.channels]

    return statuses


def earliest_inbound(
    inbound: Mapping[str, tuple[int, int]], location_ids: Set[str]
) -> Inbound | None:
    """The earliest expected arrival at one of the locations (ties: the larger quantity)."""
    best: Inbound | None = None
    for loc, (eta, qty) in inbound.items():
        if loc in location_ids and (best is None or (eta, -qty) < (best.eta_ms, -best.qty)):
            best = Inbound(loc, eta, qty)
    return best


@dataclass(frozen=True, slots=True)
class AvailabilityChange:
    """A SKU's channel answer moved: what `stock.availability` carries."""

    sku: str
    channel: str
    atp: int
    status: str
    previous_atp: int
    previous_status: str
    available_to_order: int
    previous_available_to_order: int

    @property
    def back_in_stock(self) -> bool:
        return self.previous_status == OUT_OF_STOCK and self.status != OUT_OF_STOCK

    def to_event(self, at_ms: int) -> dict[str, object]:
        return {
            "sku": self.sku,
            "channel": self.channel,
            "atp": self.atp,
            "status": self.status,
            "previous_atp": self.previous_atp,
            "previous_status": self.previous_status,
            "back_in_stock": self.back_in_stock,
            "available_to_fulfil": self.atp,
            "available_to_order": self.available_to_order,
            "previous_available_to_order": self.previous_available_to_order,
            "at_ms": at_ms,
        }


Arrivals = Mapping[str, Sequence[tuple[int, int]]]


def availability_changes(
    network: Network,
    sku: str,
    before: Mapping[str, LocationCounts],
    after: Mapping[str, LocationCounts],
    future: tuple[Arrivals, Arrivals] = ({}, {}),
    now_ms: int = 0,
) -> list[AvailabilityChange]:
    """Per channel, the change from `before` to `after` (and from the arrivals expected
    before to those after, `future`, for available to order at `now_ms`); nothing where the
    answer is the same."""
    if before == after and future[0] == future[1]:  # written, but nothing moved (a repeat)
        return []
    out = []
    for channel in network.channels:
        old_atp, old_status = channel_total(network, channel, sku, before)
        new_atp, new_status = channel_total(network, channel, sku, after)
        old_ato = old_atp + future_supply(network, channel, future[0], now_ms).promisable
        new_ato = new_atp + future_supply(network, channel, future[1], now_ms).promisable
        if (old_atp, old_status, old_ato) != (new_atp, new_status, new_ato):
            out.append(
                AvailabilityChange(
                    sku, channel, new_atp, new_status, old_atp, old_status, new_ato, old_ato
                )
            )
    return out


@dataclass(frozen=True, slots=True)
class Exposure:
    """More units held for customers at a location than it can give them."""

    sku: str
    location_id: str
    on_hand: int
    reserved: int
    safety_stock: int
    units: int

    def to_event(self, at_ms: int) -> dict[str, object]:
        return {
            "type": "oversell_exposure",
            "sku": self.sku,
            "location_id": self.location_id,
            "on_hand": self.on_hand,
            "reserved": self.reserved,
            "safety_stock": self.safety_stock,
            "exposure": self.units,
            "at_ms": at_ms,
        }


def new_exposures(
    network: Network,
    sku: str,
    before: Mapping[str, LocationCounts],
    after: Mapping[str, LocationCounts],
) -> list[Exposure]:
    """Locations whose oversell exposure appeared or grew between `before` and `after`.

    Safety stock here is the network-wide rule (no channel): exposure is about a location.
    """
    if before == after:
        return []
    out = []
    for loc_id, c in after.items():
        loc = network.locations.get(loc_id)
        if loc is None:
            continue
        safety = network.safety_stock(sku, loc)
        now = oversell_exposure(c.on_hand, c.reserved, safety)
        old = before.get(loc_id, LocationCounts())
        if now > oversell_exposure(old.on_hand, old.reserved, safety):
            out.append(Exposure(sku, loc_id, c.on_hand, c.reserved, safety, now))
    return out
