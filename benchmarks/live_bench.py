"""Live availability streams: how many an API process holds, and how late their events are.

    .venv/bin/python benchmarks/live_bench.py [--streams 1000] [--skus 100] [--movements 200]
                                              [--rate 10]

Starts its own broker and Redis (AOF on), one `atp worker` and one `atp api` on free 127.0.0.1
ports; seeds --skus SKUs; opens --streams SSE connections (GET /v1/stream/availability, one SKU
each, the SKUs taken in turn: --streams / --skus viewers per SKU) from this process; then
produces --movements WMS RECEIVED movements of one unit, --rate per second, each to the next
SKU in turn, and times, from `send()` to the broker:

- stream: each viewer's event that shows the new count arriving on its socket (every viewer of
  the SKU, so --streams / --skus samples per movement);
- baseline, same run: one poller asking GET /v1/availability/{sku} every 5 ms until the new count
  shows (the earliest a page that polls could see it: the worker's share plus one lookup).

Also the API process's memory (RSS) before and after the streams are opened, its CPU and this
process's while the movements flow. Every process started here is stopped by its PID.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402
from aiokafka import AIOKafkaProducer  # noqa: E402

from atp.core.movements import Effect, Movement  # noqa: E402
from atp.kafka import topics  # noqa: E402
from atp.store.client import client_from_url  # noqa: E402
from atp.store.ledger import LedgerStore  # noqa: E402
from atp.tools import embedded  # noqa: E402
from atp.tools.embedded import ManagedProcess  # noqa: E402
from atp.tools.up import rss_mb  # noqa: E402
from benchmarks.api_bench import CpuWindow  # noqa: E402
from benchmarks.apply_rate import WAREHOUSES, spawn_worker, start_stack, stop_all  # noqa: E402

SEED_UNITS = 100


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


class Viewer:
    """One SSE connection for one SKU; records when each count arrives."""

    def __init__(self, sku: str) -> None:
        self.sku = sku
        self.seen: list[tuple[int, float]] = []  # (on-hand, when it arrived), in order
        self.first = asyncio.get_running_loop().create_future()

    async def run(self, port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            f"GET /v1/stream/availability?skus={self.sku} HTTP/1.1\r\nHost: x\r\n"
            "Accept: text/event-stream\r\n\r\n".encode()
        )
        await writer.drain()
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                if line.startswith(b"data: "):
                    body = orjson.loads(line[6:])
                    units = sum(loc["on_hand"] for loc in body["locations"])
                    self.seen.append((units, time.monotonic()))
                    if not self.first.done():
                        self.first.set_result(None)
        finally:
            writer.close()


async def seed(redis_url: str, skus: list[str]) -> None:
    client = client_from_url(redis_url)
    now = int(time.time() * 1000)
    moves = [
        Movement(f"seed-{s}", s, WAREHOUSES[0], Effect.COUNT, SEED_UNITS, now - 5000, "C", "b")
        for s in skus
    ]
    try:
        await LedgerStore(client).apply(moves, now)
    finally:
        await client.aclose()


async def poll_until(port: int, sku: str, units: int, timeout_s: float = 30.0) -> float:
    """Seconds until GET /v1/availability/{sku} shows `units` on hand (polled every 5 ms)."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.monotonic() - started < timeout_s:
            writer.write(f"GET /v1/availability/{sku} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            await writer.drain()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            body = orjson.loads(await reader.readexactly(length))
            if sum(loc["on_hand"] for loc in body["locations"]) == units:
                return time.monotonic() - started
            await asyncio.sleep(0.005)
    finally:
        writer.close()
    return float("nan")


async def measure(args: argparse.Namespace, bootstrap: str, port: int, api_pid: int) -> None:
    skus = [f"LIVE-{i:04d}" for i in range(args.skus)]
    rss_before = rss_mb(api_pid) or 0.0
    viewers = [Viewer(skus[i % len(skus)]) for i in range(args.streams)]
    tasks = []
    for i, viewer in enumerate(viewers):
        tasks.append(asyncio.create_task(viewer.run(port)))
        if i % 100 == 99:
            await asyncio.sleep(0.05)  # do not flood the accept queue
    await asyncio.wait_for(asyncio.gather(*(v.first for v in viewers)), 120)
    await asyncio.sleep(1.0)
    rss_after = rss_mb(api_pid) or 0.0
    by_sku: dict[str, list[Viewer]] = {}
    for v in viewers:
        by_sku.setdefault(v.sku, []).append(v)

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=0)
    await producer.start()
    # Warm-up: one movement all the way through, so the worker has joined and fetched.
    warm = {"event_id": f"warm-{time.time()}", "warehouse_id": WAREHOUSES[0], "sku": "WARM"}
    warm |= {"kind": "RECEIVED", "qty": 1, "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%SZ")}
    await producer.send_and_wait(args.topic, orjson.dumps(warm), key=b"WARM")
    await poll_until(port, "WARM", 1, timeout_s=90)
    cpu = CpuWindow({"api": api_pid, "bench": os.getpid()})
    sent: list[tuple[str, int, float]] = []
    polled: list[float] = []
    units = dict.fromkeys(skus, SEED_UNITS)
    cpu.start()
    try:
        polls = []
        for n in range(args.movements):
            sku = skus[n % len(skus)]
            units[sku] += 1
            at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            body = {"event_id": f"live-{sku}-{n}", "warehouse_id": WAREHOUSES[0], "sku": sku}
            body |= {"kind": "RECEIVED", "qty": 1, "occurred_at": at}
            t0 = time.monotonic()
            await producer.send_and_wait(args.topic, orjson.dumps(body), key=sku.encode())
            sent.append((sku, units[sku], t0))
            if n % 5 == 0:  # the polling baseline, for every fifth movement
                polls.append(asyncio.create_task(poll_until(port, sku, units[sku])))
            await asyncio.sleep(max(0.0, 1 / args.rate - (time.monotonic() - t0)))
        polled = list(await asyncio.gather(*polls))
        await asyncio.sleep(3.0)
    finally:
        used = cpu.stop()
        await producer.stop()
        for task in tasks:
            task.cancel()
    # A viewer may not see every count: when the next movement came before the event was read,
    # one read serves both. A movement is on the wire with the first event at or above it.
    delays = [
        next(at for units, at in v.seen if units >= count) - t0
        for sku, count, t0 in sent
        for v in by_sku[sku]
        if any(units >= count for units, _ in v.seen)
    ]
    expected = sum(len(by_sku[sku]) for sku, _, _ in sent)
    ms = [d * 1000 for d in delays]
    poll_ms = [p * 1000 for p in polled]
    print(f"\n{platform.node()}  {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"streams open: {args.streams} ({args.streams // args.skus} per SKU, {args.skus} SKUs)")
    print(
        f"API memory: {rss_before:.1f} MiB before, {rss_after:.1f} MiB with the "
        f"streams ({(rss_after - rss_before) * 1024 / args.streams:.1f} KiB per stream)"
    )
    print(
        f"movements on the wire: {len(delays)} of {expected} (viewer, movement) pairs "
        f"({args.movements} movements at {args.rate}/s)"
    )
    print(
        f"stream, broker send -> event on the socket: p50 {pct(ms, 0.5):.0f} ms, "
        f"p99 {pct(ms, 0.99):.0f} ms, max {max(ms, default=float('nan')):.0f} ms"
    )
    print(
        f"baseline, broker send -> a 5 ms poller sees it: p50 {pct(poll_ms, 0.5):.0f} ms, "
        f"p99 {pct(poll_ms, 0.99):.0f} ms ({len(poll_ms)} samples)"
    )
    print(
        f"cores while movements flowed: API {used['api']:.2f}, this client {used['bench']:.2f}, "
        f"everything {used['total']:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--skus", type=int, default=100)
    parser.add_argument("--movements", type=int, default=200)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--keep-logs", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="atp-live-bench-"))
    procs: list[ManagedProcess] = []
    try:
        bootstrap, redis_url = start_stack(work, procs)
        prefix = "live."
        args.topic = prefix + topics.WMS
        _, metrics_url = spawn_worker(bootstrap, redis_url, prefix, work, procs)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the worker is up, its topics made
            with contextlib.suppress(OSError), urllib.request.urlopen(metrics_url, timeout=1):
                break
            time.sleep(0.2)
        asyncio.run(seed(redis_url, [f"LIVE-{i:04d}" for i in range(args.skus)]))
        port = embedded.free_port()
        env = {
            **os.environ,
            "ATP_KAFKA_BOOTSTRAP": bootstrap,
            "ATP_REDIS_URL": redis_url,
            "ATP_TOPIC_PREFIX": prefix,
            "ATP_API_PORT": str(port),
            "ATP_NETWORK_FILE": str(ROOT / "config" / "network.yaml"),
            "ATP_LOG_LEVEL": "warning",
        }
        api = embedded.spawn("api", [sys.executable, "-m", "api"], work / "logs", env)
        procs.append(api)
        embedded.wait_for_port(api, port, timeout_s=60)
        time.sleep(2.0)
        asyncio.run(measure(args, bootstrap, port, api.pid))
    finally:
        stop_all(procs, work, keep_logs=args.keep_logs)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
