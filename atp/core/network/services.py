"""Delivery services (express, same-day, next-day, standard, pickup) from the network file.

Three kinds, each promised differently (atp/core/planning/):
- `courier`: leaves the location today and arrives today, in a window: either fixed clock times at
  the destination (`window: "17:00-21:00"`) or minutes after the order is ready
  (`window_minutes: [60, 120]`). Offered only before its own `cutoff` at the location.
- `parcel`: leaves on the location's first working day whose cutoff the order makes, then
  `transit` delivery days chosen by distance band, by `deliver_by` at the destination.
- `pickup`: ready in the store after its handling time, within opening hours; optionally
  "ready by" via `transfer` from another location when the store itself lacks the stock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import time
from itertools import pairwise
from typing import Any

from atp.core.errors import NetworkConfigError
from atp.core.network.checks import (
    CAPABILITIES,
    LOCATION_TYPES,
    mapping,
    members,
    non_negative,
    one_of,
    positive_number,
    work_calendar,
)
from atp.core.promise import ALL_DAYS, WorkCalendar, parse_hhmm

KINDS = ("courier", "parcel", "pickup")


@dataclass(frozen=True, slots=True)
class TransitBand:
    max_km: float | None  # None: any distance
    days: int


@dataclass(frozen=True, slots=True)
class Transfer:
    """Stock moved to a pickup store from locations of these types, in `transit` days."""

    location_types: frozenset[str]
    channel: str
    transit: tuple[TransitBand, ...]


@dataclass(frozen=True, slots=True)
class Service:
    id: str
    kind: str
    channel: str  # whose locations and safety stock the service sells from
    location_types: frozenset[str]
    requires: frozenset[str]
    max_distance_km: float | None
    delivery: WorkCalendar  # the days it delivers
    cutoff: time | None = None
    window: tuple[time, time] | None = None
    window_minutes: tuple[int, int] | None = None
    transit: tuple[TransitBand, ...] = ()
    deliver_by: time = time(20, 0)
    transfer: Transfer | None = None

    def transit_days(self, km: float) -> int | None:
        return band_days(self.transit, km)


def band_days(bands: tuple[TransitBand, ...], km: float) -> int | None:
    """Days for a distance: the first band that reaches it; None beyond the last band."""
    for band in bands:
        if band.max_km is None or km <= band.max_km:
            return band.days
    return None


def parse_services(raw: Any, channels: Mapping[str, Any]) -> dict[str, Service]:
    out = {}
    for sid, body in mapping("services", raw).items():
        path = f"services.{sid}"
        body = mapping(path, body)
        kind = body.get("kind")
        if kind not in KINDS:
            raise NetworkConfigError(f"{path}.kind", one_of(KINDS))
        channel = body.get("channel", "pickup" if kind == "pickup" else "online")
        if channel not in channels:
            raise NetworkConfigError(f"{path}.channel", f"no such channel {channel!r}")
        days = body.get("delivery_days")
        if body.get("weekend_delivery") is True:
            days = "all"
        elif body.get("weekend_delivery") not in (None, False):
            raise NetworkConfigError(f"{path}.weekend_delivery", "expected true or false")
        max_km = body.get("max_distance_km")
        service = Service(
            id=str(sid),
            kind=kind,
            channel=channel,
            location_types=members(
                f"{path}.location_types",
                body.get("location_types"),
                LOCATION_TYPES,
                list(LOCATION_TYPES),
            ),
            requires=members(f"{path}.requires", body.get("requires"), CAPABILITIES, []),
            max_distance_km=None
            if max_km is None
            else positive_number(f"{path}.max_distance_km", max_km),
            delivery=work_calendar(path, days, body.get("holidays", "US")),
            deliver_by=_clock(f"{path}.deliver_by", body.get("deliver_by", "20:00")),
        )
        if kind == "courier":
            service = _courier(path, body, service)
        elif kind == "parcel":
            transit = _bands(f"{path}.transit", body.get("transit"))
            service = replace(service, transit=transit)
        elif body.get("transfer") is not None:
            service = replace(service, transfer=_transfer(f"{path}.transfer", body, channels))
        if kind == "pickup" and service.delivery.weekdays != ALL_DAYS:
            # Pickup has no carrier: the store's own days decide.
            service = replace(service, delivery=WorkCalendar(ALL_DAYS))
        out[str(sid)] = service
    return out


def _courier(path: str, body: Mapping[str, Any], service: Service) -> Service:
    cutoff = _clock(f"{path}.cutoff", body.get("cutoff"))
    window, minutes = body.get("window"), body.get("window_minutes")
    if (window is None) == (minutes is None):
        raise NetworkConfigError(
            path, "a courier service needs either window (HH:MM-HH:MM) or window_minutes [a, b]"
        )
    if window is not None:
        start, _, end = str(window).partition("-")
        a, b = parse_hhmm(start.strip()), parse_hhmm(end.strip())
        if a is None or b is None or a >= b:
            raise NetworkConfigError(f"{path}.window", f"expected HH:MM-HH:MM, got {window!r}")
        return replace(service, cutoff=cutoff, window=(a, b))
    if (
        not isinstance(minutes, list)
        or len(minutes) != 2
        or not all(isinstance(m, int) and not isinstance(m, bool) for m in minutes)
        or not 0 <= minutes[0] <= minutes[1] <= 24 * 60
    ):
        raise NetworkConfigError(
            f"{path}.window_minutes", "expected [from, to] minutes after ready, from <= to"
        )
    return replace(service, cutoff=cutoff, window_minutes=(minutes[0], minutes[1]))


def _transfer(path: str, body: Mapping[str, Any], channels: Mapping[str, Any]) -> Transfer:
    raw = mapping(path, body.get("transfer"))
    channel = raw.get("channel", "online")
    if channel not in channels:
        raise NetworkConfigError(f"{path}.channel", f"no such channel {channel!r}")
    return Transfer(
        location_types=members(
            f"{path}.location_types", raw.get("location_types"), LOCATION_TYPES, ["warehouse"]
        ),
        channel=channel,
        transit=_bands(f"{path}.transit", raw.get("transit")),
    )


def _bands(path: str, raw: Any) -> tuple[TransitBand, ...]:
    """[{max_km: 300, days: 1}, ..., {days: 5}]: ascending distances; the last may be open."""
    if not isinstance(raw, list) or not raw:
        raise NetworkConfigError(path, "expected a list of {max_km, days}, nearest first")
    bands = []
    for i, item in enumerate(raw):
        item = mapping(f"{path}[{i}]", item)
        max_km = item.get("max_km")
        bands.append(
            TransitBand(
                None if max_km is None else positive_number(f"{path}[{i}].max_km", max_km),
                non_negative(f"{path}[{i}].days", item.get("days")),
            )
        )
    closed = [b.max_km for b in bands[:-1]]
    last = bands[-1].max_km
    if (
        any(km is None for km in closed)
        or any(a >= b for a, b in pairwise(closed))  # type: ignore[operator]
        or (last is not None and closed and last <= closed[-1])  # type: ignore[operator]
    ):
        raise NetworkConfigError(path, "bands must be in ascending max_km; only the last open")
    return tuple(bands)


def _clock(path: str, raw: Any) -> time:
    value = parse_hhmm(raw)
    if value is None:
        raise NetworkConfigError(path, f"expected local time as HH:MM, got {raw!r}")
    return value
