"""The journal's entries, how many are kept, and pages of several locations' journals."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from atp.core import journal
from atp.core.journal import Entry
from atp.core.ledger import Outcome, Policy
from atp.core.movements import Effect, Movement

T = 1_790_000_000_000

entries_st = st.builds(
    Entry,
    seen_ms=st.integers(0, 2**42),
    occurred_ms=st.integers(0, 2**42),
    outcome=st.sampled_from(list(Outcome)),
    quantity=st.integers(-(10**6), 10**6),
    on_hand=st.integers(-(10**6), 10**6),
    effect=st.sampled_from(list(Effect)),
    source=st.sampled_from(["wms", "pos", "3pl"]),
    kind=st.sampled_from(["RECEIVED", "SALE", "CYCLE_COUNT"]),
    event_id=st.text(min_size=1, max_size=20),  # anything, the separator too
)


@given(entries_st)
def test_an_entry_reads_back_as_written(entry):
    assert Entry.decode(entry.encode().encode()) == entry


def move(eid: str, effect: Effect, qty: int, at: int) -> Movement:
    return Movement(eid, "S", "WH", effect, qty, at, "K", "wms")


def test_each_movement_gets_its_outcome_and_the_on_hand_after_it():
    moves = [
        move("c1", Effect.COUNT, 10, T),
        move("d1", Effect.DELTA, -3, T + 1),
        move("d1", Effect.DELTA, -3, T + 1),  # a repeat
        move("d0", Effect.DELTA, 5, T - 1),  # before the count: already in it
    ]
    got = journal.entries(None, moves, T + 10, Policy())
    assert [(e.event_id, e.outcome, e.on_hand) for e in got] == [
        ("c1", Outcome.APPLIED, 10),
        ("d1", Outcome.APPLIED, 7),
        ("d1", Outcome.DUPLICATE, 7),
        ("d0", Outcome.SUPERSEDED, 7),
    ]
    assert {e.seen_ms for e in got} == {T + 10}


def entry(seen: int, occurred: int, eid: str = "e") -> Entry:
    return Entry(seen, occurred, Outcome.APPLIED, 1, 1, Effect.DELTA, "wms", "K", eid)


def test_the_newest_are_kept_newest_first():
    old = [entry(2, 2, "b"), entry(1, 1, "a")]
    assert journal.kept(old, [entry(3, 3, "c"), entry(3, 4, "d")], 3) == [
        entry(3, 4, "d"),
        entry(3, 3, "c"),
        entry(2, 2, "b"),
    ]


@given(
    st.dictionaries(
        st.sampled_from(["WH", "S1", "S2"]),
        st.lists(st.builds(entry, st.integers(0, 5), st.integers(0, 5), st.sampled_from("ab"))),
    ),
    st.integers(1, 4),
)
def test_pages_walk_every_entry_once_newest_first(journals, limit):
    seen, before = [], None
    while True:
        got = journal.page(journals, limit, before)
        if not got:
            break
        seen += got
        before = journal.cursor(*got[-1])
    assert sorted(seen, key=lambda le: journal.cursor(*le)) == sorted(
        ((loc, e) for loc, j in journals.items() for e in j), key=lambda le: journal.cursor(*le)
    )
    keys = [journal.cursor(*le) for le in seen]
    assert keys == sorted(keys, reverse=True)
