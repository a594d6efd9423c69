"""Reservation rules: where units go, what a change does in each state, what shipments use up."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from atp.core.availability import LocationCounts
from atp.core.reservations import (
    CONFIRMED,
    EXPIRED,
    FULFILLED,
    HELD,
    RELEASED,
    ReservationLine,
    ReservationRequest,
    allocate,
    hold_lines,
    hold_member,
    is_overdue,
    transition,
    use_holds,
)


def test_allocate_whole_at_the_first_that_fits_else_split_in_order():
    assert allocate(5, [("A", 2), ("B", 5), ("C", 9)]) == [("B", 5)]
    assert allocate(5, [("A", 2), ("B", 4)]) == [("A", 2), ("B", 3)]
    assert allocate(5, [("A", 2), ("B", 2)]) is None


@given(
    quantity=st.integers(1, 20),
    available=st.lists(
        st.tuples(st.sampled_from("ABCDE"), st.integers(-2, 12)),
        max_size=5,
        unique_by=lambda c: c[0],
    ),
)
def test_invariant_an_allocation_is_the_quantity_within_what_is_there(quantity, available):
    parts = allocate(quantity, available)
    total = sum(max(0, u) for _, u in available)
    if parts is None:
        assert total < quantity
        return
    assert sum(u for _, u in parts) == quantity
    whole = next((loc for loc, u in available if u >= quantity), None)
    if whole is not None:
        assert parts == [(whole, quantity)]
    else:  # split in the order given, never more than a location has
        have = dict(available)
        assert all(0 < u <= have[loc] for loc, u in parts)
        order = [loc for loc, _ in available]
        assert [loc for loc, _ in parts] == sorted((loc for loc, _ in parts), key=order.index)


def test_a_later_line_gets_what_the_earlier_lines_left():
    counts = {"A": LocationCounts(5, 1), "B": LocationCounts(3, 0)}
    lines = [(0, 3, [("A", 0)]), (1, 2, [("A", 0), ("B", 1)]), (2, 4, [("B", 0)])]
    allocations, shortages = hold_lines(lines, counts)
    # A has 1 left after the first line, B (safety 1) has 2: the second line goes whole to B.
    assert allocations == [(0, [("A", 3)]), (1, [("B", 2)]), (2, [])]
    assert shortages == [(2, 4, 1)]  # B had 3, the second line took 2


@pytest.mark.parametrize(
    ("state", "op", "overdue", "expected"),
    [
        (HELD, "confirm", False, ("ok", CONFIRMED)),
        (HELD, "confirm", True, ("expired", HELD)),
        (CONFIRMED, "confirm", False, ("noop", CONFIRMED)),
        (HELD, "extend", False, ("ok", HELD)),
        (CONFIRMED, "extend", False, ("invalid", CONFIRMED)),
        (HELD, "release", False, ("ok", RELEASED)),
        (HELD, "release", True, ("ok", EXPIRED)),
        (RELEASED, "release", False, ("noop", RELEASED)),
        (FULFILLED, "release", False, ("invalid", FULFILLED)),
        (HELD, "expire", False, ("noop", HELD)),
        (HELD, "expire", True, ("ok", EXPIRED)),
        (CONFIRMED, "fulfil", False, ("ok", FULFILLED)),
        (EXPIRED, "fulfil", False, ("noop", EXPIRED)),
    ],
)
def test_what_each_change_does_in_each_state(state, op, overdue, expected):
    assert transition(state, op, overdue) == expected


def test_a_hold_is_overdue_from_its_expiry_on():
    assert [is_overdue(100, now) for now in (99, 100, 101)] == [False, True, True]


def test_shipments_use_up_the_hold_they_name_in_order():
    held = {hold_member("R-1", "WH"): 3}
    shipments = [("WH", "R-1", 2), ("WH", "R-1", 2), ("WH", "R-2", 1), ("S-1", "R-1", 1)]
    assert use_holds(held, shipments) == [2, 1, 0, 0]
    assert held == {hold_member("R-1", "WH"): 3}  # the caller's map is left as it was


@given(
    lines=st.lists(
        st.tuples(
            st.sampled_from(["SKU-1", "SKU-2", "SKU-3"]),
            st.integers(1, 50),
            st.sampled_from([None, "WH-NJ", "S-0102"]),
        ),
        min_size=1,
        max_size=5,
    ),
    ttl=st.integers(1, 7 * 24 * 3600),
    channel=st.sampled_from(["online", "store"]),
)
def test_a_request_comes_back_from_its_canonical_form_with_the_same_fingerprint(
    lines, ttl, channel
):
    req = ReservationRequest("r-1", tuple(ReservationLine(*ln) for ln in lines), ttl, channel)
    back = ReservationRequest.from_canonical("r-1", req.canonical())
    assert back == req and back.fingerprint() == req.fingerprint()
