"""The ledger's Redis Function against its Python original, on the same generated inputs.

`atp.core.updates.update_sku` (with `atp.core.ledger.fold`) is the executable specification;
`tests.unit.stream.fakes.MemoryLedger` applies batches with it. The same batches go through
`LedgerStore.apply` (atp/store/lua/ledger/apply.lua) on a real Redis, and after every batch
both must agree on every outcome, the holds used up, the counts before and after, each pair's
summary (on hand, base, last count, last movement, deltas kept), its inbound and the served
next inbound. The batches have duplicates (the same event id, also with other contents), any
order, late counts, receipts before and after their ASN, shipments against holds, and a clock
that moves across a short retention window (compaction) and inbound grace.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Iterator

import orjson
import pytest
import redis
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from atp.core import journal
from atp.core.availability import LocationCounts, channel_statuses
from atp.core.ledger import LedgerState, LedgerSummary, Policy, future_inbound, next_inbound
from atp.core.movements import Effect, Movement
from atp.core.network import Network, SafetyRules
from atp.core.reservations import hold_member
from atp.store import keys
from atp.store.client import client_from_url
from atp.store.ledger import STATUS_CODES, STATUS_NAMES, LedgerStore, StoreConflict
from atp.store.migrate import migrate_ledger
from tests.integration.conftest import isolated_redis_url, redis_client
from tests.unit.stream.fakes import MemoryLedger

pytestmark = pytest.mark.integration
REDIS = ("node", "cluster")  # the function is loaded on every master and called in each slot

T0 = 1_790_000_000_000
POLICY = Policy(retention_ms=120, inbound_grace_ms=60, journal_entries=6)
LOCS = ("WH-NJ", "S-0101")
ASNS = ("A-1", "A-2", "A-3")
RIDS = ("R-1", "R-2")
DIFF = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

when = st.integers(T0, T0 + 240)
delta = st.builds(
    lambda eid, loc, qty, at: Movement(eid, "S", loc, Effect.DELTA, qty, at, "ADJUSTED", "wms"),
    st.sampled_from(("d1", "d2", "d3", "d4", "d5")),
    st.sampled_from(LOCS),
    st.integers(-5, 5),
    when,
)
receipt = st.builds(
    lambda eid, loc, qty, at, asn: Movement(
        eid, "S", loc, Effect.DELTA, qty, at, "RECEIVED", "wms", asn
    ),
    st.sampled_from(("g1", "g2", "g3")),
    st.sampled_from(LOCS),
    st.integers(1, 9),
    when,
    st.sampled_from(ASNS),
)
ship = st.builds(
    lambda eid, loc, qty, at, rid: Movement(
        eid, "S", loc, Effect.DELTA, -qty, at, "SHIPPED", "wms", rid
    ),
    st.sampled_from(("p1", "p2", "p3")),
    st.sampled_from(LOCS),
    st.integers(1, 4),
    when,
    st.sampled_from(RIDS),
)
count = st.builds(
    lambda eid, loc, qty, at: Movement(eid, "S", loc, Effect.COUNT, qty, at, "CYCLE_COUNT", "wms"),
    st.sampled_from(("c1", "c2", "c3")),
    st.sampled_from(LOCS),
    st.integers(0, 20),
    when,
)
inbound = st.builds(
    lambda eid, loc, qty, at, eta: Movement(
        eid, "S", loc, Effect.INBOUND, qty, at, "ASN", "wms", eta_ms=eta
    ),
    st.sampled_from(ASNS),
    st.sampled_from(LOCS),
    st.integers(1, 9),
    when,
    st.none() | st.integers(T0, T0 + 400),
)
movement = st.one_of(delta, receipt, ship, count, inbound)
batches = st.lists(
    st.tuples(st.lists(movement, min_size=1, max_size=8), st.integers(0, 90)),
    min_size=1,
    max_size=6,
)
holds = st.dictionaries(
    st.tuples(st.sampled_from(RIDS), st.sampled_from(LOCS)), st.integers(1, 5), max_size=4
)


@pytest.fixture(scope="module")
def url(redis_url: str) -> str:
    """Database 3 of the session's Redis, or the emptied cluster (emptied after the module)."""
    return isolated_redis_url(redis_url)


@pytest.fixture(scope="module")
def r(url: str) -> Iterator[redis.Redis]:
    client = redis_client(url)
    try:
        yield client
    finally:
        client.flushdb()
        client.close()


def rename(m: Movement, sku: str) -> Movement:
    return dataclasses.replace(m, sku=sku)


def served(r: redis.Redis, sku: str) -> dict[str, bytes]:
    return {k.decode(): v for k, v in r.hgetall(keys.stock(sku)).items()}


def plant_holds(r: redis.Redis, memory: MemoryLedger, sku: str, held: dict) -> None:
    """The same holds (and the units they reserve) for both ledgers."""
    members = {hold_member(rid, loc): units for (rid, loc), units in held.items()}
    reserved: dict[str, int] = {}
    for (_, loc), units in held.items():
        reserved[loc] = reserved.get(loc, 0) + units
    memory.holds[sku] = dict(members)
    memory.counts[sku] = {loc: LocationCounts(0, units) for loc, units in reserved.items()}
    if members:
        r.hset(keys.holds(sku), mapping=members)
        r.hset(keys.stock(sku), mapping={f"rs:{loc}": n for loc, n in reserved.items()})


async def apply_both(
    r: redis.Redis,
    store: LedgerStore,
    memory: MemoryLedger,
    network: Network,
    batch: list[Movement],
    now: int,
) -> None:
    """One batch through both ledgers; everything either says must agree."""
    sku = batch[0].sku
    journals = getattr(memory, "journals", {})
    memory.journals = journals  # type: ignore[attr-defined]
    for loc in dict.fromkeys(m.location_id for m in batch):
        added = journal.entries(
            memory.states.get((sku, loc)),
            [m for m in batch if m.location_id == loc],
            now,
            POLICY,
        )
        journals[loc] = journal.kept(journals.get(loc, []), added, POLICY.journal_entries)
    want = await memory.apply(batch, now)
    got = await store.apply(batch, now)
    assert [(m.event_id, m.location_id, o) for m, o in got.outcomes] == [
        (m.event_id, m.location_id, o) for m, o in want.outcomes
    ]
    for _, o in got.outcomes:
        event(f"outcome {o.value}")
    if got.consumed:
        event("a shipment used up a hold")
    assert sorted(got.consumed) == sorted(want.consumed)
    assert sorted(got.unmatched) == sorted(want.unmatched)
    assert got.changes == want.changes
    summaries = await store.summaries(sku)
    stock = served(r, sku)
    for (_, loc), state in memory.states.items():
        if state.base_ms is not None and state.base_ms != state.count_ms:
            event("deltas compacted into the base")
        assert summaries[loc] == LedgerSummary.of(state), loc
        assert int(stock[f"oh:{loc}"]) == state.on_hand
        ib, *later = future_inbound(state) or [None]
        assert stock.get(f"ib:{loc}") == (None if ib is None else f"{ib[0]}:{ib[1]}".encode())
        assert stock.get(f"fu:{loc}") == (
            ",".join(f"{eta}:{qty}" for eta, qty in later).encode() if later else None
        )
        if later:
            event("more than one expected arrival at a location")
    assert set(summaries) == {loc for (_, loc) in memory.states}
    for loc, expected in journals.items():
        kept = [journal.Entry.decode(x) for x in r.lrange(keys.journal(sku, loc), 0, -1)]
        assert kept == expected, loc
        if len(expected) == POLICY.journal_entries:
            event("a journal at its limit")
    if summaries:  # every SKU with a ledger has its status on every channel
        expected = channel_statuses(network)(sku, memory.counts[sku])
        assert recorded_statuses(r, sku, expected) == expected


async def apply_all(
    r: redis.Redis,
    store: LedgerStore,
    memory: MemoryLedger,
    network: Network,
    sku: str,
    batches: list,
    now: int,
) -> None:
    """The generated batches for `sku`, each `step` ms after the one before."""
    for moves, step in batches:
        now += step
        await apply_both(r, store, memory, network, [rename(m, sku) for m in moves], now)


def _receipt(eid: str, at: int, asn: str = "A-1") -> Movement:
    return Movement(eid, "S", "WH-NJ", Effect.DELTA, 2, at, "RECEIVED", "wms", asn)


def _count(at: int) -> Movement:
    return Movement("c1", "S", "WH-NJ", Effect.COUNT, 10, at, "CYCLE_COUNT", "wms")


def _delta(eid: str, at: int) -> Movement:
    return Movement(eid, "S", "WH-NJ", Effect.DELTA, 1, at, "ADJUSTED", "wms")


_ASN = Movement("A-1", "S", "WH-NJ", Effect.INBOUND, 5, T0 + 100, "ASN", "wms", eta_ms=T0 + 300)


@DIFF
@given(batches=batches, held=holds)
# A count drops the receipts at its own time too: the ASN that comes after is inbound again.
@example(batches=[([_receipt("g1", T0 + 100), _count(T0 + 100)], 50), ([_ASN], 1)], held={})
# A count between two receipts of one ASN drops the older only: the ASN stays received.
@example(
    batches=[
        ([_receipt("g1", T0 + 100), _receipt("g2", T0 + 120), _count(T0 + 110)], 80),
        ([_ASN], 1),
    ],
    held={},
)
# An ASN applied and dropped as overdue in one call, older than a delta kept since the summary
# was last written: nothing changed (the last movement is that delta's).
@example(
    batches=[
        ([_count(T0 + 100), _delta("d1", T0 + 150)], 100),
        ([_delta("d2", T0 + 200)], 50),
        ([dataclasses.replace(_ASN, occurred_ms=T0 + 170, eta_ms=T0)], 10),
    ],
    held={},
)
def test_the_function_folds_as_the_python_original(
    r: redis.Redis, url: str, demo_network: Network, batches: list, held: dict
) -> None:
    sku = f"V3-{uuid.uuid4().hex[:10]}"
    memory = MemoryLedger(POLICY)
    plant_holds(r, memory, sku, held)

    async def run() -> None:
        client = client_from_url(url)
        store = LedgerStore(client, POLICY, network=demo_network)
        try:
            await apply_all(r, store, memory, demo_network, sku, batches, T0 + 60)
        finally:
            await client.aclose()

    asyncio.run(run())


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(before=batches, after=batches, older_v3=st.booleans())
def test_a_v2_ledger_is_migrated_and_goes_on_as_the_python_original(
    r: redis.Redis, url: str, demo_network: Network, before: list, after: list, older_v3: bool
) -> None:
    """A SKU folded by the v2 code (its JSON state per pair, written as the v2 store wrote
    it) is refused by the function until `atp migrate` converts it; then both go on alike.
    With `older_v3`, the pairs are then put back as the first v3 writer kept them (the delta
    sum and count in the summary's fields 5 and 6, the quantities by event id and the receipts
    per ASN): the function reads them alike, converts each pair it loads and rewrites its
    summary when the pair changes."""
    sku = f"MG-{uuid.uuid4().hex[:10]}"
    memory = MemoryLedger(POLICY)
    now = T0 + 60

    async def fold_in_python() -> None:
        nonlocal now
        for moves, step in before:
            now += step
            await memory.apply([rename(m, sku) for m in moves], now)

    asyncio.run(fold_in_python())
    if not memory.states:
        return
    v2 = {f"l:{loc}": orjson.dumps(state.to_list()) for (_, loc), state in memory.states.items()}
    recorded = {
        f"s:{ch}": STATUS_CODES[st]
        for ch, st in channel_statuses(demo_network)(sku, memory.counts[sku])
    }
    r.hset(keys.ledger_v2(sku), mapping={**v2, **recorded, "v": 1})
    served_v2: dict[str, object] = {}
    for (_, loc), state in memory.states.items():
        served_v2[f"oh:{loc}"] = state.on_hand
        ib = next_inbound(state)
        if ib is not None:
            served_v2[f"ib:{loc}"] = f"{ib[0]}:{ib[1]}"
    r.hset(keys.stock(sku), mapping=served_v2)  # as the v2 store served them

    async def run() -> None:
        client = client_from_url(url)
        store = LedgerStore(client, POLICY, network=demo_network)
        try:
            with pytest.raises(StoreConflict, match="atp migrate"):
                await store.apply([rename(before[0][0][0], sku)], now)
            report = await migrate_ledger(client)
            assert (report.skus, report.pairs) == (1, len(memory.states))
            assert r.exists(keys.ledger_v2(sku)) == 0
            assert (await migrate_ledger(client)).skus == 0  # nothing left to convert
            summaries = await store.summaries(sku)
            assert summaries == {loc: LedgerSummary.of(s) for (_, loc), s in memory.states.items()}
            if older_v3:
                r.hset(keys.ledger(sku), mapping=older_v3_summaries(summaries))
                for (_, loc), state in memory.states.items():
                    put_older_v3_deltas(r, sku, loc, state)
                assert await store.summaries(sku) == summaries
            await apply_all(r, store, memory, demo_network, sku, after, now)
            for loc in {m.location_id for moves, _ in after for m in moves}:
                assert r.exists(*keys.older_pair_keys(sku, loc)) == 0, "converted when loaded"
            for (_, loc), state in memory.states.items():  # what an older reader finds
                stored = r.hget(keys.ledger(sku), f"l:{loc}").decode().split(",", 6)
                if stored[4:6] != ["", ""]:  # left as it was: the pair did not change
                    event("an older writer's summary left as it was")
                    want = older_v3_summaries({loc: LedgerSummary.of(state)})[f"l:{loc}"]
                    assert stored == want.split(",", 6)
        finally:
            await client.aclose()

    asyncio.run(run())


def older_v3_summaries(summaries: dict[str, LedgerSummary]) -> dict[str, str]:
    """The summaries as the first v3 writer stored them: "base_qty,base_ms,count_ms,last_ms,
    delta_sum,deltas,count_id"."""
    out = {}
    for loc, s in summaries.items():
        numbers = (s.base_qty, s.base_ms, s.count_ms, s.last_movement_ms, s.delta_sum, s.deltas)
        out[f"l:{loc}"] = ",".join("" if n is None else str(n) for n in numbers) + ","
        out[f"l:{loc}"] += s.count_id or ""
    return out


def put_older_v3_deltas(r: redis.Redis, sku: str, loc: str, state: LedgerState) -> None:
    """The pair's kept deltas as the first v3 writer kept them: q (event id -> "qty" or
    "qty:<ASN>" for a receipt) and r (ASN -> receipts kept), instead of t and rt."""
    _, t, _, rt = keys.pair_keys(sku, loc)
    q, older_r = keys.older_pair_keys(sku, loc)
    r.delete(t, rt)
    quantities, receipts = {}, {}
    for event_id, d in state.deltas.items():
        receipt = d.ref is not None and d.qty > 0
        quantities[event_id] = f"{d.qty}:{d.ref}" if receipt else str(d.qty)
        if receipt:
            receipts[d.ref] = receipts.get(d.ref, 0) + 1
    if quantities:
        r.hset(q, mapping=quantities)
    if receipts:
        r.hset(older_r, mapping=receipts)


types_st = st.dictionaries(
    st.sampled_from(("warehouse", "store", "3pl")), st.integers(0, 4), max_size=2
)
locs_st = st.dictionaries(
    st.sampled_from(("WH-NJ", "WH-TX", "S-0101", "S-0102")), st.integers(0, 4), max_size=2
)
# (type rules, location rules, SKU rule, (SKU, location) rules), made for the example's SKU.
rules_st = st.tuples(types_st, locs_st, st.none() | st.integers(0, 4), locs_st)
counts_st = st.dictionaries(
    st.sampled_from(("WH-NJ", "WH-TX", "S-0101", "S-0102", "S-0901")),
    st.tuples(st.integers(0, 12), st.integers(0, 6)),
    min_size=1,
    max_size=5,
)


def safety_rules(sku: str, rules: tuple) -> SafetyRules:
    types, locs, sku_rule, pairs = rules
    return SafetyRules(
        by_sku_location={(sku, loc): n for loc, n in pairs.items()},
        by_sku={} if sku_rule is None else {sku: sku_rule},
        by_location=locs,
        by_type=types,
    )


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(common=rules_st, online=rules_st, pickup=rules_st, counts=counts_st)
def test_statuses_follow_the_atp_formula_and_safety_rules(
    r: redis.Redis, url: str, demo_network: Network, common, online, pickup, counts
) -> None:
    """The status the function records per channel is `channel_status`'s, whatever the safety
    rules (every level, network-wide and per channel)."""
    sku = f"ST-{uuid.uuid4().hex[:10]}"
    network = dataclasses.replace(
        demo_network,
        safety=safety_rules(sku, common),
        channel_safety={"online": safety_rules(sku, online), "pickup": safety_rules(sku, pickup)},
    )
    r.hset(keys.stock(sku), mapping={f"rs:{loc}": rs for loc, (_, rs) in counts.items()})
    moves = [
        Movement(f"{sku}-{loc}", sku, loc, Effect.COUNT, oh, T0, "CYCLE_COUNT", "wms")
        for loc, (oh, _) in counts.items()
    ]

    async def run() -> None:
        client = client_from_url(url)
        try:
            await LedgerStore(client, Policy(), network=network).apply(moves, T0 + 1)
        finally:
            await client.aclose()

    asyncio.run(run())
    stock = served(r, sku)
    served_counts = {
        loc: LocationCounts(int(stock.get(f"oh:{loc}", 0)), int(stock.get(f"rs:{loc}", 0)))
        for loc in counts
    }
    expected = channel_statuses(network)(sku, served_counts)
    assert recorded_statuses(r, sku, expected) == expected


def recorded_statuses(r: redis.Redis, sku: str, expected: list) -> list[tuple[str, str]]:
    recorded = r.hgetall(keys.ledger(sku))
    return [(ch, STATUS_NAMES[recorded[f"s:{ch}".encode()].decode()]) for ch, _ in expected]


def test_a_pair_served_before_later_arrivals_were_gets_them_at_its_next_movement(r, url):
    """A stack that ran a version serving only the next arrival (no fu:<loc>): the first call
    that loads the pair writes the later ones, quietly (the counts have not changed)."""
    sku = f"FU-{uuid.uuid4().hex[:8]}"
    asns = [
        Movement(f"A-{i}", sku, "WH-NJ", Effect.INBOUND, 5 + i, T0 + 10, "ASN", "wms", eta_ms=eta)
        for i, eta in enumerate((T0 + 3000, T0 + 1000, T0 + 2000))
    ]

    async def run() -> None:
        client = client_from_url(url)
        store = LedgerStore(client, Policy(retention_ms=10_000, inbound_grace_ms=10_000))
        try:
            await store.apply(asns, T0 + 20)
            assert served(r, sku)["ib:WH-NJ"] == f"{T0 + 1000}:6".encode()
            assert served(r, sku)["fu:WH-NJ"] == f"{T0 + 2000}:7,{T0 + 3000}:5".encode()
            r.hdel(keys.stock(sku), "fu:WH-NJ")  # as the older version left it
            result = await store.apply(asns[:1], T0 + 40)  # a duplicate: nothing changes
            assert result.changes == []
            assert served(r, sku)["fu:WH-NJ"] == f"{T0 + 2000}:7,{T0 + 3000}:5".encode()
        finally:
            await client.aclose()

    asyncio.run(run())
