"""A pair's summary as the ledger function stores it, and the network compiled into it."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from atp.core.ledger import LedgerSummary
from atp.core.movements import IDENTIFIER_PATTERN
from atp.store.ledger_function import LedgerFunction, lua_literal
from atp.store.summaries import decode_summary, encode_summary

ids = st.from_regex(IDENTIFIER_PATTERN, fullmatch=True)
times = st.none() | st.integers(0, 2**53)


@given(
    st.builds(
        LedgerSummary,
        base_qty=st.integers(-(10**9), 10**9),
        base_ms=times,
        count_ms=times,
        count_id=st.none() | ids,  # event ids may hold commas: it is the last field
        last_movement_ms=times,
        delta_sum=st.integers(-(10**9), 10**9),
        deltas=st.integers(0, 10**6),
    )
)
def test_a_summary_round_trips_through_its_stored_form(summary):
    stored = encode_summary(summary)
    beside = {"on_hand": summary.on_hand, "deltas": summary.deltas, "newest_delta_ms": None}
    assert decode_summary(stored, {}, **beside) == summary
    # the delta sum and count are kept beside the summary (the served on-hand, the deltas'
    # sorted set), not in it: a delta leaves the summary as it was
    assert stored.split(",")[4:6] == ["", ""]


def test_the_last_movement_is_the_newer_of_the_summarys_and_the_newest_kept_delta():
    stored = encode_summary(LedgerSummary(base_qty=5, base_ms=10, count_ms=10, last_movement_ms=20))
    newer = decode_summary(stored, {}, on_hand=7, deltas=2, newest_delta_ms=30)
    older = decode_summary(stored, {}, on_hand=7, deltas=2, newest_delta_ms=15)
    assert (newer.last_movement_ms, older.last_movement_ms) == (30, 20)
    assert (newer.delta_sum, newer.on_hand) == (2, 7)


def test_an_older_writers_delta_sum_and_count_are_not_read():
    # such a summary is rewritten by the pair's next call; until then its values equal what
    # the served on-hand and the sorted set say, and those are what count
    old = "100,10,10,40,-3,3,c-1"
    summary = decode_summary(old, {}, on_hand=97, deltas=3, newest_delta_ms=40)
    assert summary == LedgerSummary(100, 10, 10, "c-1", 40, -3, 3)


def test_lua_strings_escape_quotes_backslashes_and_non_ascii_bytes():
    assert lua_literal('a"b\\c') == '"a\\034b\\092c"'
    assert lua_literal("é") == '"\\195\\169"'
    assert lua_literal({"b": 1, "a": [2, "x"]}) == '{["a"]={2,"x"},["b"]=1}'


def test_the_library_is_named_after_its_code(demo_network):
    one, same, other = (
        LedgerFunction(demo_network),
        LedgerFunction(demo_network),
        LedgerFunction(None),
    )
    assert one.name == same.name and one.code == same.code
    assert other.name != one.name  # another network: another library, beside the first
    assert one.library in one.code.splitlines()[0] and "__" not in one.code
