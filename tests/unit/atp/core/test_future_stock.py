"""Available to order: available to fulfil plus the inbound a channel may promise (its
`future_stock` rule: the arrivals due within its horizon at its locations, capped)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from atp.core.availability import (
    LocationCounts,
    channel_availability,
    future_supply,
)
from atp.core.errors import NetworkConfigError
from atp.core.network import FutureStock, Network

DAY = 86_400_000
NOW = 1_790_000_000_000


def network(online_future: dict | None) -> Network:
    online: dict = {"low_stock_threshold": 2, "requires": ["ship"]}
    if online_future is not None:
        online["future_stock"] = online_future
    return Network.from_dict(
        {
            "channels": {"online": online, "pickup": {"requires": ["pickup"]}},
            "locations": [
                {"id": "W1", "type": "warehouse", "postal_code": "08817",
                 "timezone": "America/New_York"},
                {"id": "S1", "type": "store", "postal_code": "10003",
                 "timezone": "America/New_York", "capabilities": ["pickup"]},
            ],
        }
    )  # fmt: skip


PERCENT = network({"horizon_days": 7, "limit_percent": 50})
UNITS = network({"horizon_days": 7, "limit_units": 10})


def test_the_rule_is_read_from_the_network_file():
    assert PERCENT.channel("online").future_stock == FutureStock(7 * DAY, None, 50)
    assert UNITS.channel("online").future_stock == FutureStock(7 * DAY, 10, None)
    assert PERCENT.channel("pickup").future_stock is None


@pytest.mark.parametrize(
    ("rule", "path"),
    [
        ({"horizon_days": 7}, "channels.online.future_stock"),
        ({"horizon_days": 7, "limit_units": 1, "limit_percent": 5}, "channels.online.future_stock"),
        ({"horizon_days": 0, "limit_units": 1}, "channels.online.future_stock.horizon_days"),
        ({"horizon_days": "7", "limit_units": 1}, "channels.online.future_stock.horizon_days"),
        ({"horizon_days": 7, "limit_percent": 101}, "channels.online.future_stock.limit_percent"),
        ({"horizon_days": 7, "limit_units": -1}, "channels.online.future_stock.limit_units"),
        ({"horizon_days": 7, "limit_unit": 1}, "channels.online.future_stock.limit_unit"),
        ([7], "channels.online.future_stock"),
    ],
)
def test_a_wrong_rule_names_its_entry(rule, path):
    with pytest.raises(NetworkConfigError) as caught:
        network(rule)
    assert caught.value.path == path


def test_only_arrivals_at_the_channels_locations_within_the_horizon_count():
    future = {
        "W1": [(NOW - DAY, 4), (NOW + 2 * DAY, 6), (NOW + 8 * DAY, 100)],  # overdue still counts
        "S1": [(NOW + DAY, 50)],  # a pickup-only store: not an online location
        "GONE": [(NOW + DAY, 50)],  # not in the network
    }
    supply = future_supply(PERCENT, "online", future, NOW)
    assert supply.arrivals == ((NOW - DAY, 4), (NOW + 2 * DAY, 6))
    assert supply.promisable == 5  # 50 % of 10
    assert future_supply(UNITS, "online", future, NOW).promisable == 10
    assert future_supply(PERCENT, "pickup", future, NOW).arrivals == ()


def test_a_percent_is_rounded_down():
    assert FutureStock(DAY, limit_percent=50).promisable(7) == 3
    assert FutureStock(DAY, limit_percent=100).promisable(7) == 7
    assert FutureStock(DAY, limit_units=3).promisable(2) == 2


arrivals = st.lists(
    st.tuples(st.integers(NOW - DAY, NOW + 30 * DAY), st.integers(0, 500)), max_size=6
)
rules = st.one_of(
    st.none(),
    st.builds(
        lambda d, u: {"horizon_days": d, "limit_units": u}, st.integers(1, 30), st.integers(0, 99)
    ),
    st.builds(
        lambda d, p: {"horizon_days": d, "limit_percent": p},
        st.integers(1, 30),
        st.integers(0, 100),
    ),
)


@given(
    rule=rules,
    on_hand=st.integers(-5, 50),
    reserved=st.integers(0, 50),
    w1=arrivals,
    s1=arrivals,
)
def test_to_order_is_never_below_to_fulfil_nor_above_it_plus_the_cap(
    rule, on_hand, reserved, w1, s1
):
    net = network(rule)
    supply = future_supply(net, "online", {"W1": w1, "S1": s1}, NOW)
    counts = {"W1": LocationCounts(on_hand, reserved)}
    answer = channel_availability(net, "online", "X", counts, None, future=supply)
    atf, ato = answer.atp, answer.available_to_order
    due = sum(
        q for eta, q in w1 if eta <= NOW + (rule or {"horizon_days": 0})["horizon_days"] * DAY
    )
    assert atf <= ato <= atf + due
    if rule is None:
        assert ato == atf and supply.arrivals == ()
    elif "limit_units" in rule:
        assert ato == atf + min(due, rule["limit_units"])
    else:
        assert ato == atf + due * rule["limit_percent"] // 100
    assert sum(q for _, q in supply.arrivals) == (0 if rule is None else due)
