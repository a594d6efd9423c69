"""The network file: the demo network is valid, and mistakes are named precisely."""

from __future__ import annotations

import copy

import pytest

from atp.core.errors import NetworkConfigError
from atp.core.network import Network
from atp.network_file import load_network

VALID = {
    "channels": {"online": {"low_stock_threshold": 3}},
    "locations": [
        {"id": "W1", "type": "warehouse", "postal_code": "08817", "timezone": "America/New_York"}
    ],
}


def test_the_demo_network_has_what_the_demo_needs(demo_network):
    types = [loc.type for loc in demo_network.locations.values()]
    assert types.count("warehouse") >= 3 and types.count("store") >= 10
    assert types.count("3pl") >= 2
    online = demo_network.channel_locations("online")
    assert online and all(loc.enabled and "ship" in loc.capabilities for loc in online)
    assert len({loc.timezone for loc in demo_network.locations.values()}) >= 4


@pytest.mark.parametrize(
    ("change", "path"),
    [
        (lambda d: d["locations"][0].update(type="depot"), "locations[0].type"),
        (lambda d: d["locations"][0].update(postal_code=8817), "locations[0].postal_code"),
        (lambda d: d["locations"][0].update(timezone="Mars/Olympus"), "locations[0].timezone"),
        (lambda d: d["locations"][0].update(enabled="yes"), "locations[0].enabled"),
        (lambda d: d["locations"].append(dict(d["locations"][0])), "locations[1].id"),
        (
            lambda d: d["channels"]["online"].update(low_stock_threshold=-1),
            "channels.online.low_stock_threshold",
        ),
        (
            lambda d: d.update(safety_stock={"by_type": {"store": "two"}}),
            "safety_stock.by_type.store",
        ),
        (lambda d: d.update(locations=[]), "locations"),
    ],
)
def test_errors_name_the_entry(change, path):
    data = copy.deepcopy(VALID)
    change(data)
    with pytest.raises(NetworkConfigError) as info:
        Network.from_dict(data)
    assert info.value.path == path


def test_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "net.yaml"
    bad.write_text("locations: [\n")
    with pytest.raises(NetworkConfigError, match=r"net\.yaml"):
        load_network(bad)
    with pytest.raises(NetworkConfigError, match="cannot read"):
        load_network(tmp_path / "missing.yaml")


def network_with_rules() -> Network:
    return Network.from_dict(
        {
            "channels": {"online": {"requires": ["ship"]}, "pickup": {"requires": ["pickup"]}},
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
                    "safety_stock": 7,
                },
            ],
            "safety_stock": {
                "by_type": {"store": 2},
                "by_sku": {"TV": 5},
                "by_sku_location": {"TV@S1": 1},
                "channels": {"online": {"by_type": {"store": 3}, "by_sku": {"TV": 6}}},
            },
        }
    )


@pytest.mark.parametrize(
    ("sku", "loc", "channel", "units", "rule"),
    [
        ("X", "W1", None, 0, "none"),
        ("X", "S1", None, 2, "type"),
        ("X", "S1", "pickup", 2, "type"),
        ("X", "S1", "online", 3, "channel online: type"),
        ("X", "S2", "online", 7, "location"),  # a location rule beats a channel's type rule
        ("TV", "W1", None, 5, "sku"),
        ("TV", "W1", "online", 6, "channel online: sku"),
        ("TV", "S1", "online", 1, "sku_location"),  # the most specific rule wins
        ("TV", "S2", None, 5, "sku"),
    ],
)
def test_the_most_specific_safety_rule_wins(sku, loc, channel, units, rule):
    network = network_with_rules()
    assert network.safety_rule(sku, network.locations[loc], channel) == (units, rule)


def test_locations_get_coordinates_from_their_zip_or_an_override():
    data = copy.deepcopy(VALID)
    net = Network.from_dict(data, geocode=lambda z: (1.0, 2.0) if z == "08817" else None)
    assert (net.locations["W1"].lat, net.locations["W1"].lon) == (1.0, 2.0)
    data["locations"][0].update(postal_code="99999")
    with pytest.raises(NetworkConfigError, match="unknown US ZIP"):
        Network.from_dict(data, geocode=lambda z: None)
    data["locations"][0].update(lat=40.5, lon=-74.0)
    assert Network.from_dict(data, geocode=lambda z: None).locations["W1"].lat == 40.5
