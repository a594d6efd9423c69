"""What shipments used up of a reservation, per line (atp.core.fulfilment) and in its view."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from atp.core.fulfilment import fulfilled_per_line, shipped_from_members
from atp.core.reservations import CONFIRMED, FULFILLED, RELEASED, Stored, view

LOCS = ("A", "B", "C")
SKUS = ("S1", "S2")


def stored(state: str, lines, allocations, shipped=None) -> Stored:
    request = {"channel": "online", "ttl_seconds": 60, "lines": lines}
    return Stored(state, request, allocations, 1, 2, 10**12, shipped=shipped)


def test_units_go_to_the_skus_lines_that_hold_there_in_request_order():
    lines = [
        {"sku": "S1", "quantity": 3, "location_id": None},
        {"sku": "S2", "quantity": 1, "location_id": None},
        {"sku": "S1", "quantity": 4, "location_id": None},
    ]
    allocations = [[["A", 2], ["B", 1]], [["A", 1]], [["A", 4]]]
    # 3 of S1 shipped from A: the first line holds 2 there, the third the last one.
    assert fulfilled_per_line(lines, allocations, {"S1": {"A": 3}}) == [2, 0, 1]
    assert fulfilled_per_line(lines, allocations, {"S1": {"A": 6, "B": 1}}) == [3, 0, 4]
    assert fulfilled_per_line(lines, allocations, {}) == [0, 0, 0]


allocation = st.lists(st.tuples(st.sampled_from(LOCS), st.integers(1, 5)), max_size=3).map(
    lambda parts: [[loc, q] for loc, q in dict(parts).items()]
)
line_and_parts = st.tuples(st.sampled_from(SKUS), allocation)
shipped = st.dictionaries(
    st.sampled_from(SKUS), st.dictionaries(st.sampled_from(LOCS), st.integers(1, 20), max_size=3)
)


@given(st.lists(line_and_parts, min_size=1, max_size=5), shipped)
def test_a_line_shows_at_most_what_it_holds_and_the_lines_all_that_shipped(made, used):
    lines = [{"sku": sku, "quantity": 1, "location_id": None} for sku, _ in made]
    allocations = [parts for _, parts in made]
    got = fulfilled_per_line(lines, allocations, used)
    for done, parts in zip(got, allocations, strict=True):
        assert 0 <= done <= sum(q for _, q in parts)
    # Every unit shipped from a location counts once, up to what the SKU's lines hold there.
    total = sum(got)
    assert total == sum(
        min(
            used.get(sku, {}).get(loc, 0),
            sum(q for (s, ps) in made if s == sku for at, q in ps if at == loc),
        )
        for sku in SKUS
        for loc in LOCS
    )


def test_the_view_shows_what_an_open_one_shipped_and_what_a_closed_one_kept():
    lines = [{"sku": "S1", "quantity": 5, "location_id": None}]
    allocations = [[["A", 5]]]
    open_one = view("R", stored(CONFIRMED, lines, allocations), 0, {"S1": {"A": 2}})
    assert open_one["lines"][0] == {
        "sku": "S1",
        "quantity": 5,
        "location_id": None,
        "requested": 5,
        "held": 5,
        "fulfilled_quantity": 2,
        "allocations": [{"location_id": "A", "quantity": 5}],
    }

    def shown(state: str, kept=None) -> int:
        closed = stored(state, lines, allocations, shipped=kept)
        return view("R", closed, 0)["lines"][0]["fulfilled_quantity"]

    assert (shown(RELEASED, {"S1": {"A": 3}}), shown(RELEASED)) == (3, 0)
    # Fulfilled: every held unit was used up (its per-hold counts are gone by then).
    assert shown(FULFILLED) == 5


def test_counts_read_from_redis_leave_out_zeros():
    read = {"S1": [("A", 2), ("B", 0)], "S2": [("A", 0)]}
    assert shipped_from_members(read) == {"S1": {"A": 2}}
