"""The fulfilment network: locations, channels and safety-stock rules, validated from plain data.

Pure: `Network.from_dict` takes what a YAML/JSON loader produced, so tests build networks inline.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from atp.errors import NetworkConfigError, UnknownChannel
from atp.movements import is_valid_identifier

LOCATION_TYPES = ("warehouse", "store", "3pl")
CAPABILITIES = ("ship", "pickup", "same_day")
_ZIP_RE = re.compile(r"\d{5}")


@dataclass(frozen=True, slots=True)
class Location:
    id: str
    type: str
    name: str
    postal_code: str
    timezone: str
    enabled: bool
    capabilities: frozenset[str]
    safety_stock: int | None = None  # overrides the per-type default


@dataclass(frozen=True, slots=True)
class Channel:
    id: str
    low_stock_threshold: int
    location_types: frozenset[str]
    requires: frozenset[str]


@dataclass(frozen=True, slots=True)
class Network:
    locations: Mapping[str, Location]
    channels: Mapping[str, Channel]
    safety_stock_by_type: Mapping[str, int]

    def channel(self, channel_id: str) -> Channel:
        try:
            return self.channels[channel_id]
        except KeyError:
            raise UnknownChannel(channel_id, sorted(self.channels)) from None

    def channel_locations(self, channel_id: str) -> list[Location]:
        """Enabled locations that serve the channel, in file order."""
        ch = self.channel(channel_id)
        return [
            loc
            for loc in self.locations.values()
            if loc.enabled and loc.type in ch.location_types and ch.requires <= loc.capabilities
        ]

    def safety_stock(self, location: Location) -> int:
        """Most specific rule wins: the location's own, else its type's default."""
        if location.safety_stock is not None:
            return location.safety_stock
        return self.safety_stock_by_type.get(location.type, 0)

    @classmethod
    def from_dict(cls, data: Any) -> Network:
        """Validate and build; every error names the entry it is about."""
        if not isinstance(data, Mapping):
            raise NetworkConfigError("<root>", "expected a mapping with locations and channels")
        locations: dict[str, Location] = {}
        raw_locations = data.get("locations")
        if not isinstance(raw_locations, list) or not raw_locations:
            raise NetworkConfigError("locations", "expected a non-empty list")
        for i, raw in enumerate(raw_locations):
            loc = _location(f"locations[{i}]", raw)
            if loc.id in locations:
                raise NetworkConfigError(f"locations[{i}].id", f"duplicate location id {loc.id!r}")
            locations[loc.id] = loc

        safety = data.get("safety_stock", {}) or {}
        by_type = _mapping("safety_stock", safety).get("by_type", {}) or {}
        safety_by_type: dict[str, int] = {}
        for t, n in _mapping("safety_stock.by_type", by_type).items():
            if t not in LOCATION_TYPES:
                raise NetworkConfigError(f"safety_stock.by_type.{t}", _one_of(LOCATION_TYPES))
            safety_by_type[t] = _non_negative(f"safety_stock.by_type.{t}", n)

        channels: dict[str, Channel] = {}
        raw_channels = _mapping("channels", data.get("channels"))
        if not raw_channels:
            raise NetworkConfigError("channels", "define at least one channel")
        for cid, raw in raw_channels.items():
            channels[cid] = _channel(f"channels.{cid}", cid, raw)
        return cls(locations, channels, safety_by_type)


def _location(path: str, raw: Any) -> Location:
    raw = _mapping(path, raw)
    loc_id = raw.get("id")
    if not is_valid_identifier(loc_id):
        raise NetworkConfigError(f"{path}.id", "expected 1 to 128 printable characters")
    loc_type = raw.get("type")
    if loc_type not in LOCATION_TYPES:
        raise NetworkConfigError(f"{path}.type", _one_of(LOCATION_TYPES))
    postal = raw.get("postal_code")
    if not isinstance(postal, str) or not _ZIP_RE.fullmatch(postal):
        raise NetworkConfigError(
            f"{path}.postal_code", "expected a 5-digit US ZIP code as a string"
        )
    tz = raw.get("timezone")
    try:
        ZoneInfo(str(tz))
    except (ZoneInfoNotFoundError, ValueError):
        raise NetworkConfigError(f"{path}.timezone", f"unknown time zone {tz!r}") from None
    caps = raw.get("capabilities", ["ship"])
    if not isinstance(caps, list) or any(c not in CAPABILITIES for c in caps):
        raise NetworkConfigError(
            f"{path}.capabilities", "expected a list of " + _one_of(CAPABILITIES)
        )
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        raise NetworkConfigError(f"{path}.enabled", "expected true or false")
    safety = raw.get("safety_stock")
    return Location(
        id=str(loc_id),
        type=str(loc_type),
        name=str(raw.get("name") or loc_id),
        postal_code=postal,
        timezone=str(tz),
        enabled=enabled,
        capabilities=frozenset(caps),
        safety_stock=None if safety is None else _non_negative(f"{path}.safety_stock", safety),
    )


def _channel(path: str, cid: str, raw: Any) -> Channel:
    raw = _mapping(path, raw)
    types = raw.get("location_types", list(LOCATION_TYPES))
    if not isinstance(types, list) or any(t not in LOCATION_TYPES for t in types):
        raise NetworkConfigError(
            f"{path}.location_types", "expected a list of " + _one_of(LOCATION_TYPES)
        )
    requires = raw.get("requires", [])
    if isinstance(requires, str):
        requires = [requires]
    if not isinstance(requires, list) or any(c not in CAPABILITIES for c in requires):
        raise NetworkConfigError(f"{path}.requires", "expected a list of " + _one_of(CAPABILITIES))
    return Channel(
        id=cid,
        low_stock_threshold=_non_negative(
            f"{path}.low_stock_threshold", raw.get("low_stock_threshold", 0)
        ),
        location_types=frozenset(types),
        requires=frozenset(requires),
    )


def _mapping(path: str, raw: Any) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise NetworkConfigError(path, "expected a mapping")
    return raw


def _non_negative(path: str, raw: Any) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
        raise NetworkConfigError(path, f"expected a whole number >= 0, got {raw!r}")
    return raw


def _one_of(options: tuple[str, ...]) -> str:
    return "one of: " + ", ".join(options)
