"""The fulfilment network: locations, channels and safety-stock rules. Immutable once built.

Built from the network file's content by `Network.from_dict` (atp.core.network.parse), so tests
build networks inline.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import time, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from atp.core.errors import UnknownChannel, UnknownService
from atp.core.network.services import Service
from atp.core.promise import WorkCalendar


@dataclass(frozen=True, slots=True)
class Location:
    id: str
    type: str
    name: str
    postal_code: str
    timezone: str
    enabled: bool
    capabilities: frozenset[str]
    lat: float | None = None
    lon: float | None = None
    # Delivery promises (atp/core/promise.py): handling time from order to ready, the daily order
    # cutoff and opening hours in local time, the days it works, and its rank among equals.
    handling: timedelta = timedelta(hours=2)
    cutoff: time = time(15, 0)
    opens: time | None = None
    closes: time | None = None
    calendar: WorkCalendar = field(default_factory=WorkCalendar)
    priority: int = 100

    @property
    def coordinates(self) -> tuple[float, float] | None:
        return None if self.lat is None or self.lon is None else (self.lat, self.lon)

    @property
    def zone(self) -> ZoneInfo:
        return _zone(self.timezone)


@dataclass(frozen=True, slots=True)
class FutureStock:
    """How much of the inbound expected within `horizon_ms` a channel may promise (available to
    order): at most `limit_units`, or `limit_percent` of it (rounded down); exactly one is set."""

    horizon_ms: int
    limit_units: int | None = None
    limit_percent: int | None = None

    def promisable(self, inbound: int) -> int:
        if self.limit_units is not None:
            return min(inbound, self.limit_units)
        return inbound * (self.limit_percent or 0) // 100


@dataclass(frozen=True, slots=True)
class Channel:
    id: str
    low_stock_threshold: int
    location_types: frozenset[str]
    requires: frozenset[str]
    future_stock: FutureStock | None = None  # none: available to order is available to fulfil


@dataclass(frozen=True, slots=True)
class SafetyRules:
    """Units held back, by how specific the rule is."""

    by_sku_location: Mapping[tuple[str, str], int] = field(default_factory=dict)
    by_sku: Mapping[str, int] = field(default_factory=dict)
    by_location: Mapping[str, int] = field(default_factory=dict)
    by_type: Mapping[str, int] = field(default_factory=dict)

    def lookup(self, level: str, sku: str, location: Location) -> int | None:
        if level == "sku_location":
            return self.by_sku_location.get((sku, location.id))
        if level == "sku":
            return self.by_sku.get(sku)
        if level == "location":
            return self.by_location.get(location.id)
        return self.by_type.get(location.type)


# Most specific first. At each level a channel's own rule beats the network-wide one.
SAFETY_LEVELS = ("sku_location", "sku", "location", "type")


@dataclass(frozen=True, slots=True)
class Network:
    locations: Mapping[str, Location]
    channels: Mapping[str, Channel]
    safety: SafetyRules = SafetyRules()
    channel_safety: Mapping[str, SafetyRules] = field(default_factory=dict)
    services: Mapping[str, Service] = field(default_factory=dict)
    # Filled on first use (the network is immutable): channel id -> the locations that count
    # for it, and their ids; the safety stock of a SKU that no rule names, by (location id,
    # location type, channel), and per channel with its locations; the SKUs that some rule names.
    _locations: dict[str, tuple[Location, ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _members: dict[str, frozenset[str]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _unnamed_safety: dict[tuple[str, str, str | None], int] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _unnamed_channel_safety: dict[str, tuple[tuple[Location, int], ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _named_skus: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        scopes = [self.safety, *self.channel_safety.values()]
        named = frozenset(
            sku
            for rules in scopes
            for sku in (*rules.by_sku, *(sku for sku, _ in rules.by_sku_location))
        )
        object.__setattr__(self, "_named_skus", named)

    def service(self, service_id: str) -> Service:
        try:
            return self.services[service_id]
        except KeyError:
            raise UnknownService(service_id, sorted(self.services)) from None

    def channel(self, channel_id: str) -> Channel:
        try:
            return self.channels[channel_id]
        except KeyError:
            raise UnknownChannel(channel_id, sorted(self.channels)) from None

    def channel_members(self, channel_id: str) -> frozenset[str]:
        """Ids of the locations that count for the channel."""
        members = self._members.get(channel_id)
        if members is None:
            members = frozenset(loc.id for loc in self.channel_locations(channel_id))
            self._members[channel_id] = members
        return members

    def channel_locations(self, channel_id: str) -> tuple[Location, ...]:
        """Enabled locations that serve the channel, in file order."""
        found = self._locations.get(channel_id)
        if found is None:
            ch = self.channel(channel_id)
            found = self._locations[channel_id] = tuple(
                loc
                for loc in self.locations.values()
                if loc.enabled and loc.type in ch.location_types and ch.requires <= loc.capabilities
            )
        return found

    def safety_stock(self, sku: str, location: Location, channel: str | None = None) -> int:
        """`safety_rule`'s units. For a SKU that no rule names (most SKUs), they depend only on
        the location and the channel, so they are worked out once per pair of those."""
        if sku in self._named_skus:
            return self.safety_rule(sku, location, channel)[0]
        key = (location.id, location.type, channel)
        units = self._unnamed_safety.get(key)
        if units is None:
            units = self._unnamed_safety[key] = self.safety_rule(sku, location, channel)[0]
        return units

    def channel_safety_stock(self, channel_id: str, sku: str) -> tuple[tuple[Location, int], ...]:
        """The channel's locations (`channel_locations`), each with the SKU's `safety_stock`
        there; for SKUs no rule names, worked out once per channel."""
        if sku in self._named_skus:
            return tuple(
                (loc, self.safety_stock(sku, loc, channel_id))
                for loc in self.channel_locations(channel_id)
            )
        found = self._unnamed_channel_safety.get(channel_id)
        if found is None:
            found = self._unnamed_channel_safety[channel_id] = tuple(
                (loc, self.safety_stock(sku, loc, channel_id))
                for loc in self.channel_locations(channel_id)
            )
        return found

    def safety_rule(
        self, sku: str, location: Location, channel: str | None = None
    ) -> tuple[int, str]:
        """Units held back and the rule that set them, e.g. (3, "channel online: type").

        The most specific rule wins: (SKU, location), then SKU, then location, then location
        type; at each level a rule of the channel beats the network-wide one. No rule: 0.
        """
        scoped = self.channel_safety.get(channel) if channel else None
        for level in SAFETY_LEVELS:
            if scoped is not None:
                units = scoped.lookup(level, sku, location)
                if units is not None:
                    return units, f"channel {channel}: {level}"
            units = self.safety.lookup(level, sku, location)
            if units is not None:
                return units, level
        return 0, "none"

    def why_not_in_channel(self, location: Location, channel_id: str) -> str | None:
        """None when the location counts for the channel, else the reason it does not."""
        ch = self.channel(channel_id)
        if not location.enabled:
            return "disabled"
        if location.type not in ch.location_types:
            return f"location type {location.type} is not in channel {channel_id}"
        missing = sorted(ch.requires - location.capabilities)
        if missing:
            return f"lacks capability {', '.join(missing)} required by channel {channel_id}"
        return None

    @classmethod
    def from_dict(
        cls, data: Any, geocode: Callable[[str], tuple[float, float] | None] | None = None
    ) -> Network:
        """Validate and build from what a YAML/JSON loader produced; every error names the
        entry it is about (atp.core.network.parse)."""
        from atp.core.network.parse import parse_network

        return parse_network(data, geocode)


@cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)
