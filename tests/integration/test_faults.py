"""Faults on real processes (issue 8): workers killed, Redis restarted and wiped, the broker away.

Every process is started through the `processes` fixture or a fixture here and stopped by its
PID at the end, also on failure. Counts are compared with the simulator's independent truth
(`test_sources.differences`), or with the state Redis had before a fault.

The broker that "goes away" is frozen with SIGSTOP and thawed with SIGCONT. Tansu keeps its
topics in memory only (the wheel's build has no other storage engine), so a broker that is
really stopped comes back empty: that is a new cluster, not the same one returning. A frozen
broker is what clients see when a broker or the network to it hangs: connections stay open,
requests get no answer until it returns, and it comes back with its data and with its own
view of the group (whose members it has not heard from for longer than the session timeout).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
import redis

from atp.kafka import topics
from atp.settings import Settings
from atp.store import keys
from atp.tools import embedded
from atp.tools.embedded import ManagedProcess
from tests.conftest import ROOT
from tests.integration.conftest import RESERVE_TOKEN, Processes, outbox_len, wait_http_ok
from tests.integration.test_fulfilment import wait_until, wms
from tests.integration.test_pipeline import metric, wait_for_counts
from tests.integration.test_sources import differences, served, simulate
from tests.integration.wms_scenario import produce, read_all, warehouse_traffic

pytestmark = pytest.mark.integration


class OwnRedis:
    """A Redis of one test, on its own port and data directory (AOF on), to restart or wipe."""

    def __init__(self, tmp: Path) -> None:
        self.port = embedded.free_port()
        self.dir = tmp / "own-redis"
        self.proc: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = embedded.start_redis(self.port, self.dir / "data", self.dir)

    def restart(self, sig: int) -> None:
        assert self.proc is not None
        code = self.proc.stop(grace_s=15, sig=sig)
        # SIGTERM: Redis shuts down cleanly (AOF flushed and fsynced), and exits 0.
        assert code == (0 if sig == signal.SIGTERM else -signal.SIGKILL), self.proc.log_tail()
        self.start()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    own = OwnRedis(tmp_path)
    own.start()
    try:
        yield own
    finally:
        if own.proc is not None:
            own.proc.stop()


@dataclass
class OwnBroker:
    proc: ManagedProcess
    bootstrap: str


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[OwnBroker]:
    """A broker of one test, to freeze."""
    port = embedded.free_port()
    proc = embedded.start_broker(port, tmp_path / "own-broker")
    try:
        yield OwnBroker(proc, f"127.0.0.1:{port}")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGCONT)  # a frozen broker would not act on SIGTERM
        proc.stop()


def start_worker(
    processes: Processes, name: str, web_port: int | None = None, hops: int = 2
) -> ManagedProcess:
    """A worker; `web_port` gives it its own /metrics port, so several can run side by side;
    `hops` 1 applies the source topics straight to the ledger (stream/direct.py)."""
    base = processes.settings
    if web_port is not None:
        processes.settings = base.model_copy(update={"worker_web_port": web_port})
    try:
        return processes.start("worker", name=name, env={"ATP_HOPS": str(hops)})
    finally:
        processes.settings = base


def applied(web_port: int) -> float:
    """Movements a worker has applied so far (0 while it is starting)."""
    try:
        url = f"http://127.0.0.1:{web_port}/metrics"
        return metric(url, "atp_ledger_outcomes_total", 'outcome="applied"')
    except OSError:
        return 0.0


def wait_applying(
    settings: Settings,
    worker: ManagedProcess,
    web_port: int,
    more_than: float = 0,
    timeout_s: float = 90.0,
) -> float:
    """Wait until the worker has applied more than `more_than` movements (with 0: it owns
    partitions of stock.movements); returns how many it has applied.

    Each second without progress, one more count of a fresh SKU is produced, so this ends also
    when the simulator is done and everything before was committed.
    """
    deadline = time.monotonic() + timeout_s
    nudge = 0.0
    while (done := applied(web_port)) <= more_than:
        assert worker.alive(), worker.log_tail()
        assert time.monotonic() < deadline, f"{worker.name} applied nothing in {timeout_s:.0f} s"
        if time.monotonic() > nudge:
            sku = f"nudge-{uuid.uuid4().hex[:8]}"
            message = wms(sku, sku, "CYCLE_COUNT", 1)
            asyncio.run(produce(settings.kafka_bootstrap, settings.topic(topics.WMS), [message]))
            nudge = time.monotonic() + 1.0
        time.sleep(0.2)
    return done


def stop_sim(sim: subprocess.Popen[bytes]) -> None:
    if sim.poll() is None:
        sim.kill()
        sim.wait()


def call(
    method: str, url: str, body: dict[str, object] | None = None, timeout_s: float = 10.0
) -> tuple[int, dict]:
    """One API request with the reservation key; (status, JSON body)."""
    request = urllib.request.Request(
        url,
        data=None if body is None else orjson.dumps(body),
        method=method,
        headers={"Authorization": f"Bearer {RESERVE_TOKEN}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as r:
            return r.status, orjson.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read() or b"{}")


def location(base: str, sku: str, loc: str = "WH-NJ") -> tuple[dict, dict]:
    """The availability answer for a SKU, and its entry for one location."""
    status, body = call("GET", f"{base}/v1/availability/{sku}?channel=online")
    assert status == 200, body
    entry = next((x for x in body["locations"] if x["location_id"] == loc), {})
    return body, entry


def reserve(base: str, rid: str, sku: str, qty: int, ttl_s: int = 3600) -> int:
    line = {"sku": sku, "quantity": qty, "location_id": "WH-NJ"}
    body = {"reservation_id": rid, "lines": [line], "ttl_seconds": ttl_s, "channel": "online"}
    return call("POST", f"{base}/v1/reservations", body)[0]


def start_stack(
    processes: Processes, settings: Settings, sku: str, on_hand: int
) -> tuple[ManagedProcess, ManagedProcess, str]:
    """A worker and the API on `settings`, once the worker has applied a count of `on_hand`
    units of `sku` at WH-NJ; returns them and the API's base URL."""
    processes.settings = settings
    worker = processes.start("worker")
    api = processes.start("api")
    base = f"http://127.0.0.1:{settings.api_port}"
    wait_http_ok(f"{base}/readyz", api)
    count = wms(f"{sku}-count", sku, "CYCLE_COUNT", on_hand)
    asyncio.run(produce(settings.kafka_bootstrap, settings.topic(topics.WMS), [count]))
    assert wait_until(lambda: location(base, sku)[1].get("on_hand") == on_hand, 90)
    return worker, api, base


def test_a_worker_killed_at_random_points_again_and_again_ends_with_the_truth(
    settings, processes, tmp_path
):
    rng = random.Random(808)
    truth = tmp_path / "truth.json"
    # Two hops and one by turns: each kind is killed while applying, and each takes over from
    # the other (a switch either way: what a two-hop normaliser published and its ledger hop
    # had not applied yet is applied by the one-hop worker's ledger hop).
    worker = start_worker(processes, "worker-0", hops=2)
    sim = simulate(
        settings, truth, "--rate", "250", "--duration", "14", "--skus", "30", "--seed", "808"
    )
    try:
        for i in range(1, 4):
            # Killed while applying: after its first applied batch, at a random moment.
            wait_applying(settings, worker, settings.worker_web_port)
            time.sleep(rng.uniform(0.0, 2.0))
            worker.stop(sig=signal.SIGKILL)
            worker = start_worker(processes, f"worker-{i}", hops=2 if i % 2 == 0 else 1)
        assert sim.wait(120) == 0, (tmp_path / "simulator.log").read_text()
    finally:
        stop_sim(sim)
    assert differences(settings, truth) == {}
    assert worker.alive(), worker.log_tail()


def test_two_workers_one_killed_the_other_takes_over(settings, processes, tmp_path):
    port_a, port_b = embedded.free_port(), embedded.free_port()
    worker_a = start_worker(processes, "worker-a", port_a)
    worker_b = start_worker(processes, "worker-b", port_b)
    truth = tmp_path / "truth.json"
    sim = simulate(
        settings, truth, "--rate", "250", "--duration", "10", "--skus", "30", "--seed", "809"
    )
    try:
        # Both apply movements, so each owns partitions of stock.movements.
        wait_applying(settings, worker_a, port_a)
        wait_applying(settings, worker_b, port_b)
        worker_a.stop(sig=signal.SIGKILL)
        # Traffic for 40 more SKUs, which lands on every partition of stock.movements (murmur2
        # of the SKU), after the kill: only worker-b is left to apply it.
        after = warehouse_traffic(f"tk{uuid.uuid4().hex[:6]}", skus=40, events=300, seed=9)
        asyncio.run(produce(settings.kafka_bootstrap, settings.topic(topics.WMS), after.messages))
        assert sim.wait(120) == 0, (tmp_path / "simulator.log").read_text()
    finally:
        stop_sim(sim)
    assert differences(settings, truth) == {}
    assert wait_until(lambda: served(settings.redis_url, list(after.expected)) == after.expected)
    assert worker_b.alive(), worker_b.log_tail()


class Shopper:
    """Reserves one unit after another (and confirms every third) in a thread, and remembers
    what the API acknowledged: those must survive whatever happens to Redis afterwards."""

    def __init__(self, base: str, sku: str) -> None:
        self.base, self.sku = base, sku
        self.tried: list[str] = []
        self.acked: dict[str, set[str]] = {}  # reservation id -> states it may be in now
        self.phase = 0  # bumped by the test at each restart
        self.acked_in_phase: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="shopper", daemon=True)

    def __enter__(self) -> Shopper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        while not self._stop.is_set():
            rid = f"{self.sku}-{len(self.tried)}"
            self.tried.append(rid)
            phase = self.phase
            with contextlib.suppress(OSError):  # no answer: not acknowledged
                if reserve(self.base, rid, self.sku, 1, ttl_s=3600) == 201:
                    self.acked[rid] = {"held"}
                    self.acked_in_phase[phase] = self.acked_in_phase.get(phase, 0) + 1
                    if len(self.tried) % 3 == 0:
                        self.acked[rid] = {"held", "confirmed"}  # unknown until answered
                        status, _ = call("POST", f"{self.base}/v1/reservations/{rid}/confirm")
                        if status == 200:
                            self.acked[rid] = {"confirmed"}
            time.sleep(0.02)


def test_redis_restarted_loses_no_reservation_and_no_count(
    settings, own_redis, processes, tmp_path
):
    settings = settings.model_copy(update={"redis_url": own_redis.url})
    sku = f"RR-{uuid.uuid4().hex[:8]}"
    worker, _, base = start_stack(processes, settings, sku, 10**5)

    truth = tmp_path / "truth.json"
    sim = simulate(
        settings, truth, "--rate", "250", "--duration", "12", "--skus", "30", "--seed", "810"
    )
    try:
        with Shopper(base, sku) as shopper:
            done = 0.0
            for sig in (signal.SIGTERM, signal.SIGKILL, None):
                # Restarted while the worker applies simulator traffic and reservations come in.
                done = wait_applying(settings, worker, settings.worker_web_port, done)
                wait_until(lambda: shopper.acked_in_phase.get(shopper.phase, 0) >= 5, 60)
                if sig is not None:
                    own_redis.restart(sig)
                    shopper.phase += 1
        assert sim.wait(120) == 0, (tmp_path / "simulator.log").read_text()
    finally:
        stop_sim(sim)
    # Reservations were acknowledged before each restart and after the last one.
    assert all(shopper.acked_in_phase.get(phase, 0) >= 5 for phase in range(3))

    assert differences(settings, truth) == {}  # the worker resumed by itself
    answers = {rid: call("GET", f"{base}/v1/reservations/{rid}") for rid in shopper.tried}
    states = {rid: body.get("state") for rid, (_, body) in answers.items()}
    lost = {
        rid: (want, states[rid], answers[rid][0], answers[rid][1].get("code"))
        for rid, want in shopper.acked.items()
        if states[rid] not in want
    }
    assert lost == {}
    # Every hold is there too: what is reserved is exactly the open reservations.
    holding = sum(1 for state in states.values() if state in ("held", "confirmed"))
    # What is reserved is exactly the open reservations, once reservations that a restart cut
    # mid-way (this shopper never asks again) have been abandoned: at most the takeover time
    # after they began, plus a sweep.
    assert holding >= len(shopper.acked)
    bound = settings.reservation_takeover_s + settings.sweep_interval_s + 1.0
    assert wait_until(lambda: location(base, sku)[1]["reserved"] == holding, bound), (
        location(base, sku)[1],
        holding,
    )
    assert worker.alive(), worker.log_tail()


def test_while_the_broker_is_away_the_api_serves_and_reservations_wait_for_it(
    settings, own_broker, own_redis, processes
):
    """The broker is frozen (SIGSTOP) for longer than the session timeout, then thawed (see
    the module docstring for why not stopped); nothing is restarted by hand."""
    bootstrap = own_broker.bootstrap
    settings = settings.model_copy(
        update={"kafka_bootstrap": bootstrap, "redis_url": own_redis.url}
    )
    sku = f"BA-{uuid.uuid4().hex[:8]}"
    worker, _, base = start_stack(processes, settings, sku, 50)
    wms_topic = settings.topic(topics.WMS)
    outbox = redis.Redis.from_url(own_redis.url)

    os.kill(own_broker.proc.pid, signal.SIGSTOP)
    try:
        before, _ = location(base, sku)
        assert reserve(base, f"{sku}-1", sku, 1) == 201
        assert call("POST", f"{base}/v1/reservations/{sku}-1/confirm")[0] == 200
        time.sleep(settings.session_timeout_s + 2)
        assert reserve(base, f"{sku}-2", sku, 2) == 201
        after, entry = location(base, sku)
        assert (entry["on_hand"], entry["reserved"]) == (50, 3)
        assert after["age_ms"] > before["age_ms"]  # nothing new from the worker: older
        # The worker has heard nothing from the broker for longer than the session timeout.
        assert after["behind_ms"] > settings.session_timeout_s * 1000, after
        assert outbox_len(outbox) == 3  # the three changes wait in Redis
    finally:
        os.kill(own_broker.proc.pid, signal.SIGCONT)

    # Back: the events arrive, and the worker goes on applying movements by itself.
    events = asyncio.run(read_all(bootstrap, settings.topic(topics.RESERVATIONS), 3, 90))
    assert sorted((e["reservation_id"], e["type"]) for e in events) == [
        (f"{sku}-1", "confirmed"),
        (f"{sku}-1", "held"),
        (f"{sku}-2", "held"),
    ]
    asyncio.run(produce(bootstrap, wms_topic, [wms(f"{sku}-in", sku, "RECEIVED", 5)]))
    assert wait_until(lambda: location(base, sku)[1].get("on_hand") == 55, 120)
    assert wait_until(lambda: location(base, sku)[0]["behind_ms"] == 0, 30)
    assert wait_until(lambda: outbox_len(outbox) == 0, 30)
    outbox.close()
    assert worker.alive(), worker.log_tail()


def redis_state(url: str) -> dict[str, object]:
    """Every key of a Redis with its value and expiry time, except what only says when or how
    often something was written (a SKU's write version `v` and time `ts`), the durability
    fence, the outbox (relayed to Kafka, and emptied by the relay) and the worker's progress
    (a report of the live worker, not state), the journals (a history of what the ledger saw,
    repeats and their order included: a rebuild sees the log anew) and the marks of changes'
    steps (only a pending change reads them; a rebuild restores none pending). Counters kept with
    HINCRBY (`rs:<loc>`, the ledger's stats) read 0 when absent, so a 0 is left out: a counter
    that went up and down again equals one never touched."""
    client = redis.Redis.from_url(url, decode_responses=True)
    skip_fields = {":ledger": keys.VERSION_FIELD, ":stock": keys.UPDATED_FIELD}
    state: dict[str, object] = {}
    try:
        for key in sorted(client.scan_iter(count=1000)):
            if key.endswith((":fence", ":outbox")) or ":{progress}:" in key or key == keys.feed():
                continue
            if ":j:" in key:  # a journal: what the ledger saw, and when (the rebuild, anew)
                continue
            if ":changed:" in key:  # what a change's steps did, for its retries: none is left
                continue  # pending after a rebuild, so none is retried
            kind = client.type(key)
            if kind == "hash":
                skip = next((f for end, f in skip_fields.items() if key.endswith(end)), None)
                counters = key.endswith(":stats")
                value: object = {
                    f: v
                    for f, v in client.hgetall(key).items()
                    if f != skip and not (v == "0" and (counters or f.startswith("rs:")))
                }
            elif kind == "zset":
                value = client.zrange(key, 0, -1, withscores=True)
            else:
                value = client.dump(key)
            state[key] = (kind, value, client.execute_command("PEXPIRETIME", key))
    finally:
        client.close()
    return state


def run_atp(settings: Settings, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "atp", *args],
        env={**os.environ, **settings.to_env()},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_a_wiped_redis_is_rebuilt_from_kafka_as_it_was(settings, own_redis, processes):
    settings = settings.model_copy(update={"redis_url": own_redis.url})
    run = uuid.uuid4().hex[:6]
    sku = f"RB-{run}"
    worker, api, base = start_stack(processes, settings, sku, 100)
    sc = warehouse_traffic(f"rb{run}", skus=12, events=400, seed=12)
    wms_topic = settings.topic(topics.WMS)
    asyncio.run(produce(settings.kafka_bootstrap, wms_topic, sc.messages))
    assert wait_for_counts(base, sc.expected) == sc.expected

    # Reservations in every state; shipments use up one whole and two in part, one of which is
    # then released (its record keeps what was shipped).
    reservations_made = [
        ("held", 2), ("ext", 2), ("conf", 3), ("rel", 1), ("part", 4), ("full", 2), ("cut", 2)
    ]  # fmt: skip
    for name, qty in reservations_made:
        assert reserve(base, f"{sku}-{name}", sku, qty) == 201
    reservations = f"{base}/v1/reservations/{sku}"
    assert call("POST", f"{reservations}-ext/extend", {"ttl_seconds": 7200})[0] == 200
    assert call("POST", f"{reservations}-conf/confirm")[0] == 200
    assert call("POST", f"{reservations}-full/confirm")[0] == 200
    assert call("DELETE", f"{reservations}-rel")[0] == 200
    # Transfers, of a held and of a confirmed reservation: where a rebuild must put them back.
    count = wms(f"{sku}-il", sku, "CYCLE_COUNT", 5, warehouse="WH-IL")
    asyncio.run(produce(settings.kafka_bootstrap, wms_topic, [count]))
    assert wait_until(lambda: location(base, sku, "WH-IL")[1].get("on_hand") == 5, 90)
    for name, qty in [("ext", 2), ("conf", 1)]:
        move = {"sku": sku, "from_location_id": "WH-NJ", "to_location_id": "WH-IL"}
        body = {"transfer_id": "t", **move, "quantity": qty}
        assert call("POST", f"{reservations}-{name}/transfer", body)[0] == 200
    # Changes of quantities: one up; one down, taken from where the transfer put a unit.
    for name, qty in [("held", 3), ("conf", 2)]:
        line = {"sku": sku, "quantity": qty, "location_id": "WH-NJ"}
        body = {"change_id": "c", "lines": [line]}
        assert call("PATCH", f"{reservations}-{name}", body)[0] == 200
    shipments = [
        wms(f"{sku}-s1", sku, "SHIPPED", 1, order_ref=f"{sku}-part"),
        wms(f"{sku}-s2", sku, "SHIPPED", 2, order_ref=f"{sku}-full"),
        wms(f"{sku}-s3", sku, "SHIPPED", 1, order_ref=f"{sku}-cut"),
    ]
    asyncio.run(produce(settings.kafka_bootstrap, wms_topic, shipments))
    assert wait_until(lambda: call("GET", f"{reservations}-full")[1].get("state") == "fulfilled")
    shipped = lambda: call("GET", f"{reservations}-cut")[1]["lines"][0]["fulfilled_quantity"]  # noqa: E731
    assert wait_until(lambda: shipped() == 1)
    assert call("DELETE", f"{reservations}-cut")[0] == 200
    client = redis.Redis.from_url(own_redis.url)
    assert wait_until(lambda: outbox_len(client) == 0)  # every change is in Kafka
    api.stop()  # the API stays away while Redis is rebuilt (README)
    before = redis_state(own_redis.url)
    # held 3 (changed) + confirmed 2 (3 - 1 moved, then changed to 2: the moved one given
    # back) + what the shipment left of part (3); extended moved all
    assert before[keys.stock(sku)][1]["rs:WH-NJ"] == "8"
    assert before[keys.stock(sku)][1]["rs:WH-IL"] == "2"
    assert before[keys.stock(sku)][1]["oh:WH-NJ"] == "96"
    assert before[keys.reservation(f"{sku}-cut")][1]["shipped"] == f'{{"{sku}":{{"WH-NJ":1}}}}'
    assert before[keys.shipped(sku)][1] == {f"{sku}-part@WH-NJ": "1"}

    client.flushall()
    client.close()
    # The worker goes on running: the rebuild is safe beside it (README).
    report = run_atp(settings, "rebuild")
    assert "7 restored" in report
    assert redis_state(own_redis.url) == before
    # Running it again changes nothing.
    report = run_atp(settings, "rebuild")
    assert "0 restored, 7 already there" in report
    assert " 0 applied" in report
    assert redis_state(own_redis.url) == before
    assert worker.alive(), worker.log_tail()


class RetryingClient(threading.Thread):
    """Reserves one unit after another; a request that gets no definite answer (503, an
    in-progress 409, no answer at all) is asked again, same id and body, until it does, as a
    routing engine would. Records each id's definite status and how long it heard 'in
    progress'."""

    def __init__(self, base: str, sku: str, name: str, stop: threading.Event) -> None:
        super().__init__(name=name, daemon=True)
        self.base, self.sku, self.stop = base, sku, stop
        self.answers: dict[str, int] = {}
        self.waited_in_progress: dict[str, float] = {}
        self.interrupted = 0  # answers that were not definite

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            rid = f"{self.name}-{n}"
            self.answers[rid] = self.ask(rid)

    def ask(self, rid: str) -> int:
        line = {"sku": self.sku, "quantity": 1, "location_id": "WH-NJ"}
        body = {"reservation_id": rid, "lines": [line], "ttl_seconds": 900, "channel": "online"}
        deadline, first_in_progress = time.monotonic() + 30, None
        while time.monotonic() < deadline:
            try:
                status, answer = call("POST", f"{self.base}/v1/reservations", body, 5.0)
            except OSError:  # no answer at all
                status, answer = 0, {}
            if status == 201 or answer.get("code") == "insufficient_stock":
                if first_in_progress is not None:
                    self.waited_in_progress[rid] = time.monotonic() - first_in_progress
                return status
            self.interrupted += 1
            if answer.get("code") == "reservation_in_progress":
                first_in_progress = first_in_progress or time.monotonic()
            time.sleep(min(float(answer.get("retry_after_s") or 0.2), 1.0))
        raise AssertionError(f"{rid}: no definite answer within 30 s")


def test_after_a_redis_stall_every_retry_gets_its_answer_and_no_hold_is_stranded(
    settings, own_redis, processes
):
    """Clients reserve while Redis is frozen for longer than the API's Redis timeout (2 s):
    their requests fail, and the commands already sent run when Redis thaws, their answers
    lost. Asked again, each gets the definite answer; 'in progress' lasts at most the takeover
    time (ATP_RESERVATION_TAKEOVER_S); the units reserved are exactly those of the
    reservations clients hold."""
    settings = settings.model_copy(update={"redis_url": own_redis.url})
    processes.settings = settings
    api = processes.start("api")
    base = f"http://127.0.0.1:{settings.api_port}"
    wait_http_ok(f"{base}/readyz", api)
    sku = f"ST-{uuid.uuid4().hex[:8]}"
    r = redis.Redis.from_url(own_redis.url)
    r.hset(keys.stock(sku), "oh:WH-NJ", 100_000)
    stop = threading.Event()
    clients = [RetryingClient(base, sku, f"c{i}", stop) for i in range(8)]
    try:
        for c in clients:
            c.start()
        time.sleep(1.5)
        assert own_redis.proc is not None
        os.kill(own_redis.proc.pid, signal.SIGSTOP)
        time.sleep(4.0)
        os.kill(own_redis.proc.pid, signal.SIGCONT)
        time.sleep(2.0)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(own_redis.proc.pid, signal.SIGCONT)  # type: ignore[union-attr]
        stop.set()
        for c in clients:
            c.join(60)
    assert not any(c.is_alive() for c in clients)
    assert sum(c.interrupted for c in clients) > 0  # the stall did interrupt requests
    held = {rid for c in clients for rid, status in c.answers.items() if status == 201}
    assert held and len(held) == sum(len(c.answers) for c in clients)  # 100,000 units: all fit
    waits = [w for c in clients for w in c.waited_in_progress.values()]
    assert max(waits, default=0.0) <= settings.reservation_takeover_s + 1.5, waits
    reserved = int(r.hget(keys.stock(sku), "rs:WH-NJ") or 0)
    holds = {k.decode(): int(v) for k, v in r.hgetall(keys.holds(sku)).items()}
    r.close()
    assert reserved == len(held)
    assert holds == {f"{rid}@WH-NJ": 1 for rid in held}


def consumer_lag(worker_metrics_url: str) -> float:
    """Records the worker has not committed, summed over its partitions."""
    with urllib.request.urlopen(worker_metrics_url) as r:
        text = r.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("atp_consumer_lag{")
    )


def test_a_full_redis_refuses_holds_serves_reads_and_then_everything_catches_up(
    settings, own_redis, processes
):
    """Redis at maxmemory (noeviction): the worker applies nothing and commits nothing (so no
    movement is lost), the API answers reads and refuses holds with 503 store_full; once memory
    is freed both go on by themselves and the counts come out exact."""
    settings = settings.model_copy(update={"redis_url": own_redis.url})
    sku = f"OM-{uuid.uuid4().hex[:8]}"
    worker, _, base = start_stack(processes, settings, sku, 100)
    lag_url = f"http://127.0.0.1:{settings.worker_web_port}/metrics"
    r = redis.Redis.from_url(own_redis.url)
    junk = 200  # 10 MB, then a limit 5 MB below what is used: full, whatever small frees
    for i in range(junk):
        r.set(f"atp:test:junk:{i}", "x" * 50_000)
    r.config_set("maxmemory", int(r.info("memory")["used_memory"]) - 5_000_000)
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        r.set("atp:test:one-more", "x")
    wms_topic = settings.topic(topics.WMS)
    receipts = [wms(f"{sku}-r{i}", sku, "RECEIVED", 1) for i in range(50)]
    asyncio.run(produce(settings.kafka_bootstrap, wms_topic, receipts))
    time.sleep(3)  # time to apply, were there room
    try:
        assert location(base, sku)[1]["on_hand"] == 100  # read, and nothing applied
        status, problem = call(
            "POST",
            f"{base}/v1/reservations",
            {"reservation_id": f"{sku}-full", "lines": [{"sku": sku, "quantity": 1}]},
        )
        assert (status, problem.get("code")) == (503, "store_full"), problem
        assert consumer_lag(lag_url) > 0  # the receipts are not committed
    finally:
        r.delete(*(f"atp:test:junk:{i}" for i in range(junk)))
    assert wait_until(lambda: location(base, sku)[1]["on_hand"] == 150, 60)
    assert wait_until(lambda: consumer_lag(lag_url) == 0, 60)
    assert reserve(base, f"{sku}-after", sku, 1) == 201
    r.close()
    assert worker.alive(), worker.log_tail()
    log = (processes.log_dir / "worker.log").read_text()
    assert "store_full" not in log and "out of memory" in log  # retried with a reason
    assert "Traceback" not in log  # as an expected condition, not a bug
