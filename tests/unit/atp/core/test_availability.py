"""The ATP formula, stock status and the channel sum."""

from __future__ import annotations

from dataclasses import asdict

import pytest
from hypothesis import given
from hypothesis import strategies as st

from atp.core.availability import (
    AvailabilityChange,
    LocationAvailability,
    LocationCounts,
    availability_changes,
    channel_availability,
    future_supply,
    location_atp,
    stock_status,
)
from atp.core.errors import UnknownChannel
from atp.core.network import Network


@pytest.mark.parametrize(
    ("on_hand", "reserved", "safety", "atp"),
    [(10, 0, 0, 10), (10, 3, 2, 5), (10, 8, 2, 0), (10, 9, 2, 0), (-4, 0, 0, 0), (0, 0, 0, 0)],
)
def test_location_atp(on_hand, reserved, safety, atp):
    assert location_atp(on_hand, reserved, safety) == atp


@given(st.integers(-(10**6), 10**6), st.integers(0, 10**6), st.integers(0, 10**3))
def test_invariant_atp_is_never_negative(on_hand, reserved, safety):
    assert location_atp(on_hand, reserved, safety) >= 0


@pytest.mark.parametrize(
    ("atp", "threshold", "status"),
    [(0, 10, "out_of_stock"), (1, 10, "low_stock"), (10, 10, "low_stock"), (11, 10, "in_stock")],
)
def test_status(atp, threshold, status):
    assert stock_status(atp, threshold) == status


NETWORK = Network.from_dict(
    {
        "safety_stock": {"by_type": {"store": 2}},
        "channels": {"online": {"low_stock_threshold": 5, "requires": ["ship"]}},
        "locations": [
            {
                "id": "W1",
                "type": "warehouse",
                "postal_code": "08817",
                "timezone": "America/New_York",
            },
            {
                "id": "S1",
                "type": "store",
                "postal_code": "10003",
                "timezone": "America/New_York",
                "capabilities": ["ship", "pickup"],
            },
            {
                "id": "S2",
                "type": "store",
                "postal_code": "10003",
                "timezone": "America/New_York",
                "capabilities": ["pickup"],
            },
            {
                "id": "S3",
                "type": "store",
                "postal_code": "10003",
                "timezone": "America/New_York",
                "enabled": False,
            },
            {
                "id": "S4",
                "type": "store",
                "postal_code": "10003",
                "timezone": "America/New_York",
                "safety_stock": 0,
            },
        ],
    }
)


def test_channel_sums_enabled_shipping_locations_with_their_safety_stock():
    counts = {
        "W1": LocationCounts(4, 1),
        "S1": LocationCounts(5, 0),  # 5 - 2 safety = 3
        "S2": LocationCounts(100, 0),  # cannot ship: not in the channel
        "S3": LocationCounts(100, 0),  # disabled
        "S4": LocationCounts(1, 0),  # own safety stock 0 overrides the type's 2
    }
    answer = channel_availability(NETWORK, "online", "X", counts, 123)
    assert [loc.location_id for loc in answer.locations] == ["W1", "S1", "S4"]
    assert answer.atp == 3 + 3 + 1
    assert answer.status == "in_stock"
    assert answer.updated_ms == 123


def test_unknown_sku_is_out_of_stock_not_an_error():
    answer = channel_availability(NETWORK, "online", "NOPE", {}, None)
    assert (answer.atp, answer.status) == (0, "out_of_stock")
    assert all(loc.on_hand == 0 for loc in answer.locations)


def test_unknown_channel_names_the_known_ones():
    with pytest.raises(UnknownChannel) as info:
        channel_availability(NETWORK, "moon", "X", {}, None)
    assert info.value.known == ["online"]


def test_changes_are_reported_per_channel_only_when_the_answer_moves():
    from atp.core.availability import availability_changes

    before = {"W1": LocationCounts(0, 0)}
    back = availability_changes(NETWORK, "X", before, {"W1": LocationCounts(3, 0)})
    assert [(c.channel, c.atp, c.status, c.previous_status, c.back_in_stock) for c in back] == [
        ("online", 3, "low_stock", "out_of_stock", True)
    ]
    assert availability_changes(NETWORK, "X", before, {"W1": LocationCounts(2, 2)}) == []
    # S2 is not in the channel: its stock moving changes nothing the channel answers.
    assert availability_changes(NETWORK, "X", {}, {"S2": LocationCounts(9, 0)}) == []
    gone = availability_changes(NETWORK, "X", {"W1": LocationCounts(9, 0)}, {})
    assert gone[0].status == "out_of_stock" and not gone[0].back_in_stock
    assert gone[0].to_event(5)["previous_atp"] == 9


def test_an_exposure_is_reported_when_it_appears_or_grows():
    from atp.core.availability import new_exposures

    held = {"W1": LocationCounts(5, 5)}
    assert new_exposures(NETWORK, "X", {}, held) == []  # all held units are there
    lost = {"W1": LocationCounts(3, 5)}  # two units damaged after they were promised
    [x] = new_exposures(NETWORK, "X", held, lost)
    assert (x.location_id, x.units, x.to_event(1)["type"]) == ("W1", 2, "oversell_exposure")
    assert new_exposures(NETWORK, "X", lost, lost) == []  # not again while it stays the same
    assert new_exposures(NETWORK, "X", lost, {"W1": LocationCounts(2, 5)})[0].units == 3


_COUNTS = st.dictionaries(
    st.sampled_from(["WH-NJ", "WH-IL", "S-0101", "S-0102", "S-0901", "3PL-ACME-TX", "GONE"]),
    st.builds(LocationCounts, st.integers(-5, 30), st.integers(0, 20)),
    max_size=6,
)


_DAY = 86_400_000
_ARRIVALS = st.dictionaries(
    st.sampled_from(["WH-NJ", "WH-IL", "S-0102", "GONE"]),
    st.lists(st.tuples(st.integers(0, 30 * _DAY), st.integers(1, 50)), min_size=1, max_size=3),
    max_size=3,
)


@given(
    sku=st.sampled_from(["A", "LEGO-75954"]),
    before=_COUNTS,
    after=_COUNTS,
    future=st.tuples(_ARRIVALS, _ARRIVALS),
)
def test_changes_agree_with_the_full_breakdown(demo_network: Network, sku, before, after, future):
    """The worker's shortcut (sums over the locations with counts) gives exactly the change
    that comparing the full per-channel answers gives, available to order included (the demo's
    online channel promises inbound due within 14 days); "GONE" is not in the network."""
    expected = []
    for ch in demo_network.channels:
        f_old, f_new = (future_supply(demo_network, ch, f, _DAY) for f in future)
        old = channel_availability(demo_network, ch, sku, before, None, future=f_old)
        new = channel_availability(demo_network, ch, sku, after, None, future=f_new)
        was, now = old.available_to_order, new.available_to_order
        if (old.atp, old.status, was) != (new.atp, new.status, now):
            expected.append(
                AvailabilityChange(sku, ch, new.atp, new.status, old.atp, old.status, now, was)
            )
    assert availability_changes(demo_network, sku, before, after, future, _DAY) == expected


@given(
    st.text(min_size=1, max_size=8),
    st.sampled_from(["warehouse", "store", "3pl"]),
    st.integers(-(10**6), 10**6),
    st.integers(0, 10**6),
    st.integers(0, 1000),
    st.integers(0, 10**6),
)
def test_a_location_as_json_is_every_field(loc, kind, on_hand, reserved, safety, atp):
    row = LocationAvailability(loc, kind, on_hand, reserved, safety, atp)
    assert row.as_dict() == asdict(row)
    assert list(row.as_dict()) == list(asdict(row))  # same keys, same order
