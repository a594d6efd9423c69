"""Rules that Redis applies too, run in Python and in the server-side script on the same
generated inputs: both must give the same answer."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import orjson
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atp.core.reservations import hold_member, use_holds
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


holds_st = st.dictionaries(
    st.tuples(st.sampled_from(RIDS), st.sampled_from(LOCS)).map(lambda t: hold_member(*t)),
    st.integers(1, 6),
    max_size=6,
)
shipments_st = st.lists(
    st.tuples(st.sampled_from(LOCS), st.sampled_from(RIDS), st.integers(0, 7)), max_size=6
)


@PARITY
@given(held=holds_st, shipments=shipments_st)
def test_shipments_use_holds_as_use_holds_says(
    r: redis.Redis, held: dict[str, int], shipments: list[tuple[str, str, int]]
) -> None:
    sku = f"PAR-{uuid.uuid4().hex[:10]}"
    apply_ledger = r.register_script(load_script("apply_ledger.lua"))
    if held:
        r.hset(keys.holds(sku), mapping=held)
    used = use_holds(held, shipments)
    fulfil = [x for s, u in zip(shipments, used, strict=True) for x in (*s, u)]
    reply = apply_ledger(
        keys=keys.ledger_keys(sku)[:4], args=["0", 1, 0, len(shipments), *fulfil, 0]
    )
    assert reply[0] == 1, "the script computed other units than use_holds"
    left = {k.decode(): int(v) for k, v in r.hgetall(keys.holds(sku)).items()}
    expected = dict(held)
    for (loc, rid, _), units in zip(shipments, used, strict=True):
        if units:
            expected[hold_member(rid, loc)] -= units
    assert left == {m: n for m, n in expected.items() if n > 0}
    consumed = [tuple(c) for c in orjson.loads(reply[2])]
    assert sum(u for _, _, u in consumed) == sum(used)
    # Told to expect anything else, the script writes nothing.
    if shipments:
        wrong = list(fulfil)
        wrong[3] = int(wrong[3]) + 1
        reply = apply_ledger(
            keys=keys.ledger_keys(sku)[:4], args=[reply[1], 1, 0, len(shipments), *wrong, 0]
        )
        assert reply[0] == 0
        assert {k.decode(): int(v) for k, v in r.hgetall(keys.holds(sku)).items()} == left
    r.delete(*keys.ledger_keys(sku)[:4])
