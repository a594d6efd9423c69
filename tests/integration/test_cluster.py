"""Every script touches one slot: the cluster itself refuses any that does not, so the tests
that also run on the cluster (REDIS = ("node", "cluster")) would fail with CROSSSLOT or a
non-local-key error. These tests show that the refusal is real, that the keys the store builds
share a slot, and that durable acknowledgement fences every master."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis
from aiokafka import TopicPartition
from redis.exceptions import ResponseError

from atp.store import keys
from atp.store.client import client_from_url
from atp.store.durability import Durability, fences
from stream.acks import DurableAcker
from tests.integration.conftest import redis_client

pytestmark = pytest.mark.integration
REDIS = ("cluster",)


def node_of(url: str, key: str) -> redis.Redis:
    """A plain (non-cluster) connection to the master owning `key`'s slot: what it refuses is
    the server's refusal, not the cluster client's check."""
    cluster = redis_client(url)
    node = cluster.get_node_from_key(key)  # type: ignore[attr-defined]
    cluster.close()
    return redis.Redis(host=node.host, port=node.port)


def test_the_cluster_refuses_a_script_across_slots(redis_url):
    a = keys.stock("A-SLOT")
    b = next(
        keys.stock(f"B-{n}")
        for n in range(100)
        if keys.key_slot(keys.stock(f"B-{n}")) != keys.key_slot(a)
    )
    node = node_of(redis_url, a)
    try:
        # CROSSSLOT (redis-py drops the code from the message)
        with pytest.raises(ResponseError, match="don't hash to the same slot"):
            node.eval("return redis.call('HGET', KEYS[2], 'x')", 2, a, b)
        # A key used inside the script but not declared is refused too.
        with pytest.raises(ResponseError, match=r"(?i)same slot|non local key"):
            node.eval("return redis.call('HGET', ARGV[1], 'x')", 1, a, b)
        assert node.eval("return redis.call('HGET', KEYS[1], 'x')", 1, a) is None
    finally:
        node.close()


@pytest.mark.parametrize("sku", ["LEGO-75954", "x", "Ünïcode-SKU", "a{b}c"])
def test_each_script_gets_keys_of_one_slot(sku):
    assert len({keys.key_slot(k) for k in keys.ledger_keys(sku, ["WH-NJ", "S-0101"])}) == 1
    assert len({keys.key_slot(k) for k in keys.sku_keys(sku)}) == 1
    rid = f"R-{sku}"
    assert len({keys.key_slot(k) for k in keys.record_keys(rid)}) == 1


def test_the_stats_hashes_cover_every_slot_once():
    slots = [keys.key_slot(k) for k in keys.stats_keys()]
    assert sorted(slots) == list(range(keys.SLOTS))


def test_durable_acks_fence_every_master(redis_url):
    async def run() -> tuple[bool, bool, list[tuple[str, str]], list[dict[TopicPartition, int]]]:
        client = client_from_url(redis_url)
        committed: list[dict[TopicPartition, int]] = []

        async def commit(offsets: dict[TopicPartition, int]) -> None:
            committed.append(offsets)

        try:
            acker = DurableAcker(client, commit)
            await acker.start()
            await acker.written({TopicPartition("stock.movements", 0): 42})
            await acker.flush()  # fence every master, then commit
            await acker.stop()
            targets = [(node.name, key) for node, key in fences(client)]  # type: ignore[arg-type]
            return acker.durable, await Durability(client).fence(), targets, committed
        finally:
            await client.aclose()

    durable, fenced, targets, committed = asyncio.run(run())
    assert durable and fenced
    assert committed == [{TopicPartition("stock.movements", 0): 42}]
    cluster = redis_client(redis_url)
    masters = {n.name for n in cluster.get_primaries()}  # type: ignore[attr-defined]
    assert {name for name, _ in targets} == masters and len(masters) == 3
    for name, key in targets:
        assert cluster.get_node_from_key(key).name == name  # type: ignore[attr-defined]
        assert int(cluster.get(key) or 0) >= 1  # the fence was written on that master
    cluster.close()


def test_a_reservation_spanning_masters_is_held_and_released(redis_url, settings):
    """SKUs on all three masters in one reservation: the saga holds each in its slot."""
    cluster = redis_client(redis_url)
    owners: dict[str, str] = {}
    n = 0
    while len(owners) < 3:
        sku = f"SPAN-{uuid.uuid4().hex[:6]}-{n}"
        owners.setdefault(cluster.get_node_from_key(keys.stock(sku)).name, sku)  # type: ignore[attr-defined]
        n += 1
    skus = list(owners.values())
    for sku in skus:
        cluster.hset(keys.stock(sku), "oh:WH-NJ", 2)
    from fastapi.testclient import TestClient

    from api.app import create_app
    from atp.network_file import load_network
    from tests.conftest import DEMO_NETWORK
    from tests.integration.conftest import RESERVE_TOKEN

    auth = {"Authorization": f"Bearer {RESERVE_TOKEN}"}
    rid = f"span-{uuid.uuid4().hex[:8]}"
    body = {
        "reservation_id": rid,
        "lines": [{"sku": s, "quantity": 2, "location_id": "WH-NJ"} for s in skus],
    }
    with TestClient(create_app(settings, load_network(DEMO_NETWORK))) as api:
        assert api.post("/v1/reservations", json=body, headers=auth).status_code == 201
        assert [cluster.hget(keys.stock(s), "rs:WH-NJ") for s in skus] == [b"2"] * 3
        assert api.delete(f"/v1/reservations/{rid}", headers=auth).status_code == 200
        assert [cluster.hget(keys.stock(s), "rs:WH-NJ") for s in skus] == [b"0"] * 3
    cluster.close()
