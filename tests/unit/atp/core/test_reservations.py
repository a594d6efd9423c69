"""Reservation rules: where units go, what a change does in each state, what shipments use up."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from atp.core.availability import LocationCounts, location_atp
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


def test_with_allow_partial_a_short_line_holds_what_is_left():
    counts = {"A": LocationCounts(5, 1), "B": LocationCounts(3, 0)}
    lines = [(0, 3, [("A", 0)]), (1, 4, [("A", 0), ("B", 1)]), (2, 4, [("B", 0)])]
    allocations, shortages = hold_lines(lines, counts, partial=True)
    # Line 1 wants 4 of A's 1 left and B's 2 (safety 1): it takes all 3; line 2 finds B's last 1.
    assert allocations == [(0, [("A", 3)]), (1, [("A", 1), ("B", 2)]), (2, [("B", 1)])]
    assert shortages == [(1, 4, 3), (2, 4, 1)]


counts_st = st.dictionaries(
    st.sampled_from("ABC"), st.builds(LocationCounts, st.integers(-3, 12), st.integers(0, 6))
)
lines_st = st.lists(
    st.tuples(
        st.integers(1, 9),
        st.lists(
            st.tuples(st.sampled_from("ABC"), st.integers(0, 3)),
            min_size=1,
            max_size=3,
            unique_by=lambda c: c[0],
        ),
    ),
    min_size=1,
    max_size=4,
)


@given(counts=counts_st, lines=lines_st, partial=st.booleans())
def test_invariant_lines_never_hold_more_than_there_is(counts, lines, partial):
    """Whatever the lines, a location never gives more than its ATP under the strictest safety
    stock a line asked for; a line holds its quantity, or (partial) less exactly when short."""
    indexed = [(i, qty, cands) for i, (qty, cands) in enumerate(lines)]
    allocations, shortages = hold_lines(indexed, counts, partial)
    taken: dict[str, int] = {}
    for _, parts in allocations:
        for loc, units in parts:
            assert units > 0
            taken[loc] = taken.get(loc, 0) + units
    for loc, units in taken.items():
        c = counts.get(loc, LocationCounts())
        least_safety = min(s for _, _, cands in indexed for lc, s in cands if lc == loc)
        assert units <= location_atp(c.on_hand, c.reserved, least_safety)
    short = {index for index, _, _ in shortages}
    for (index, qty, _), (_, parts) in zip(indexed, allocations, strict=True):
        held = sum(units for _, units in parts)
        if index in short:
            assert held < qty and (partial or held == 0)
        else:
            assert held == qty


@given(counts=counts_st, lines=lines_st)
def test_partial_changes_nothing_where_every_line_fits(counts, lines):
    indexed = [(i, qty, cands) for i, (qty, cands) in enumerate(lines)]
    whole = hold_lines(indexed, counts)
    if not whole[1]:
        assert hold_lines(indexed, counts, partial=True) == whole


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


def test_allow_partial_is_part_of_the_request_only_when_set():
    lines = (ReservationLine("SKU-1", 2),)
    plain = ReservationRequest("r-1", lines, 60, "online")
    partial = ReservationRequest("r-1", lines, 60, "online", allow_partial=True)
    assert "allow_partial" not in plain.canonical()  # fingerprints made before it stay valid
    assert partial.fingerprint() != plain.fingerprint()
    back = ReservationRequest.from_canonical("r-1", partial.canonical())
    assert back == partial and back.fingerprint() == partial.fingerprint()
