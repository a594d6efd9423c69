"""Changes of a reservation's quantities: which line each names, what it holds or gives back,
and where the line's units are after."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from atp.core.amendments import (
    Change,
    changed_allocations,
    cut_holds,
    plan_change,
    preferred,
    shrink,
)
from atp.core.errors import BelowFulfilled, LineNotInReservation
from atp.core.reservations import (
    CHANGE_PENDING,
    MOVE_APPLIED,
    MOVE_DONE,
    ReservationLine,
    Stored,
    view,
)

LOCS = ("NJ", "IL", "TX")


def stored(lines, allocations, moves=(), changes=()):
    return Stored(
        state="held",
        request={"channel": "online", "lines": lines},
        allocations=allocations,
        created_ms=1,
        updated_ms=2,
        expires_ms=10**13,
        moves=moves,
        changes=changes,
    )


LINES = [
    {"sku": "A", "quantity": 5, "location_id": None},
    {"sku": "B", "quantity": 2, "location_id": "NJ"},
    {"sku": "A", "quantity": 1, "location_id": "TX"},
]


def test_a_change_names_lines_by_sku_and_location_and_leaves_the_others():
    s = stored(LINES, [[["NJ", 3], ["IL", 2]], [["NJ", 2]], [["TX", 1]]])
    plan = plan_change(s, Change("c", (ReservationLine("A", 7), ReservationLine("B", 1, "NJ"))))
    assert plan.quantities == [7, 1, 1]
    assert plan.increases == [(0, 2)]
    assert plan.cuts == [[], [("NJ", 1)], []]


@pytest.mark.parametrize(
    ("line", "why"),
    [
        (ReservationLine("A", 1, "NJ"), "in none of its lines"),  # A was reserved without one
        (ReservationLine("C", 1), "in none of its lines"),
    ],
)
def test_a_line_the_reservation_does_not_have_is_refused(line, why):
    s = stored(LINES, [[["NJ", 5]], [["NJ", 2]], [["TX", 1]]])
    with pytest.raises(LineNotInReservation, match=why):
        plan_change(s, Change("c", (line,)))


def test_lines_alike_cannot_be_told_apart():
    lines = [LINES[0], LINES[0]]
    with pytest.raises(LineNotInReservation, match="more than one"):
        plan_change(
            stored(lines, [[["NJ", 5]], [["NJ", 5]]]), Change("c", (ReservationLine("A", 1),))
        )


def test_a_change_starts_from_where_done_transfers_put_the_units():
    s = stored(
        LINES[:1],
        [[["NJ", 5]]],
        moves=(("t1", "A", "NJ", "IL", 3, MOVE_DONE), ("t0", "A", "NJ", "TX", 1, MOVE_APPLIED)),
    )
    plan = plan_change(s, Change("c", (ReservationLine("A", 1),)))
    assert plan.cuts == [[("IL", 3), ("NJ", 1)]]  # the applied one is in the allocations already


def test_a_pending_change_holds_at_the_locations_it_listed():
    s = stored(LINES[:1], [[["NJ", 5]]], changes=(("c", "fp", CHANGE_PENDING, {"A": ["IL"]}, "1"),))
    assert s.hold_locations() == {"A": ["NJ", "IL"]}
    assert s.pending() == ("change", "c")
    done = stored(LINES[:1], [[["NJ", 5]]], changes=(("c", "fp", "done"),))
    assert done.pending() is None and view("R", done, 5)["changes"] == ["c"]


def test_more_units_go_where_the_line_is_held_first():
    cands = [("NJ", 0), ("IL", 1), ("TX", 0)]
    assert preferred(cands, [["TX", 2], ["IL", 1]]) == [("TX", 0), ("IL", 1), ("NJ", 0)]
    # A location the line holds at that is not a candidate any more is not offered.
    assert preferred(cands, [["CA", 2]]) == cands


parts_st = st.lists(
    st.tuples(st.sampled_from(LOCS), st.integers(1, 9)), max_size=3, unique_by=lambda p: p[0]
).map(lambda ps: [list(p) for p in ps])


@given(parts=parts_st, data=st.data())
def test_a_decrease_gives_back_from_the_last_allocations_first(parts, data):
    held = sum(q for _, q in parts)
    units = data.draw(st.integers(0, held))
    cuts = shrink(parts, units)
    assert sum(u for _, u in cuts) == units
    after = changed_allocations([parts], [cuts], {})[0]
    assert sum(q for _, q in after) == held - units
    # What stays is a prefix of the allocations, the last of it perhaps smaller.
    assert [loc for loc, _ in after] == [loc for loc, _ in parts][: len(after)]
    assert all(q == dict(map(tuple, parts))[loc] for loc, q in after[:-1])


@given(
    parts=parts_st,
    placed=st.lists(st.tuples(st.sampled_from(LOCS), st.integers(1, 9)), max_size=3),
)
def test_what_is_placed_adds_to_a_line_where_it_holds_or_after_its_allocations(parts, placed):
    after = changed_allocations([parts], [[]], {0: [list(p) for p in placed]})[0]
    assert sum(q for _, q in after) == sum(q for _, q in parts) + sum(u for _, u in placed)
    assert [loc for loc, _ in after][: len(parts)] == [loc for loc, _ in parts]
    assert len({loc for loc, _ in after}) == len(after)


@given(
    held=st.dictionaries(st.sampled_from(LOCS), st.integers(0, 5)),
    cuts=st.lists(st.tuples(st.sampled_from(LOCS), st.integers(0, 7)), max_size=4),
)
def test_a_cut_gives_back_at_most_what_a_hold_has(held, cuts):
    back = cut_holds(held, cuts)
    for member, units in back.items():
        assert 0 <= units <= held.get(member, 0)
        assert units == min(held.get(member, 0), sum(u for m, u in cuts if m == member))


def test_a_decrease_gives_back_only_what_shipments_left_held():
    # Line A holds 3 at NJ and 2 at IL; the 2 at IL shipped. Down to 3: 2 of NJ's 3 go back
    # (IL, the last allocation, has nothing left to give).
    s = stored(LINES, [[["NJ", 3], ["IL", 2]], [["NJ", 2]], [["TX", 1]]])
    shipped = {"A": {"IL": 2}}
    plan = plan_change(s, Change("c", (ReservationLine("A", 3),)), shipped)
    assert plan.cuts == [[("NJ", 2)], [], []]
    assert changed_allocations(s.current_allocations(), plan.cuts, {})[0] == [["NJ", 1], ["IL", 2]]
    # Down to what shipped: all that is still held goes back.
    plan = plan_change(s, Change("c", (ReservationLine("A", 2),)), shipped)
    assert plan.cuts == [[("NJ", 3)], [], []]
    # Up: the shipped units count as the line's.
    assert plan_change(s, Change("c", (ReservationLine("A", 6),)), shipped).increases == [(0, 1)]


def test_a_line_cannot_go_below_what_shipped():
    s = stored(LINES, [[["NJ", 3], ["IL", 2]], [["NJ", 2]], [["TX", 1]]])
    with pytest.raises(BelowFulfilled) as refused:
        plan_change(s, Change("c", (ReservationLine("A", 1),)), {"A": {"IL": 2}})
    assert refused.value.details() == {"sku": "A", "location_id": None, "fulfilled_quantity": 2}


@given(
    st.lists(st.tuples(st.sampled_from(LOCS), st.integers(1, 5)), min_size=1, max_size=3),
    st.data(),
)
def test_a_decrease_never_gives_back_a_shipped_unit(made, data):
    parts = [[loc, q] for loc, q in dict(made).items()]
    held = sum(q for _, q in parts)
    shipped = {loc: data.draw(st.integers(0, q)) for loc, q in parts}
    fulfilled = sum(shipped.values())
    line = [{"sku": "A", "quantity": held, "location_id": None}]
    asked = data.draw(st.integers(fulfilled, held))
    plan = plan_change(
        stored(line, [parts]), Change("c", (ReservationLine("A", asked),)), {"A": shipped}
    )
    given_back = dict(plan.cuts[0])
    assert sum(given_back.values()) == held - asked
    for loc, q in parts:
        assert given_back.get(loc, 0) <= q - shipped[loc]
