"""The network file's content (plain data from a YAML/JSON loader) validated into a `Network`.

Every error is a `NetworkConfigError` that names the entry, e.g. `locations[3].type`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from atp.core.errors import NetworkConfigError
from atp.core.geo import ZIP_PATTERN
from atp.core.movements import is_valid_identifier
from atp.core.network.checks import CAPABILITIES, LOCATION_TYPES
from atp.core.network.checks import mapping as _mapping
from atp.core.network.checks import non_negative as _non_negative
from atp.core.network.checks import one_of as _one_of
from atp.core.network.checks import work_calendar as _work_calendar
from atp.core.network.model import Channel, FutureStock, Location, Network, SafetyRules
from atp.core.network.services import parse_services
from atp.core.promise import parse_hhmm

_ZIP_RE = re.compile(ZIP_PATTERN)


def parse_network(
    data: Any, geocode: Callable[[str], tuple[float, float] | None] | None = None
) -> Network:
    """Validate and build; every error names the entry it is about."""
    if not isinstance(data, Mapping):
        raise NetworkConfigError("<root>", "expected a mapping with locations and channels")
    locations: dict[str, Location] = {}
    raw_locations = data.get("locations")
    if not isinstance(raw_locations, list) or not raw_locations:
        raise NetworkConfigError("locations", "expected a non-empty list")
    defaults = _mapping("location_defaults", data.get("location_defaults") or {})
    for t in defaults:
        if t not in LOCATION_TYPES:
            raise NetworkConfigError(f"location_defaults.{t}", _one_of(LOCATION_TYPES))
    for i, raw in enumerate(raw_locations):
        raw = _mapping(f"locations[{i}]", raw)
        loc_type = str(raw.get("type"))
        type_defaults = _mapping(f"location_defaults.{loc_type}", defaults.get(loc_type) or {})
        loc = _location(f"locations[{i}]", {**type_defaults, **raw}, geocode)
        if loc.id in locations:
            raise NetworkConfigError(f"locations[{i}].id", f"duplicate location id {loc.id!r}")
        locations[loc.id] = loc

    channels: dict[str, Channel] = {}
    raw_channels = _mapping("channels", data.get("channels"))
    if not raw_channels:
        raise NetworkConfigError("channels", "define at least one channel")
    for cid, raw in raw_channels.items():
        channels[cid] = _channel(f"channels.{cid}", cid, raw)

    raw_safety = _mapping("safety_stock", data.get("safety_stock") or {})
    safety = _safety_rules("safety_stock", raw_safety, locations)
    # A location's own `safety_stock:` is a location rule.
    by_location = dict(safety.by_location)
    for i, raw in enumerate(raw_locations):
        if raw.get("safety_stock") is not None:
            by_location[raw["id"]] = _non_negative(
                f"locations[{i}].safety_stock", raw["safety_stock"]
            )
    safety = SafetyRules(safety.by_sku_location, safety.by_sku, by_location, safety.by_type)
    channel_safety: dict[str, SafetyRules] = {}
    for cid, raw in _mapping("safety_stock.channels", raw_safety.get("channels") or {}).items():
        if cid not in channels:
            raise NetworkConfigError(f"safety_stock.channels.{cid}", "no such channel")
        channel_safety[cid] = _safety_rules(
            f"safety_stock.channels.{cid}",
            _mapping(f"safety_stock.channels.{cid}", raw),
            locations,
        )
    services = parse_services(data.get("services") or {}, channels)
    return Network(locations, channels, safety, channel_safety, services)


def _safety_rules(
    path: str, raw: Mapping[str, Any], locations: Mapping[str, Location]
) -> SafetyRules:
    known = {"by_type", "by_location", "by_sku", "by_sku_location", "channels"}
    for key in raw:
        if key not in known:
            raise NetworkConfigError(f"{path}.{key}", "expected one of " + ", ".join(sorted(known)))

    def units(name: str) -> dict[str, int]:
        rules = _mapping(f"{path}.{name}", raw.get(name) or {})
        return {str(k): _non_negative(f"{path}.{name}.{k}", v) for k, v in rules.items()}

    by_type = units("by_type")
    for t in by_type:
        if t not in LOCATION_TYPES:
            raise NetworkConfigError(f"{path}.by_type.{t}", _one_of(LOCATION_TYPES))
    by_location = units("by_location")
    for loc in by_location:
        if loc not in locations:
            raise NetworkConfigError(f"{path}.by_location.{loc}", "no such location")
    by_sku_location: dict[tuple[str, str], int] = {}
    for key, n in units("by_sku_location").items():
        sku, _, loc = key.rpartition("@")
        if not sku or loc not in locations:
            raise NetworkConfigError(
                f"{path}.by_sku_location.{key}", "expected SKU@LOCATION with a known location"
            )
        by_sku_location[(sku, loc)] = n
    return SafetyRules(by_sku_location, units("by_sku"), by_location, by_type)


def _location(
    path: str, raw: Any, geocode: Callable[[str], tuple[float, float] | None] | None
) -> Location:
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
    lat, lon = _coordinates(path, raw, postal, geocode)
    handling = raw.get("handling_minutes", 120)
    if isinstance(handling, bool) or not isinstance(handling, int) or not 0 <= handling <= 20160:
        raise NetworkConfigError(
            f"{path}.handling_minutes", "expected whole minutes between 0 and 20160 (14 days)"
        )
    cutoff = parse_hhmm(raw.get("cutoff", "15:00"))
    if cutoff is None:
        raise NetworkConfigError(f"{path}.cutoff", "expected local time as HH:MM, e.g. 14:00")
    opens, closes = _hours(f"{path}.hours", raw.get("hours"))
    return Location(
        id=str(loc_id),
        type=str(loc_type),
        name=str(raw.get("name") or loc_id),
        postal_code=postal,
        timezone=str(tz),
        enabled=enabled,
        capabilities=frozenset(caps),
        lat=lat,
        lon=lon,
        handling=timedelta(minutes=handling),
        cutoff=cutoff,
        opens=opens,
        closes=closes,
        calendar=_work_calendar(path, raw.get("working_days"), raw.get("holidays", "US")),
        priority=_non_negative(f"{path}.priority", raw.get("priority", 100)),
    )


def _coordinates(
    path: str,
    raw: Mapping[str, Any],
    postal: str,
    geocode: Callable[[str], tuple[float, float] | None] | None,
) -> tuple[float | None, float | None]:
    """`lat` and `lon` as given, else those of the ZIP code (with a geocoder), else none."""
    lat, lon = raw.get("lat"), raw.get("lon")
    if lat is None and lon is None and geocode is not None:
        found = geocode(postal)
        if found is None:
            raise NetworkConfigError(
                f"{path}.postal_code", f"unknown US ZIP code {postal}; give lat and lon instead"
            )
        lat, lon = found
    if (lat is None) != (lon is None) or not all(
        v is None or (isinstance(v, int | float) and not isinstance(v, bool)) for v in (lat, lon)
    ):
        raise NetworkConfigError(f"{path}.lat", "give both lat and lon as numbers, or neither")
    return (None, None) if lat is None else (float(lat), float(lon))  # type: ignore[arg-type]


def _hours(path: str, raw: Any) -> tuple[time | None, time | None]:
    """`hours: "10:00-21:00"`: opening hours in local time; absent: no opening hours."""
    if raw is None:
        return None, None
    opens, _, closes = str(raw).partition("-")
    o, c = parse_hhmm(opens.strip()), parse_hhmm(closes.strip())
    if o is None or c is None or o >= c:
        raise NetworkConfigError(path, f"expected HH:MM-HH:MM with opening first, got {raw!r}")
    return o, c


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
        future_stock=_future_stock(f"{path}.future_stock", raw.get("future_stock")),
    )


def _future_stock(path: str, raw: Any) -> FutureStock | None:
    """`future_stock: {horizon_days, limit_units | limit_percent}`."""
    if raw is None:
        return None
    raw = _mapping(path, raw)
    unknown = set(raw) - {"horizon_days", "limit_units", "limit_percent"}
    if unknown:
        raise NetworkConfigError(f"{path}.{sorted(unknown)[0]}", "unknown setting")
    days = raw.get("horizon_days")
    if isinstance(days, bool) or not isinstance(days, int | float) or not 0 < days <= 365:
        raise NetworkConfigError(f"{path}.horizon_days", "expected a number of days, 0 < n <= 365")
    units, percent = raw.get("limit_units"), raw.get("limit_percent")
    if (units is None) == (percent is None):
        raise NetworkConfigError(path, "give exactly one of limit_units and limit_percent")
    if percent is not None and (
        isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= 100
    ):
        raise NetworkConfigError(f"{path}.limit_percent", "expected a whole number 0..100")
    return FutureStock(
        horizon_ms=int(days * 86_400_000),
        limit_units=None if units is None else _non_negative(f"{path}.limit_units", units),
        limit_percent=percent,
    )
