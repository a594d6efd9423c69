"""Rules that Redis applies too, run in Python and in the server-side script on the same
generated inputs: both must give the same answer. The ledger's function (the fold, the holds
shipments use up, the statuses) has its own: tests/integration/test_ledger_v3.py."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import orjson
import pytest
import redis
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from atp.core.amendments import cut_holds, transfer_outcome
from atp.core.availability import LocationCounts
from atp.core.reservations import (
    CONFIRMED,
    EXPIRED,
    FULFILLED,
    HELD,
    RELEASED,
    hold_lines,
    is_overdue,
    transition,
)
from atp.store import keys
from atp.store.scripts import load_script
from tests.integration.conftest import isolated_redis_url, redis_client

pytestmark = pytest.mark.integration

LOCS = ("WH-NJ", "WH-TX")
RIDS = ("R-1", "R-2", "R-3")
PARITY = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture
def r(redis_url: str) -> Iterator[redis.Redis]:
    client = redis_client(isolated_redis_url(redis_url))
    try:
        yield client
    finally:
        client.close()


counts_st = st.dictionaries(
    st.sampled_from(("L1", "L2", "L3")),
    st.tuples(st.integers(0, 12), st.integers(0, 6)),  # (on hand, reserved)
    max_size=3,
)
cands_st = st.lists(
    st.tuples(st.sampled_from(("L1", "L2", "L3")), st.integers(0, 3)),  # (location, safety)
    min_size=1,
    max_size=3,
    unique_by=lambda c: c[0],
)
lines_st = st.lists(st.tuples(st.integers(1, 9), cands_st), min_size=1, max_size=3)


@PARITY
@given(counts=counts_st, lines=lines_st, partial=st.booleans())
# The boundaries: a later location with exactly the quantity takes it whole; none does: split.
@example(counts={"L1": (2, 0), "L2": (5, 0)}, lines=[(5, [("L1", 0), ("L2", 0)])], partial=False)
@example(counts={"L1": (4, 1), "L2": (6, 0)}, lines=[(5, [("L1", 0), ("L2", 1)])], partial=False)
@example(
    counts={"L1": (3, 0), "L2": (3, 0)},
    lines=[(2, [("L2", 0)]), (3, [("L2", 0), ("L1", 0)])],
    partial=False,
)
# Partial: a short line takes what there is, split; a later line finds nothing left.
@example(
    counts={"L1": (2, 0), "L2": (1, 0)},
    lines=[(5, [("L1", 0), ("L2", 0)]), (1, [("L2", 0)])],
    partial=True,
)
def test_holds_are_placed_as_hold_lines_places_them(
    r: redis.Redis, counts: dict[str, tuple[int, int]], lines: list, partial: bool
) -> None:
    """The ATP formula, what earlier lines took, whole-at-the-first-else-split, and with
    allow_partial what a short line holds."""
    sku = f"PAR-{uuid.uuid4().hex[:10]}"
    for loc, (on_hand, reserved) in counts.items():
        r.hset(keys.stock(sku), mapping={f"oh:{loc}": on_hand, f"rs:{loc}": reserved})
    indexed = [(i, qty, cands) for i, (qty, cands) in enumerate(lines)]
    argv: list = [len(indexed)]
    for i, qty, cands in indexed:
        argv += [i, qty, len(cands), *(x for c in cands for x in c)]
    served = {loc: LocationCounts(oh, rs) for loc, (oh, rs) in counts.items()}
    allocations, shortages = hold_lines(indexed, served, partial)
    take = r.register_script(load_script("hold/take.lua"))
    reply = take(keys=keys.sku_keys(sku), args=["R-1", 1, 10**13, int(partial), *argv])
    if shortages and not partial:
        assert reply[0] == b"short"
        assert [tuple(s) for s in orjson.loads(reply[1])] == shortages
        assert r.hgetall(keys.holds(sku)) == {}
    else:
        assert reply[0] == b"held"
        # A line that holds nothing comes back as {} (cjson's empty table): no parts either way.
        assert [(i, [tuple(p) for p in ps]) for i, ps in orjson.loads(reply[1])] == allocations
        assert [tuple(s) for s in orjson.loads(reply[2])] == shortages
        held = sum(u for _, ps in allocations for _, u in ps)
        assert (
            int(r.hget(keys.holds(sku), "R-1@L1") or 0)
            + int(r.hget(keys.holds(sku), "R-1@L2") or 0)
            + int(r.hget(keys.holds(sku), "R-1@L3") or 0)
            == held
        )
    r.delete(*keys.sku_keys(sku))


@PARITY
@given(offset=st.integers(-3, 3))
def test_a_hold_is_overdue_exactly_when_is_overdue_says(r: redis.Redis, offset: int) -> None:
    sku, now = f"PAR-{uuid.uuid4().hex[:10]}", 1_790_000_000_000
    expires = now + offset
    r.hset(keys.stock(sku), mapping={"oh:L1": 5, "rs:L1": 2})
    r.hset(keys.holds(sku), "R-1@L1", 2)
    r.zadd(keys.expiry(sku), {"R-1@L1": expires})
    read = r.register_script(load_script("read_stock.lua"))
    [(_, overdue)] = read(keys=keys.sku_keys(sku), args=[now])
    assert bool(overdue) == is_overdue(expires, now)
    persist = r.register_script(load_script("hold/persist.lua"))
    reply = persist(keys=keys.sku_keys(sku), args=["R-1", now, "L1"])
    assert (reply[0] == b"expired") == is_overdue(expires, now)
    r.delete(*keys.sku_keys(sku))


CHANGE_ARGS = {"confirm": [], "extend": [10**13, 1000], "release": [1000], "expire": [1000]}
CHANGE_ARGS["fulfil"] = [1000]


@PARITY
@given(
    state=st.sampled_from((HELD, CONFIRMED, RELEASED, EXPIRED, FULFILLED)),
    op=st.sampled_from(sorted(CHANGE_ARGS)),
    late=st.booleans(),
)
def test_record_changes_follow_transition(r: redis.Redis, state: str, op: str, late: bool) -> None:
    # A time ahead of the server's clock, so records set to expire after it stay to be read.
    rid, now = f"PAR-{uuid.uuid4().hex[:10]}", time.time_ns() // 1_000_000 + 86_400_000
    expires = now - 1 if late else now + 60_000
    record = keys.reservation(rid)
    r.hset(record, mapping={"state": state, "expires_ms": expires, "updated_ms": 0})
    script = r.register_script(load_script(f"record/{op}.lua"))
    reply = [
        x.decode() for x in script(keys=keys.record_keys(rid), args=[rid, now, *CHANGE_ARGS[op]])
    ]
    code, after = transition(state, op, state == HELD and is_overdue(expires, now))
    assert reply[0] == code
    if code in ("ok", "noop", "invalid"):
        assert reply[1] == after
    assert r.hget(record, "state").decode() == (after if code == "ok" else state)
    r.delete(*keys.record_keys(rid))


@pytest.mark.parametrize("op", sorted(CHANGE_ARGS))
def test_no_record_is_not_found_for_every_change(r: redis.Redis, op: str) -> None:
    rid = f"PAR-{uuid.uuid4().hex[:10]}"
    script = r.register_script(load_script(f"record/{op}.lua"))
    assert script(keys=keys.record_keys(rid), args=[rid, 1, *CHANGE_ARGS[op]]) == [b"not_found"]


@PARITY
@given(
    held=st.integers(0, 8),
    dst=st.tuples(st.integers(0, 12), st.integers(0, 6), st.integers(0, 3)),  # oh, rs, safety
    units=st.integers(1, 8),
    confirmed=st.booleans(),
)
@example(held=3, dst=(5, 2, 0), units=3, confirmed=False)  # exactly the ATP: moves, all of it
@example(held=3, dst=(5, 2, 1), units=3, confirmed=False)  # one short
def test_a_transfer_moves_as_transfer_outcome_says(
    r: redis.Redis, held: int, dst: tuple[int, int, int], units: int, confirmed: bool
) -> None:
    """The checks at the source and the destination, and the move: reserved counts, holds and
    the expiry the moved units keep; a repeat (its mark set) moves nothing again."""
    # Now on the server's clock too: the mark expires at a time on the caller's clock.
    sku, now = f"PAR-{uuid.uuid4().hex[:10]}", time.time_ns() // 1_000_000
    expires = now + 60_000
    on_hand, reserved, safety = dst
    r.hset(keys.stock(sku), mapping={"oh:L1": 9, "rs:L1": held, "oh:L2": on_hand})
    r.hset(keys.stock(sku), "rs:L2", reserved)
    if held:
        r.hset(keys.holds(sku), "R-1@L1", held)
        if not confirmed:
            r.zadd(keys.expiry(sku), {"R-1@L1": expires})
    mark = keys.transfer_mark(sku, "R-1", "T-1")
    script = r.register_script(load_script("hold/transfer.lua"))
    args = ["R-1", now, "L1", "L2", units, safety, 60_000, "1000"]
    reply = script(keys=[*keys.sku_keys(sku), mark], args=args)
    code, n = transfer_outcome(held, LocationCounts(on_hand, reserved), safety, units)
    assert reply[0].decode() == code
    if code != "moved":
        assert int(reply[1]) == n
        assert r.get(mark) == f"{code} 1000 {n}".encode()  # that attempt's answer
    moved = units if code == "moved" else 0
    stock = {k.decode(): int(v) for k, v in r.hgetall(keys.stock(sku)).items()}
    assert (stock["rs:L1"], stock["rs:L2"]) == (held - moved, reserved + moved)
    holds = {k.decode(): int(v) for k, v in r.hgetall(keys.holds(sku)).items()}
    assert holds == {m: u for m, u in (("R-1@L1", held - moved), ("R-1@L2", moved)) if u}
    scores = dict(r.zrange(keys.expiry(sku), 0, -1, withscores=True))
    assert scores == ({} if confirmed else {m.encode(): expires for m in holds})
    # Asked again in the same attempt (its answer was lost, or another request finishes it),
    # with stock that would now let it move: the same answer, nothing moves (twice).
    r.hincrby(keys.stock(sku), "oh:L2", units + reserved + safety)
    again = script(keys=[*keys.sku_keys(sku), mark], args=args)
    assert again == ([b"moved"] if code == "moved" else [code.encode(), n])
    assert {k.decode(): int(v) for k, v in r.hgetall(keys.holds(sku)).items()} == holds
    if code == "short":  # a later attempt is checked afresh
        later = script(keys=[*keys.sku_keys(sku), mark], args=[*args[:-1], "2000"])
        assert later == [b"moved"]
    r.delete(*keys.sku_keys(sku), mark)


@PARITY
@given(
    counts=counts_st,
    ours=st.dictionaries(st.sampled_from(("L1", "L2", "L3")), st.integers(1, 5), max_size=3),
    lines=lines_st,
    cuts=st.lists(st.tuples(st.sampled_from(("L1", "L2", "L3")), st.integers(1, 7)), max_size=3),
    undo=st.booleans(),
)
def test_a_change_places_as_hold_lines_and_cuts_as_cut_holds(
    r: redis.Redis,
    counts: dict[str, tuple[int, int]],
    ours: dict[str, int],
    lines: list,
    cuts: list[tuple[str, int]],
    undo: bool,
) -> None:
    """hold/change.lua: its increases all or nothing as hold_lines places them (against counts
    that include what the reservation holds), its decreases as cut_holds gives back, a repeat of
    either doing nothing twice, and an undo giving back what the increases held."""
    sku, now = f"PAR-{uuid.uuid4().hex[:10]}", time.time_ns() // 1_000_000
    served = {}
    for loc in ("L1", "L2", "L3"):
        on_hand, others = counts.get(loc, (0, 0))
        reserved = others + ours.get(loc, 0)
        r.hset(keys.stock(sku), mapping={f"oh:{loc}": on_hand, f"rs:{loc}": reserved})
        served[loc] = LocationCounts(on_hand, reserved)
    for loc, units in ours.items():
        r.hset(keys.holds(sku), f"R-1@{loc}", units)
    indexed = [(i, qty, cands) for i, (qty, cands) in enumerate(lines)]
    argv: list = [len(indexed)]
    for i, qty, cands in indexed:
        argv += [i, qty, len(cands), *(x for c in cands for x in c)]
    mark = keys.change_mark(sku, "R-1", "C-1", now)
    script = r.register_script(load_script("hold/change.lua"))

    def run(phase: str, *args: object) -> list:
        return script(keys=[*keys.sku_keys(sku), mark], args=["R-1", now, phase, 60_000, "", *args])

    def holds() -> dict[str, int]:
        return {k.decode(): int(v) for k, v in r.hgetall(keys.holds(sku)).items()}

    def reserved() -> dict[str, int]:
        stock = r.hgetall(keys.stock(sku))
        return {k.decode()[3:]: int(v) for k, v in stock.items() if k.startswith(b"rs:")}

    before = holds()
    allocations, shortages = hold_lines(indexed, served)
    reply = run("place", *argv)
    if shortages:
        assert reply[0] == b"short"
        assert [tuple(s) for s in orjson.loads(reply[1])] == shortages
        assert holds() == before
        r.delete(*keys.sku_keys(sku), mark)
        return
    assert reply[0] == b"placed"
    assert [(i, [tuple(p) for p in ps]) for i, ps in orjson.loads(reply[1])] == allocations
    assert run("place", *argv) == reply  # a repeat places nothing again
    after = dict(before)
    for _, parts in allocations:
        for loc, units in parts:
            after[f"R-1@{loc}"] = after.get(f"R-1@{loc}", 0) + units
    assert holds() == after
    if undo:  # another SKU was short: what was placed goes back, and the attempt is over
        assert run("undo") == [b"ok"]
        assert holds() == before
        assert run("place", *argv) == [b"undone"]
        assert run("cut", *(x for c in cuts for x in c)) == [b"undone"]
        assert holds() == before
    else:
        pairs = [(f"R-1@{loc}", units) for loc, units in cuts]
        back = cut_holds(after, pairs)
        assert run("cut", *(x for c in cuts for x in c)) == [b"ok"]
        assert run("cut", *(x for c in cuts for x in c)) == [b"ok"]  # once only
        expected = {m: u - back.get(m, 0) for m, u in after.items() if u - back.get(m, 0) > 0}
        assert holds() == expected
        for loc in ("L1", "L2", "L3"):
            others = counts.get(loc, (0, 0))[1]
            assert reserved()[loc] == others + expected.get(f"R-1@{loc}", 0)
    r.delete(*keys.sku_keys(sku), mark)
