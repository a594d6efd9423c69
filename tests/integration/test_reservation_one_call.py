"""The one-call reservation (`reserve/make.lua`) against the saga it stands in for on one Redis:
the same request, after the same history, on two databases, must get the same answer and leave
the same keys (the saga's holds given back leave a reserved count of 0 where the one call wrote
nothing: the same to every reader). Histories: other reservations, some overdue; the same id
made before, used for another request, or left pending by a saga that lost a reply, within
the takeover time or after it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from atp.core.errors import ATPError
from atp.core.network import Network
from atp.core.reservations import ReservationLine, ReservationRequest
from atp.store import keys
from atp.store.client import client_from_url
from atp.store.feed import ALL_CHANNELS
from atp.store.reservations import ReservationStore
from tests.integration.conftest import redis_client
from tests.integration.test_reservation_retry import Scripted

pytestmark = pytest.mark.integration

TAKEOVER_MS = 3000
NOW = 2_000_000_000_000  # a fixed clock far ahead of the server's: nothing expires by itself
LOCS = ("WH-NJ", "WH-IL", "S-0101")  # of the demo network's online channel
SKUS = ("A", "B", "C")
SAGA, ONE_CALL = 4, 5  # the databases


@pytest.fixture
def dbs(redis_node_url: str) -> Iterator[dict[int, str]]:
    base = redis_node_url.rsplit("/", 1)[0]
    urls = {db: f"{base}/{db}" for db in (SAGA, ONE_CALL)}
    yield urls
    for url in urls.values():
        r = redis_client(url)
        r.flushdb()
        r.close()


lines_st = st.lists(
    st.tuples(st.sampled_from(SKUS), st.integers(1, 5), st.sampled_from((None, *LOCS))),
    min_size=1,
    max_size=4,
)
history_st = st.fixed_dictionaries(
    {
        "stock": st.fixed_dictionaries(
            {(sku, loc): st.integers(0, 10) for sku in SKUS for loc in LOCS}
        ),
        # other reservations: their lines, and how long before NOW they were made (ttl 60 s)
        "others": st.lists(st.tuples(lines_st, st.sampled_from((1_000, 60_000, 90_000)))),
        # this id before: never, made with this request, made with another, or a saga that
        # lost the reply of its n-th script, 10 ms or past the takeover time before NOW
        "before": st.sampled_from(("none", "same", "other", "lost")),
        "lose": st.integers(1, 6),
        "waited": st.sampled_from((10, TAKEOVER_MS + 1)),
    }
)


def history(**given: Any) -> dict[str, Any]:
    """A history for an @example: five of each SKU at each location, and `given`."""
    stock = {(sku, loc): 5 for sku in SKUS for loc in LOCS}
    return {"stock": stock, "others": [], "before": "none", "lose": 1, "waited": 10, **given}


def request(rid: str, suffix: str, lines: list[tuple[str, int, str | None]]) -> ReservationRequest:
    return ReservationRequest(
        rid,
        tuple(ReservationLine(f"{sku}-{suffix}", q, loc) for sku, q, loc in lines),
        60,
        "online",
    )


async def run(
    url: str, network: Network, req: ReservationRequest, now: int, atomic: bool, lose: int = 0
) -> Any:
    """The answer ((created, view), or the error's class and fields), as the API would see it."""
    client = client_from_url(url)
    store = ReservationStore(client, 3_600_000, takeover_ms=TAKEOVER_MS, atomic=atomic)
    if lose:
        store._scripts = Scripted(client, lose=lose)
    try:
        return await store.reserve(req, network, now)
    except ATPError as exc:
        return type(exc).__name__, vars(exc)
    except Exception as exc:  # a lost reply
        return type(exc).__name__
    finally:
        await client.aclose()


def dump(url: str) -> dict[str, Any]:
    """Every key's content (stream entries without their ids), a reserved count of 0 as none."""
    r = redis_client(url)
    out: dict[str, Any] = {}
    try:
        for key in sorted(k.decode() for k in r.keys("*")):
            kind = r.type(key).decode()
            if kind == "hash":
                value: Any = {
                    f.decode(): v.decode()
                    for f, v in r.hgetall(key).items()
                    if not (f.startswith(b"rs:") and v == b"0")
                }
            elif kind == "zset":
                value = r.zrange(key, 0, -1, withscores=True)
            elif kind == "stream":
                value = [fields for _, fields in r.xrange(key)]
            else:
                value = r.dump(key)
            out[key] = (kind, value, r.pexpiretime(key))
    finally:
        r.close()
    return out


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(history=history_st, lines=lines_st)
# A saga held A and lost the reply, past the takeover time: the one call gives back its holds.
@example(history=history(before="lost", lose=2, waited=TAKEOVER_MS + 1), lines=[("A", 4, "WH-NJ")])
# ... and both of its SKUs' holds, then finds the request short: the id is freed.
@example(
    history=history(before="lost", lose=3, waited=TAKEOVER_MS + 1),
    lines=[("A", 3, "WH-NJ"), ("B", 6, None)],
)
# Only once an overdue reservation's holds are given back does the request fit.
@example(history=history(others=[([("A", 5, "WH-NJ")], 90_000)]), lines=[("A", 5, None)])
def test_one_call_answers_and_leaves_what_the_saga_does(
    dbs: dict[int, str], demo_network: Network, history: dict[str, Any], lines: list
) -> None:
    suffix = uuid.uuid4().hex[:8]
    rid = f"R-{suffix}"
    req = request(rid, suffix, lines)
    answers = {}
    for db, url in dbs.items():
        r = redis_client(url)
        r.flushdb()
        for (sku, loc), on_hand in history["stock"].items():
            r.hset(keys.stock(f"{sku}-{suffix}"), f"oh:{loc}", on_hand)
        r.close()

        async def main(url: str = url, db: int = db) -> Any:
            # the history, by the saga alike on both
            for n, (other, age) in enumerate(history["others"]):
                await run(url, demo_network, request(f"O-{n}", suffix, other), NOW - age, False)
            before = history["before"]
            if before == "same":
                await run(url, demo_network, req, NOW - 1_000, False)
            elif before == "other":
                await run(url, demo_network, request(rid, suffix, [("A", 1, None)]), NOW, False)
            elif before == "lost":
                await run(url, demo_network, req, NOW - history["waited"], False, history["lose"])
            return await run(url, demo_network, req, NOW, db == ONE_CALL)

        answers[db] = asyncio.run(main())
    event(f"{history['before']}: {answers[SAGA][0]}")
    assert answers[ONE_CALL] == answers[SAGA]
    assert dump(dbs[ONE_CALL]) == dump(dbs[SAGA])


def test_the_one_call_adds_a_reservations_skus_to_the_change_feed_once_made(
    dbs: dict[int, str], demo_network: Network
) -> None:
    """With `feed_entries`, a reservation made adds each of its SKUs to the live streams' feed
    as ChangeFeed.publish does (every channel); a replay or a short request adds nothing."""
    url, suffix = dbs[ONE_CALL], uuid.uuid4().hex[:8]
    r = redis_client(url)
    r.flushdb()
    r.hset(keys.stock(f"A-{suffix}"), "oh:WH-NJ", 5)
    r.hset(keys.stock(f"B-{suffix}"), "oh:WH-NJ", 5)

    async def reserve(req: ReservationRequest) -> Any:
        client = client_from_url(url)
        store = ReservationStore(client, 3_600_000, atomic=True, feed_entries=1000)
        assert store.publishes_made
        try:
            return await store.reserve(req, demo_network, NOW)
        except ATPError as exc:
            return type(exc).__name__
        finally:
            await client.aclose()

    def feed() -> list[dict[bytes, bytes]]:
        return [fields for _, fields in r.xrange(keys.feed())]

    try:
        lines = [("B", 1, "WH-NJ"), ("A", 2, None), ("B", 1, None)]
        created, _ = asyncio.run(reserve(request("R-1", suffix, lines)))
        assert created
        made = feed()
        assert sorted(made, key=lambda f: f[b"s"]) == [
            {b"s": f"{sku}-{suffix}".encode(), b"c": ALL_CHANNELS.encode()} for sku in ("A", "B")
        ]
        assert asyncio.run(reserve(request("R-1", suffix, lines)))[0] is False  # a replay
        assert asyncio.run(reserve(request("R-2", suffix, [("A", 9, None)]))) == "InsufficientStock"
        assert feed() == made
    finally:
        r.close()
