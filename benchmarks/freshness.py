"""Freshness at a fixed offered load: production to the count visible in Redis, p50/p99.

    .venv/bin/python benchmarks/freshness.py [--rates 1000,2000,5000] [--seconds 15]

Starts its own embedded broker (Tansu) and Redis (AOF on) on free 127.0.0.1 ports and one
`atp worker`. Baseline first: the trickle latency (single messages on an idle worker). Then for
each rate R, lowest first, a producer paced at R WMS messages/s for S seconds (each message
carries its production time as its Kafka timestamp, which the worker's freshness histogram
starts from), then waits until the worker has applied everything (the drain).

Measured two ways, both printed:
- outside: PROBE_RATE of the R messages per second are probes, each a RECEIVED for a SKU of its
  own, timed from `send()` to its key existing in Redis (the benchmark polls the oldest
  outstanding probes with pipelined EXISTS every POLL_S). Exact to about POLL_S.
- inside: the worker's `atp_freshness_seconds` histogram on /metrics (every movement, from the
  source message's Kafka timestamp to after its batch is written), the difference over the rate's
  window, quantiles interpolated within buckets as Prometheus' histogram_quantile does, and the
  exact share within 100 ms (a bucket bound).
Whether the worker kept up: the lag (sent - applied) when the producer stops, its largest value
sampled each second, the rate applied during the window and the seconds to drain afterwards;
and the cores the worker, this benchmark (producer and prober) and everything else used.
Every process started here is stopped by its PID in a `finally` block.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from aiokafka import AIOKafkaProducer  # noqa: E402

from atp.kafka import topics  # noqa: E402
from atp.settings import Settings  # noqa: E402
from atp.store import keys  # noqa: E402
from atp.store.client import client_from_url  # noqa: E402
from atp.tools.embedded import ManagedProcess  # noqa: E402
from benchmarks.api_bench import CpuWindow  # noqa: E402
from benchmarks.apply_rate import (  # noqa: E402
    WAREHOUSES,
    parse_worker_env,
    probe_message,
    spawn_worker,
    start_stack,
    stop_all,
    trickle_latency,
    wms_messages,
)

HISTOGRAM = "atp_freshness_seconds"
OUTCOMES = "atp_ledger_outcomes_total"
PROBE_RATE = 50  # outside probes per second, part of the offered rate
POLL_S = 0.005  # how often outstanding probes are looked for in Redis
POLL_MAX = 64  # the oldest outstanding probes looked for per poll
TICK_S = 0.005  # the producer sends what is due every tick


# --------------------------------------------------------------------------------------------
# The worker's /metrics


def scrape(url: str) -> dict[str, float]:
    """Every sample on the page: 'name{labels}' -> value."""
    with urllib.request.urlopen(url, timeout=2) as resp:
        text = resp.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def total(sample: dict[str, float], name: str) -> float:
    return sum(v for k, v in sample.items() if k == name or k.startswith(name + "{"))


def buckets(sample: dict[str, float]) -> list[tuple[float, float]]:
    """(upper bound, cumulative count) of the freshness histogram, by bound."""
    out = []
    prefix = f'{HISTOGRAM}_bucket{{le="'
    for k, v in sample.items():
        if k.startswith(prefix):
            out.append((float(k[len(prefix) : -2]), v))
    return sorted(out)


def quantile(q: float, cum: list[tuple[float, float]]) -> float:
    """Prometheus' histogram_quantile: linear within the bucket; inf if in the +Inf bucket."""
    count = cum[-1][1]
    if count == 0:
        return float("nan")
    rank = q * count
    lower, below = 0.0, 0.0
    for bound, c in cum:
        if c >= rank:
            if bound == float("inf"):
                return float("inf")
            return lower + (bound - lower) * ((rank - below) / max(c - below, 1e-9))
        lower, below = bound, c
    return float("inf")


# --------------------------------------------------------------------------------------------
# One offered rate


@dataclass
class RateResult:
    target: float  # messages/s asked for
    seconds: float  # how long the producer offered them
    sent: int
    applied_in_window: int  # movements the worker applied while the producer ran
    lag_at_end: int  # sent - applied when the producer stopped
    max_lag: int  # largest lag seen (sampled each second)
    drain_s: float  # from the producer's stop to the last movement applied
    probes: list[float] = field(default_factory=list)  # outside latencies, seconds
    hist: list[tuple[float, float]] = field(default_factory=list)  # the window's histogram
    cpu: dict[str, float] = field(default_factory=dict)  # cores used while offering

    @property
    def achieved(self) -> float:
        return self.sent / self.seconds

    @property
    def applied_rate(self) -> float:
        return self.applied_in_window / self.seconds

    def probe_pct(self, p: float) -> float:
        xs = sorted(self.probes)
        if not xs:
            return float("nan")
        return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]

    def hist_pct(self, p: float) -> float:
        return quantile(p / 100, self.hist) if self.hist else float("nan")

    @property
    def within_100ms(self) -> float:
        """Share of the window's movements visible within 100 ms (the histogram's 0.1 bucket)."""
        if not self.hist or not self.hist[-1][1]:
            return float("nan")
        return dict(self.hist).get(0.1, float("nan")) / self.hist[-1][1]


async def offer(
    bootstrap: str,
    topic: str,
    redis_url: str,
    metrics_url: str,
    rate: float,
    seconds: float,
    skus: int,
    drain_timeout_s: float,
    worker_pid: int,
) -> RateResult:
    run = f"{int(time.time() * 1000):x}"
    n = int(rate * seconds)
    messages, _ = wms_messages(n, skus, seed=int(rate), run=f"F{run}")
    probe_every = max(1, int(rate // PROBE_RATE))
    before = scrape(metrics_url)
    applied0 = total(before, OUTCOMES)
    sent_at: dict[str, float] = {}  # probe SKU -> perf_counter at send
    outstanding: list[str] = []
    latencies: list[float] = []
    lags: list[int] = []
    producing = True

    async def poll_probes() -> None:
        client = client_from_url(redis_url)
        try:
            while producing or outstanding:
                if outstanding:
                    batch = outstanding[:POLL_MAX]
                    async with client.pipeline(transaction=False) as pipe:
                        for sku in batch:
                            pipe.exists(keys.stock(sku))
                        found = await pipe.execute()
                    now = time.perf_counter()
                    for sku, hit in zip(batch, found, strict=True):
                        if hit:
                            latencies.append(now - sent_at[sku])
                            outstanding.remove(sku)
                await asyncio.sleep(POLL_S)
        finally:
            await client.aclose()

    async def sample_lag(sent: list[int]) -> None:
        while producing:
            await asyncio.sleep(1.0)
            with contextlib.suppress(OSError):
                got = await asyncio.to_thread(scrape, metrics_url)
                lags.append(sent[0] - int(total(got, OUTCOMES) - applied0))

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks=1, enable_idempotence=False, linger_ms=1
    )
    await producer.start()
    sent = [0]
    poller = asyncio.create_task(poll_probes())
    sampler = asyncio.create_task(sample_lag(sent))
    window = CpuWindow({"worker": worker_pid, "benchmark": os.getpid()})
    try:
        window.start()
        started = time.perf_counter()
        while sent[0] < n:
            due = min(n, int(rate * (time.perf_counter() - started)) + 1)
            while sent[0] < due:
                i = sent[0]
                key, value = messages[i]
                if i % probe_every == 0:
                    sku = f"FRESH-{run}-{i:07d}"
                    key, value = WAREHOUSES[0].encode(), probe_message(sku)
                    sent_at[sku] = time.perf_counter()
                    outstanding.append(sku)
                await producer.send(topic, value=value, key=key)
                sent[0] += 1
            await asyncio.sleep(TICK_S)
        await producer.flush()
        offered_s = time.perf_counter() - started
        cpu = window.stop()
        at_end = scrape(metrics_url)
        applied_window = int(total(at_end, OUTCOMES) - applied0)
        producing = False
        await sampler
        deadline = time.perf_counter() + drain_timeout_s
        applied = applied_window
        while applied < n and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
            with contextlib.suppress(OSError):
                applied = int(
                    total(await asyncio.to_thread(scrape, metrics_url), OUTCOMES) - applied0
                )
        drain_s = time.perf_counter() - started - offered_s
        if applied < n:
            raise RuntimeError(f"the worker applied {applied} of {n} in {drain_timeout_s} s")
        await asyncio.wait_for(poller, 30)
    finally:
        producing = False
        outstanding.clear()
        for task in (poller, sampler):
            if not task.done():
                task.cancel()
        await producer.stop()
    after = scrape(metrics_url)
    b0 = dict(buckets(before))
    hist = [(bound, c - b0.get(bound, 0.0)) for bound, c in buckets(after)]
    lag_at_end = n - applied_window
    return RateResult(
        target=rate,
        seconds=offered_s,
        sent=n,
        applied_in_window=applied_window,
        lag_at_end=lag_at_end,
        max_lag=max([lag_at_end, *lags]),
        drain_s=drain_s,
        probes=latencies,
        hist=hist,
        cpu=cpu,
    )


# --------------------------------------------------------------------------------------------


@dataclass
class FreshnessResult:
    trickle: list[float]  # idle latencies (the baseline), seconds
    rates: list[RateResult]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rates", default="1000,2000,5000", help="offered messages/s, comma separated"
    )
    parser.add_argument("--seconds", type=float, default=15.0, help="seconds per rate (15)")
    parser.add_argument("--skus", type=int, default=1000, help="distinct SKUs of the load (1000)")
    parser.add_argument("--probes", type=int, default=10, help="idle trickle probes first (10)")
    parser.add_argument("--drain-timeout", type=float, default=180.0, help="seconds (180)")
    parser.add_argument(
        "--worker-env", action="append", default=[], metavar="ATP_X=V", help="(repeatable)"
    )
    return parser


def measure(args: argparse.Namespace) -> FreshnessResult:
    rates = [float(r) for r in str(args.rates).split(",") if r.strip()]
    worker_env = parse_worker_env(args.worker_env)
    work = Path(tempfile.mkdtemp(prefix="atp-fresh-"))
    procs: list[ManagedProcess] = []
    ok = False
    try:
        bootstrap, redis_url = start_stack(work, procs)
        prefix = f"fresh{os.getpid()}."
        settings = Settings(kafka_bootstrap=bootstrap, topic_prefix=prefix)
        asyncio.run(topics.ensure_topics(settings))
        wms = settings.topic(topics.WMS)
        proc, url = spawn_worker(bootstrap, redis_url, prefix, work, procs, env=worker_env)
        deadline = time.monotonic() + 60
        while True:  # the web page first, then one message through (the group has joined)
            if not proc.alive():
                raise RuntimeError(f"the worker exited:\n{proc.log_tail()}")
            with contextlib.suppress(OSError):
                scrape(url)
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the worker's /metrics did not answer:\n{proc.log_tail()}")
            time.sleep(0.2)
        asyncio.run(trickle_latency(bootstrap, wms, redis_url, 1))
        trickle = asyncio.run(trickle_latency(bootstrap, wms, redis_url, args.probes))
        print(f"idle trickle latency: {fmt_ms(sorted(trickle))}", flush=True)
        results = []
        for rate in rates:
            r = asyncio.run(
                offer(
                    bootstrap,
                    wms,
                    redis_url,
                    url,
                    rate,
                    args.seconds,
                    args.skus,
                    args.drain_timeout,
                    proc.pid,
                )
            )
            print_rate(r)
            if not proc.alive():
                raise RuntimeError(f"the worker exited:\n{proc.log_tail()}")
            results.append(r)
        ok = True
        return FreshnessResult(trickle, results)
    finally:
        stop_all(procs, work, keep_logs=not ok)


def ms(seconds: float) -> str:
    """Milliseconds; beyond the histogram's last bound (60 s) as '> 60,000'."""
    return "> 60,000" if seconds == float("inf") else f"{1000 * seconds:,.0f}"


def fmt_ms(xs: list[float]) -> str:
    if not xs:
        return "-"
    return (
        f"median {1000 * xs[len(xs) // 2]:.0f} ms (min {1000 * xs[0]:.0f}, max {1000 * xs[-1]:.0f})"
    )


def print_rate(r: RateResult) -> None:
    kept = "kept up" if r.lag_at_end <= r.target * 0.5 else "fell behind"
    print(
        f"offered {r.target:,.0f}/s for {r.seconds:.1f} s (achieved {r.achieved:,.0f}/s, "
        f"{r.sent:,} messages): worker applied {r.applied_rate:,.0f}/s during the window; "
        f"lag at the end {r.lag_at_end:,} (max {r.max_lag:,}), drained in {r.drain_s:.1f} s: "
        f"{kept}\n"
        f"    freshness, outside ({len(r.probes)} probes): p50 {1000 * r.probe_pct(50):.0f} ms, "
        f"p99 {1000 * r.probe_pct(99):.0f} ms; worker histogram: p50 "
        f"{ms(r.hist_pct(50))} ms, p99 {ms(r.hist_pct(99))} ms, "
        f"{r.within_100ms:.1%} within 100 ms\n"
        "    cores used while offering: " + " ".join(f"{k}={v:.2f}" for k, v in r.cpu.items()),
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result = measure(args)
    print(f"\nbaseline, idle trickle latency: {fmt_ms(sorted(result.trickle))}")
    print(
        "| offered /s | achieved /s | applied /s | lag at end | drain s | p50 ms | p99 ms "
        "| hist p50 ms | hist p99 ms | <= 100 ms |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in result.rates:
        print(
            f"| {r.target:,.0f} | {r.achieved:,.0f} | {r.applied_rate:,.0f} | {r.lag_at_end:,} "
            f"| {r.drain_s:.1f} | {1000 * r.probe_pct(50):.0f} | {1000 * r.probe_pct(99):.0f} "
            f"| {ms(r.hist_pct(50))} | {ms(r.hist_pct(99))} | {r.within_100ms:.1%} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
