"""Delivery options for a product page: one per service that can promise, soonest first."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from atp.core.availability import LocationCounts
from atp.core.geo import zip_coordinates
from atp.core.network import Network
from atp.core.planning import Destination, Line, Order, delivery_options, pickup_nearby

NY = ZoneInfo("America/New_York")
UNION_SQUARE = Destination(zip_coordinates("10003"), NY, "10003")  # type: ignore[arg-type]
TUESDAY_9AM = datetime(2026, 11, 17, 9, 0, tzinfo=NY)


def test_options_are_soonest_first_and_the_rest_say_why(demo_network: Network) -> None:
    stock = {"SKU-1": {"WH-NJ": LocationCounts(50, 0), "S-0101": LocationCounts(5, 0)}}
    order = Order([Line("SKU-1", 1)], stock, UNION_SQUARE, TUESDAY_9AM)
    result = delivery_options(demo_network, order, channel=None, max_parts=3)
    promised = [o.promised_by for o in result.options]
    assert promised == sorted(promised) and result.options
    offered = {o.service for o in result.options}
    assert offered.isdisjoint(s for s, _ in result.not_offered)
    assert offered | {s for s, _ in result.not_offered} == set(demo_network.services)
    assert all(reason for _, reason in result.not_offered)


def test_pickup_nearby_lists_stores_with_stock_nearest_first(demo_network: Network) -> None:
    counts = {loc.id: LocationCounts(4, 0) for loc in demo_network.channel_locations("pickup")}
    near = pickup_nearby(demo_network, "SKU-1", counts, UNION_SQUARE.point, 50)
    assert near and [s.distance_km for s in near] == sorted(s.distance_km for s in near)
    assert all(s.distance_km <= 50 and s.atp > 0 for s in near)
    assert pickup_nearby(demo_network, "SKU-1", {}, UNION_SQUARE.point, 50) == []
