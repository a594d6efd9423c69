"""Transfers of held units: when one may move, and where a reservation's units are after."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from atp.core.amendments import transfer_outcome
from atp.core.availability import LocationCounts, location_atp
from atp.core.reservations import MOVE_DONE, MOVE_PENDING, Stored, move_units, view

LINES = [{"sku": "A", "quantity": 3}, {"sku": "B", "quantity": 1}, {"sku": "A", "quantity": 4}]


def test_a_move_takes_from_the_skus_lines_in_order_and_keeps_them_apart():
    allocations = [[["NJ", 3]], [["NJ", 1]], [["NJ", 2], ["TX", 2]]]
    move_units(LINES, allocations, "A", ("NJ", "TX"), 4)
    # Line 0 moves all 3, line 2 one of its 2 at NJ; line 1 is another SKU.
    assert allocations == [[["TX", 3]], [["NJ", 1]], [["NJ", 1], ["TX", 3]]]


def test_a_reservation_reads_with_its_done_transfers_only():
    stored = Stored(
        state="held",
        request={"channel": "online", "lines": [{**ln, "location_id": None} for ln in LINES]},
        allocations=[[["NJ", 3]], [["NJ", 1]], [["NJ", 4]]],
        created_ms=1,
        updated_ms=2,
        expires_ms=10**13,
        moves=(("t1", "A", "NJ", "IL", 2, MOVE_DONE), ("t2", "B", "NJ", "TX", 1, MOVE_PENDING)),
    )
    out = view("R", stored, 5)
    assert [ln["allocations"] for ln in out["lines"]] == [
        [{"location_id": "NJ", "quantity": 1}, {"location_id": "IL", "quantity": 2}],
        [{"location_id": "NJ", "quantity": 1}],
        [{"location_id": "NJ", "quantity": 4}],
    ]
    assert [ln["held"] for ln in out["lines"]] == [3, 1, 4]
    assert [t["transfer_id"] for t in out["transfers"]] == ["t1"]
    # A pending transfer's destination is covered by releases and confirms all the same.
    assert stored.hold_locations() == {"A": ["NJ", "IL"], "B": ["NJ", "TX"]}


parts_st = st.lists(
    st.tuples(st.sampled_from(("NJ", "TX", "IL")), st.integers(1, 5)),
    max_size=3,
    unique_by=lambda p: p[0],
)


@given(
    allocations=st.lists(parts_st, min_size=3, max_size=3),
    route=st.lists(st.sampled_from(("NJ", "TX", "IL")), min_size=2, max_size=2, unique=True),
    units=st.integers(1, 12),
)
def test_a_move_keeps_every_unit_and_moves_at_most_what_the_source_had(allocations, route, units):
    before = [[list(p) for p in parts] for parts in allocations]
    after = [[list(p) for p in parts] for parts in allocations]
    move_units(LINES, after, "A", (route[0], route[1]), units)

    def at(allocs, i, loc):
        return sum(q for lc, q in allocs[i] if lc == loc)

    for i in range(3):  # no line gains or loses units, none is left with an empty part
        assert sum(q for _, q in after[i]) == sum(q for _, q in before[i])
        assert all(q > 0 for _, q in after[i])
    assert after[1] == before[1]  # another SKU's line
    had = at(before, 0, route[0]) + at(before, 2, route[0])
    moved = had - at(after, 0, route[0]) - at(after, 2, route[0])
    assert moved == min(had, units)
    assert at(after, 0, route[1]) + at(after, 2, route[1]) == (
        at(before, 0, route[1]) + at(before, 2, route[1]) + moved
    )


@given(
    held=st.integers(0, 8),
    on_hand=st.integers(0, 12),
    reserved=st.integers(0, 6),
    safety=st.integers(0, 3),
    units=st.integers(1, 8),
)
def test_a_transfer_moves_only_what_is_held_and_only_what_the_destination_can_take(
    held, on_hand, reserved, safety, units
):
    outcome, n = transfer_outcome(held, LocationCounts(on_hand, reserved), safety, units)
    atp = location_atp(on_hand, reserved, safety)
    if held < units:
        assert (outcome, n) == ("not_held", held)
    elif atp < units:
        assert (outcome, n) == ("short", max(0, atp))
    else:
        assert (outcome, n) == ("moved", units)
