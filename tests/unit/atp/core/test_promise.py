"""Promise dates across cutoffs, weekends, holidays, DST changes and time zones (table-driven).

Each row names an order time (local to the location) and the ship day, arrival and last order
time it must give. Times are written as local wall clocks so a reader can check them on a
calendar; the code under test works in UTC.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from atp.core.errors import NetworkConfigError
from atp.core.network import Location, Network
from atp.core.planning import Destination, Promise, promise_for
from atp.core.promise import ALL_DAYS, Holidays, WorkCalendar, delivery_day, dispatch

NY = ZoneInfo("America/New_York")
LA = ZoneInfo("America/Los_Angeles")
CHI = ZoneInfo("America/Chicago")
PHX = ZoneInfo("America/Phoenix")

CARRIER_DAYS = [
    "New Year's Day",
    "Memorial Day",
    "Independence Day",
    "Labor Day",
    "Thanksgiving Day",
    "Christmas Day",
]


def network(**services: dict[str, object]) -> Network:
    """A one-location network with the given services (parsed from plain data, as from YAML)."""
    return Network.from_dict(
        {
            "channels": {"online": {"requires": ["ship"]}, "pickup": {"requires": ["pickup"]}},
            "locations": [{"id": "X", "type": "store", "postal_code": "10003", "timezone": "UTC"}],
            "services": services,
        }
    )


STANDARD = {
    "kind": "parcel",
    "transit": [{"max_km": 300, "days": 1}, {"max_km": 1000, "days": 2}, {"days": 5}],
    "holidays": {"calendar": "US", "only": CARRIER_DAYS},
}
SAME_DAY = {"kind": "courier", "cutoff": "13:00", "window": "17:00-21:00", "holidays": "none"}
EXPRESS = {
    "kind": "courier",
    "cutoff": "19:00",
    "window_minutes": [60, 120],
    "weekend_delivery": True,
    "holidays": "none",
}
SERVICES = network(
    standard=STANDARD, same_day=SAME_DAY, express=EXPRESS, pickup={"kind": "pickup"}
).services


def warehouse(tz: str = "America/New_York", **kw: object) -> Location:
    fields: dict[str, object] = {
        "id": "WH",
        "type": "warehouse",
        "name": "WH",
        "postal_code": "08817",
        "timezone": tz,
        "enabled": True,
        "capabilities": frozenset({"ship"}),
        "lat": 40.5,
        "lon": -74.4,
        "handling": timedelta(hours=2),
        "cutoff": time(15, 0),
        "calendar": WorkCalendar(frozenset(range(5)), Holidays("US-NJ")),
    }
    fields.update(kw)
    return Location(**fields)  # type: ignore[arg-type]


def store(**kw: object) -> Location:
    return warehouse(
        **{
            "type": "store",
            "handling": timedelta(hours=1),
            "cutoff": time(16, 0),
            "opens": time(10, 0),
            "closes": time(21, 0),
            "calendar": WorkCalendar(
                ALL_DAYS, Holidays("US", frozenset({"Thanksgiving Day", "Christmas Day"}))
            ),
            **kw,
        }
    )


def local(text: str, tz: ZoneInfo = NY) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=tz)


def promise(service: str, loc: Location, order: datetime, km: float = 100.0, to=NY) -> Promise:
    result = promise_for(SERVICES[service], loc, Destination((40.7, -74.0), to), km, order)
    assert isinstance(result, Promise), result
    return result


# order (local, Tuesday 2026-11-17 and around) -> ship day, delivery day, last order for it
STANDARD_ROWS = [
    # before cutoff minus handling: ships today, 1 transit day
    ("2026-11-17 10:00", "2026-11-17", "2026-11-18", "2026-11-17 13:00"),
    # exactly the last minute that makes it
    ("2026-11-17 13:00", "2026-11-17", "2026-11-18", "2026-11-17 13:00"),
    # one minute late: handling would end after the 15:00 cutoff -> tomorrow
    ("2026-11-17 13:01", "2026-11-18", "2026-11-19", "2026-11-18 13:00"),
    # Friday after cutoff: the warehouse works Mon-Fri -> Monday, delivered Tuesday
    ("2026-11-20 16:00", "2026-11-23", "2026-11-24", "2026-11-23 13:00"),
    # Saturday and Sunday orders wait for Monday as well
    ("2026-11-21 09:00", "2026-11-23", "2026-11-24", "2026-11-23 13:00"),
    ("2026-11-22 23:59", "2026-11-23", "2026-11-24", "2026-11-23 13:00"),
    # Thanksgiving (Thu 2026-11-26) closes the warehouse: Wednesday late -> Friday; the carrier
    # does not deliver at weekends -> Monday
    ("2026-11-25 14:00", "2026-11-27", "2026-11-30", "2026-11-27 13:00"),
    # Christmas is a carrier holiday: shipped Thursday 24 Dec, arrives Monday 28 Dec
    ("2026-12-24 08:00", "2026-12-24", "2026-12-28", "2026-12-24 13:00"),
    # New Jersey's Lincoln's Birthday is not a NJ holiday but Presidents' Day is a US one
    ("2026-02-13 14:00", "2026-02-17", "2026-02-18", "2026-02-17 13:00"),
]


@pytest.mark.parametrize(("order", "ships", "arrives", "last_order"), STANDARD_ROWS)
def test_standard_parcel_promise(order: str, ships: str, arrives: str, last_order: str) -> None:
    p = promise("standard", warehouse(), local(order))
    assert p.ready_at.astimezone(NY).date() == date.fromisoformat(ships)
    assert p.delivery_date == date.fromisoformat(arrives)
    assert p.promised_by == local(f"{arrives} 20:00")
    assert p.cutoff_at == local(last_order)
    assert p.cutoff_at >= local(order)


@pytest.mark.parametrize(
    ("km", "days"), [(10, 1), (300, 1), (300.1, 2), (999, 2), (1001, 5), (4000, 5)]
)
def test_transit_days_follow_the_distance_band(km: float, days: int) -> None:
    p = promise("standard", warehouse(), local("2026-11-16 09:00"), km=km)  # a Monday
    d = date(2026, 11, 16)
    expected = delivery_day(d, days, SERVICES["standard"].delivery)
    assert p.delivery_date == expected
    assert (p.delivery_date - d).days >= days


def test_the_destination_time_zone_sets_the_promise_time() -> None:
    # A Los Angeles warehouse ships at its own 15:00 cutoff; a New York customer's promise is
    # 20:00 New York time. The order at 11:30 LA time is 14:30 in New York.
    wh = warehouse(
        tz="America/Los_Angeles", calendar=WorkCalendar(frozenset(range(5)), Holidays("US-CA"))
    )
    p = promise("standard", wh, local("2026-11-17 11:30", LA), km=3900, to=NY)
    assert p.cutoff_at == local("2026-11-17 13:00", LA)
    assert p.delivery_date == date(2026, 11, 24)  # 5 delivery days after Tuesday
    assert p.promised_by.astimezone(NY).isoformat() == "2026-11-24T20:00:00-05:00"
    # the same order placed at 13:30 LA (16:30 New York) misses the LA cutoff
    late = promise("standard", wh, local("2026-11-17 13:30", LA), km=3900, to=NY)
    assert late.delivery_date == date(2026, 11, 25)


def test_spring_forward_counts_real_hours_of_handling() -> None:
    # 2026-03-08 02:00 EST jumps to 03:00 EDT. Ordered 00:30 with 2 h handling, the order is
    # ready at 03:30 EDT, after a 03:15 cutoff: it ships the next day. (Adding 2 h to the wall
    # clock would give 02:30, a time that never happens, and wrongly make the cutoff.)
    wh = warehouse(cutoff=time(3, 15), calendar=WorkCalendar(ALL_DAYS))
    d = dispatch(local("2026-03-08 00:30"), NY, wh.calendar, wh.handling, wh.cutoff)
    assert d is not None
    assert d.day == date(2026, 3, 9)
    on_time = dispatch(local("2026-03-08 00:14"), NY, wh.calendar, wh.handling, wh.cutoff)
    assert on_time is not None and on_time.day == date(2026, 3, 8)
    assert on_time.ready_at.astimezone(NY).isoformat() == "2026-03-08T03:14:00-04:00"
    # the last order time that makes that day: 03:15 EDT minus 2 real hours = 00:15 EST
    assert on_time.cutoff_at.astimezone(NY).isoformat() == "2026-03-08T00:15:00-05:00"


def test_fall_back_counts_real_hours_of_handling() -> None:
    # 2026-11-01 02:00 EDT falls back to 01:00 EST. Ordered Saturday 23:30 EDT with 3 h of
    # handling, ready at 01:30 EST: in time for a 02:00 cutoff (wall-clock maths says 02:30).
    wh = warehouse(cutoff=time(2, 0), handling=timedelta(hours=3), calendar=WorkCalendar(ALL_DAYS))
    d = dispatch(local("2026-10-31 23:30"), NY, wh.calendar, wh.handling, wh.cutoff)
    assert d is not None
    assert d.day == date(2026, 11, 1)
    assert d.ready_at.astimezone(NY).isoformat() == "2026-11-01T01:30:00-05:00"


def test_a_time_zone_without_dst_keeps_its_offset() -> None:
    wh = warehouse(tz="America/Phoenix", calendar=WorkCalendar(ALL_DAYS))
    for order in ("2026-03-08 12:00", "2026-11-01 12:00"):
        p = promise("standard", wh, local(order, PHX), km=50, to=PHX)
        assert p.cutoff_at.astimezone(PHX).utcoffset() == timedelta(hours=-7)


SAME_DAY_ROWS = [
    # (order local, offered?, window start, last order)
    ("2026-11-17 09:00", True, "2026-11-17 17:00", "2026-11-17 12:00"),  # before opening
    ("2026-11-17 11:59", True, "2026-11-17 17:00", "2026-11-17 12:00"),
    ("2026-11-17 12:01", False, None, None),  # ready 13:01 is past the 13:00 cutoff
    ("2026-11-21 11:00", False, None, None),  # Saturday: the service has no weekend delivery
    ("2026-11-26 11:00", False, None, None),  # Thanksgiving: the store is closed
]


@pytest.mark.parametrize(("order", "offered", "window_start", "last_order"), SAME_DAY_ROWS)
def test_same_day_only_before_its_cutoff(
    order: str, offered: bool, window_start: str | None, last_order: str | None
) -> None:
    result = promise_for(
        SERVICES["same_day"], store(), Destination((40.7, -74.0), NY), 5.0, local(order)
    )
    if not offered:
        assert isinstance(result, str) and result  # a reason a person can read
        return
    assert isinstance(result, Promise), result
    assert result.window_start == local(window_start)
    assert result.promised_by == local(window_start).replace(hour=21)
    assert result.cutoff_at == local(last_order)


def test_same_day_window_is_in_the_destination_time_zone() -> None:
    # A store on New York time, a customer on Chicago time (as near a zone border).
    p = promise_for(
        SERVICES["same_day"],
        store(),
        Destination((40.7, -74.0), CHI),
        5.0,
        local("2026-11-17 09:00"),
    )
    assert isinstance(p, Promise)
    assert p.window_start is not None
    assert p.window_start.astimezone(CHI).isoformat() == "2026-11-17T17:00:00-06:00"


def test_express_window_follows_readiness_within_store_hours() -> None:
    s = store()
    early = promise("express", s, local("2026-11-21 08:00"), km=3)  # Saturday, before opening
    assert early.ready_at == local("2026-11-21 11:00")
    assert (early.window_start, early.promised_by) == (
        local("2026-11-21 12:00"),
        local("2026-11-21 13:00"),
    )
    assert early.cutoff_at == local("2026-11-21 18:00")
    midday = promise("express", s, local("2026-11-21 14:10"), km=3)
    assert midday.promised_by == local("2026-11-21 17:10")
    late = promise_for(
        SERVICES["express"], s, Destination((0, 0), NY), 3, local("2026-11-21 18:01")
    )
    assert isinstance(late, str) and "cutoff" in late


def test_pickup_is_ready_after_handling_within_opening_hours() -> None:
    s = store()
    assert promise("pickup", s, local("2026-11-17 12:00")).ready_at == local("2026-11-17 13:00")
    # after 20:00 the hour of handling does not fit before the 21:00 close: tomorrow 11:00
    assert promise("pickup", s, local("2026-11-17 20:30")).ready_at == local("2026-11-18 11:00")
    # Christmas Day closed: ready on the 26th
    assert promise("pickup", s, local("2026-12-24 20:30")).ready_at == local("2026-12-26 11:00")


def test_delivery_day_counts_only_delivery_days() -> None:
    mon_fri = WorkCalendar(frozenset(range(5)))
    friday = date(2026, 11, 20)
    assert delivery_day(friday, 0, mon_fri) == friday
    assert delivery_day(friday, 1, mon_fri) == date(2026, 11, 23)
    assert delivery_day(date(2026, 11, 21), 0, mon_fri) == date(2026, 11, 23)
    assert delivery_day(friday, 1, WorkCalendar(ALL_DAYS)) == date(2026, 11, 21)


@pytest.mark.parametrize(
    ("services", "path"),
    [
        ({"x": {"kind": "teleport"}}, "services.x.kind"),
        ({"x": {"kind": "parcel"}}, "services.x.transit"),
        (
            {
                "x": {
                    "kind": "parcel",
                    "transit": [{"max_km": 9, "days": 1}, {"max_km": 5, "days": 2}],
                }
            },
            "services.x.transit",
        ),
        ({"x": {"kind": "courier", "cutoff": "12:00"}}, "services.x"),
        (
            {"x": {"kind": "courier", "cutoff": "25:00", "window": "17:00-21:00"}},
            "services.x.cutoff",
        ),
        (
            {"x": {"kind": "courier", "cutoff": "12:00", "window": "21:00-17:00"}},
            "services.x.window",
        ),
        (
            {"x": {"kind": "parcel", "transit": [{"days": 1}], "holidays": "US-XX"}},
            "services.x.holidays",
        ),
        (
            {"x": {"kind": "parcel", "transit": [{"days": 1}], "channel": "tv"}},
            "services.x.channel",
        ),
    ],
)
def test_service_config_errors_name_the_entry(services: dict[str, object], path: str) -> None:
    with pytest.raises(NetworkConfigError) as info:
        network(**services)  # type: ignore[arg-type]
    assert info.value.path == path


@pytest.mark.parametrize(
    ("field", "value", "path"),
    [
        ("cutoff", "3pm", "locations[0].cutoff"),
        ("hours", "21:00-10:00", "locations[0].hours"),
        ("working_days", ["monday"], "locations[0].working_days"),
        ("holidays", "Narnia", "locations[0].holidays"),
        ("handling_minutes", -5, "locations[0].handling_minutes"),
    ],
)
def test_location_promise_fields_are_validated(field: str, value: object, path: str) -> None:
    with pytest.raises(NetworkConfigError) as info:
        Network.from_dict(
            {
                "channels": {"online": {}},
                "locations": [
                    {
                        "id": "X",
                        "type": "store",
                        "postal_code": "10003",
                        "timezone": "UTC",
                        field: value,
                    }
                ],
            }
        )
    assert info.value.path == path


# Properties over any order time in 2026-2027 (DST days and holidays included), for every
# location and service of the demo network.
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from atp.network_file import load_network  # noqa: E402
from tests.conftest import DEMO_NETWORK  # noqa: E402

DEMO = load_network(DEMO_NETWORK)
PAIRS = [
    (service, loc)
    for service in DEMO.services.values()
    for loc in DEMO.locations.values()
    if loc.coordinates is not None and service.requires <= loc.capabilities
]
ORDER_TIMES = st.datetimes(
    min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
)


@settings(max_examples=300, deadline=None)
@given(pair=st.sampled_from(PAIRS), now=ORDER_TIMES, later=st.integers(1, 7 * 24 * 60))
def test_a_promise_holds_until_its_cutoff_and_never_improves_later(pair, now, later):
    service, loc = pair
    dest = Destination(loc.coordinates, NY)
    p = promise_for(service, loc, dest, 5.0, now)
    if not isinstance(p, Promise):
        return
    assert now <= p.ready_at <= p.promised_by
    assert p.cutoff_at >= now.replace(microsecond=0) - timedelta(seconds=1)
    # ordering at the last moment keeps the promise: the same arrival for parcels and fixed
    # windows; for pickup and express (ready a fixed time after the order) the same day
    again = promise_for(service, loc, dest, 5.0, p.cutoff_at)
    assert isinstance(again, Promise), again
    if service.kind == "parcel" or service.window is not None:
        assert again.promised_by == p.promised_by
    else:
        zone = loc.zone
        assert again.ready_at.astimezone(zone).date() == p.ready_at.astimezone(zone).date()
    # ordering later never gets an earlier promise
    after = promise_for(service, loc, dest, 5.0, now + timedelta(minutes=later))
    if isinstance(after, Promise):
        assert after.promised_by >= p.promised_by
