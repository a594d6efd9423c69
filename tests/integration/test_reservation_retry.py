"""A client that got no definite answer (a reply lost, Redis stalled) and asks again with the
same reservation id and body gets the definite answer: the reservation as it stands, made once,
or a refusal that left nothing held. In between it hears 409 reservation_in_progress for at most
the takeover time. Afterwards the units reserved equal the holds of the reservations that
exist, exactly. The saga runs on one Redis and on the cluster; the one-call reservation
(`reserve/make.lua`, one Redis only) has its own tests at the end, taking over from a saga too."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from atp.core.errors import InsufficientStock, ReservationInProgress, StoreUnavailable
from atp.core.network import Network
from atp.core.reservations import ReservationLine, ReservationRequest
from atp.store import keys
from atp.store.client import client_from_url
from atp.store.reservations import ReservationStore
from atp.store.scripts import Scripts
from atp.store.sweeper import Sweeper
from tests.integration.conftest import redis_client

pytestmark = pytest.mark.integration
REDIS = ("node", "cluster")
TAKEOVER_MS = 3000
LOC = "WH-NJ"


class Scripted(Scripts):
    """The store's scripts, each call counted; `before(n, name)` runs before the n-th call (it
    may wait), and the n-th call's reply is lost after it ran when n == `lose`."""

    def __init__(self, client: aioredis.Redis, lose: int = 0, before: Callable | None = None):
        super().__init__(client)
        self.calls: list[str] = []
        self._lose, self._before = lose, before

    def __getitem__(self, name: str) -> Any:
        script = super().__getitem__(name)

        async def call(keys: list[str], args: list[Any]) -> Any:
            self.calls.append(name)
            n = len(self.calls)
            if self._before is not None:
                await self._before(n, name)
            reply = await script(keys=keys, args=args)
            if n == self._lose:
                raise RedisConnectionError("reply lost (test)")
            return reply

        return call


def request(rid: str, a: str, b: str, qty_b: int) -> ReservationRequest:
    lines = (ReservationLine(a, 2, LOC), ReservationLine(b, qty_b, LOC))
    return ReservationRequest(rid, lines, 900, "online")


def stock_and_holds(url: str, skus: list[str]) -> dict[str, tuple[int, dict[str, int]]]:
    """Per SKU: units reserved at LOC, and its holds."""
    r = redis_client(url)
    try:
        return {
            sku: (
                int(r.hget(keys.stock(sku), f"rs:{LOC}") or 0),
                {k.decode(): int(v) for k, v in r.hgetall(keys.holds(sku)).items()},
            )
            for sku in skus
        }
    finally:
        r.close()


def seeded(url: str) -> tuple[str, str]:
    a, b = (f"RT-{uuid.uuid4().hex[:8]}-{x}" for x in "AB")
    r = redis_client(url)
    for sku in (a, b):
        r.hset(keys.stock(sku), f"oh:{LOC}", 5)
    r.close()
    return a, b


async def attempt(
    url: str,
    network: Network,
    req: ReservationRequest,
    now: int,
    atomic: bool = False,
    **scripted: Any,
) -> tuple[Any, Scripted]:
    """One try of the request, by the saga or in one call (`atomic`): its answer (or the error
    it raised), and the scripts it ran."""
    client = client_from_url(url)
    store = ReservationStore(client, 3_600_000, takeover_ms=TAKEOVER_MS, atomic=atomic)
    store._scripts = scripts = Scripted(client, **scripted)
    try:
        return await store.reserve(req, network, now), scripts
    except Exception as exc:
        return exc, scripts
    finally:
        await client.aclose()


# A reservation of two SKUs runs record/begin, hold/take twice, record/commit: four scripts.
@pytest.mark.parametrize("lose", [1, 2, 3, 4])
def test_a_retry_after_a_lost_reply_gets_the_reservation_made_once(
    redis_url: str, demo_network: Network, lose: int
) -> None:
    a, b = seeded(redis_url)
    req = request(f"rt-{uuid.uuid4().hex[:8]}", a, b, 1)
    t0 = time.time_ns() // 1_000_000

    async def main() -> None:
        first, scripts = await attempt(redis_url, demo_network, req, t0, lose=lose)
        assert isinstance(first, StoreUnavailable), first
        assert (
            scripts.calls[lose - 1]
            == [
                "record/begin.lua",
                "hold/take.lua",
                "hold/take.lua",
                "record/commit.lua",
            ][lose - 1]
        )
        soon, _ = await attempt(redis_url, demo_network, req, t0 + 10)
        if lose < 4:  # still pending: wait, for a bounded time
            assert isinstance(soon, ReservationInProgress), soon
            assert 0 < soon.retry_after_s <= TAKEOVER_MS / 1000
            later, _ = await attempt(redis_url, demo_network, req, t0 + TAKEOVER_MS + 1)
        else:  # it was made: the answer is the reservation
            later = soon
        assert not isinstance(later, Exception), later
        _, view = later
        assert view["state"] == "held"
        assert [p["quantity"] for ln in view["lines"] for p in ln["allocations"]] == [2, 1]

    asyncio.run(main())
    member = f"{req.reservation_id}@{LOC}"
    assert stock_and_holds(redis_url, [a, b]) == {a: (2, {member: 2}), b: (1, {member: 1})}


# Short on the second SKU: begin, take, check, release twice (each SKU), abort: six scripts.
@pytest.mark.parametrize("lose", [1, 2, 3, 4, 5, 6])
def test_a_retry_of_a_request_that_does_not_fit_is_refused_and_leaves_nothing_held(
    redis_url: str, demo_network: Network, lose: int
) -> None:
    a, b = seeded(redis_url)
    req = request(f"rt-{uuid.uuid4().hex[:8]}", a, b, 9)  # 9 of b: 5 there
    t0 = time.time_ns() // 1_000_000

    async def main() -> None:
        first, scripts = await attempt(redis_url, demo_network, req, t0, lose=lose)
        assert len(scripts.calls) == lose  # nothing after a lost reply
        assert isinstance(first, StoreUnavailable), first
        later, _ = await attempt(redis_url, demo_network, req, t0 + TAKEOVER_MS + 1)
        assert isinstance(later, InsufficientStock), later
        assert [(ln["sku"], ln["available"]) for ln in later.lines] == [(b, 5)]

    asyncio.run(main())
    assert stock_and_holds(redis_url, [a, b]) == {a: (0, {}), b: (0, {})}
    r = redis_client(redis_url)
    assert not r.exists(keys.reservation(req.reservation_id))  # the id is free again
    r.close()


async def stall_then_retry(
    url: str,
    network: Network,
    req: ReservationRequest,
    t0: int,
    stall_at: int,
    atomic: bool = False,
) -> tuple[Any, Scripted]:
    """A saga's attempt stalls before its `stall_at`-th script; the same request, past the
    takeover time (by the saga, or in one call when `atomic`), makes the reservation; then the
    stalled attempt resumes. Its answer and the scripts it ran."""
    stalled, go_on = asyncio.Event(), asyncio.Event()

    async def stall(n: int, name: str) -> None:
        if n == stall_at:
            stalled.set()
            await go_on.wait()

    first = asyncio.create_task(attempt(url, network, req, t0, before=stall))
    await stalled.wait()
    retry, _ = await attempt(url, network, req, t0 + TAKEOVER_MS + 1, atomic)
    assert not isinstance(retry, Exception), retry
    assert retry[0] is True  # made by the retry
    go_on.set()
    return await first


@pytest.mark.parametrize("stall_at", [3, 4])  # before the second take, before the commit
def test_an_attempt_that_resumes_after_a_takeover_changes_nothing(
    redis_url: str, demo_network: Network, stall_at: int
) -> None:
    """The first attempt stalls (its client gave up); the retry takes over and makes the
    reservation; then the first resumes: it can neither commit nor give back the retry's holds."""
    a, b = seeded(redis_url)
    req = request(f"rt-{uuid.uuid4().hex[:8]}", a, b, 1)
    t0 = time.time_ns() // 1_000_000

    async def main() -> None:
        late, scripts = await stall_then_retry(redis_url, demo_network, req, t0, stall_at)
        if stall_at == 3:  # its second take meets the retry's hold: it stops, gives back its own
            assert isinstance(late, ReservationInProgress), late
            assert "hold/release.lua" in scripts.calls  # fenced: the retry's holds stay
        else:  # its commit finds the reservation made: it answers it, as a replay
            assert not isinstance(late, Exception), late
            assert late[0] is False and late[1]["state"] == "held"

    asyncio.run(main())
    member = f"{req.reservation_id}@{LOC}"
    assert stock_and_holds(redis_url, [a, b]) == {a: (2, {member: 2}), b: (1, {member: 1})}


@pytest.mark.parametrize("lose", [1, 2, 3])
def test_a_half_made_reservation_nobody_asks_for_again_gives_back_its_holds(
    redis_url: str, demo_network: Network, lose: int
) -> None:
    """A client that never asks again: once the takeover time has passed, the sweeper gives
    back what the half-made reservation holds and frees its id; asked for later, it is made
    afresh, once."""
    a, b = seeded(redis_url)
    req = request(f"rt-{uuid.uuid4().hex[:8]}", a, b, 1)
    t0 = time.time_ns() // 1_000_000

    async def main() -> None:
        first, _ = await attempt(redis_url, demo_network, req, t0, lose=lose)
        assert isinstance(first, StoreUnavailable), first
        client = client_from_url(redis_url)
        try:
            sweeper = Sweeper(ReservationStore(client, 3_600_000, takeover_ms=TAKEOVER_MS))
            assert await sweeper.abandon_stale(demo_network, t0 + TAKEOVER_MS - 1) == 0  # not yet
            assert await sweeper.abandon_stale(demo_network, t0 + TAKEOVER_MS + 1) == 1
        finally:
            await client.aclose()
        assert stock_and_holds(redis_url, [a, b]) == {a: (0, {}), b: (0, {})}
        again, _ = await attempt(redis_url, demo_network, req, t0 + TAKEOVER_MS + 2)
        assert not isinstance(again, Exception) and again[0] is True, again

    asyncio.run(main())
    member = f"{req.reservation_id}@{LOC}"
    assert stock_and_holds(redis_url, [a, b]) == {a: (2, {member: 2}), b: (1, {member: 1})}


# The one-call reservation, on one Redis.


def test_a_retry_after_the_one_call_lost_its_reply_gets_the_reservation_made_once(
    redis_node_url: str, demo_network: Network
) -> None:
    a, b = seeded(redis_node_url)
    req = request(f"rt-{uuid.uuid4().hex[:8]}", a, b, 1)
    t0 = time.time_ns() // 1_000_000

    async def main() -> None:
        first, scripts = await attempt(redis_node_url, demo_network, req, t0, True, lose=1)
        assert isinstance(first, StoreUnavailable), first
        assert scripts.calls == ["reserve/make.lua"]
        again, _ = await attempt(redis_node_url, demo_network, req, t0 + 10, True)
        assert not isinstance(again, Exception), again
        created, view = again
        assert created is False and view["state"] == "held"  # made by the first: a replay
        assert [p["quantity"] for ln in view["lines"] for p in ln["allocations"]] == [2, 1]

    asyncio.run(main())
    member = f"{req.reservation_id}@{LOC}"
    assert stock_and_holds(redis_node_url, [a, b]) == {a: (2, {member: 2}), b: (1, {member: 1})}


def test_the_one_call_that_does_not_fit_holds_nothing_and_leaves_the_id_free(
    redis_node_url: str, demo_network: Network
) -> None:
    a, b = seeded(redis_node_url)
    req = request(f"rt-{uuid.uuid4().hex[:8]}", a, b, 9)  # 9 of b: 5 there

    async def main() -> None:
        short, _ = await attempt(redis_node_url, demo_network, req, time.time_ns() // 10**6, True)
        assert isinstance(short, InsufficientStock), short
        assert [(ln["sku"], ln["requested"], ln["available"]) for ln in short.lines] == [(b, 9, 5)]

    asyncio.run(main())
    assert stock_and_holds(redis_node_url, [a, b]) == {a: (0, {}), b: (0, {})}
    r = redis_client(redis_node_url)
    assert not r.exists(keys.reservation(req.reservation_id))
    r.close()


@pytest.mark.parametrize("qty_b", [1, 9])  # fits, or short on b
@pytest.mark.parametrize("lose", [1, 2, 3])
def test_the_one_call_takes_over_from_a_saga_that_lost_its_reply(
    redis_node_url: str, demo_network: Network, lose: int, qty_b: int
) -> None:
    """A saga (an API process of the version before, during an upgrade) got no answer, pending;
    the same request in one call waits out the takeover time like a saga's repeat, then gives
    back what the saga held and answers for good."""
    a, b = seeded(redis_node_url)
    req = request(f"rt-{uuid.uuid4().hex[:8]}", a, b, qty_b)
    t0 = time.time_ns() // 1_000_000

    async def main() -> None:
        first, _ = await attempt(redis_node_url, demo_network, req, t0, lose=lose)
        assert isinstance(first, StoreUnavailable), first
        soon, _ = await attempt(redis_node_url, demo_network, req, t0 + 10, True)
        assert isinstance(soon, ReservationInProgress), soon
        assert soon.retry_after_s == (TAKEOVER_MS - 10) / 1000
        later, _ = await attempt(redis_node_url, demo_network, req, t0 + TAKEOVER_MS + 1, True)
        if qty_b == 9:
            assert isinstance(later, InsufficientStock), later
            return
        assert not isinstance(later, Exception), later
        assert later[0] is True and later[1]["state"] == "held"

    asyncio.run(main())
    member = f"{req.reservation_id}@{LOC}"
    r = redis_client(redis_node_url)
    made = r.exists(keys.reservation(req.reservation_id))
    r.close()
    if qty_b == 9:
        assert not made
        assert stock_and_holds(redis_node_url, [a, b]) == {a: (0, {}), b: (0, {})}
    else:
        assert stock_and_holds(redis_node_url, [a, b]) == {a: (2, {member: 2}), b: (1, {member: 1})}


@pytest.mark.parametrize("stall_at", [3, 4])  # before the saga's second take, before its commit
def test_a_saga_that_resumes_after_the_one_call_took_over_changes_nothing(
    redis_node_url: str, demo_network: Network, stall_at: int
) -> None:
    a, b = seeded(redis_node_url)
    req = request(f"rt-{uuid.uuid4().hex[:8]}", a, b, 1)
    t0 = time.time_ns() // 1_000_000

    async def main() -> None:
        late, _ = await stall_then_retry(redis_node_url, demo_network, req, t0, stall_at, True)
        if stall_at == 3:
            assert isinstance(late, ReservationInProgress), late
        else:
            assert not isinstance(late, Exception), late
            assert late[0] is False and late[1]["state"] == "held"

    asyncio.run(main())
    member = f"{req.reservation_id}@{LOC}"
    assert stock_and_holds(redis_node_url, [a, b]) == {a: (2, {member: 2}), b: (1, {member: 1})}
