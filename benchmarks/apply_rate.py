"""How fast does the worker turn warehouse messages into ledger state, against its baselines?

    .venv/bin/python benchmarks/apply_rate.py [--messages N] [--skus K] [--no-topic-send-floor]
                                              [--py-spy [PATH]] [--spy-seconds S]
                                              [--quix-python PATH [--quix-also-no-changelog]
                                               [--quix-commit-every N]]

Starts its own embedded broker (Tansu) and Redis on free 127.0.0.1 ports, pre-produces N WMS
messages, and measures on that one broker, in one run:

  aiokafka ceiling   a plain aiokafka consumer (no group) reading the N messages
  faust floor        a faust agent that only takes batches and acks them (one hop)
  faust floor 2 hops a faust agent forwarding each message to a second topic, and a second agent
                     that only acks: the worker's shape (normalise, then apply) with no work
  atp worker         `python -m stream`: normalise stock.wms -> stock.movements, apply the
                     movements to the ledger in Redis
  atp worker, 1 hop  the same with ATP_HOPS=1: stock.wms applied straight to the ledger, the
                     movements still published to stock.movements (stream/direct.py)
  quix peer          with --quix-python PATH (an interpreter that has quixstreams): the same
                     adapter and fold as a Quix Streams app, state in its own store, in one hop
                     and in two (group_by SKU); see benchmarks/quix_peer.py

With --py-spy, py-spy records the worker for S seconds from its first applied batch and the
top frames are printed (py-spy pauses the worker to sample: that run's rate is lower). Importable:
`measure(build_parser().parse_args([...]))` returns an ApplyResult (benchmarks/run_all.py).

Group-join time is excluded: rates run from the first message in hand to the last (see
benchmarks/README.md). Every process started here is stopped by its PID in a `finally` block.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition  # noqa: E402
from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # noqa: E402

from atp.kafka import topics  # noqa: E402
from atp.settings import Settings  # noqa: E402
from atp.store import keys  # noqa: E402
from atp.tools import embedded  # noqa: E402
from atp.tools.embedded import ManagedProcess  # noqa: E402
from benchmarks import profiling, quix_peer  # noqa: E402

WAREHOUSES = ("WH-NJ", "WH-IL", "WH-CA")  # the warehouse ids of config/network.yaml
PARTITIONS = Settings().partitions  # what the project creates its topics with
SESSION_TIMEOUT_S = 10.0  # Tansu joins a group in about half of it (DESIGN.md)
POLL_S = 0.05  # how often the worker's /metrics page is read


# --------------------------------------------------------------------------------------------
# Messages


def wms_messages(
    n: int, skus: int, seed: int = 7, run: str | None = None
) -> tuple[list[tuple[bytes, bytes]], int]:
    """N valid WMS messages (key = warehouse id, as the simulator sends them) and the net qty.

    Event times are strictly increasing, 1 ms apart, ending a minute ago (well inside the
    ledger's retention window), so every message is a fresh delta the ledger applies. Event ids
    are unique per `run` (default: the current second).
    """
    rng = random.Random(seed)
    run = run or f"{int(time.time()):x}"
    start_ms = time.time_ns() // 1_000_000 - n - 60_000
    out: list[tuple[bytes, bytes]] = []
    net = 0
    for i in range(n):
        wh = rng.choice(WAREHOUSES)
        if rng.random() < 0.6:
            kind, qty = "RECEIVED", rng.randint(1, 50)
            net += qty
        else:
            kind, qty = "SHIPPED", rng.randint(1, 3)
            net -= qty
        at = datetime.fromtimestamp((start_ms + i) / 1000, UTC).isoformat(timespec="milliseconds")
        body = {
            "event_id": f"BENCH-{run}-{i:09d}",
            "warehouse_id": wh,
            "sku": f"SKU-{rng.randrange(skus):06d}",
            "kind": kind,
            "qty": qty,
            "occurred_at": at.replace("+00:00", "Z"),
            "order_ref": None,
            "eta": None,
        }
        out.append((wh.encode(), json.dumps(body, separators=(",", ":")).encode()))
    return out, net


# Tansu's DescribeConfigs returns only the settings a topic was created with, and Quix Streams
# derives its changelog and repartition topics from the source's retention (KeyError without).
RETENTION = {"retention.ms": "-1", "retention.bytes": "-1"}  # keep everything, as Tansu does


async def create_topics(bootstrap: str, names: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        new = [NewTopic(t, PARTITIONS, 1, topic_configs=RETENTION) for t in names]
        await admin.create_topics(new)
    finally:
        await admin.close()


async def produce(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]]) -> float:
    # acks=1 and no idempotence: Tansu has no idempotent producer (DESIGN.md).
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks=1, enable_idempotence=False, linger_ms=5
    )
    await producer.start()
    try:
        started = time.perf_counter()
        for key, value in messages:
            await producer.send(topic, value=value, key=key)
        await producer.flush()
        return time.perf_counter() - started
    finally:
        await producer.stop()


# --------------------------------------------------------------------------------------------
# a. The aiokafka ceiling


async def aiokafka_ceiling(bootstrap: str, topic: str, n: int) -> float:
    """Seconds for a group-less consumer to read n messages, from its first fetch to the last."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(PARTITIONS)])
        await consumer.seek_to_beginning()
        seen = 0
        started = time.perf_counter()
        deadline = started + 60
        while seen < n:
            if time.perf_counter() > deadline:
                raise RuntimeError(f"aiokafka read only {seen} of {n} messages in 60 s")
            batches = await consumer.getmany(timeout_ms=1000, max_records=100_000)
            seen += sum(len(records) for records in batches.values())
        return time.perf_counter() - started
    finally:
        await consumer.stop()


# --------------------------------------------------------------------------------------------
# b. The faust floor: runs in a child process (`--_floor`), reports to a JSON file


def floor_child(args: argparse.Namespace) -> None:
    import faust

    n: int = args.messages
    out = Path(args._out)
    settings = Settings()
    # The worker's transport (`--_worker_shape`): its consumer settings (fetch wait, records per
    # poll) and its batched producer (stream.forward). Otherwise faust's defaults and topic.send.
    shape = args._worker_shape
    app = faust.App(
        args._group,
        broker=f"kafka://{args._bootstrap}",
        value_serializer="raw",
        key_serializer="raw",
        store="memory://",
        datadir=str(out.parent / f"{args._group}-data"),
        web_enabled=False,
        broker_session_timeout=SESSION_TIMEOUT_S,
        broker_heartbeat_interval=1.0,
        consumer_auto_offset_reset="earliest",
        topic_partitions=PARTITIONS,
        topic_replication_factor=1,
        processing_guarantee="at_least_once",
        **(
            {
                "broker_max_poll_records": settings.max_poll_records,
                "consumer_max_fetch_size": settings.max_partition_fetch_bytes,
            }
            if shape
            else {}
        ),
    )
    forwarder = None
    if shape:
        from benchmarks.faust_fetch import use_fetch_wait
        from stream.forward import Forwarder

        use_fetch_wait(app, settings.fetch_max_wait_ms)
        forwarder = Forwarder(
            {"bootstrap_servers": args._bootstrap},
            client_id=args._group,
            max_batch_bytes=settings.forward_batch_bytes,
        )
    # Times (perf_counter) of the first event of hop 1, the last of hop 1, the first of hop 2.
    marks: dict[str, float] = {}
    counts = {"hop1": 0, "hop2": 0}

    def seen(hop: str, batch: int) -> None:
        now = time.perf_counter()
        marks.setdefault("first", now)
        marks.setdefault(f"{hop}_first", now)
        counts[hop] += batch
        if counts[hop] == n:
            marks[f"{hop}_done"] = now
        if counts[f"hop{args._hops}"] == n:
            first = marks["first"]
            rel = {k: round(v - first, 4) for k, v in marks.items()}
            tmp = out.with_suffix(".tmp")
            tmp.write_text(json.dumps({"seconds": now - first, "marks": rel, "count": n}))
            tmp.replace(out)  # atomic: the parent never reads half a file

    async def forward(events: list[Any], to: faust.types.TopicT) -> None:
        if forwarder is not None:
            from stream.records import Record

            name = to.get_topic_name()
            await forwarder.send([Record(name, e.message.key, e.message.value) for e in events])
        else:
            sent = [await to.send(key=e.message.key, value=e.message.value) for e in events]
            await asyncio.gather(*sent)

    def agent(topic: faust.types.TopicT, hop: str, forward_to: faust.types.TopicT | None) -> None:
        async def take(stream):  # type: ignore[no-untyped-def]
            async for events in stream.noack_take(settings.batch_max, within=settings.batch_wait_s):
                if forward_to is not None:
                    await forward(events, forward_to)
                for event in events:
                    await stream.ack(event)
                seen(hop, len(events))

        app.agent(topic, name=hop)(take)

    source = app.topic(args._topic)
    if args._hops == 1:
        agent(source, "hop1", None)
    else:
        mid = app.topic(args._mid)
        agent(source, "hop1", mid)
        agent(mid, "hop2", None)

    worker = faust.Worker(app, loglevel="WARNING", quiet=True)
    worker.execute_from_commandline()


def run_floor(
    bootstrap: str,
    topic: str,
    n: int,
    hops: int,
    work: Path,
    procs: list[ManagedProcess],
    *,
    worker_shape: bool = False,
    env: dict[str, str] | None = None,
) -> tuple[float, float, dict[str, float]]:
    """(seconds from first event to last, seconds from start to first event, timeline).

    worker_shape: consume and forward as the worker does (the worker's fetch wait through
    benchmarks.faust_fetch, stream.forward, the ATP_* settings in `env`), instead of with
    faust's defaults and `topic.send`.
    """
    tag = f"{hops}{'w' if worker_shape else ''}"
    group = f"bench-floor{tag}-{os.getpid()}"
    out = work / f"{group}.json"
    mid = f"bench.floor{tag}.mid.{os.getpid()}"
    if hops == 2:
        asyncio.run(create_topics(bootstrap, [mid]))
    argv = [sys.executable, str(Path(__file__).resolve()), "--_floor", "--messages", str(n)]
    argv += ["--_bootstrap", bootstrap, "--_topic", topic, "--_group", group, "--_out", str(out)]
    argv += ["--_hops", str(hops), "--_mid", mid] + (["--_worker_shape"] if worker_shape else [])
    spawned = time.perf_counter()
    proc = embedded.spawn(
        f"faust-floor-{tag}", argv, work / "logs", env={**os.environ, **(env or {})}
    )
    procs.append(proc)
    try:
        deadline = spawned + 60 + n / 1000
        while not out.exists():
            if not proc.alive():
                raise RuntimeError(f"faust floor exited early:\n{proc.log_tail()}")
            if time.perf_counter() > deadline:
                raise RuntimeError(f"faust floor did not finish:\n{proc.log_tail()}")
            time.sleep(0.05)
        finished = time.perf_counter()
        result = json.loads(out.read_text())
        seconds = float(result["seconds"])
        return seconds, finished - spawned - seconds, result["marks"]
    finally:
        proc.stop(grace_s=15)


# --------------------------------------------------------------------------------------------
# c. The worker


WORKER_SERIES = (
    "atp_movements_consumed_total",  # movements the normaliser produced (hop 1)
    "atp_ledger_outcomes_total",  # movements folded into the ledger in Redis (hop 2)
    "atp_rejected_total",
    "atp_apply_seconds_sum",  # time spent in LedgerStore.apply (read, fold, write)
    "atp_apply_seconds_count",  # batches applied
)


def worker_metrics(metrics_url: str) -> dict[str, float]:
    """The WORKER_SERIES, summed over their labels, from the worker's /metrics page."""
    with urllib.request.urlopen(metrics_url, timeout=2) as resp:
        text = resp.read().decode()
    totals = dict.fromkeys(WORKER_SERIES, 0.0)
    for line in text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in totals:
            totals[name] += float(line.rsplit(" ", 1)[1])
    return totals


async def redis_totals(redis_url: str) -> tuple[int, int]:
    """(applied deltas kept in every pair's ledger, sum of on-hand served) from Redis itself."""
    import orjson

    from atp.store.client import client_from_url

    client = client_from_url(redis_url)
    deltas = on_hand = 0
    try:
        async for key in client.scan_iter(match=f"{keys.PREFIX}:*", count=1000):
            if not key.endswith(b":stock"):
                continue  # e.g. the durable acker's fence counter
            raw = await client.hgetall(key)
            for name, value in raw.items():
                if name.startswith(keys.ON_HAND_PREFIX.encode()):
                    on_hand += int(value)
        # v3: each pair's kept deltas (its `d` sorted set; the summary's count field may be
        # left empty), or a --baseline tree's v2 JSON states
        async for key in client.scan_iter(match="atp:v*:{*}:ledger", count=1000):
            v2 = key.startswith(f"{keys.PREFIX}:".encode())
            sku = key.decode().split("{", 1)[1].rsplit("}", 1)[0]
            for name, value in (await client.hgetall(key)).items():
                if not name.startswith(keys.LEDGER_PREFIX.encode()):
                    continue
                if v2:
                    deltas += len(orjson.loads(value)[4])
                else:
                    loc = name.decode()[len(keys.LEDGER_PREFIX) :]
                    deltas += await client.zcard(keys.pair_keys(sku, loc)[0])
    finally:
        await client.aclose()
    return deltas, on_hand


def probe_message(sku: str) -> bytes:
    """A WMS RECEIVED of 1 unit of `sku` at the first warehouse, happening now: a latency probe
    (use a SKU of its own per probe, so its key appearing in Redis means it was applied)."""
    at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    body = {"event_id": f"BENCH-{sku}", "warehouse_id": WAREHOUSES[0], "sku": sku}
    body |= {"kind": "RECEIVED", "qty": 1, "occurred_at": at}
    return json.dumps(body).encode()


async def trickle_latency(
    bootstrap: str, topic: str, redis_url: str, probes: int, gap_s: float = 0.3
) -> list[float]:
    """Seconds from producing one WMS message (nothing else in flight) to its SKU in Redis.

    Each probe is a RECEIVED of 1 unit for a SKU of its own, sent `gap_s` after the last one
    landed, so every hop of the worker meets an idle fetch: this is the freshness at low rates.
    """
    from atp.store.client import client_from_url

    if probes < 1:
        return []
    run = f"{int(time.time()):x}"
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, enable_idempotence=False)
    client = client_from_url(redis_url)
    await producer.start()
    seconds = []
    try:
        for i in range(probes):
            sku = f"LAT-{run}-{i:03d}"
            started = time.perf_counter()
            await producer.send_and_wait(topic, probe_message(sku), key=WAREHOUSES[0].encode())
            while not await client.exists(keys.stock(sku)):
                if time.perf_counter() - started > 30:
                    raise RuntimeError(f"probe {sku} not in Redis after 30 s")
                await asyncio.sleep(0.002)
            seconds.append(time.perf_counter() - started)
            await asyncio.sleep(gap_s)
    finally:
        await producer.stop()
        await client.aclose()
    return seconds


def spawn_worker(
    bootstrap: str,
    redis_url: str,
    prefix: str,
    work: Path,
    procs: list[ManagedProcess],
    *,
    tag: str = "",
    env: dict[str, str] | None = None,
    tree: Path | None = None,
) -> tuple[ManagedProcess, str]:
    """Start `atp worker` (topics under `prefix`, its own group and web port); the process is
    appended to `procs` at once, so the caller's `finally` stops it. Returns it and its
    /metrics URL. `tree` runs the worker from another source tree instead of this one."""
    # The worker does not create its data dir's parent (faust mkdirs one level): see README.
    (work / "worker-data").mkdir(parents=True, exist_ok=True)
    web_port = embedded.free_port()
    full_env = {
        **os.environ,
        "ATP_KAFKA_BOOTSTRAP": bootstrap,
        "ATP_REDIS_URL": redis_url,
        "ATP_TOPIC_PREFIX": prefix,
        "ATP_GROUP_ID": f"bench-worker-{os.getpid()}{tag}",
        "ATP_WORKER_WEB_HOST": "127.0.0.1",
        "ATP_WORKER_WEB_PORT": str(web_port),
        "ATP_DATA_DIR": str(work / "worker-data"),
        "ATP_NETWORK_FILE": str(ROOT / "config" / "network.yaml"),
        "ATP_SESSION_TIMEOUT_S": str(SESSION_TIMEOUT_S),
        "ATP_LOG_LEVEL": "warning",
        **(env or {}),
    }
    argv = [sys.executable, "-m", "stream"]
    if tree is not None:
        # Another commit's code, first on the path (`python -m` would put the working
        # directory first); trees older than `python -m stream` run their command line's.
        old = (Path(tree) / "atp" / "cli.py").exists()
        module, args = ("atp.cli", ["worker"]) if old else ("stream", [])
        run = "import runpy, sys; sys.path.insert(0, sys.argv.pop(1)); "
        run += f"runpy.run_module({module!r}, run_name='__main__', alter_sys=True)"
        argv = [sys.executable, "-c", run, str(tree), *args]
    proc = embedded.spawn(f"worker{tag}", argv, work / "logs", full_env)
    procs.append(proc)
    return proc, f"http://127.0.0.1:{web_port}/metrics"


def run_worker(
    bootstrap: str,
    redis_url: str,
    messages: list[tuple[bytes, bytes]],
    work: Path,
    procs: list[ManagedProcess],
    *,
    tag: str = "",
    env: dict[str, str] | None = None,
    probes: int = 0,
    tree: Path | None = None,
    py_spy: str | None = None,
    spy_seconds: float = 10.0,
) -> tuple[float, float, dict[str, float], list[float], Path | None]:
    """Like run_floor, plus `probes` trickle latencies (`trickle_latency`) after the run, and
    the path of a py-spy profile (raw collapsed stacks) of the worker taken from its first
    applied batch for `spy_seconds`, when `py_spy` names the py-spy binary (else None).

    The run starts when the polls first see movements counted (the first batch in hand). Each
    `tag` gets its own topics and group; `env` adds to the worker's environment; `tree` runs
    the worker from another source tree (its `atp` and `stream` packages) instead of this one.
    """
    n = len(messages)
    prefix = f"bench{os.getpid()}{tag}."
    settings = Settings(kafka_bootstrap=bootstrap, topic_prefix=prefix)
    asyncio.run(topics.ensure_topics(settings))
    asyncio.run(produce(bootstrap, settings.topic(topics.WMS), messages))
    spawned_ms = time.time() * 1000
    proc, url = spawn_worker(bootstrap, redis_url, prefix, work, procs, tag=tag, env=env, tree=tree)
    spy = None
    try:
        normalised = folded = rejected = 0
        seen_ms: dict[str, float] = {}  # wall-clock ms of what the polls saw first
        deadline = time.monotonic() + 90 + n / 1000
        last: dict[str, float] = {}
        while folded < n:
            if not proc.alive():
                raise RuntimeError(f"the worker exited:\n{proc.log_tail()}")
            if rejected:
                raise RuntimeError(f"the worker rejected {rejected} benchmark messages")
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the worker folded only {folded} of {n} movements ({normalised} normalised)"
                )
            time.sleep(POLL_S)
            with contextlib.suppress(OSError):
                last = worker_metrics(url)
                normalised, folded, rejected = (int(last[k]) for k in WORKER_SERIES[:3])
                now_ms = time.time() * 1000
                if normalised:
                    seen_ms.setdefault("hop1_first", now_ms)
                if folded:
                    seen_ms.setdefault("hop2_first", now_ms)
                    if py_spy and spy is None:
                        spy = profiling.start_py_spy(py_spy, proc.pid, spy_seconds, work, procs)
                if normalised == n:
                    seen_ms.setdefault("hop1_done", now_ms)
        done_ms = time.time() * 1000
        if folded != n:
            raise RuntimeError(f"the worker folded {folded} movements, expected {n}")
        wms = settings.topic(topics.WMS)
        latencies = asyncio.run(trickle_latency(bootstrap, wms, redis_url, probes))
        profile = profiling.finish_py_spy(spy, spy_seconds) if spy else None
    finally:
        if spy is not None:
            spy.stop(grace_s=5)
        proc.stop(grace_s=15)
    # From the first batch the worker handled (the first movements it counted, seen by the
    # polls, each 50 ms): the records on stock.movements carry their source message's time, so
    # their first timestamp would count the worker's start and group join too.
    start_ms = seen_ms["hop1_first"]
    marks = {k: round((v - start_ms) / 1000, 3) for k, v in seen_ms.items()}
    batches = last["atp_apply_seconds_count"]
    print(
        f"atp worker: {batches:.0f} batches applied, {n / max(batches, 1):.0f} movements each "
        f"on average, {last['atp_apply_seconds_sum']:.2f} s in LedgerStore.apply in all"
    )
    return (done_ms - start_ms) / 1000, (start_ms - spawned_ms) / 1000, marks, latencies, profile


# --------------------------------------------------------------------------------------------


CEILING = "aiokafka ceiling (no group)"
FLOOR1 = "faust floor, 1 hop (take+ack)"
FLOOR2 = "faust floor, 2 hops (topic.send)"
FLOOR2W = "faust floor, 2 hops (worker transport)"
WORKER = "atp worker (normalise + apply)"
EVERYSEC = "atp worker, Redis appendfsync everysec"
ONE_HOP = "atp worker, 1 hop (ATP_HOPS=1)"
QUIX1 = "quix peer, 1 hop (state by pair)"
QUIX2 = "quix peer, 2 hops (group_by SKU)"
QUIX1_NOCL = "quix peer, 1 hop, no changelog"
QUIX2_NOCL = "quix peer, 2 hops, no changelog"
QUIX_PATHS = (QUIX1, QUIX2, QUIX1_NOCL, QUIX2_NOCL)


@dataclass
class ApplyResult:
    n: int
    seconds: dict[str, float]  # path -> seconds for the n messages (CEILING, FLOOR1, ...)
    latencies: list[float]  # trickle latencies after the worker's run, seconds
    verified: bool  # Redis held exactly what was sent, for the worker and every baseline
    profile: Path | None = None  # py-spy raw stacks of the worker, when asked for
    one_hop_latencies: list[float] = field(default_factory=list)  # the same, ATP_HOPS=1

    def rate(self, path: str) -> float:
        return self.n / self.seconds[path]


def parse_worker_env(pairs: list[str]) -> dict[str, str]:
    """`--worker-env ATP_X=V` (or OTEL_X=V) options as a dict; ValueError for anything else."""
    env = dict(kv.split("=", 1) for kv in pairs if "=" in kv)
    if len(env) != len(pairs) or not all(k.startswith(("ATP_", "OTEL_")) for k in env):
        raise ValueError("--worker-env takes ATP_NAME=VALUE or OTEL_NAME=VALUE")
    return env


def start_stack(work: Path, procs: list[ManagedProcess]) -> tuple[str, str]:
    """A broker and a Redis (AOF on, as the worker runs in production: it acks only after
    WAITAOF) on free 127.0.0.1 ports, appended to `procs`; (bootstrap, redis URL)."""
    broker_port, redis_port = embedded.free_port(), embedded.free_port()
    procs.append(embedded.start_broker(broker_port, work / "logs"))
    procs.append(embedded.start_redis(redis_port, work / "redis", work / "logs"))
    return f"127.0.0.1:{broker_port}", f"redis://127.0.0.1:{redis_port}/0"


def stop_all(procs: list[ManagedProcess], work: Path, *, keep_logs: bool) -> None:
    """Stop every process started (by PID, last first); delete `work`, or keep and name its logs."""
    for proc in reversed(procs):
        proc.stop(grace_s=15)
    if keep_logs:
        print(f"logs kept in {work / 'logs'}", file=sys.stderr)
    else:
        shutil.rmtree(work, ignore_errors=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=50_000, help="N messages (50000)")
    parser.add_argument("--skus", type=int, default=1000, help="K distinct SKUs (1000)")
    parser.add_argument(
        "--probes", type=int, default=10, help="trickle-latency probes after the worker run (10)"
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="also run the worker from this source tree (e.g. `git archive <commit>` unpacked), "
        "into Redis database 1, 2, ..., for a before/after on one broker in one run (repeatable)",
    )
    parser.add_argument(
        "--worker-env",
        action="append",
        default=[],
        metavar="ATP_X=V",
        help="a setting for the worker and the worker-shaped floor, e.g. "
        "ATP_FETCH_MAX_WAIT_MS=1500 (repeatable)",
    )
    parser.add_argument(
        "--no-topic-send-floor",
        action="store_true",
        help="skip the 2-hop floor with faust's topic.send (the slowest baseline, ~25 s)",
    )
    parser.add_argument(
        "--py-spy",
        metavar="PATH",
        nargs="?",
        const="",
        help="profile the worker with py-spy "
        "(binary PATH, or found on the PATH, in .venv/bin or /tmp/spyvenv/bin)",
    )
    parser.add_argument("--spy-seconds", type=float, default=10.0, help="py-spy duration (10)")
    parser.add_argument(
        "--no-one-hop",
        action="store_true",
        help="skip the worker run with ATP_HOPS=1 (source topics straight into the ledger)",
    )
    parser.add_argument(
        "--quix-python",
        metavar="PATH",
        help="also run the Quix Streams peer (benchmarks/quix_peer.py) with this interpreter, "
        "one that can import quixstreams: .venv-quix/bin/python after `make quix-venv`",
    )
    parser.add_argument(
        "--quix-also-no-changelog",
        action="store_true",
        help="run the Quix peer once more without its changelog topics (state only in RocksDB)",
    )
    parser.add_argument(
        "--quix-commit-every",
        type=int,
        default=0,
        metavar="N",
        help="the Quix peer checkpoints (commit, changelog, RocksDB) every N messages "
        "(default: Quix's own, every 5 s)",
    )
    parser.add_argument(
        "--also-everysec",
        action="store_true",
        help="run the worker once more with Redis at appendfsync everysec (the cost of always)",
    )
    hidden = argparse.SUPPRESS
    parser.add_argument("--_floor", action="store_true", help=hidden)
    for name in ("--_bootstrap", "--_topic", "--_group", "--_out", "--_mid"):
        parser.add_argument(name, help=hidden)
    parser.add_argument("--_hops", type=int, default=1, help=hidden)
    parser.add_argument("--_worker_shape", action="store_true", help=hidden)
    return parser


def quix_runs(
    args: argparse.Namespace, bootstrap: str, topic: str, n: int, work: Path, procs: list[Any]
) -> list[tuple[str, Any]]:
    """The Quix peer's paths (benchmarks/quix_peer.py), none without --quix-python."""
    if args.quix_python is None:
        return []
    version = quix_peer.quix_available(args.quix_python)
    if version is None:
        raise ValueError(f"--quix-python {args.quix_python} cannot import quixstreams")
    every = args.quix_commit_every
    checkpoints = f"every {every} messages" if every else "every 5 s (Quix's default)"
    print(f"quix peer: quixstreams {version} ({args.quix_python}), checkpoints {checkpoints}")
    shapes = [(QUIX1, 1, True), (QUIX2, 2, True)]
    if args.quix_also_no_changelog:
        shapes += [(QUIX1_NOCL, 1, False), (QUIX2_NOCL, 2, False)]
    return [
        (
            name,
            lambda hops=hops, changelog=changelog: quix_peer.run_quix_peer(
                args.quix_python,
                bootstrap,
                topic,
                n,
                work,
                procs,
                hops=hops,
                changelog=changelog,
                commit_every=args.quix_commit_every,
                session_timeout_s=SESSION_TIMEOUT_S,
            ),
        )
        for name, hops, changelog in shapes
    ]


def check_quix(name: str, result: dict[str, Any], n: int, net_qty: int) -> bool:
    """Every movement applied once and the pairs' on-hand summing to what was sent."""
    ok = result["applied"] == n and result["rejected"] == 0 and result["on_hand"] == net_qty
    print(
        f"State check, {name}: {result['applied']} applied of {n}, {result['rejected']} "
        f"rejected, on-hand sum {result['on_hand']} over {result['pairs']} pairs (expected "
        f"{net_qty}): {'OK' if ok else 'MISMATCH'}"
    )
    return ok


def measure(args: argparse.Namespace) -> ApplyResult:
    """Every path on one broker and Redis that it starts, and stops before it returns."""
    if args.messages < 1 or args.skus < 1 or args.probes < 0:
        raise ValueError("--messages and --skus must be positive, --probes not negative")
    worker_env = parse_worker_env(args.worker_env)
    spy_bin = None
    if args.py_spy is not None:
        spy_bin = profiling.find_py_spy(args.py_spy or None)
        if spy_bin is None:
            print("py-spy not found: no profile (see benchmarks/profiling.py)", flush=True)

    n = args.messages
    work = Path(tempfile.mkdtemp(prefix="atp-bench-"))
    procs: list[ManagedProcess] = []
    ok = False
    try:
        bootstrap, redis_url = start_stack(work, procs)
        messages, net_qty = wms_messages(n, args.skus)
        topic = f"bench.wms.{os.getpid()}"
        asyncio.run(create_topics(bootstrap, [topic]))
        produce_s = asyncio.run(produce(bootstrap, topic, messages))
        print(f"produced {n} WMS messages ({args.skus} SKUs) in {produce_s:.2f} s", flush=True)

        ceiling_s = min(asyncio.run(aiokafka_ceiling(bootstrap, topic, n)) for _ in range(3))
        print(f"aiokafka ceiling: {ceiling_s:.3f} s (best of 3)", flush=True)
        timings = {CEILING: ceiling_s}
        latencies: list[float] = []
        one_hop_latencies: list[float] = []
        profile: Path | None = None
        baselines = {
            f"atp worker, {tree.resolve().name}": (tree.resolve(), f"{redis_url[:-2]}/{db}")
            for db, tree in enumerate(args.baseline, start=1)
        }
        runs = [
            (
                name,
                lambda tree=tree, url=url, db=db: run_worker(
                    bootstrap, url, messages, work, procs, tag=f"-b{db}", env=worker_env, tree=tree
                ),
            )
            for db, (name, (tree, url)) in enumerate(baselines.items(), start=1)
        ]
        if not args.no_one_hop:
            # The same worker with ATP_HOPS=1 (stream/direct.py), into its own database.
            url = f"{redis_url[:-2]}/8"
            baselines[ONE_HOP] = (ROOT, url)
            one_hop_env = {**worker_env, "ATP_HOPS": "1"}
            runs.insert(
                0,
                (
                    ONE_HOP,
                    lambda url=url: run_worker(
                        bootstrap,
                        url,
                        messages,
                        work,
                        procs,
                        tag="-1h",
                        env=one_hop_env,
                        probes=args.probes,
                    ),
                ),
            )
        if args.also_everysec:
            # The same worker again, into its own database, with Redis switched to fsync once a
            # second: what `appendfsync always` (as the service runs Redis) costs the worker.
            url = f"{redis_url[:-2]}/9"
            baselines[EVERYSEC] = (ROOT, url)

            def everysec_run() -> Any:
                import redis

                redis.Redis.from_url(redis_url).config_set("appendfsync", "everysec")
                return run_worker(bootstrap, url, messages, work, procs, tag="-es", env=worker_env)

            runs.append((EVERYSEC, everysec_run))
        floors = [(FLOOR1, lambda: run_floor(bootstrap, topic, n, 1, work, procs))]
        if not args.no_topic_send_floor:
            floors.append((FLOOR2, lambda: run_floor(bootstrap, topic, n, 2, work, procs)))
        floors.append(
            (
                FLOOR2W,
                lambda: run_floor(
                    bootstrap, topic, n, 2, work, procs, worker_shape=True, env=worker_env
                ),
            )
        )
        peers = quix_runs(args, bootstrap, topic, n, work, procs)
        quix_results: dict[str, dict[str, Any]] = {}
        for name, run in (
            *floors,
            *peers,
            (
                WORKER,
                lambda: run_worker(
                    bootstrap,
                    redis_url,
                    messages,
                    work,
                    procs,
                    env=worker_env,
                    probes=args.probes,
                    py_spy=spy_bin,
                    spy_seconds=args.spy_seconds,
                ),
            ),
            *runs,
        ):
            secs, join_s, marks, *extra = run()
            timings[name] = secs
            if name == WORKER:
                latencies, profile = extra
            elif name == ONE_HOP:
                one_hop_latencies = extra[0]
            elif name in QUIX_PATHS:
                quix_results[name] = extra[0]
            timeline = ", ".join(f"{k} {v:.2f}" for k, v in sorted(marks.items(), key=_second))
            print(f"{name}: {secs:.2f} s (start+join {join_s:.1f} s; at s: {timeline})", flush=True)
        deltas, on_hand = asyncio.run(redis_totals(redis_url))
        # Each latency probe added one delta of +1 unit.
        verified = deltas == n + len(latencies) and on_hand == net_qty + len(latencies)
        print(
            f"Redis check: {deltas} applied deltas (expected {n} + {len(latencies)} probes), "
            f"on-hand sum {on_hand} (expected {net_qty} + {len(latencies)}): "
            f"{'OK' if verified else 'MISMATCH'}"
        )

        for name, (_, url) in baselines.items():
            base_deltas, base_on_hand = asyncio.run(redis_totals(url))
            probed = len(one_hop_latencies) if name == ONE_HOP else 0
            base_ok = base_deltas == n + probed and base_on_hand == net_qty + probed
            print(
                f"Redis check, {name} (db {url.rsplit('/', 1)[1]}): {base_deltas} applied "
                f"deltas, on-hand sum {base_on_hand}: {'OK' if base_ok else 'MISMATCH'}"
            )
            verified = verified and base_ok
        for name, result in quix_results.items():
            verified = check_quix(name, result, n, net_qty) and verified
        if profile is not None:
            kept = Path("/tmp") / f"atp-worker-pyspy-{int(time.time())}.txt"
            shutil.copy(profile, kept)
            profiling.summarize_profile(
                kept,
                args.spy_seconds,
                keep=profiling.WORKER_KEEP,
                what="the worker's",
                parts=profiling.WORKER_PARTS,
            )
            print(f"raw py-spy samples (collapsed stacks): {kept}", flush=True)
            profile = kept
        if worker_env:
            print("worker settings: " + " ".join(f"{k}={v}" for k, v in worker_env.items()))
        ok = verified
        return ApplyResult(n, timings, latencies, verified, profile, one_hop_latencies)
    finally:
        stop_all(procs, work, keep_logs=not ok)


def table(result: ApplyResult) -> None:
    n = result.n
    floor_rate, ceiling_rate = result.rate(FLOOR1), result.rate(CEILING)
    print()
    print(f"{'path':38} {'messages':>9} {'seconds':>8} {'msg/s':>9} {'/floor':>7} {'/ceil':>7}")
    for name, secs in result.seconds.items():
        rate = n / secs
        print(
            f"{name:38} {n:>9} {secs:>8.2f} {rate:>9,.0f} "
            f"{rate / floor_rate:>7.2f} {rate / ceiling_rate:>7.3f}"
        )
    ratio = result.seconds[FLOOR2W] / result.seconds[WORKER]
    print(f"\natp worker / faust floor 2 hops (worker transport): {ratio:.2f}")
    # Issue 14's target: the worker ahead of the Quix peer of the same shape.
    for ours, peer in ((WORKER, QUIX2), (ONE_HOP, QUIX1)):
        if ours in result.seconds and peer in result.seconds:
            print(f"{ours} / {peer}: {result.seconds[peer] / result.seconds[ours]:.2f}")
    for what, latencies in (("", result.latencies), (", 1 hop", result.one_hop_latencies)):
        if latencies:
            ms = sorted(1000 * x for x in latencies)
            print(
                f"trickle latency{what}, produce -> Redis, {len(ms)} probes: median "
                f"{ms[len(ms) // 2]:.0f} ms, min {ms[0]:.0f} ms, max {ms[-1]:.0f} ms"
            )


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args._floor:
        floor_child(args)
        return 0
    try:
        result = measure(args)
    except ValueError as exc:
        parser.error(str(exc))
    table(result)
    return 0 if result.verified else 1


def _second(item: tuple[str, float]) -> float:
    return item[1]


if __name__ == "__main__":
    sys.exit(main())
