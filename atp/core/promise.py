"""Promise dates: when an order placed now leaves a location and when it arrives. Pure; time in.

Every instant is an aware `datetime`; arithmetic happens in UTC (adding hours to a local time
across a DST change would be wrong by the change), and local times are only read off it. A
location works on its working days minus the public holidays of the calendar it observes; a
service delivers on its delivery days minus its carrier's holidays.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays as holidays_lib

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ALL_DAYS = frozenset(range(7))
MON_FRI = frozenset(range(5))
_HHMM = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")
_CALENDAR = re.compile(r"([A-Z]{2})(?:-([A-Z0-9]{1,3}))?")
# How far ahead a promise may look for a working day (a location closed for two weeks has none).
HORIZON_DAYS = 21


def parse_hhmm(text: object) -> time | None:
    """`"14:30"` -> time(14, 30); None for anything else."""
    if not isinstance(text, str):
        return None
    m = _HHMM.fullmatch(text)
    return time(int(m.group(1)), int(m.group(2))) if m else None


def calendar_error(spec: str) -> str | None:
    """None when `spec` names a holiday calendar the library knows ("US", "US-NY"), else why."""
    m = _CALENDAR.fullmatch(spec)
    if not m:
        return f"expected a country code like US or US-NY, got {spec!r}"
    country, subdiv = m.groups()
    supported = holidays_lib.list_supported_countries()
    if country not in supported:
        return f"no public-holiday calendar for country {country!r}"
    if subdiv is not None and subdiv not in supported[country]:
        return f"no public-holiday calendar for {country} region {subdiv!r}"
    return None


@lru_cache(maxsize=256)
def _holiday_dates(spec: str, only: frozenset[str], year: int) -> frozenset[date]:
    country, _, subdiv = spec.partition("-")
    cal = holidays_lib.country_holidays(country, subdiv=subdiv or None, years=year)
    return frozenset(
        d
        for d, name in cal.items()
        if not only or any(n.strip().removesuffix(" (observed)") in only for n in name.split(";"))
    )


@dataclass(frozen=True, slots=True)
class Holidays:
    """A public-holiday calendar ("US", "US-NY"), optionally only some of its named days."""

    spec: str | None = None  # None: observes no public holidays
    only: frozenset[str] = frozenset()  # names to observe; empty: all of the calendar's

    def __contains__(self, day: date) -> bool:
        return self.spec is not None and day in _holiday_dates(self.spec, self.only, day.year)

    def name(self, day: date) -> str | None:
        if day not in self:
            return None
        country, _, subdiv = (self.spec or "").partition("-")
        return holidays_lib.country_holidays(country, subdiv=subdiv or None, years=day.year).get(
            day
        )


@dataclass(frozen=True, slots=True)
class WorkCalendar:
    """Days something happens on: weekdays (0 = Monday) minus public holidays."""

    weekdays: frozenset[int] = MON_FRI
    holidays: Holidays = field(default_factory=Holidays)

    def is_open(self, day: date) -> bool:
        return day.weekday() in self.weekdays and day not in self.holidays

    def next_open(self, day: date, after: bool = False) -> date | None:
        """The first open day from `day` (or strictly after it), within the horizon."""
        for i in range(1 if after else 0, HORIZON_DAYS + 1):
            d = day + timedelta(days=i)
            if self.is_open(d):
                return d
        return None


def at(day: date, clock: time, tz: ZoneInfo) -> datetime:
    """The instant (UTC) that reads `clock` on `day` in `tz`.

    A wall time skipped by a DST change (02:30 on the spring-forward night) is read with the
    offset before the change, as zoneinfo does; it lands one hour later in the new offset.
    """
    return datetime.combine(day, clock, tzinfo=tz).astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Dispatch:
    ready_at: datetime  # handling done: leaves the location, or ready for pickup
    day: date  # the location's local date it leaves on
    cutoff_at: datetime  # the last order time that still makes `day`


def dispatch(
    now: datetime,
    tz: ZoneInfo,
    calendar: WorkCalendar,
    handling: timedelta,
    cutoff: time,
    opens: time | None = None,
) -> Dispatch | None:
    """The first open day whose cutoff an order placed `now` makes after its handling time.

    Handling is elapsed time from `now`; a location with opening hours starts it when it opens
    if that is later. It must end by the day's `cutoff` (local time); an order ready before a
    later shipping day waits for it. None when no day within the horizon works.
    """
    now = now.astimezone(UTC)
    day: date | None = now.astimezone(tz).date()
    while day is not None:
        if calendar.is_open(day):
            start = now if opens is None else max(now, at(day, opens, tz))
            close = at(day, cutoff, tz)
            if start + handling <= close:
                ready = max(start + handling, at(day, time(0), tz))
                return Dispatch(ready_at=ready, day=day, cutoff_at=close - handling)
        day = calendar.next_open(day, after=True)
        if day is not None and (day - now.date()).days > HORIZON_DAYS:
            return None
    return None


def delivery_day(ship_day: date, transit_days: int, calendar: WorkCalendar) -> date | None:
    """Ship date plus `transit_days` days the service delivers on; 0 lands on the ship day
    itself if the service delivers that day, else on its next delivery day."""
    if transit_days == 0:
        return calendar.next_open(ship_day)
    day = ship_day
    for _ in range(transit_days):
        nxt = calendar.next_open(day, after=True)
        if nxt is None:
            return None
        day = nxt
    return day


def seconds_until(moment: datetime, now: datetime) -> int:
    return max(0, int((moment - now).total_seconds()))
