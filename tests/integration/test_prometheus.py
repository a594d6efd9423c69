"""A real Prometheus server scrapes the embedded stack (worker and API as processes, simulator
traffic); the dashboard's queries name only metrics the processes export; the ledger's counters
behind the business gauges agree with a full scan of the ledger.

Prometheus is Debian's `prometheus` package. The session fixture installs it with apt when the
binary is not on the PATH (as `make test` does first), so a fresh CI machine needs nothing else.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

import orjson
import pytest
import redis as redis_sync
from fastapi.testclient import TestClient

from api.app import create_app
from atp.core.availability import LocationCounts, channel_availability, channel_status
from atp.core.movements import Effect, Movement
from atp.core.network import Network
from atp.core.sources import ADAPTERS
from atp.kafka import topics
from atp.network_file import load_network
from atp.settings import Settings, load_settings
from atp.store import keys
from atp.store.client import client_from_url
from atp.store.ledger import STATUS_NAMES, LedgerStore
from atp.store.stock import parse_stock
from atp.tools import embedded
from tests.conftest import DEMO_NETWORK, ROOT
from tests.integration.conftest import (
    API_KEYS,
    RESERVE_TOKEN,
    Processes,
    ledger_counters,
    scan_ledger,
    statuses_counted,
    wait_http_ok,
)
from tests.integration.wms_scenario import produce, warehouse_traffic

pytestmark = pytest.mark.integration

DASHBOARD = ROOT / "config" / "grafana" / "dashboards" / "atp.json"
COMPOSE_PROMETHEUS = ROOT / "config" / "prometheus.yml"
DATASOURCE = ROOT / "config" / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
STACK_DB = 7  # this module's own Redis database: the ledger's counters cover only its data
T = TypeVar("T")


@pytest.fixture(scope="session")
def prometheus_binary() -> str:
    """Debian's Prometheus server, installed once if missing (we run as root)."""
    found = shutil.which("prometheus")
    if found:
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (
        ["apt-get", "update", "-q"],
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", "prometheus"],
    ):
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{' '.join(argv)} failed:\n{done.stdout}\n{done.stderr}"
    found = shutil.which("prometheus")
    assert found, "apt-get installed prometheus, but it is not on the PATH"
    return found


def wait_for(check: Callable[[], T], what: str, timeout_s: float = 60.0) -> T:
    """The first truthy value of `check`; the deadline only guards against a hang."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.25)
    raise AssertionError(f"{what}: not so within {timeout_s}s (last: {last!r})")


def http_json(url: str, body: dict[str, Any] | None = None, token: str | None = None) -> Any:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else orjson.dumps(body)
    req = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return orjson.loads(r.read())
    except urllib.error.HTTPError as err:
        return orjson.loads(err.read())


def http_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:
        return str(r.read().decode())


@dataclass
class Stack:
    settings: Settings
    network: Network
    worker: str  # base URLs
    api: str
    prometheus: str
    redis: redis_sync.Redis
    simulator: embedded.ManagedProcess

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant PromQL query; a query Prometheus cannot parse fails the test."""
        url = f"{self.prometheus}/api/v1/query?{urlencode({'query': expr})}"
        try:
            body = http_json(url)
        except OSError as exc:
            raise AssertionError(f"{expr}: {exc}") from exc
        assert body["status"] == "success", f"{expr}: {body}"
        return list(body["data"]["result"])

    def scalar(self, expr: str) -> float | None:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None


def prometheus_config(worker: str, api: str) -> str:
    # The job names of config/prometheus.yml, so the dashboard's `up{job=~"atp-.*"}` matches.
    return json.dumps(
        {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [
                {"job_name": "atp-worker", "static_configs": [{"targets": [worker]}]},
                {"job_name": "atp-api", "static_configs": [{"targets": [api]}]},
            ],
        }
    )  # JSON is YAML


@pytest.fixture(scope="module")
def stack(
    broker: str,
    redis_url: str,
    prometheus_binary: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("prometheus-stack")
    run = uuid.uuid4().hex[:8]
    db_url = f"{redis_url.rsplit('/', 1)[0]}/{STACK_DB}"
    settings = load_settings(
        {},
        kafka_bootstrap=broker,
        redis_url=db_url,
        topic_prefix=f"p{run}.",
        group_id=f"atp-prom-{run}",
        worker_web_port=embedded.free_port(),
        api_port=embedded.free_port(),
        data_dir=tmp / "data",
        network_file=DEMO_NETWORK,
        session_timeout_s=6.0,
        api_keys=API_KEYS,
        batch_wait_s=0.01,
        gauge_refresh_s=0.5,
        log_level="info",
    )
    r = redis_sync.Redis.from_url(db_url)
    r.flushdb()
    procs = Processes(settings, tmp / "logs")
    prom: embedded.ManagedProcess | None = None
    try:
        worker = procs.start("worker")
        api = procs.start("api")
        worker_hp = f"127.0.0.1:{settings.worker_web_port}"
        api_hp = f"127.0.0.1:{settings.api_port}"
        wait_http_ok(f"http://{worker_hp}/healthz", worker)
        wait_http_ok(f"http://{api_hp}/readyz", api)

        # Prometheus first, so it scrapes while the traffic flows.
        config = tmp / "prometheus.yml"
        config.write_text(prometheus_config(worker_hp, api_hp))
        prom_port = embedded.free_port()
        prom = embedded.spawn(
            "prometheus",
            [
                prometheus_binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
                "--log.level=warn",
            ],
            tmp / "logs",
        )
        wait_http_ok(f"http://127.0.0.1:{prom_port}/-/ready", prom)

        # Traffic: the simulator (with some malformed input, for rejections) and a few API calls.
        env = {**os.environ, **settings.to_env(), "PYTHONPATH": str(ROOT)}
        argv = [sys.executable, "-m", "atp", "simulate", "--rate", "150", "--duration", "4"]
        argv += ["--skus", "40", "--seed", "7", "--malformed-rate", "0.05"]
        simulator = embedded.spawn("simulator", argv, tmp / "logs", env=env)
        procs.started.append(simulator)  # stopped with the others, by PID
        # And a backlog the worker needs a few seconds for (its commits follow each batch within
        # milliseconds, so a trickle alone seldom shows lag at a 1 s scrape).
        now_ms = time.time_ns() // 1_000_000
        burst = warehouse_traffic(
            f"pb{run}", skus=200, events=30_000, seed=3, start_ms=now_ms - 40_000_000
        )
        asyncio.run(produce(settings.kafka_bootstrap, settings.topic(topics.WMS), burst.messages))
        base = f"http://{api_hp}"
        for sku in ("SKU-000001", "SKU-000002", "NO-SUCH-SKU"):
            http_json(f"{base}/v1/availability/{sku}")
        http_json(f"{base}/v1/availability/query", {"skus": ["SKU-000003", "SKU-000004"]})
        line = {"sku": "NO-SUCH-SKU", "quantity": 1, "location_id": "WH-NJ"}
        http_json(
            f"{base}/v1/reservations",
            {"reservation_id": f"prom-{run}", "lines": [line]},
            token=RESERVE_TOKEN,
        )
        yield Stack(
            settings=settings,
            network=load_network(DEMO_NETWORK),
            worker=f"http://{worker_hp}",
            api=base,
            prometheus=f"http://127.0.0.1:{prom_port}",
            redis=r,
            simulator=simulator,
        )
    finally:
        if prom is not None:
            prom.stop()
        procs.stop_all()
        r.close()


def quiet(stack: Stack) -> None:
    """The simulator is done and the worker has committed everything it was given."""
    wait_for(lambda: not stack.simulator.alive(), "the simulator finished", 60)
    assert stack.simulator.popen.returncode == 0, stack.simulator.log_tail()
    wait_for(lambda: stack.scalar("sum(atp_consumer_lag)") == 0, "no consumer lag", 60)


def test_prometheus_scrapes_every_target_and_sees_the_key_series(stack: Stack) -> None:
    def targets_up() -> list[dict[str, Any]] | None:
        active = http_json(f"{stack.prometheus}/api/v1/targets")["data"]["activeTargets"]
        return active if len(active) == 2 and all(t["health"] == "up" for t in active) else None

    active = wait_for(targets_up, "both targets up")
    assert {t["labels"]["job"] for t in active} == {"atp-worker", "atp-api"}
    assert {t["scrapeUrl"] for t in active} == {f"{stack.worker}/metrics", f"{stack.api}/metrics"}

    # Sources and movements; stock.availability and stock.reservations (the webhook hop).
    partitions = (len(ADAPTERS) + 3) * stack.settings.partitions
    channels = len(stack.network.channels)
    expected: dict[str, Callable[[float], bool]] = {
        "sum(atp_movements_consumed_total)": lambda v: v > 0,
        "sum(atp_ledger_outcomes_total)": lambda v: v > 0,
        "sum(atp_freshness_seconds_count)": lambda v: v > 0,
        "sum(atp_apply_seconds_count)": lambda v: v > 0,
        'sum(atp_rejected_total{reason="malformed_json"})': lambda v: v > 0,
        "sum(atp_availability_events_total)": lambda v: v > 0,
        "count(atp_consumer_lag)": lambda v: v == partitions,
        "max(atp_ledger_pairs)": lambda v: v > 0,
        "max(atp_ledger_skus)": lambda v: v > 0,
        "count(atp_skus)": lambda v: v == 3 * channels,
        'sum(atp_api_request_duration_seconds_count{route="/v1/availability/{sku}"})': (
            lambda v: v == 3
        ),
        'sum(atp_availability_lookups_total{kind="batch"})': lambda v: v == 2,
        'sum(atp_api_redis_seconds_count{call="command"})': lambda v: v > 0,
        'sum(atp_api_redis_seconds_count{call="pipeline"})': lambda v: v > 0,
        'sum(atp_reservations_total{outcome="short"})': lambda v: v == 1,
    }
    for expr, ok in expected.items():

        def check(expr: str = expr, ok: Callable[[float], bool] = ok) -> bool:
            value = stack.scalar(expr)
            return value is not None and ok(value)

        wait_for(check, expr)

    quiet(stack)
    # Lag was there while the traffic flowed (commits come every few seconds), and is gone now.
    seen = stack.scalar("max(max_over_time(atp_consumer_lag[5m]))")
    assert seen is not None and seen > 0
    assert stack.scalar("max(atp_consumer_lag)") == 0
    # Every SKU has a recorded status on every channel. One query, so both sides come from the
    # same scrape (two queries may straddle a gauge refresh).
    for channel in stack.network.channels:
        expr = f'sum(atp_skus{{channel="{channel}"}}) - scalar(max(atp_ledger_skus))'
        assert stack.scalar(expr) == 0


def test_ledger_counters_match_a_full_scan_and_reach_the_gauges(stack: Stack) -> None:
    quiet(stack)
    skus, pairs, statuses, names = scan_ledger(stack.redis)
    assert skus > 0 and pairs >= skus
    stats = ledger_counters(stack.redis)
    assert stats["skus"] == skus
    assert stats["pairs"] == pairs
    assert statuses_counted(stats) == dict(statuses)
    # Each recorded status is the one the served counts give now (the simulator reserves nothing).
    for sku in names:
        counts = parse_stock(stack.redis.hgetall(keys.stock(sku))).counts
        for channel in stack.network.channels:
            now = channel_availability(stack.network, channel, sku, counts, None).status
            recorded = stack.redis.hget(keys.ledger(sku), f"s:{channel}")
            assert recorded is not None and STATUS_NAMES[recorded.decode()] == now, (sku, channel)

    # The worker's gauges carry the same numbers.
    def gauges_match() -> bool:
        text = http_text(f"{stack.worker}/metrics")
        if sample(text, "atp_ledger_pairs") != pairs or sample(text, "atp_ledger_skus") != skus:
            return False
        return all(
            sample(text, "atp_skus", f'channel="{ch}",status="{st}"') == statuses[(ch, st)]
            for ch in stack.network.channels
            for st in ("in_stock", "low_stock", "out_of_stock")
        )

    wait_for(gauges_match, "the worker's gauges equal the scanned ledger", 30)


def sample(text: str, name: str, labels: str = "") -> float | None:
    pattern = re.escape(name) + (r"\{" + re.escape(labels) + r"\}" if labels else "") + r" (\S+)"
    found = re.search(r"^" + pattern + r"$", text, re.MULTILINE)
    return float(found.group(1)) if found else None


def test_a_shipment_records_the_status_after_the_holds_it_used(settings, demo_network):
    """The status of a fulfilling write is recorded once the script has said which holds it
    used: 20 on hand, 12 held, 12 shipped against the hold leaves ATP 8 (low stock online,
    threshold 10), not the 0 that on-hand minus the old hold would give."""
    sku = f"G-{uuid.uuid4().hex[:8]}"
    now = time.time_ns() // 1_000_000
    r = redis_sync.Redis.from_url(settings.redis_url)

    async def apply(moves: list[Movement]) -> None:
        client = client_from_url(settings.redis_url)
        try:
            await LedgerStore(client, network=demo_network).apply(moves, now)
        finally:
            await client.aclose()

    def stat(field: str) -> int:
        return ledger_counters(r).get(field, 0)

    online_before = {code: stat(f"online:{code}") for code in "ilo"}
    skus_before = stat("skus")
    asyncio.run(apply([Movement(f"{sku}-c", sku, "WH-NJ", Effect.COUNT, 20, now - 5000, "C", "t")]))
    assert r.hget(keys.ledger(sku), "s:online") == b"i"
    assert r.hget(keys.ledger(sku), "s:pickup") == b"o"  # no store has it
    assert stat("skus") == skus_before + 1
    assert stat("online:i") == online_before["i"] + 1

    auth = {"Authorization": f"Bearer {RESERVE_TOKEN}"}
    with TestClient(create_app(settings, demo_network)) as api:
        line = {"sku": sku, "quantity": 12, "location_id": "WH-NJ"}
        rid = f"order-{sku}"
        made = api.post(
            "/v1/reservations", json={"reservation_id": rid, "lines": [line]}, headers=auth
        )
        assert made.status_code == 201, made.text
    ship = Movement(f"{sku}-s", sku, "WH-NJ", Effect.DELTA, -12, now - 1000, "SHIPPED", "t", rid)
    asyncio.run(apply([ship]))
    assert parse_stock(r.hgetall(keys.stock(sku))).counts["WH-NJ"].reserved == 0
    assert r.hget(keys.ledger(sku), "s:online") == b"l"
    assert stat("online:i") == online_before["i"]
    assert stat("online:l") == online_before["l"] + 1
    r.close()


def test_channel_status_is_the_status_of_the_full_breakdown(demo_network):
    """The worker's quick status (only the locations with counts) against the API's answer."""
    rng = random.Random(7)
    ids = [*demo_network.locations, "NOT-A-LOCATION"]
    for _ in range(2000):
        sku = rng.choice(["LEGO-75954", "SKU-000001"])  # one with SKU safety-stock rules
        counts = {
            loc: LocationCounts(rng.randint(0, 15), rng.randint(0, 8))
            for loc in rng.sample(ids, rng.randint(0, 5))
        }
        for ch in demo_network.channels:
            full = channel_availability(demo_network, ch, sku, counts, None).status
            assert channel_status(demo_network, ch, sku, counts) == full, (sku, ch, counts)


# PromQL words that are not metric names.
PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
    "unless", "offset", "inf", "nan",
}  # fmt: skip
BUILTIN_SERIES = {"up"}  # written by Prometheus itself for every target


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers that are not functions, keywords,
    label names (in braces, or in by/without/on/ignoring lists) or durations."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges and subqueries
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for m in re.finditer(r"(?<![\w:.])([A-Za-z_:][\w:]*)\s*(\()?", text):
        word, call = m.group(1), m.group(2)
        if not call and word.lower() not in PROMQL_WORDS:
            names.add(word)
    return names


def exported_names(text: str) -> set[str]:
    """Series names a /metrics page can have: every declared family (with or without samples
    yet) and its sample suffixes."""
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            if kind == "histogram":
                names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
            elif kind == "summary":
                names |= {name, f"{name}_sum", f"{name}_count"}
            else:
                names.add(name)
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def dashboard_queries() -> list[tuple[str, str]]:
    board = json.loads(DASHBOARD.read_text())
    out = []
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            out.append((panel["title"], target["expr"]))
    return out


def test_metric_names_of_promql():
    expr = (
        'histogram_quantile(0.99, sum by (le, route) (rate(atp_x_bucket{route!="/m"}[5m])))'
        ' / ignoring(job) max(up{job=~"a-.*"} offset 1m) and on(instance) atp_y'
    )
    assert metric_names(expr) == {"atp_x_bucket", "up", "atp_y"}


def test_the_dashboard_queries_only_metrics_the_stack_exports(stack: Stack) -> None:
    queries = dashboard_queries()
    assert len(queries) >= 7
    exported = exported_names(http_text(f"{stack.worker}/metrics"))
    exported |= exported_names(http_text(f"{stack.api}/metrics"))
    assert "atp_freshness_seconds_bucket" in exported and "atp_rejected_total" in exported
    for title, expr in queries:
        names = metric_names(expr)
        assert names, (title, expr)
        unknown = names - exported - BUILTIN_SERIES
        assert not unknown, f"panel {title!r} queries {sorted(unknown)}, exported by no process"

    # Prometheus parses every query and each gives the dashboard something to draw.
    quiet(stack)
    for title, expr in queries:
        promql = expr.replace("$__rate_interval", "30s")
        wait_for(lambda promql=promql: stack.query(promql), f"panel {title!r}: {promql}", 30)

    # The provisioned datasource is the one the panels name; the compose scrape config is valid.
    uids = {p["datasource"]["uid"] for p in json.loads(DASHBOARD.read_text())["panels"]}
    assert uids == {"atp-prometheus"} and "uid: atp-prometheus" in DATASOURCE.read_text()
    promtool = Path(shutil.which("promtool") or "/usr/bin/promtool")
    checked = subprocess.run(
        [str(promtool), "check", "config", str(COMPOSE_PROMETHEUS)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
