"""The ledger fold: table-style cases, then property tests with named invariants."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from atp.core.ledger import (
    LedgerState,
    Outcome,
    Policy,
    apply,
    fold,
    future_inbound,
    next_inbound,
)
from atp.core.movements import Effect, Movement

HOUR = 3600 * 1000
NOW = 1_000 * HOUR
POLICY = Policy(retention_ms=48 * HOUR, inbound_grace_ms=24 * HOUR)


def delta(event_id: str, at: int, qty: int, ref: str | None = None) -> Movement:
    return Movement(event_id, "SKU-1", "WH-NJ", Effect.DELTA, qty, at, "ADJUSTED", "wms", ref)


def count(event_id: str, at: int, qty: int) -> Movement:
    return Movement(event_id, "SKU-1", "WH-NJ", Effect.COUNT, qty, at, "CYCLE_COUNT", "wms")


def asn(event_id: str, at: int, qty: int, eta: int) -> Movement:
    return Movement(event_id, "SKU-1", "WH-NJ", Effect.INBOUND, qty, at, "ASN", "wms", None, eta)


def run(*movements: Movement, now: int = NOW) -> tuple[LedgerState, list[Outcome]]:
    return fold(LedgerState(), movements, now, POLICY)


T = NOW - HOUR  # a time well inside the window


def test_deltas_add_up():
    state, outcomes = run(delta("a", T, 10), delta("b", T + 1, -3))
    assert state.on_hand == 7
    assert outcomes == [Outcome.APPLIED, Outcome.APPLIED]


def test_a_repeated_event_id_is_applied_once():
    state, outcomes = run(delta("a", T, 10), delta("a", T, 10))
    assert state.on_hand == 10
    assert outcomes == [Outcome.APPLIED, Outcome.DUPLICATE]


def test_a_count_sets_on_hand_and_later_deltas_apply_on_top():
    state, _ = run(delta("a", T, 10), count("c", T + 10, 50), delta("b", T + 20, -5))
    assert state.on_hand == 45


def test_a_delta_at_or_before_the_count_is_inside_it_whenever_it_arrives():
    state, outcomes = run(count("c", T + 10, 50), delta("a", T + 10, 7), delta("b", T + 5, 3))
    assert state.on_hand == 50
    assert outcomes[1:] == [Outcome.SUPERSEDED, Outcome.SUPERSEDED]


def test_a_delta_after_the_count_that_arrived_first_stays_applied():
    state, _ = run(delta("late", T + 20, -4), count("c", T + 10, 50))
    assert state.on_hand == 46


def test_an_older_count_is_superseded_by_a_newer_one():
    state, outcomes = run(count("new", T + 10, 5), count("old", T, 99))
    assert state.on_hand == 5
    assert outcomes[1] is Outcome.SUPERSEDED


def test_counts_at_the_same_time_are_ordered_by_event_id():
    a, _ = run(count("c1", T, 5), count("c2", T, 9))
    b, _ = run(count("c2", T, 9), count("c1", T, 5))
    assert a.on_hand == b.on_hand == 9


def test_a_delta_older_than_the_window_is_too_late():
    state, outcomes = run(count("c", T, 10), delta("old", NOW - 49 * HOUR, 5))
    assert state.on_hand == 10
    assert outcomes[1] is Outcome.TOO_LATE


def test_deltas_leaving_the_window_fold_into_the_base_and_dedupe_stays_exact():
    state, _ = run(delta("a", NOW - 47 * HOUR, 10))
    later = NOW + 2 * HOUR  # now "a" is older than the window
    state, outcomes = fold(state, [delta("b", later - HOUR, 1)], later, POLICY)
    assert state.on_hand == 11
    assert "a" not in state.deltas and state.base_qty == 10
    # A count inside the compacted span can no longer be placed: too late, not silently applied.
    state, outcomes = fold(state, [count("c", NOW - 47 * HOUR, 0)], later, POLICY)
    assert outcomes == [Outcome.TOO_LATE]
    assert state.on_hand == 11


def test_apply_leaves_the_input_state_alone():
    before = LedgerState()
    after, _ = apply(before, delta("a", T, 3), NOW, POLICY)
    assert before.on_hand == 0 and after.on_hand == 3


def test_inbound_is_kept_until_the_receipt_names_the_asn():
    state, _ = run(asn("asn-1", T, 24, eta=NOW + 24 * HOUR))
    assert next_inbound(state) == (NOW + 24 * HOUR, 24)
    state, _ = fold(state, [delta("r", T + 1, 24, ref="asn-1")], NOW, POLICY)
    assert next_inbound(state) is None
    assert state.on_hand == 24


def test_every_expected_arrival_is_listed_by_eta_with_equal_etas_summed():
    state, _ = run(
        asn("asn-1", T, 5, eta=NOW + 3 * HOUR),
        asn("asn-2", T, 2, eta=NOW + HOUR),
        asn("asn-3", T, 4, eta=NOW + 3 * HOUR),
    )
    assert future_inbound(state) == [(NOW + HOUR, 2), (NOW + 3 * HOUR, 9)]
    assert next_inbound(state) == (NOW + HOUR, 2)


def test_an_asn_whose_receipt_came_first_is_not_inbound():
    state, outcomes = run(delta("r", T + 1, 24, ref="asn-1"), asn("asn-1", T, 24, NOW + HOUR))
    assert next_inbound(state) is None
    assert outcomes[1] is Outcome.SUPERSEDED


def test_inbound_long_past_its_eta_is_dropped():
    state, _ = run(asn("asn-1", T, 5, eta=NOW - 25 * HOUR))
    assert next_inbound(state) is None


def test_state_round_trips_through_its_stored_form():
    state, _ = run(count("c", T, 5), delta("a", T + 1, 2, ref="x"), asn("s", T, 3, NOW + HOUR))
    assert LedgerState.from_list(state.to_list()) == state


# Property tests -------------------------------------------------------------------------------

# Times in a small span so that ties between counts and deltas are common.
times = st.integers(min_value=T - 50, max_value=T + 50)


@st.composite
def event_sets(draw: st.DrawFn) -> list[Movement]:
    n = draw(st.integers(min_value=0, max_value=25))
    events = []
    for i in range(n):
        at = draw(times)
        if draw(st.booleans()) and draw(st.integers(0, 3)) == 0:
            events.append(count(f"c{i}", at, draw(st.integers(0, 500))))
        else:
            events.append(delta(f"d{i}", at, draw(st.integers(-50, 50))))
    return events


def canonical(state: LedgerState) -> tuple[object, ...]:
    return (
        state.on_hand,
        state.base_qty,
        state.base_ms,
        state.count_ms,
        state.count_id,
        {k: (d.occurred_ms, d.qty) for k, d in state.deltas.items()},
        state.last_movement_ms,
    )


def independent_on_hand(events: list[Movement]) -> int:
    """From the event set alone: the newest count plus every delta after it."""
    counts = [m for m in events if m.effect is Effect.COUNT]
    if not counts:
        return sum(m.qty for m in events)
    newest = max(counts, key=lambda m: (m.occurred_ms, m.event_id))
    return newest.qty + sum(
        m.qty for m in events if m.effect is Effect.DELTA and m.occurred_ms > newest.occurred_ms
    )


@settings(max_examples=300, deadline=None)
@given(events=event_sets(), data=st.data())
def test_invariant_any_arrival_order_gives_the_same_state(events, data):
    shuffled = data.draw(st.permutations(events))
    assert canonical(run(*events)[0]) == canonical(run(*shuffled)[0])


@settings(max_examples=300, deadline=None)
@given(events=event_sets(), data=st.data())
def test_invariant_duplicating_any_subset_changes_nothing(events, data):
    extra = data.draw(st.lists(st.sampled_from(events), max_size=10)) if events else []
    replayed = data.draw(st.permutations(events + extra))
    assert canonical(run(*replayed)[0]) == canonical(run(*events)[0])


@settings(max_examples=300, deadline=None)
@given(events=event_sets())
def test_invariant_on_hand_equals_an_independent_recomputation(events):
    assert run(*events)[0].on_hand == independent_on_hand(events)


@settings(max_examples=200, deadline=None)
@given(events=event_sets(), data=st.data())
def test_invariant_batches_and_single_events_agree(events, data):
    cut = data.draw(st.integers(0, len(events)))
    state, _ = fold(LedgerState(), events[:cut], NOW, POLICY)
    state, _ = fold(state, events[cut:], NOW, POLICY)
    one_by_one = LedgerState()
    for m in events:
        one_by_one, _ = apply(one_by_one, m, NOW, POLICY)
    assert canonical(state) == canonical(one_by_one) == canonical(run(*events)[0])
