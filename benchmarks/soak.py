"""Soak: the whole stack under a realistic mix for a long time; what grows, and is it exact.

    .venv/bin/python benchmarks/soak.py [--minutes 30] [--rate 200] [--short]

Starts an embedded broker, a Redis (AOF always, maxmemory with noeviction), a worker, an API
and the simulator (`--rate` source messages a second, with its default duplicates, late and
malformed input), and drives the API from this process: lookups, batches of 20 SKUs,
delivery options, and reservations of which a third are confirmed, a third released and a
third left to expire. Every `--sample-s` (60) it prints the RSS of every process, Redis'
memory and key count, the AOF's size, the worker's consumer lag and the API's p99 over the
interval. At the end (after the simulator has stopped and the left reservations expired):
on hand equals the simulator's truth for every (SKU, location), every reservation reads
back in the state its client left it in, the units reserved equal those of the confirmed
reservations exactly, and no log holds an ERROR or a Traceback. Growth per hour is printed
from the second sample on (the first minute is start-up). `--short`: 3 minutes, 20 s samples.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import orjson  # noqa: E402
import redis  # noqa: E402

from atp.api_keys import digest_entry, new_token  # noqa: E402
from atp.kafka import topics  # noqa: E402
from atp.settings import Settings, load_settings  # noqa: E402
from atp.store import keys  # noqa: E402
from atp.tools import embedded  # noqa: E402
from atp.tools.embedded import ManagedProcess  # noqa: E402

SKUS = [f"SKU-{i:06d}" for i in range(1, 51)]  # the simulator's default 50
EXPIRE_TTL_S = 60
ZIPS = ["10003", "60601", "94105", "30301", "98101"]


def rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            line = next(line for line in fh if line.startswith("VmRSS:"))
        return int(line.split()[1]) / 1024
    except (OSError, StopIteration):
        return 0.0


def consumer_lag(metrics_url: str) -> float:
    with urllib.request.urlopen(metrics_url, timeout=5) as r:
        text = r.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("atp_consumer_lag{")
    )


@dataclass
class Driver:
    """API traffic from this process; keeps what each reservation's client knows."""

    base: str
    token: str
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    want: dict[str, tuple[str, int]] = field(default_factory=dict)  # id -> (state, units)
    rng: random.Random = field(default_factory=lambda: random.Random(7))

    async def call(
        self, session: aiohttp.ClientSession, method: str, path: str, body: object = None
    ) -> tuple[int, dict[str, object]]:
        started = time.monotonic()
        headers = {"Authorization": f"Bearer {self.token}"}
        data = None if body is None else orjson.dumps(body)
        if data is not None:
            headers["content-type"] = "application/json"
        async with session.request(method, self.base + path, data=data, headers=headers) as r:
            payload = await r.read()
        self.latencies.append(time.monotonic() - started)
        self.statuses[r.status] = self.statuses.get(r.status, 0) + 1
        return r.status, (orjson.loads(payload) if payload else {})

    async def reserve(self, session: aiohttp.ClientSession, n: int) -> None:
        rid = f"soak-{n}"
        fate = ("confirm", "release", "expire")[n % 3]
        units = self.rng.randint(1, 2)
        line = {"sku": self.rng.choice(SKUS), "quantity": units}
        ttl = EXPIRE_TTL_S if fate == "expire" else 900
        body = {"reservation_id": rid, "lines": [line], "ttl_seconds": ttl}
        status, _ = await self.call(session, "POST", "/v1/reservations", body)
        if status != 201:
            return  # 409 insufficient stock: nothing held, nothing to follow
        if fate == "confirm":
            status, _ = await self.call(session, "POST", f"/v1/reservations/{rid}/confirm")
            self.want[rid] = ("confirmed" if status == 200 else "held?", units)
        elif fate == "release":
            status, _ = await self.call(session, "DELETE", f"/v1/reservations/{rid}")
            self.want[rid] = ("released" if status == 200 else "held?", 0)
        else:
            self.want[rid] = ("expired", 0)

    async def run(self, until: float) -> None:
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            n = 0
            while time.monotonic() < until:
                tick = time.monotonic()
                sku = self.rng.choice(SKUS)
                zip_code = self.rng.choice(ZIPS)
                jobs = [self.call(session, "GET", f"/v1/availability/{sku}") for _ in range(8)]
                jobs.append(
                    self.call(
                        session,
                        "POST",
                        "/v1/availability/query",
                        {"skus": self.rng.sample(SKUS, 20), "postal_code": zip_code},
                    )
                )
                jobs.append(
                    self.call(
                        session,
                        "POST",
                        "/v1/delivery-options",
                        {
                            "lines": [{"sku": sku, "quantity": 1}],
                            "destination": {"postal_code": zip_code},
                        },
                    )
                )
                jobs.append(self.reserve(session, n))
                n += 1
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    await asyncio.gather(*jobs)
                await asyncio.sleep(max(0.0, 0.5 - (time.monotonic() - tick)))  # 2 rounds/s

    def p99_since(self, start: int) -> float:
        window = sorted(self.latencies[start:])
        return window[int(0.99 * (len(window) - 1))] * 1000 if window else 0.0


def start(settings: Settings, work: Path, procs: dict[str, ManagedProcess], args) -> Path:
    logs = work / "logs"
    broker_port = int(settings.kafka_bootstrap.rsplit(":", 1)[1])
    redis_port = int(settings.redis_url.rsplit(":", 1)[1].split("/")[0])
    procs["broker"] = embedded.start_broker(broker_port, logs)
    procs["redis"] = embedded.start_redis(
        redis_port, work / "redis", logs, maxmemory_mb=settings.up_redis_maxmemory_mb
    )
    asyncio.run(topics.ensure_topics(settings))
    env = {**os.environ, **settings.to_env(), "PYTHONPATH": str(ROOT)}
    for name in ("worker", "api"):
        procs[name] = embedded.spawn(name, [sys.executable, "-m", "atp", name], logs, env=env)
    truth = work / "truth.json"
    sim = [sys.executable, "-m", "atp", "simulate", "--rate", str(args.rate)]
    sim += ["--duration", str(args.minutes * 60), "--seed", "11", "--truth", str(truth)]
    procs["simulator"] = embedded.spawn("simulator", sim, logs, env=env)
    return truth


def sample(settings: Settings, procs: dict[str, ManagedProcess], work: Path) -> dict[str, float]:
    client = redis.Redis.from_url(settings.redis_url)
    try:
        memory = client.info("memory")
        row = {name: rss_mb(p.pid) for name, p in procs.items() if p.alive()}
        row["redis used"] = memory["used_memory"] / 2**20
        row["keys"] = float(client.dbsize())
    finally:
        client.close()
    aof = work / "redis" / "appendonlydir"
    row["aof"] = sum(f.stat().st_size for f in aof.glob("*")) / 2**20 if aof.exists() else 0.0
    with contextlib.suppress(OSError):
        row["lag"] = consumer_lag(f"http://127.0.0.1:{settings.worker_web_port}/metrics")
    return row


def check_end(settings: Settings, truth_path: Path, driver: Driver, work: Path) -> list[str]:
    """What is wrong at the end (empty: nothing)."""
    wrong: list[str] = []
    truth = {tuple(k.split("|")): v for k, v in orjson.loads(truth_path.read_bytes()).items()}
    client = redis.Redis.from_url(settings.redis_url)
    try:
        deadline = time.monotonic() + 120
        while True:
            pipe = client.pipeline(transaction=False)
            for sku, loc in truth:
                pipe.hget(keys.stock(sku), keys.ON_HAND_PREFIX + loc)
            seen = {k: int(v or 0) for k, v in zip(truth, pipe.execute(), strict=True)}
            diff = {k: (seen[k], v) for k, v in truth.items() if seen[k] != v}
            if not diff or time.monotonic() > deadline:
                break
            time.sleep(1)
        if diff:
            wrong.append(f"{len(diff)} of {len(truth)} pairs differ from the truth: {diff}")
        reserved = 0
        for sku in SKUS:
            fields = client.hgetall(keys.stock(sku))
            reserved += sum(int(v) for f, v in fields.items() if f.startswith(b"rs:"))
    finally:
        client.close()
    states = {}
    for rid in driver.want:
        with urllib.request.urlopen(
            urllib.request.Request(
                f"{driver.base}/v1/reservations/{rid}",
                headers={"Authorization": f"Bearer {driver.token}"},
            ),
            timeout=10,
        ) as r:
            states[rid] = orjson.loads(r.read())["state"]
    lost = {rid: (w, states[rid]) for rid, (w, _) in driver.want.items() if states[rid] != w}
    if lost:
        wrong.append(f"{len(lost)} reservations not as their client left them: {lost}")
    confirmed = sum(units for state, units in driver.want.values() if state == "confirmed")
    if reserved != confirmed:
        wrong.append(f"{reserved} units reserved, {confirmed} in confirmed reservations")
    for log in sorted((work / "logs").glob("*.log")):
        bad = [ln for ln in log.read_text(errors="replace").splitlines() if is_error(ln)]
        if bad:
            wrong.append(f"{log.name}: {len(bad)} error lines, first: {bad[0][:300]}")
    return wrong


def is_error(line: str) -> bool:
    return " ERROR " in line or "[ERROR]" in line or line.startswith("Traceback")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--sample-s", type=float, default=60.0)
    parser.add_argument("--short", action="store_true", help="3 minutes, 20 s samples")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.short:
        args.minutes, args.sample_s = 3.0, 20.0
    work = Path(tempfile.mkdtemp(prefix="atp-soak-"))
    token = new_token()
    settings = load_settings(
        {},
        kafka_bootstrap=f"127.0.0.1:{embedded.free_port()}",
        redis_url=f"redis://127.0.0.1:{embedded.free_port()}/0",
        api_port=embedded.free_port(),
        worker_web_port=embedded.free_port(),
        data_dir=work / "data",
        network_file=ROOT / "config" / "network.yaml",
        api_keys=digest_entry("soak", "read+reserve+admin", token),
    )
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    print(
        f"soak: {args.minutes:g} min at {args.rate:g} msgs/s; {platform.node()}, "
        f"{os.cpu_count()} cores, commit {commit}, {time.strftime('%Y-%m-%d %H:%M')}"
    )
    procs: dict[str, ManagedProcess] = {}
    try:
        truth = start(settings, work, procs, args)
        base = f"http://127.0.0.1:{settings.api_port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), urllib.request.urlopen(base + "/readyz") as r:
                if r.status == 200:
                    break
            time.sleep(0.5)
        driver = Driver(base, token)
        rows = run(settings, procs, work, driver, args)
        print_rows(rows, args.sample_s)
        assert_gone = procs["simulator"].popen.wait(120)
        time.sleep(EXPIRE_TTL_S + 5)  # the last left reservations expire
        wrong = check_end(settings, truth, driver, work)
        print(
            f"API answers by status: {dict(sorted(driver.statuses.items()))}; "
            f"reservations followed: {len(driver.want)}; simulator exit {assert_gone}"
        )
        print(
            "end: " + ("exact, no error lines" if not wrong else "WRONG\n  " + "\n  ".join(wrong))
        )
        return 1 if wrong else 0
    finally:
        for proc in reversed(list(procs.values())):
            proc.stop(grace_s=15)
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def run(settings, procs, work, driver: Driver, args) -> list[tuple[float, dict[str, float]]]:
    started = time.monotonic()
    until = started + args.minutes * 60

    async def sampled() -> list[tuple[float, dict[str, float]]]:
        traffic = asyncio.create_task(driver.run(until))
        rows: list[tuple[float, dict[str, float]]] = []
        mark = 0
        while not traffic.done():
            await asyncio.sleep(min(args.sample_s, max(0.1, until - time.monotonic())))
            row = await asyncio.to_thread(sample, settings, procs, work)
            if len(driver.latencies) == mark:
                break  # the traffic has ended
            row["api p99 ms"] = driver.p99_since(mark)
            mark = len(driver.latencies)
            rows.append((time.monotonic() - started, row))
            print(
                f"  {rows[-1][0] / 60:5.1f} min  "
                + "  ".join(f"{k} {v:,.1f}" for k, v in row.items()),
                flush=True,
            )
        await traffic
        return rows

    return asyncio.run(sampled())


def print_rows(rows: list[tuple[float, dict[str, float]]], sample_s: float) -> None:
    if len(rows) < 3:
        return
    (t0, first), (t1, last) = rows[1], rows[-1]
    hours = (t1 - t0) / 3600
    print(f"\ngrowth per hour, from {t0 / 60:.1f} to {t1 / 60:.1f} min:")
    for name in first:
        if name in last and name not in ("api p99 ms", "lag"):
            print(
                f"  {name:12s} {first[name]:10,.1f} -> {last[name]:10,.1f}"
                f"   {(last[name] - first[name]) / hours:+12,.1f} /h"
            )


if __name__ == "__main__":
    sys.exit(main())
