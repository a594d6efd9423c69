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
    assert decode_summary(encode_summary(summary), {}) == summary


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
