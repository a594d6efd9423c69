"""Sourcing plans and delivery options over the demo network: what they promise and from where."""

from __future__ import annotations

from datetime import datetime
from itertools import combinations
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from atp.core.availability import LocationCounts
from atp.core.geo import zip_coordinates
from atp.core.network import Network
from atp.core.planning import Destination, Line, Order, Plan, atp_at, pickup_stores, plan

NY = ZoneInfo("America/New_York")
UNION_SQUARE = Destination(zip_coordinates("10003"), NY, "10003")  # type: ignore[arg-type]
TUESDAY_9AM = datetime(2026, 11, 17, 9, 0, tzinfo=NY)


def stock(**per_location: dict[str, int]) -> dict[str, dict[str, LocationCounts]]:
    """stock(WH_NJ={"A": 5}) -> {"A": {"WH-NJ": LocationCounts(on_hand=5)}}."""
    out: dict[str, dict[str, LocationCounts]] = {}
    for loc, skus in per_location.items():
        for sku, n in skus.items():
            out.setdefault(sku, {})[loc.replace("_", "-")] = LocationCounts(on_hand=n)
    return out


def test_one_location_with_everything_beats_a_nearer_split(demo_network: Network) -> None:
    # The Union Square store (1 km away) has A but not B; the NJ warehouse has both.
    s = stock(S_0101={"A": 9}, WH_NJ={"A": 3, "B": 3})
    out = plan(
        demo_network,
        demo_network.service("standard"),
        Order([Line("A", 1), Line("B", 1)], s, UNION_SQUARE, TUESDAY_9AM),
    )
    assert out.plans and all(len(p.parts) == 1 for p in out.plans)
    assert out.plans[0].parts[0].promise.location_id == "WH-NJ"


def test_split_only_when_no_location_has_everything(demo_network: Network) -> None:
    s = stock(S_0101={"A": 9}, WH_NJ={"B": 3}, WH_IL={"B": 3})
    out = plan(
        demo_network,
        demo_network.service("standard"),
        Order([Line("A", 2), Line("B", 1)], s, UNION_SQUARE, TUESDAY_9AM),
    )
    best = out.plans[0]
    assert len(best.parts) == 2
    by_loc = {p.promise.location_id: p.lines for p in best.parts}
    # the nearer B (New Jersey) wins over Illinois: earlier promise and shorter distance
    assert by_loc == {"S-0101": (Line("A", 2),), "WH-NJ": (Line("B", 1),)}
    assert best.promised_by == max(p.promise.promised_by for p in best.parts)


def test_a_line_is_split_between_locations_only_if_it_must(demo_network: Network) -> None:
    s = stock(WH_NJ={"A": 3}, WH_IL={"A": 4})
    out = plan(
        demo_network,
        demo_network.service("standard"),
        Order([Line("A", 6)], s, UNION_SQUARE, TUESDAY_9AM),
    )
    parts = {p.promise.location_id: p.lines for p in out.plans[0].parts}
    # the nearer warehouse gives all it has, the other the rest
    assert parts == {"WH-NJ": (Line("A", 3),), "WH-IL": (Line("A", 3),)}
    assert len(out.plans[0].parts) == 2


def test_not_enough_stock_says_which_sku(demo_network: Network) -> None:
    out = plan(
        demo_network,
        demo_network.service("standard"),
        Order([Line("A", 10)], stock(WH_NJ={"A": 3}), UNION_SQUARE, TUESDAY_9AM),
    )
    assert out.plans == []
    assert out.reason is not None and "A" in out.reason and "10 asked, 3 available" in out.reason


def test_same_day_is_offered_only_within_reach(demo_network: Network) -> None:
    service = demo_network.service("same_day")
    s = stock(S_0101={"A": 9}, S_0301={"A": 9})
    near = plan(demo_network, service, Order([Line("A", 1)], s, UNION_SQUARE, TUESDAY_9AM))
    assert [p.parts[0].promise.location_id for p in near.plans] == ["S-0101"]
    denver = Destination(zip_coordinates("80206"), ZoneInfo("America/Denver"))  # type: ignore[arg-type]
    far = plan(demo_network, service, Order([Line("A", 1)], s, denver, TUESDAY_9AM))
    assert far.plans == [] and far.reason is not None and "within 40 km" in far.reason


def test_safety_stock_of_the_service_channel_counts(demo_network: Network) -> None:
    # Stores keep 3 back from the online channel: 4 on hand leaves 1 to ship.
    s = stock(S_0101={"A": 4})
    assert atp_at(demo_network, s, "A", "S-0101", "online") == 1
    out = plan(
        demo_network,
        demo_network.service("express"),
        Order([Line("A", 2)], s, UNION_SQUARE, TUESDAY_9AM),
    )
    assert out.plans == []


def test_pickup_lists_only_stores_with_the_basket(demo_network: Network) -> None:
    service = demo_network.service("pickup")
    s = stock(S_0101={"A": 1 + 2}, S_0102={"A": 2 + 2}, WH_NJ={"A": 50})  # 2 safety at stores
    stores, transfer, why = pickup_stores(
        demo_network, service, Order([Line("A", 2)], s, UNION_SQUARE, TUESDAY_9AM)
    )
    assert [st.promise.location_id for st in stores] == ["S-0102"]
    assert stores[0].atp == {"A": 2}
    # the nearest store (Union Square) lacks it: ready there by transfer from New Jersey
    assert transfer is not None and transfer.store_id == "S-0101"
    assert transfer.from_location_id == "WH-NJ"
    assert transfer.ready_at > stores[0].promise.ready_at
    assert why is None


def _ranked(plans: list[Plan]) -> bool:
    keys = [(len(p.parts), p.promised_by, p.distance_km) for p in plans]
    return keys == sorted(keys)


SHIP_LOCATIONS = ["WH-NJ", "WH-IL", "WH-CA", "3PL-ACME-TX", "S-0101", "S-0201", "S-0701"]


@settings(max_examples=150, deadline=None)
@given(
    held=st.dictionaries(
        st.sampled_from(SHIP_LOCATIONS),
        st.dictionaries(st.sampled_from("ABC"), st.integers(0, 6), max_size=3),
        max_size=6,
    ),
    basket=st.dictionaries(st.sampled_from("ABC"), st.integers(1, 8), min_size=1, max_size=3),
)
def test_plans_are_feasible_minimal_and_ranked(
    demo_network: Network, held: dict[str, dict[str, int]], basket: dict[str, int]
) -> None:
    s: dict[str, dict[str, LocationCounts]] = {}
    for loc, skus in held.items():
        for sku, n in skus.items():
            # stores keep 3 back for online: add it so `n` is what they can give
            extra = 3 if loc.startswith("S-") else 0
            s.setdefault(sku, {})[loc] = LocationCounts(on_hand=n + extra)
    lines = [Line(k, v) for k, v in basket.items()]
    out = plan(
        demo_network,
        demo_network.service("standard"),
        Order(lines, s, UNION_SQUARE, TUESDAY_9AM),
        max_parts=3,
        max_plans=50,
    )

    def have(loc: str, sku: str) -> int:
        return held.get(loc, {}).get(sku, 0)

    def covers(locs: tuple[str, ...]) -> bool:
        return all(sum(have(loc, k) for loc in locs) >= q for k, q in basket.items())

    smallest = next(
        (k for k in range(1, 4) if any(covers(c) for c in combinations(SHIP_LOCATIONS, k))), None
    )
    if smallest is None:
        assert out.plans == [] and out.reason
        return
    assert out.plans, out.reason
    assert _ranked(out.plans)
    for p in out.plans:
        assert len(p.parts) == smallest  # split only when unavoidable, with the fewest parts
        given_out: dict[str, int] = {}
        for part in p.parts:
            assert part.lines
            for ln in part.lines:
                assert 0 < ln.quantity <= have(part.promise.location_id, ln.sku)
                given_out[ln.sku] = given_out.get(ln.sku, 0) + ln.quantity
        assert given_out == basket
