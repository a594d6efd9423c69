"""Hundreds of concurrent reservations over real HTTP: the last unit is never sold twice."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections import Counter

import httpx2 as httpx
import pytest

from atp.store import keys
from tests.integration.conftest import RESERVE_TOKEN, redis_client, wait_http_ok
from tests.integration.test_reservations import seed

pytestmark = pytest.mark.integration
REDIS = ("node", "cluster")  # every test here runs on one Redis and on a cluster
AUTH = {"Authorization": f"Bearer {RESERVE_TOKEN}"}


class Watch:
    """Samples on_hand and reserved at a location while the race runs."""

    def __init__(self, redis_url: str, skus: list[str], loc: str) -> None:
        self.client = redis_client(redis_url)
        self.skus, self.loc = skus, loc
        self.worst = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for sku in self.skus:
                oh, rs = self.client.hmget(keys.stock(sku), f"oh:{self.loc}", f"rs:{self.loc}")
                self.worst = min(self.worst, int(oh or 0) - int(rs or 0))
                self.samples += 1

    def __enter__(self) -> Watch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.client.close()


async def race_bodies(base: str, bodies: list[dict]) -> list[tuple[int, dict]]:
    limits = httpx.Limits(max_connections=100)
    async with httpx.AsyncClient(base_url=base, headers=AUTH, limits=limits, timeout=30) as c:
        replies = await asyncio.gather(*(c.post("/v1/reservations", json=b) for b in bodies))
    return [(r.status_code, r.json()) for r in replies]


async def race(base: str, bodies: list[dict]) -> list[int]:
    return [status for status, _ in await race_bodies(base, bodies)]


@pytest.fixture
def api_base(settings, processes):
    api = processes.start("api")
    base = f"http://127.0.0.1:{settings.api_port}"
    wait_http_ok(f"{base}/readyz", api)
    yield base
    # Whatever happened, no token reached the API's log.
    assert RESERVE_TOKEN not in api.log_path.read_text(errors="replace")


def test_exactly_the_atp_is_held_under_a_stampede(settings, api_base):
    sku = f"HOT-{uuid.uuid4().hex[:8]}"
    seed(settings.redis_url, sku, {"WH-NJ": 50})
    bodies = [
        {
            "reservation_id": f"race-{i}-{sku}",
            "ttl_seconds": 600,
            "lines": [{"sku": sku, "quantity": 1, "location_id": "WH-NJ"}],
        }
        for i in range(300)
    ]
    with Watch(settings.redis_url, [sku], "WH-NJ") as watch:
        statuses = asyncio.run(race(api_base, bodies))
    assert Counter(statuses) == {201: 50, 409: 250}
    assert watch.samples > 0 and watch.worst >= 0  # never more held than on hand
    client = redis_client(settings.redis_url)
    assert client.hget(keys.stock(sku), "rs:WH-NJ") == b"50"
    client.close()


def test_multi_line_reservations_are_all_or_nothing_under_a_stampede(settings, api_base):
    a, b = f"HOTA-{uuid.uuid4().hex[:6]}", f"HOTB-{uuid.uuid4().hex[:6]}"
    seed(settings.redis_url, a, {"WH-IL": 25})
    seed(settings.redis_url, b, {"WH-IL": 40})
    # Every basket needs one of each; B alone could serve 40, A only 25.
    bodies = [
        {
            "reservation_id": f"basket-{i}-{a}",
            "ttl_seconds": 600,
            "lines": [
                {"sku": b, "quantity": 1, "location_id": "WH-IL"},
                {"sku": a, "quantity": 1, "location_id": "WH-IL"},
            ],
        }
        for i in range(200)
    ]
    with Watch(settings.redis_url, [a, b], "WH-IL") as watch:
        statuses = asyncio.run(race(api_base, bodies))
    assert Counter(statuses) == {201: 25, 409: 175}
    assert watch.worst >= 0
    client = redis_client(settings.redis_url)
    # No partial basket survived: B is held exactly as often as A.
    assert client.hget(keys.stock(a), "rs:WH-IL") == b"25"
    assert client.hget(keys.stock(b), "rs:WH-IL") == b"25"
    client.close()


def test_partial_holds_share_out_exactly_the_atp_under_a_stampede(settings, api_base):
    """allow_partial under a stampede: every unit held once, the last ones by whoever is next."""
    sku = f"HOTP-{uuid.uuid4().hex[:8]}"
    seed(settings.redis_url, sku, {"WH-NJ": 25, "WH-IL": 25})
    bodies = [
        {
            "reservation_id": f"part-{i}-{sku}",
            "ttl_seconds": 600,
            "allow_partial": True,
            "lines": [{"sku": sku, "quantity": 3}],
        }
        for i in range(120)
    ]
    with Watch(settings.redis_url, [sku], "WH-NJ") as watch:
        replies = asyncio.run(race_bodies(api_base, bodies))
    assert Counter(status for status, _ in replies) == {201: 17, 409: 103}  # 16 x 3, then 2
    held = sorted(ln["held"] for status, b in replies if status == 201 for ln in b["lines"])
    assert held == [2] + [3] * 16
    assert watch.worst >= 0
    client = redis_client(settings.redis_url)
    assert client.hmget(keys.stock(sku), "rs:WH-NJ", "rs:WH-IL") == [b"25", b"25"]
    client.close()


def test_a_stampede_of_transfers_into_one_location_moves_exactly_what_it_has(settings, api_base):
    """60 reservations hold one unit each at WH-NJ and all move it to WH-IL at once, where 10
    are free: exactly 10 move, every other one is refused and still holds at WH-NJ."""
    sku = f"HOTT-{uuid.uuid4().hex[:8]}"
    seed(settings.redis_url, sku, {"WH-NJ": 60, "WH-IL": 10})
    ids = [f"move-{i}-{sku}" for i in range(60)]
    holds = [
        {"reservation_id": i, "lines": [{"sku": sku, "quantity": 1, "location_id": "WH-NJ"}]}
        for i in ids
    ]
    assert asyncio.run(race(api_base, holds)) == [201] * 60
    move = {"sku": sku, "from_location_id": "WH-NJ", "to_location_id": "WH-IL", "quantity": 1}

    async def transfers() -> list[tuple[int, dict]]:
        limits = httpx.Limits(max_connections=100)
        async with httpx.AsyncClient(
            base_url=api_base, headers=AUTH, limits=limits, timeout=30
        ) as c:
            replies = await asyncio.gather(
                *(
                    c.post(f"/v1/reservations/{i}/transfer", json={"transfer_id": "t", **move})
                    for i in ids
                )
            )
        return [(r.status_code, r.json()) for r in replies]

    with Watch(settings.redis_url, [sku], "WH-IL") as watch:
        replies = asyncio.run(transfers())
    assert Counter(status for status, _ in replies) == {200: 10, 409: 50}
    assert {b["code"] for status, b in replies if status == 409} == {"insufficient_stock"}
    assert watch.worst >= 0
    client = redis_client(settings.redis_url)
    try:
        assert client.hmget(keys.stock(sku), "rs:WH-NJ", "rs:WH-IL") == [b"50", b"10"]
        where = Counter(member.decode().split("@")[1] for member in client.hkeys(keys.holds(sku)))
        assert where == {"WH-NJ": 50, "WH-IL": 10}
    finally:
        client.close()


def test_increases_racing_new_reservations_never_hold_more_than_there_is(settings, api_base):
    """10 reservations hold one unit each of 40 at WH-NJ; at once, each asks for 4 more and 40
    new reservations ask for one each. Whatever the interleaving, exactly the 40 units end up
    held (the new ones fill what increases leave), every refused increase changed nothing, and
    on-hand less reserved never went below zero."""
    sku = f"HOTC-{uuid.uuid4().hex[:8]}"
    seed(settings.redis_url, sku, {"WH-NJ": 40})
    line = {"sku": sku, "location_id": "WH-NJ"}
    first = [f"grow-{i}-{sku}" for i in range(10)]
    holds = [{"reservation_id": i, "lines": [{**line, "quantity": 1}]} for i in first]
    assert asyncio.run(race(api_base, holds)) == [201] * 10
    news = [
        {"reservation_id": f"new-{i}-{sku}", "lines": [{**line, "quantity": 1}]} for i in range(40)
    ]
    grow = {"change_id": "more", "lines": [{**line, "quantity": 5}]}

    async def stampede() -> tuple[list[httpx.Response], list[httpx.Response]]:
        limits = httpx.Limits(max_connections=100)
        async with httpx.AsyncClient(
            base_url=api_base, headers=AUTH, limits=limits, timeout=30
        ) as c:
            changes = [c.patch(f"/v1/reservations/{i}", json=grow) for i in first]
            made = [c.post("/v1/reservations", json=b) for b in news]
            replies = await asyncio.gather(*changes, *made)
        return list(replies[:10]), list(replies[10:])

    with Watch(settings.redis_url, [sku], "WH-NJ") as watch:
        changed, made = asyncio.run(stampede())
    assert {r.status_code for r in changed} <= {200, 409}
    assert {r.status_code for r in made} <= {201, 409}
    grown = [r for r in changed if r.status_code == 200]
    assert all(r.json()["lines"][0]["held"] == 5 for r in grown)
    assert {r.json()["code"] for r in changed if r.status_code == 409} <= {"insufficient_stock"}
    new_units = sum(r.status_code == 201 for r in made)
    held = 10 + 4 * len(grown) + new_units
    assert held == 40, (len(grown), new_units)
    assert watch.worst >= 0
    client = redis_client(settings.redis_url)
    try:
        assert client.hget(keys.stock(sku), "rs:WH-NJ") == b"40"
        units = {m.decode(): int(v) for m, v in client.hgetall(keys.holds(sku)).items()}
        assert sum(units.values()) == 40
        for i, r in zip(first, changed, strict=True):  # a refused increase held nothing more
            assert units[f"{i}@WH-NJ"] == (5 if r.status_code == 200 else 1)
    finally:
        client.close()
