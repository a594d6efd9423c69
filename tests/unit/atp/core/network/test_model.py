"""The network's answers that it works out once and keeps (it is immutable)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from atp.core.network import Channel, Location, Network, SafetyRules

LOCS = ("W1", "W2", "S1", "S2")
TYPES = {"W1": "warehouse", "W2": "warehouse", "S1": "store", "S2": "store"}
SKUS = ("A", "B", "C", "D")
CHANNELS = ("online", "pickup")

units = st.integers(0, 9)
rules_st = st.builds(
    SafetyRules,
    by_sku_location=st.dictionaries(st.tuples(st.sampled_from(SKUS), st.sampled_from(LOCS)), units),
    by_sku=st.dictionaries(st.sampled_from(SKUS), units),
    by_location=st.dictionaries(st.sampled_from(LOCS), units),
    by_type=st.dictionaries(st.sampled_from(("warehouse", "store")), units),
)
# every (SKU, location, channel) once, in an order of hypothesis's choosing
asks_st = st.permutations(
    [(sku, loc, ch) for sku in SKUS for loc in LOCS for ch in (None, *CHANNELS)]
)


def network(safety: SafetyRules, channel_safety: dict[str, SafetyRules]) -> Network:
    locations = {
        loc: Location(loc, TYPES[loc], loc, "10003", "America/New_York", True, frozenset({"ship"}))
        for loc in LOCS
    }
    channels = {
        ch: Channel(ch, 3, frozenset({"warehouse", "store"}), frozenset()) for ch in CHANNELS
    }
    return Network(locations, channels, safety, channel_safety)


@given(
    safety=rules_st,
    channel_safety=st.dictionaries(st.sampled_from(CHANNELS), rules_st),
    asks=asks_st,
)
def test_safety_stock_is_always_the_units_of_the_most_specific_rule(
    safety: SafetyRules, channel_safety: dict[str, SafetyRules], asks: list
) -> None:
    """safety_stock keeps what it worked out for SKUs no rule names; asked in any order, for
    named and unnamed SKUs alike, it answers what safety_rule (the rule itself) answers."""
    net = network(safety, channel_safety)
    for sku, loc, channel in asks:
        where = net.locations[loc]
        assert net.safety_stock(sku, where, channel) == net.safety_rule(sku, where, channel)[0]


def test_channel_locations_are_the_enabled_ones_of_its_types_with_its_capabilities() -> None:
    net = Network.from_dict(
        {
            "channels": {
                "online": {
                    "low_stock_threshold": 3,
                    "location_types": ["warehouse", "store"],
                    "requires": ["ship"],
                }
            },
            "locations": [
                {"id": i, "type": t, "postal_code": "10003", "timezone": "America/New_York", **x}
                for i, t, x in [
                    ("W1", "warehouse", {}),
                    ("W2", "warehouse", {"enabled": False}),
                    ("S1", "store", {"capabilities": ["pickup"]}),
                    ("P1", "3pl", {}),
                    ("S2", "store", {}),
                ]
            ],
        }
    )
    first = net.channel_locations("online")
    assert [loc.id for loc in first] == ["W1", "S2"]
    assert net.channel_locations("online") is first  # kept, not worked out again
    assert net.channel_members("online") == {"W1", "S2"}


@given(
    safety=rules_st,
    channel_safety=st.dictionaries(st.sampled_from(CHANNELS), rules_st),
    asks=st.lists(st.tuples(st.sampled_from((*SKUS, "UNNAMED")), st.sampled_from(CHANNELS))),
)
def test_channel_safety_stock_is_each_locations_safety_stock(
    safety: SafetyRules, channel_safety: dict[str, SafetyRules], asks: list
) -> None:
    """What channel_safety_stock keeps per channel is, SKU after SKU in any order, the channel's
    locations in order with what safety_rule answers at each."""
    net = network(safety, channel_safety)
    for sku, channel in asks:
        expected = [
            (loc, net.safety_rule(sku, loc, channel)[0]) for loc in net.channel_locations(channel)
        ]
        assert list(net.channel_safety_stock(channel, sku)) == expected
