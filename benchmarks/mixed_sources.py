"""Apply rate with all three sources mixed (warehouses, stores, 3PLs), beside the raw consumer.

    .venv/bin/python benchmarks/mixed_sources.py [--messages 30000] [--skus 1000]

Starts its own Tansu broker and Redis (AOF on) on free 127.0.0.1 ports, pre-produces the
simulator's traffic (no repeats, late or malformed messages, so every message counts), then:
- ceiling: a plain aiokafka consumer reads the same source messages (no group);
- worker: `atp worker` applies them; timed from its first ledger outcome to the last (group
  join and start-up excluded), by polling `atp_ledger_outcomes_total` on its /metrics.
Prints both rates and their ratio; at the end checks Redis against the simulator's truth.
Every process it starts is stopped by PID, also on failure.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from atp.core.sources import ADAPTERS  # noqa: E402
from atp.kafka import topics  # noqa: E402
from atp.network_file import load_network  # noqa: E402
from atp.settings import load_settings  # noqa: E402
from atp.store import keys  # noqa: E402
from atp.tools import embedded  # noqa: E402
from atp.tools.simulator import NetworkSimulator, SimConfig  # noqa: E402


async def produce(bootstrap: str, prefix: str, messages: list[tuple[str, bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=20)
    await producer.start()
    try:
        futures = [await producer.send(prefix + t, value=v, key=k) for t, k, v in messages]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def ceiling(bootstrap: str, prefix: str, n: int) -> float:
    """Seconds for a plain consumer to read n messages from the source topics."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [
            TopicPartition(prefix + t, p)
            for t in topics.SOURCES
            for p in consumer.partitions_for_topic(prefix + t) or ()
        ]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        seen, started = 0, time.perf_counter()  # from the first fetch, as apply_rate.py times it
        while seen < n:
            batch = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            seen += sum(len(m) for m in batch.values())
        return time.perf_counter() - started
    finally:
        await consumer.stop()


def outcomes(url: str) -> float:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return 0.0
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("atp_ledger_outcomes_total{")
    )


@dataclass
class MixedResult:
    messages: int  # source messages
    movements: int  # canonical movements they carry
    by_source: dict[str, int]
    raw_s: float  # the aiokafka ceiling's seconds for the source messages
    worker_s: float  # the worker's seconds from its first ledger outcome to the last
    done: float  # ledger outcomes seen
    wrong: int  # (SKU, location) pairs differing from the simulator's truth

    @property
    def ok(self) -> bool:
        return self.wrong == 0 and self.done >= self.movements


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=30_000)
    parser.add_argument("--skus", type=int, default=1000)
    return parser


def measure(args: argparse.Namespace) -> MixedResult:
    network = load_network(ROOT / "config" / "network.yaml")
    sim = NetworkSimulator(
        network,
        SimConfig(
            skus=args.skus,
            seed=7,
            duplicate_rate=0,
            late_rate=0,
            malformed_rate=0,
            report_every=500,
        ),
    )
    messages = [m for _ in range(args.messages) for m in sim.messages()]
    movements = sum(len(ADAPTERS[topics.SOURCES[t]](v, network)) for t, _, v in messages)
    by_source = {t: sum(1 for m in messages if m[0] == t) for t in topics.SOURCES}

    tmp = Path(tempfile.mkdtemp(prefix="atp-bench-"))
    procs = []
    try:
        bport, rport, wport = embedded.free_port(), embedded.free_port(), embedded.free_port()
        procs.append(embedded.start_broker(bport, tmp))
        procs.append(embedded.start_redis(rport, tmp / "redis", tmp))
        settings = load_settings(
            {},
            kafka_bootstrap=f"127.0.0.1:{bport}",
            redis_url=f"redis://127.0.0.1:{rport}/0",
            worker_web_port=wport,
            data_dir=tmp / "data",
            network_file=ROOT / "config" / "network.yaml",
            log_level="warning",
        )
        asyncio.run(topics.ensure_topics(settings))
        asyncio.run(produce(settings.kafka_bootstrap, "", messages))
        raw_s = min(
            asyncio.run(ceiling(settings.kafka_bootstrap, "", len(messages))) for _ in range(3)
        )

        env = {**os.environ, **settings.to_env()}
        worker = embedded.spawn("worker", [sys.executable, "-m", "atp", "worker"], tmp, env)
        procs.append(worker)
        url = f"http://127.0.0.1:{wport}/metrics"
        deadline = time.monotonic() + 600
        while outcomes(url) == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        started = time.perf_counter()
        while outcomes(url) < movements and time.monotonic() < deadline:
            time.sleep(0.05)
        worker_s = time.perf_counter() - started
        done = outcomes(url)

        client = redis.Redis.from_url(settings.redis_url)
        wrong = sum(
            1
            for (sku, loc), qty in sim.truth.items()
            if int(client.hget(keys.stock(sku), f"oh:{loc}") or -1) != qty
        )
        client.close()
    finally:
        for proc in reversed(procs):
            proc.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    return MixedResult(len(messages), movements, by_source, raw_s, worker_s, done, wrong)


def main(argv: list[str] | None = None) -> int:
    r = measure(build_parser().parse_args(argv))
    mix = ", ".join(f"{t} {n:,}" for t, n in r.by_source.items())
    print(f"source messages: {r.messages:,} ({mix})")
    print(f"canonical movements: {r.movements:,}; ledger outcomes seen: {r.done:,.0f}")
    print(f"{'path':<34}{'seconds':>9}{'msg/s':>11}")
    print(f"{'aiokafka ceiling (source msgs)':<34}{r.raw_s:>9.2f}{r.messages / r.raw_s:>11,.0f}")
    print(
        f"{'atp worker (movements applied)':<34}{r.worker_s:>9.2f}"
        f"{r.movements / r.worker_s:>11,.0f}"
    )
    print(f"{'atp worker (source msgs)':<34}{r.worker_s:>9.2f}{r.messages / r.worker_s:>11,.0f}")
    print(f"worker / ceiling (source messages): {r.raw_s / r.worker_s:.4f}")
    print(f"(SKU, location) pairs differing from the simulator's truth: {r.wrong}")
    return 0 if r.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
