"""Real processes: one Tansu broker and one Redis/Valkey server per test session.

Each test gets its own topic prefix, consumer group and SKU names, so tests share the servers
without seeing each other's data. Every process started here is stopped by PID, also on failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import redis
import redis.cluster
from fastapi.testclient import TestClient

from api.app import create_app
from atp import contracts
from atp.core.movements import Movement
from atp.core.network import Network
from atp.settings import Settings, load_settings
from atp.store import keys
from atp.store.client import client_from_url, is_cluster_url
from atp.store.ledger import STATUS_NAMES, LedgerStore
from atp.tools import embedded
from atp.tools.embedded import ManagedProcess
from tests.conftest import DEMO_NETWORK, ROOT

# Reservation tests authenticate with RESERVE_TOKEN; READ_TOKEN lacks the reserve scope;
# ADMIN_TOKEN has only admin (which allows every route: api/auth.py).
RESERVE_TOKEN = "test-reserve-token"
READ_TOKEN = "test-read-token"
ADMIN_TOKEN = "test-admin-token"
API_KEYS = f"router:read+reserve:{RESERVE_TOKEN},pages:read:{READ_TOKEN},ops:admin:{ADMIN_TOKEN}"


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = embedded.free_port()
    proc = embedded.start_broker(port, tmp_path_factory.mktemp("broker"))
    try:
        yield f"127.0.0.1:{port}"
    finally:
        proc.stop()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test module that sets `REDIS = ("node", "cluster")` runs each of its tests on one Redis
    and again on a three-master Redis Cluster (`("cluster",)`: on the cluster only)."""
    kinds = getattr(metafunc.module, "REDIS", None)
    if kinds and "redis_url" in metafunc.fixturenames:
        metafunc.parametrize("redis_kind", kinds, indirect=True, scope="session")


@pytest.fixture(scope="session")
def redis_kind(request: pytest.FixtureRequest) -> str:
    return str(getattr(request, "param", "node"))


@pytest.fixture(scope="session")
def redis_url(redis_kind: str, request: pytest.FixtureRequest) -> str:
    """The Redis the test's processes and clients use: a server of this session, or the
    cluster for tests run on it."""
    name = "redis_cluster_url" if redis_kind == "cluster" else "redis_node_url"
    return str(request.getfixturevalue(name))


@pytest.fixture(scope="session")
def redis_node_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = embedded.free_port()
    tmp = tmp_path_factory.mktemp("redis")
    proc = embedded.start_redis(port, tmp / "data", tmp)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def redis_cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Three cluster masters on loopback, each with its own directory, AOF on: a real Redis
    Cluster (the tests under tests/integration/cluster run on it)."""
    tmp = tmp_path_factory.mktemp("cluster")
    procs: list[ManagedProcess] = []
    try:
        nodes = [(embedded.free_port(), embedded.free_port()) for _ in range(3)]
        for i, (port, bus) in enumerate(nodes):
            node = tmp / f"node{i}"
            procs.append(
                embedded.start_redis(
                    port, node / "data", node, cluster_bus_port=bus, name=f"node{i}"
                )
            )
        embedded.form_cluster(nodes)
        yield f"redis+cluster://127.0.0.1:{nodes[0][0]}"
    finally:
        for proc in procs:
            proc.stop()


@pytest.fixture
def settings(broker: str, redis_url: str, tmp_path: Path) -> Settings:
    run = uuid.uuid4().hex[:8]
    return load_settings(
        {},
        kafka_bootstrap=broker,
        redis_url=redis_url,
        topic_prefix=f"t{run}.",
        group_id=f"atp-test-{run}",
        worker_web_port=embedded.free_port(),
        api_port=embedded.free_port(),
        data_dir=tmp_path / "data",
        network_file=DEMO_NETWORK,
        session_timeout_s=6.0,
        api_keys=API_KEYS,
        batch_wait_s=0.01,
        log_level="info",
    )


class Processes:
    """Starts `atp` subcommands as real processes and stops them all at the end of a test."""

    def __init__(self, settings: Settings, log_dir: Path) -> None:
        self.settings = settings
        self.log_dir = log_dir
        self.started: list[ManagedProcess] = []

    def start(
        self, command: str, name: str | None = None, env: Mapping[str, str | None] | None = None
    ) -> ManagedProcess:
        """`env` adds to (or overrides) the settings' ATP_* variables for this process; a None
        value removes the variable."""
        merged = {**os.environ, **self.settings.to_env(), **(env or {}), "PYTHONPATH": str(ROOT)}
        argv = [sys.executable, "-m", "atp", command]
        proc = embedded.spawn(
            name or command,
            argv,
            self.log_dir,
            env={k: v for k, v in merged.items() if v is not None},
        )
        self.started.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in reversed(self.started):
            proc.stop(grace_s=15)


@pytest.fixture
def processes(settings: Settings, tmp_path: Path) -> Iterator[Processes]:
    procs = Processes(settings, tmp_path / "logs")
    try:
        yield procs
    finally:
        procs.stop_all()


@pytest.fixture
def client(settings: Settings, demo_network: Network) -> Iterator[TestClient]:
    """The API in-process, over the session's real Redis."""
    with TestClient(create_app(settings, demo_network)) as c:
        yield c


class _ClosingCluster(redis.cluster.RedisCluster):
    """A sync cluster client whose close() closes its sockets.

    redis-py's RedisCluster.close() closes each node's `Redis` client, but those clients were
    given their connection pool, so they leave it (and its sockets) open; the unclosed socket
    then fails whichever test the garbage collector happens to run in."""

    def close(self) -> None:
        manager = self.nodes_manager
        nodes = [*manager.nodes_cache.values(), *manager.startup_nodes.values()]
        super().close()
        for node in nodes:
            if node.redis_connection is not None:
                node.redis_connection.connection_pool.disconnect()


def redis_client(url: str, **kwargs: Any) -> redis.Redis:
    """A synchronous client for assertions: a cluster client for a redis+cluster:// URL."""
    if is_cluster_url(url):
        cluster = _ClosingCluster.from_url(url.replace("+cluster", "", 1), **kwargs)
        return cluster  # type: ignore[return-value]
    return redis.Redis.from_url(url, **kwargs)


def ledger_counters(client: redis.Redis) -> dict[str, int]:
    """The ledger's counters summed over every slot's stats hash (atp.keys.stats_keys)."""
    pipe = client.pipeline(transaction=False)
    for key in keys.stats_keys():
        pipe.hgetall(key)
    total: dict[str, int] = {}
    for row in pipe.execute():
        for k, v in row.items():
            name = k.decode() if isinstance(k, bytes) else k
            total[name] = total.get(name, 0) + int(v)
    return total


def statuses_counted(counters: dict[str, int]) -> dict[tuple[str, str], int]:
    """(channel, status) -> SKUs, from the ledger's counters."""
    return {
        (name.rpartition(":")[0], STATUS_NAMES[name.rpartition(":")[2]]): n
        for name, n in counters.items()
        if name not in ("skus", "pairs") and n
    }


def scan_ledger(r: redis.Redis) -> tuple[int, int, Counter[tuple[str, str]], list[str]]:
    """The slow way, for the test: SKUs, pairs and recorded statuses from every ledger hash,
    and the SKUs' names."""
    skus = pairs = 0
    statuses: Counter[tuple[str, str]] = Counter()
    names = []
    for key in r.scan_iter(match=f"{keys.LEDGER_V3}:{{*}}:ledger", count=1000):
        skus += 1
        names.append(key.decode().split("{", 1)[1].rsplit("}", 1)[0])
        for field, value in r.hgetall(key).items():
            f = field.decode()
            if f.startswith(keys.LEDGER_PREFIX):
                pairs += 1
            elif f.startswith("s:"):
                statuses[(f[2:], STATUS_NAMES[value.decode()])] += 1
    return skus, pairs, statuses, names


def isolated_redis_url(url: str) -> str:
    """A Redis nobody else writes to during the test: database 3 of the session's Redis; on the
    cluster, which has only database 0, the cluster itself after emptying it (tests run one at
    a time and never count on data another test left)."""
    if is_cluster_url(url):
        client = redis_client(url)
        client.flushall()
        client.close()
        return url
    return url.rsplit("/", 1)[0] + "/3"


def outbox_len(client: redis.Redis) -> int:
    """Entries waiting in the reservation outboxes, all shards."""
    return sum(int(client.xlen(key)) for key in keys.OUTBOXES)


def seed(redis_url: str, movements: list[Movement], now_ms: int) -> None:
    """Put counts in Redis through the real ledger store, as the worker would."""

    async def run() -> None:
        client = client_from_url(redis_url)
        try:
            await LedgerStore(client).apply(movements, now_ms)
        finally:
            await client.aclose()

    asyncio.run(run())


def wait_http_ok(url: str, proc: ManagedProcess, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not proc.alive():
            raise AssertionError(f"{proc.name} exited:\n{proc.log_tail()}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as r:
            if r.status == 200:
                return
        time.sleep(0.1)
    raise AssertionError(f"{url} not ready within {timeout_s}s:\n{proc.log_tail()}")


def conforms(message: str, payload: dict[str, Any]) -> bool:
    """`payload` is valid for the message of docs/asyncapi.yaml named `message`."""
    schema = contracts.payload_schema(message)
    return bool(jsonschema_rs.Draft7Validator(schema).is_valid(payload))
