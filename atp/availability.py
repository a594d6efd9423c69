"""Available-to-promise: the one ATP formula and how per-location counts add up per channel."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from atp.network import Network

IN_STOCK = "in_stock"
LOW_STOCK = "low_stock"
OUT_OF_STOCK = "out_of_stock"


def location_atp(on_hand: int, reserved: int, safety_stock: int) -> int:
    """The ATP formula of DESIGN.md; the only place it is written."""
    return max(0, on_hand - reserved - safety_stock)


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


@dataclass(frozen=True, slots=True)
class LocationAvailability:
    location_id: str
    type: str
    on_hand: int
    reserved: int
    safety_stock: int
    atp: int


@dataclass(frozen=True, slots=True)
class ChannelAvailability:
    sku: str
    channel: str
    atp: int
    status: str
    locations: list[LocationAvailability]
    updated_ms: int | None


def channel_availability(
    network: Network,
    channel_id: str,
    sku: str,
    counts: Mapping[str, LocationCounts],
    updated_ms: int | None,
) -> ChannelAvailability:
    """Sum the ATP of the channel's enabled locations; unknown SKUs simply have no counts."""
    channel = network.channel(channel_id)
    rows: list[LocationAvailability] = []
    for loc in network.channel_locations(channel_id):
        c = counts.get(loc.id, LocationCounts())
        safety = network.safety_stock(loc)
        rows.append(
            LocationAvailability(
                location_id=loc.id,
                type=loc.type,
                on_hand=c.on_hand,
                reserved=c.reserved,
                safety_stock=safety,
                atp=location_atp(c.on_hand, c.reserved, safety),
            )
        )
    total = sum(r.atp for r in rows)
    return ChannelAvailability(
        sku=sku,
        channel=channel_id,
        atp=total,
        status=stock_status(total, channel.low_stock_threshold),
        locations=rows,
        updated_ms=updated_ms,
    )
