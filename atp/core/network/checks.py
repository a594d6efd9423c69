"""The network file's vocabulary and the small checks its parsers share; errors name the entry."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from atp.core.errors import NetworkConfigError
from atp.core.promise import WEEKDAYS, Holidays, WorkCalendar, calendar_error

LOCATION_TYPES = ("warehouse", "store", "3pl")
CAPABILITIES = ("ship", "pickup", "same_day")


def mapping(path: str, raw: Any) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise NetworkConfigError(path, "expected a mapping")
    return raw


def non_negative(path: str, raw: Any) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
        raise NetworkConfigError(path, f"expected a whole number >= 0, got {raw!r}")
    return raw


def one_of(options: tuple[str, ...]) -> str:
    return "one of: " + ", ".join(options)


def members(path: str, raw: Any, options: tuple[str, ...], default: list[str]) -> frozenset[str]:
    """A list drawn from `options` (a single string counts as a list of one)."""
    value = default if raw is None else [raw] if isinstance(raw, str) else raw
    if not isinstance(value, list) or any(v not in options for v in value):
        raise NetworkConfigError(path, "expected a list of " + one_of(options))
    return frozenset(value)


def positive_number(path: str, raw: Any) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or raw <= 0:
        raise NetworkConfigError(path, f"expected a number > 0, got {raw!r}")
    return float(raw)


def work_calendar(path: str, days: Any, holidays: Any) -> WorkCalendar:
    """`working_days: [mon, ..]` (default Monday to Friday) and `holidays:` as one of
    "US" / "US-NY" (a public-holiday calendar), "none", or {calendar: US, only: [names]}."""
    if days is None:
        weekdays = frozenset(range(5))
    elif days == "all":
        weekdays = frozenset(range(7))
    elif isinstance(days, list) and days and all(d in WEEKDAYS for d in days):
        weekdays = frozenset(WEEKDAYS.index(d) for d in days)
    else:
        raise NetworkConfigError(
            f"{path}.working_days", "expected `all` or a list of " + one_of(WEEKDAYS)
        )
    return WorkCalendar(weekdays, holidays_of(f"{path}.holidays", holidays))


def holidays_of(path: str, raw: Any) -> Holidays:
    if raw is None or raw == "none":
        return Holidays()
    only: list[Any] = []
    if isinstance(raw, Mapping):
        only = raw.get("only") or []
        if not isinstance(only, list) or not all(isinstance(n, str) for n in only):
            raise NetworkConfigError(f"{path}.only", "expected a list of holiday names")
        raw = raw.get("calendar")
    if not isinstance(raw, str):
        raise NetworkConfigError(path, "expected a calendar like US or US-NY, or none")
    why = calendar_error(raw)
    if why is not None:
        raise NetworkConfigError(path, why)
    return Holidays(raw, frozenset(only))
