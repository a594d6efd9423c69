"""How fast does the API answer, against a bare endpoint of the same app and server?

    .venv/bin/python benchmarks/api_bench.py [--duration 10] [--connections 32] [--threads 1]
                                             [--skus 10000] [--py-spy /tmp/spyvenv/bin/py-spy]
                                             [--api-env ATP_API_LOOP=asyncio ...]

Starts its own Redis (AOF on, as in production) and one `python -m api` process (uvicorn,
one worker) on free 127.0.0.1 ports, seeds stock through `LedgerStore`, and drives the API with
`wrk` (installed from Debian if missing). Measured, one after another, in one run:

  a  bare            GET /_bench/bare: a constant answer through the same app, middleware, server
  b  single          GET /v1/availability/{sku} over random seeded SKUs
  c  batch           POST /v1/availability/query with 100 random SKUs
  d  reserve hot     POST /v1/reservations, 1 unit of ONE SKU, unique reservation_id per request
     reserve spread  the same over random seeded SKUs
  e  raw reserve     reserving through redis-py asyncio in this process, no HTTP: via
                     ReservationStore.reserve (script + read-back, what the API does) and the
                     script alone (EVALSHA)
  f  single @ half   single lookups paced at half of b's rate (Debian has no wrk2: wrk with a
                     Lua delay() schedule and fewer connections; see benchmarks/api.md)
  g  delivery        POST /v1/delivery-options, 3-line baskets, random destination ZIPs
  h  delivery @ half the same paced at half of g's rate: issue 6's p99 under load

Every rate is printed beside its ratio to the bare endpoint measured in the same run. Every
process started here is stopped by its PID in a `finally` block. See benchmarks/api.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import redis as redis_sync  # noqa: E402

from atp.core.movements import Effect, Movement  # noqa: E402
from atp.core.reservations import ReservationLine, ReservationRequest  # noqa: E402
from atp.network_file import load_network  # noqa: E402
from atp.store.client import client_from_url  # noqa: E402
from atp.store.ledger import LedgerStore  # noqa: E402
from atp.store.reservations import ReservationStore  # noqa: E402
from atp.store.scripts import load_script  # noqa: E402
from atp.tools import embedded  # noqa: E402
from atp.tools.embedded import ManagedProcess  # noqa: E402
from benchmarks.profiling import SPY_RATE, summarize_profile  # noqa: E402

NETWORK_FILE = "config/network.yaml"
SEED_LOCATIONS = ("WH-NJ", "WH-IL", "3PL-ACME-TX")  # online-channel locations of the file
SEED_UNITS = 1_000  # per (SKU, location)
HOT_SKU = "BENCH-HOT"
HOT_LOCATION = "WH-NJ"
HOT_UNITS = 10_000_000  # enough that every hot reservation of a run succeeds
BATCH_SKUS = 100
TOKEN = "bench-" + uuid.uuid4().hex
SPY_SECONDS = 8  # py-spy record -d
CLK_TCK = os.sysconf("SC_CLK_TCK")


def sku_name(i: int) -> str:
    return f"BENCH-{i:06d}"


# --------------------------------------------------------------------------------------------
# wrk and its Lua scripts

LUA_COMMON = r"""
-- Shared by every scenario: thread ids, status counts, and one JSON line of results.
local threads = {}
function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

codes = {}
function response(status, headers, body)
  local k = tostring(status)
  codes[k] = (codes[k] or 0) + 1
end

function done(summary, latency, requests)
  local all = {}
  for _, t in ipairs(threads) do
    local c = t:get("codes")
    if c then
      for k, v in pairs(c) do all[k] = (all[k] or 0) + v end
    end
  end
  local parts = {}
  for k, v in pairs(all) do table.insert(parts, string.format('"%s":%d', k, v)) end
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status_errors":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,' ..
    '"mean_us":%.1f,"codes":{%s}}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean, table.concat(parts, ",")))
end
"""

LUA_BARE = r"""
function request()
  return wrk.format("GET", "/_bench/bare")
end
"""

LUA_SINGLE = r"""
-- args: seed, number of SKUs
function init(args)
  math.randomseed(tonumber(args[1]) + 7919 * tid)
  n = tonumber(args[2])
end
function request()
  return wrk.format("GET", string.format("/v1/availability/BENCH-%06d", math.random(0, n - 1)))
end
"""

LUA_BATCH = r"""
-- args: seed, number of SKUs, SKUs per request. 64 bodies per thread, picked at random.
bodies = {}
function init(args)
  math.randomseed(tonumber(args[1]) + 7919 * tid)
  local n, k = tonumber(args[2]), tonumber(args[3])
  for b = 1, 64 do
    local seen, skus = {}, {}
    while #skus < k do
      local i = math.random(0, n - 1)
      if not seen[i] then
        seen[i] = true
        table.insert(skus, string.format('"BENCH-%06d"', i))
      end
    end
    bodies[b] = '{"skus":[' .. table.concat(skus, ",") .. '],"channel":"online"}'
  end
end
local headers = {["Content-Type"] = "application/json"}
function request()
  return wrk.format("POST", "/v1/availability/query", headers, bodies[math.random(1, #bodies)])
end
"""

LUA_RESERVE = r"""
-- args: seed, run tag, token, "hot" or "spread", hot SKU, number of SKUs.
-- reservation_id = <run tag>-<thread id>-<counter>: unique per request.
function init(args)
  math.randomseed(tonumber(args[1]) + 7919 * tid)
  tag, mode, hot, n = args[2], args[4], args[5], tonumber(args[6])
  headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. args[3]}
  counter = 0
end
function request()
  counter = counter + 1
  local sku = hot
  if mode ~= "hot" then sku = string.format("BENCH-%06d", math.random(0, n - 1)) end
  local body = string.format(
    '{"reservation_id":"%s-%d-%d","lines":[{"sku":"%s","quantity":1}],"ttl_seconds":900}',
    tag, tid, counter, sku)
  return wrk.format("POST", "/v1/reservations", headers, body)
end
"""

LUA_PACING = r"""
-- Paced to a target rate per thread (wrk2 is not in Debian). wrk calls delay() before every
-- request; each call takes the next slot of an evenly spaced schedule, so the thread sends
-- `rate` requests/s whatever the latency (as long as a connection is free). A rate of 0 means
-- unpaced. wrk measures latency from the moment a request is written, after the delay.
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]]
local ts = ffi.new("bench_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts)  -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end
interval = nil
local next_at = nil
function delay()
  if interval == nil then return 0 end
  local t = now_ms()
  if next_at == nil or next_at < t - 100 then next_at = t end  -- no catch-up bursts after a stall
  local d = next_at - t
  next_at = next_at + interval
  if d < 0 then return 0 end
  return math.floor(d + 0.5)
end
"""

LUA_PACED = (
    LUA_PACING
    + r"""
-- Single lookups at a paced rate. args: seed, number of SKUs, requests/s for this thread
function init(args)
  math.randomseed(tonumber(args[1]) + 7919 * tid)
  n = tonumber(args[2])
  interval = 1000 / tonumber(args[3])
end
function request()
  return wrk.format("GET", string.format("/v1/availability/BENCH-%06d", math.random(0, n - 1)))
end
"""
)

LUA_DELIVERY = (
    LUA_PACING
    + r"""
-- Delivery options for 3-line baskets of random seeded SKUs to a random destination ZIP.
-- args: seed, number of SKUs, requests/s for this thread (0: as fast as it goes)
local zips = {"10003", "11217", "02116", "60603", "75225", "77056", "30326", "80206", "98101",
              "94108", "08817", "90012"}
bodies = {}
function init(args)
  math.randomseed(tonumber(args[1]) + 7919 * tid)
  local n, rate = tonumber(args[2]), tonumber(args[3])
  if rate > 0 then interval = 1000 / rate end
  for b = 1, 128 do
    local lines = {}
    for k = 1, 3 do
      table.insert(lines, string.format('{"sku":"BENCH-%06d","quantity":%d}',
                                        math.random(0, n - 1), math.random(1, 3)))
    end
    bodies[b] = '{"lines":[' .. table.concat(lines, ",") .. '],"destination":{"postal_code":"'
                .. zips[math.random(1, #zips)] .. '"}}'
  end
end
local headers = {["Content-Type"] = "application/json"}
function request()
  return wrk.format("POST", "/v1/delivery-options", headers, bodies[math.random(1, #bodies)])
end
"""
)


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk not found; installing Debian's wrk (apt-get install wrk) ...", flush=True)
    cmd = "apt-get update -qq && apt-get install -y -qq wrk"
    if os.geteuid() != 0:
        cmd = f"sudo sh -c '{cmd}'"
    proc = subprocess.run(cmd, shell=True, capture_output=True, text=True)
    found = shutil.which("wrk")
    if proc.returncode != 0 or not found:
        raise SystemExit(
            "api_bench: wrk is needed and could not be installed "
            f"(`{cmd}` exited {proc.returncode}):\n{proc.stderr.strip()[-2000:]}\n"
            "Install it (Debian/Ubuntu: apt-get install wrk) and run again."
        )
    return found


# --------------------------------------------------------------------------------------------
# CPU accounting: how much of the machine other processes used during a run


def _busy_jiffies() -> int:
    with open("/proc/stat") as f:
        parts = [int(x) for x in f.readline().split()[1:]]
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0)  # idle + iowait
    return sum(parts[:8]) - idle  # user..steal, without guest (already in user)


def _proc_jiffies(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        # utime, stime, cutime, cstime (children that were waited for, e.g. finished wrk runs)
        return int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
    except (OSError, IndexError, ValueError):
        return 0


@dataclass
class CpuWindow:
    pids: dict[str, int]
    t0: float = 0.0
    busy0: int = 0
    own0: dict[str, int] = field(default_factory=dict)

    def start(self) -> None:
        self.t0 = time.monotonic()
        self.busy0 = _busy_jiffies()
        self.own0 = {name: _proc_jiffies(pid) for name, pid in self.pids.items()}

    def stop(self) -> dict[str, float]:
        """Cores used: total, by each of ours, and by everything else."""
        dt = time.monotonic() - self.t0
        total = (_busy_jiffies() - self.busy0) / CLK_TCK / dt
        out = {
            name: (_proc_jiffies(pid) - self.own0[name]) / CLK_TCK / dt
            for name, pid in self.pids.items()
        }
        out["total"] = total
        out["others"] = max(0.0, total - sum(v for k, v in out.items() if k != "total"))
        return out


# --------------------------------------------------------------------------------------------
# Results


@dataclass
class Row:
    key: str
    label: str
    rate: float
    p50_ms: float | None
    p99_ms: float | None
    requests: int
    codes: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)
    load1: float = 0.0
    note: str = ""


def fmt_codes(codes: dict[str, int]) -> str:
    return " ".join(f"{k}:{v}" for k, v in sorted(codes.items())) or "-"


def fmt_errors(errors: dict[str, int]) -> str:
    bad = {k: v for k, v in errors.items() if v}
    return " ".join(f"{k}:{v}" for k, v in sorted(bad.items())) or "none"


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.wrk = ensure_wrk()
        self.tmp = Path(tempfile.mkdtemp(prefix="atp-api-bench-"))
        self.log_dir = self.tmp / "logs"
        self.redis: ManagedProcess | None = None
        self.api: ManagedProcess | None = None
        self.redis_url = ""
        self.base = ""
        self.tag = f"B{int(time.time()):x}"
        self.rows: list[Row] = []
        self.failed = False
        self.sync: redis_sync.Redis | None = None
        for name, text in {
            "bare": LUA_BARE,
            "single": LUA_SINGLE,
            "batch": LUA_BATCH,
            "reserve": LUA_RESERVE,
            "paced": LUA_PACED,
            "delivery": LUA_DELIVERY,
        }.items():
            (self.tmp / f"{name}.lua").write_text(LUA_COMMON + text)

    # -- processes ---------------------------------------------------------------------------

    def start(self) -> None:
        redis_port = embedded.free_port()
        self.redis = embedded.start_redis(
            redis_port, self.tmp / "redis-data", self.log_dir, appendonly=True
        )
        self.redis_url = f"redis://127.0.0.1:{redis_port}/0"
        self.sync = redis_sync.Redis.from_url(self.redis_url)
        print(f"redis pid {self.redis.pid} on 127.0.0.1:{redis_port} (AOF on)", flush=True)

        t = time.monotonic()
        asyncio.run(self.seed())
        print(
            f"seeded {self.args.skus:,} SKUs x {len(SEED_LOCATIONS)} locations "
            f"({SEED_UNITS:,} units each) and {HOT_SKU} ({HOT_UNITS:,} at {HOT_LOCATION}) "
            f"in {time.monotonic() - t:.1f}s",
            flush=True,
        )

        api_port = embedded.free_port()
        env = {
            **os.environ,
            "ATP_REDIS_URL": self.redis_url,
            "ATP_API_HOST": "127.0.0.1",
            "ATP_API_PORT": str(api_port),
            "ATP_BENCH_ENDPOINTS": "true",
            "ATP_API_KEYS": f"bench:read+reserve:{TOKEN}",
            "ATP_NETWORK_FILE": NETWORK_FILE,
            "ATP_LOG_LEVEL": "warning",
            "ATP_DATA_DIR": str(self.tmp / "data"),
            **dict(kv.split("=", 1) for kv in self.args.api_env),
        }
        self.api = embedded.spawn("api", [sys.executable, "-m", "atp", "api"], self.log_dir, env)
        self.base = f"http://127.0.0.1:{api_port}"
        deadline = time.monotonic() + 30
        while True:
            if not self.api.alive():
                raise RuntimeError(f"the API exited early:\n{self.api.log_tail()}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(self.base + "/readyz", timeout=1) as r,
            ):
                if r.status == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the API was not ready within 30 s:\n{self.api.log_tail()}")
            time.sleep(0.1)
        # One real answer, to be sure the seeded stock is what the API serves.
        with urllib.request.urlopen(f"{self.base}/v1/availability/{sku_name(0)}") as r:
            atp = json.loads(r.read())["atp"]
        expected = SEED_UNITS * len(SEED_LOCATIONS)
        if atp != expected:
            raise RuntimeError(f"{sku_name(0)}: the API answers atp {atp}, expected {expected}")
        print(f"api pid {self.api.pid} on {self.base} ready; {sku_name(0)} atp={atp}", flush=True)

    def stop(self) -> None:
        if self.sync is not None:
            with contextlib.suppress(Exception):
                self.sync.close()
        for proc in (self.api, self.redis):
            if proc is not None:
                code = proc.stop(grace_s=10)
                print(f"stopped {proc.name} (pid {proc.pid}), exit code {code}", flush=True)
        if self.failed or self.args.keep_logs:
            print(f"logs kept in {self.log_dir}", flush=True)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    async def seed(self) -> None:
        now = time.time_ns() // 1_000_000
        client = client_from_url(self.redis_url)
        try:
            store = LedgerStore(client)
            moves: list[Movement] = []
            for i in range(self.args.skus):
                for loc in SEED_LOCATIONS:
                    moves.append(
                        Movement(
                            f"seed-{i}-{loc}",
                            sku_name(i),
                            loc,
                            Effect.COUNT,
                            SEED_UNITS,
                            now - 1000,
                            "CYCLE_COUNT",
                            "bench",
                        )
                    )
            moves.append(
                Movement(
                    "seed-hot",
                    HOT_SKU,
                    HOT_LOCATION,
                    Effect.COUNT,
                    HOT_UNITS,
                    now - 1000,
                    "CYCLE_COUNT",
                    "bench",
                )
            )
            for start in range(0, len(moves), 3000):
                await store.apply(moves[start : start + 3000], now)
        finally:
            await client.aclose()

    # -- measurements ------------------------------------------------------------------------

    def cpu_window(self, extra: dict[str, int] | None = None) -> CpuWindow:
        assert self.api is not None and self.redis is not None
        pids = {"api": self.api.pid, "redis": self.redis.pid, "bench+wrk": os.getpid()}
        return CpuWindow({**pids, **(extra or {})})

    def redis_stats(self) -> dict[str, tuple[int, int]]:
        """(calls, usec) per command inside Redis so far (INFO commandstats)."""
        assert self.sync is not None
        return {
            name.removeprefix("cmdstat_"): (int(v.get("calls", 0)), int(v.get("usec", 0)))
            for name, v in self.sync.info("commandstats").items()
        }

    def redis_note(self, before: dict[str, tuple[int, int]], requests: int) -> str:
        """EVALSHA, SCRIPT EXISTS and HGETALL calls per request during a run, and Redis's own
        time per call. commandstats also counts commands that scripts run (atp/store/lua/*.lua)."""
        after = self.redis_stats()
        parts = []
        for name in ("evalsha", "script|exists", "hgetall"):
            calls, usec = after.get(name, (0, 0))
            c0, u0 = before.get(name, (0, 0))
            if calls > c0 and requests:
                parts.append(
                    f"{name.upper()} {(calls - c0) / requests:.2f}/req "
                    f"({(usec - u0) / (calls - c0):.1f} us each)"
                )
        return ("Redis: " + ", ".join(parts)) if parts else ""

    def run_wrk(
        self,
        key: str,
        label: str,
        script: str,
        path: str,
        script_args: list[str],
        connections: int | None = None,
        duration: int | None = None,
        report: bool = True,
    ) -> Row:
        connections = connections or self.args.connections
        duration = duration or self.args.duration
        argv = [
            self.wrk,
            f"-t{self.args.threads}",
            f"-c{connections}",
            f"-d{duration}s",
            "--timeout",
            "5s",
            "--latency",
            "-s",
            str(self.tmp / f"{script}.lua"),
            self.base + path,
            "--",
            *script_args,
        ]
        time.sleep(1.0)  # let the API finish what the previous run left in flight
        redis0 = self.redis_stats()
        window = self.cpu_window()
        window.start()
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60)
        cpu = window.stop()
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("BENCHJSON ")), None)
        if proc.returncode != 0 or line is None:
            raise RuntimeError(f"wrk failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        data = json.loads(line[len("BENCHJSON ") :])
        assert self.api is not None
        if not self.api.alive():
            raise RuntimeError(f"the API died during {label}:\n{self.api.log_tail()}")
        row = Row(
            key=key,
            label=label,
            rate=data["requests"] / (data["duration_us"] / 1e6),
            p50_ms=data["p50_us"] / 1000,
            p99_ms=data["p99_us"] / 1000,
            requests=data["requests"],
            codes=data["codes"],
            errors={k: data[k] for k in ("connect", "read", "write", "timeout", "status_errors")},
            cpu=cpu,
            load1=os.getloadavg()[0],
        )
        row.note = self.redis_note(redis0, row.requests)
        if report:
            self.rows.append(row)
            self.print_row(row)
        return row

    async def raw_reserve(self, mode: str, seconds: float, tasks: int) -> Row:
        """Reserving on the hot SKU from this process, `tasks` concurrent loops, no HTTP: the whole
        ReservationStore.reserve (mode "store"), or the one script it runs on one Redis,
        reserve/make.lua, alone."""
        network = load_network(Path(NETWORK_FILE))
        client = client_from_url(self.redis_url, max_connections=max(64, tasks))
        store = ReservationStore(client, 24 * 3600 * 1000)
        script = client.register_script(load_script("reserve/make.lua"))
        latencies: list[float] = []
        outcomes: Counter[str] = Counter()
        stop_at = 0.0

        async def loop(tid: int) -> None:
            n = 0
            while time.monotonic() < stop_at:
                n += 1
                req = ReservationRequest(
                    f"{self.tag}-raw{mode}-{tid}-{n}",
                    (ReservationLine(HOT_SKU, 1),),
                    900,
                    "online",
                )
                now = time.time_ns() // 1_000_000
                t0 = time.perf_counter()
                if mode == "store":
                    try:
                        created, _ = await store.reserve(req, network, now)
                        outcomes["held" if created else "replay"] += 1
                    except Exception as exc:  # counted and shown in the statuses
                        outcomes[type(exc).__name__] += 1
                else:
                    key_list, args = store.make_call(req, network, now)
                    reply = await script(keys=key_list, args=args)
                    outcomes[reply[0].decode()] += 1
                latencies.append(time.perf_counter() - t0)

        await asyncio.sleep(1.0)  # let the API finish what the previous run left in flight
        redis0 = self.redis_stats()
        window = self.cpu_window()
        window.start()
        t0 = time.monotonic()
        stop_at = t0 + seconds
        try:
            await asyncio.gather(*(loop(i) for i in range(tasks)))
        finally:
            await client.aclose()
        elapsed = time.monotonic() - t0
        cpu = window.stop()
        latencies.sort()

        def pct(p: float) -> float:
            return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] * 1000

        label = (
            "e. ReservationStore.reserve (no HTTP)"
            if mode == "store"
            else "e. reserve/make.lua alone, EVALSHA (no HTTP)"
        )
        row = Row(
            key=f"raw_{mode}",
            label=label,
            rate=len(latencies) / elapsed,
            p50_ms=pct(50),
            p99_ms=pct(99),
            requests=len(latencies),
            codes=dict(outcomes),
            cpu=cpu,
            load1=os.getloadavg()[0],
        )
        row.note = f"{tasks} tasks, one client pool; " + self.redis_note(redis0, row.requests)
        self.rows.append(row)
        self.print_row(row)
        return row

    def bare_rate(self) -> float:
        return next(r.rate for r in self.rows if r.key == "bare")

    def print_row(self, row: Row) -> None:
        bare = next((r.rate for r in self.rows if r.key == "bare"), row.rate)
        lat = "" if row.p50_ms is None else f"  p50 {row.p50_ms:.2f} ms  p99 {row.p99_ms:.2f} ms"
        cpu = "  cpu(cores): " + " ".join(f"{k}={v:.2f}" for k, v in row.cpu.items())
        print(
            f"{row.label}: {row.rate:,.0f}/s ({row.rate / bare:.2f} x bare){lat}\n"
            f"    {row.requests:,} requests; status {fmt_codes(row.codes)}; "
            f"socket errors/timeouts {fmt_errors(row.errors)}; load1 {row.load1:.2f}\n"
            f"   {cpu}" + (f"\n    {row.note}" if row.note else ""),
            flush=True,
        )

    def profile(self, spy_bin: str, route: str = "single") -> None:
        """py-spy the API process in the middle of an extra (unreported) run of `route`
        (single lookups, batches of BATCH_SKUS, reservations of a random SKU, or 3-line
        delivery options)."""
        import threading

        assert self.api is not None
        out = self.tmp / f"pyspy-{route}.txt"
        skus = str(self.args.skus)
        args = {
            "single": ["11", skus],
            "batch": ["11", skus, str(BATCH_SKUS)],
            "reserve": ["11", self.tag + "p", TOKEN, "spread", HOT_SKU, skus],
            "delivery": ["11", skus, "0"],
        }[route]
        load = threading.Thread(
            target=self.run_wrk,
            args=("profiled", f"{route} (profiled)", route, "/", args),
            kwargs={"duration": SPY_SECONDS + 5, "report": False},
        )
        load.start()
        time.sleep(3.0)  # run_wrk waits 1 s before wrk starts; then 2 s of load before sampling
        try:
            spy = subprocess.run(
                [
                    spy_bin,
                    "record",
                    "-d",
                    str(SPY_SECONDS),
                    "-r",
                    str(SPY_RATE),
                    "--idle",
                    "--native",
                    "-f",
                    "raw",
                    "-o",
                    str(out),
                    "--pid",
                    str(self.api.pid),
                ],
                capture_output=True,
                text=True,
                timeout=SPY_SECONDS + 30,
            )
        finally:
            load.join()
        if not out.exists():
            print(f"py-spy wrote nothing:\n{spy.stdout}\n{spy.stderr}", flush=True)
            return
        summarize_profile(out, SPY_SECONDS, SPY_RATE)
        kept = Path("/tmp") / f"atp-api-bench-pyspy-{self.tag}-{route}.txt"
        shutil.copy(out, kept)
        print(f"raw py-spy samples (collapsed stacks): {kept}", flush=True)

    def run(self) -> None:
        a = self.args
        seed = str(random.randrange(1, 1_000_000))
        print(f"\nwarm-up: {a.warmup}s of single lookups (not reported)", flush=True)
        self.run_wrk(
            "warmup",
            "warm-up",
            "single",
            "/",
            [seed, str(a.skus)],
            duration=a.warmup,
            report=False,
        )
        print(
            f"\nruns: wrk -t{a.threads} -c{a.connections} -d{a.duration}s --latency\n", flush=True
        )
        self.run_wrk("bare", "a. bare GET /_bench/bare", "bare", "/_bench/bare", [])
        single = self.run_wrk(
            "single", "b. single GET /v1/availability/{sku}", "single", "/", [seed, str(a.skus)]
        )
        self.run_wrk(
            "batch",
            f"c. batch POST /v1/availability/query ({BATCH_SKUS} SKUs)",
            "batch",
            "/",
            [seed, str(a.skus), str(BATCH_SKUS)],
        )
        self.run_wrk(
            "reserve_hot",
            f"d. reserve POST /v1/reservations, one hot SKU ({HOT_SKU})",
            "reserve",
            "/",
            [seed, self.tag + "h", TOKEN, "hot", HOT_SKU, str(a.skus)],
        )
        self.run_wrk(
            "reserve_spread",
            f"d. reserve POST /v1/reservations, random SKU of {a.skus:,}",
            "reserve",
            "/",
            [seed, self.tag + "s", TOKEN, "spread", HOT_SKU, str(a.skus)],
        )
        asyncio.run(self.raw_reserve("store", a.raw_seconds, a.raw_tasks))
        asyncio.run(self.raw_reserve("script", a.raw_seconds, a.raw_tasks))

        target = single.rate / 2
        per_thread = target / a.threads
        paced = self.run_wrk(
            "half",
            f"f. single at half of b's rate (target {target:,.0f}/s; wrk + Lua delay() pacing, "
            f"{a.paced_connections} connections)",
            "paced",
            "/",
            [seed, str(a.skus), f"{per_thread:.3f}"],
            connections=a.paced_connections,
        )
        paced.note = f"target {target:,.0f}/s, achieved {paced.rate:,.0f}/s"
        print(f"    {paced.note}", flush=True)
        delivery = self.run_wrk(
            "delivery",
            "g. POST /v1/delivery-options, 3-line basket, random destination",
            "delivery",
            "/",
            [seed, str(a.skus), "0"],
        )
        target = delivery.rate / 2
        half = self.run_wrk(
            "delivery_half",
            f"h. delivery options at half of g's rate (target {target:,.0f}/s, "
            f"{a.paced_connections} connections)",
            "delivery",
            "/",
            [seed, str(a.skus), f"{target / a.threads:.3f}"],
            connections=a.paced_connections,
        )
        half.note = f"target {target:,.0f}/s, achieved {half.rate:,.0f}/s"
        print(f"    {half.note}", flush=True)
        self.run_wrk(
            "bare_again", "a'. bare again, at the end (drift check)", "bare", "/_bench/bare", []
        )
        for route in a.spy_route if a.py_spy else ():
            print(f"\nprofile: py-spy record of the API during {route} runs", flush=True)
            self.profile(a.py_spy, route)


def table(rows: list[Row]) -> None:
    """The markdown table of a run and the verdicts against issue 15's API targets."""
    bare = next(r.rate for r in rows if r.key == "bare")
    print(
        "\n| run | req/s | x bare | p50 ms | p99 ms | requests | statuses | errors | "
        "others' CPU (cores) |"
    )
    print("|---|---:|---:|---:|---:|---:|---|---|---:|")
    for r in rows:
        print(
            f"| {r.label} | {r.rate:,.0f} | {r.rate / bare:.2f} | {r.p50_ms:.2f} | "
            f"{r.p99_ms:.2f} | {r.requests:,} | {fmt_codes(r.codes)} | "
            f"{fmt_errors(r.errors)} | {r.cpu.get('others', 0):.2f} |"
        )
    by = {r.key: r for r in rows}
    print("\nagainst issue 15's targets (x bare of this run; the batch against the issue's 183/s):")
    for key, target in TARGETS.items():
        if key not in by:
            continue
        r = by[key]
        got = r.rate / (BATCH_BASELINE if key == "batch" else bare)
        unit = "x the issue's rate" if key == "batch" else "x bare"
        verdict = "met" if got >= target else f"missed by {target - got:.2f}"
        print(f"  {r.label}: {got:.2f} {unit}, target {target} ({verdict})")
    h = by["half"]
    print(
        f"  single at half peak: p99 {h.p99_ms:.2f} ms, target < 5 ms "
        + ("(met)" if h.p99_ms is not None and h.p99_ms < 5 else "(missed)")
        + f" at {h.rate:,.0f}/s"
    )
    if "delivery_half" in by:
        d = by["delivery_half"]
        print(f"  delivery options, 3 lines, half peak: p99 {d.p99_ms:.2f} ms at {d.rate:,.0f}/s")


# Issue 15: minimum rates, as a share of the bare endpoint's (the batch: of BATCH_BASELINE).
TARGETS = {
    "single": 0.8,
    "reserve_hot": 0.5,
    "reserve_spread": 0.5,
    "delivery": 0.3,
    "batch": 2.0,
}
BATCH_BASELINE = 183.0  # batches of 100 SKUs per second when issue 15 was filed


def header() -> None:
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain"], capture_output=True, text=True
    ).stdout.strip()
    print(
        f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}; {os.cpu_count()} cores, "
        f"{platform.machine()}, Python {platform.python_version()}; commit {commit or '?'}"
        + (" (working tree has uncommitted changes)" if dirty else "")
        + f"; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
        flush=True,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--paced-connections", type=int, default=8)
    parser.add_argument("--skus", type=int, default=10_000)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--raw-seconds", type=float, default=5.0)
    parser.add_argument("--raw-tasks", type=int, default=32)
    parser.add_argument("--py-spy", metavar="PATH", help="py-spy binary: profile the API too")
    parser.add_argument(
        "--spy-route",
        choices=["single", "batch", "reserve", "delivery"],
        nargs="+",
        default=["single"],
        help="what to profile (one after another)",
    )
    parser.add_argument("--keep-logs", action="store_true")
    parser.add_argument(
        "--api-env",
        action="append",
        default=[],
        metavar="ATP_X=V",
        help="a setting for the API process, e.g. ATP_API_LOOP=asyncio (repeatable)",
    )
    return parser


def measure(args: argparse.Namespace) -> list[Row]:
    """Every run (a to a'), in order; the processes it starts are stopped before it returns."""
    os.chdir(ROOT)  # ATP_NETWORK_FILE is relative to the project
    bench = Bench(args)
    try:
        bench.start()
        bench.run()
    except BaseException:
        bench.failed = True
        if bench.api is not None:
            print(f"API log tail:\n{bench.api.log_tail()}", file=sys.stderr)
        raise
    finally:
        bench.stop()
    return bench.rows


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not all(kv.startswith(("ATP_", "OTEL_")) and "=" in kv for kv in args.api_env):
        parser.error("--api-env takes ATP_NAME=VALUE or OTEL_NAME=VALUE")
    header()
    if args.api_env:
        print("API settings: " + " ".join(args.api_env), flush=True)
    rows = measure(args)
    table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
