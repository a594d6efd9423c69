"""The network file: the demo network is valid, and mistakes are named precisely."""

from __future__ import annotations

import copy

import pytest

from atp.config_file import load_network
from atp.errors import NetworkConfigError
from atp.network import Network

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
