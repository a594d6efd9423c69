"""The benchmark suite of issue 7 in one command: every figure beside a baseline from the same run.

    make bench                                     # = .venv/bin/python benchmarks/run_all.py
    .venv/bin/python benchmarks/run_all.py --quick # smaller runs, about 5 minutes
    .venv/bin/python benchmarks/run_all.py --only freshness,memory
    .venv/bin/python benchmarks/run_all.py --py-spy  # also profile the worker under load

Runs, one after another, each on an embedded stack of its own (Tansu and Redis on free 127.0.0.1
ports, started and stopped by PID inside the benchmark):

  apply      apply_rate.py: the worker's apply rate vs a do-nothing faust agent and aiokafka
  mixed      mixed_sources.py: warehouses, stores and 3PLs mixed, vs aiokafka
  freshness  freshness.py: p50/p99 from production to Redis at fixed offered rates, vs idle
  api        api_bench.py: lookups, batches, reservations and hold/take.lua vs a bare endpoint
  memory     ledger_memory.py: Redis bytes per (SKU, location) with 1M pairs vs served-only
  hotpair    hot_pair.py: one pair with 50,000 kept deltas in the mix vs the same with none

and prints one markdown table: figure, baseline, ratio, target, met/missed. Figures are printed,
never asserted; a section that fails is reported in the table and the exit status is 1.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import (  # noqa: E402
    api_bench,
    apply_rate,
    freshness,
    hot_pair,
    ledger_memory,
    mixed_sources,
)

SECTIONS = ("apply", "mixed", "freshness", "api", "memory", "hotpair")
FRESHNESS_TARGET_RATE = 5000.0
FRESHNESS_TARGET_S = 0.100


@dataclass
class Figure:
    section: str
    name: str
    value: str
    baseline: str = "-"
    ratio: str = "-"
    target: str = "-"
    verdict: str = "-"


def fmt_ratio(x: float) -> str:
    """Two decimals, or two significant digits below 0.1."""
    return f"{x:.2f}" if x >= 0.1 else f"{x:.2g}"


def at_least(ratio: float, target: float) -> str:
    return "met" if ratio >= target else f"missed by {target - ratio:.2f}"


def below(value: float, target: float, unit: str) -> str:
    return "met" if value < target else f"missed by {value - target:,.0f} {unit}"


# --------------------------------------------------------------------------------------------
# The sections: each runs one benchmark module and turns its result into figures


def run_apply(opts: argparse.Namespace) -> list[Figure]:
    argv = ["--messages", str(opts.messages or (10_000 if opts.quick else 50_000))]
    argv += ["--probes", "3" if opts.quick else "10"]
    if opts.quick:
        argv.append("--no-topic-send-floor")
    if opts.py_spy is not None:
        argv += ["--py-spy", opts.py_spy] if opts.py_spy else ["--py-spy"]
    r = apply_rate.measure(apply_rate.build_parser().parse_args(argv))
    apply_rate.table(r)
    worker = r.rate(apply_rate.WORKER)
    check = "Redis check OK" if r.verified else "Redis check MISMATCH"
    floor1 = r.rate(apply_rate.FLOOR1)
    out = [
        Figure(
            "apply",
            "apply rate, atp worker (movements/s) vs faust 1-hop do-nothing agent",
            f"{worker:,.0f}/s",
            f"{floor1:,.0f}/s",
            f"{worker / floor1:.2f}",
            ">= 0.75",
            at_least(worker / floor1, 0.75) + ("" if r.verified else f"; {check}"),
        )
    ]
    for label, path in (
        ("faust 2-hop do-nothing, worker transport", apply_rate.FLOOR2W),
        ("faust 2-hop do-nothing, topic.send", apply_rate.FLOOR2),
        ("aiokafka consumer, no group (ceiling)", apply_rate.CEILING),
    ):
        if path in r.seconds:
            base = r.rate(path)
            out.append(
                Figure(
                    "apply",
                    f"apply rate vs {label}",
                    f"{worker:,.0f}/s",
                    f"{base:,.0f}/s",
                    fmt_ratio(worker / base),
                )
            )
    return out


def run_mixed(opts: argparse.Namespace) -> list[Figure]:
    argv = ["--messages", str(5_000 if opts.quick else 30_000)]
    r = mixed_sources.measure(mixed_sources.build_parser().parse_args(argv))
    rate, ceiling = r.messages / r.worker_s, r.messages / r.raw_s
    verdict = "matches truth" if r.ok else f"{r.wrong} pairs differ from truth"
    return [
        Figure(
            "mixed",
            f"mixed sources, atp worker (source msgs/s; {r.movements / r.worker_s:,.0f} "
            "movements/s) vs aiokafka",
            f"{rate:,.0f}/s",
            f"{ceiling:,.0f}/s",
            fmt_ratio(rate / ceiling),
            "-",
            verdict,
        )
    ]


def run_freshness(opts: argparse.Namespace) -> list[Figure]:
    rates = opts.rates or ("1000,5000" if opts.quick else "1000,2000,5000")
    seconds = opts.freshness_seconds or (6.0 if opts.quick else 15.0)
    argv = ["--rates", rates, "--seconds", str(seconds), "--probes", "5" if opts.quick else "10"]
    r = freshness.measure(freshness.build_parser().parse_args(argv))
    idle = sorted(r.trickle)
    idle_p50 = idle[len(idle) // 2]
    idle_max = idle[-1]
    out = []
    for x in r.rates:
        p50, p99 = x.probe_pct(50), x.probe_pct(99)
        is_target = x.target == FRESHNESS_TARGET_RATE
        target = "< 100 ms" if is_target else "(< 100 ms at 5,000/s)"
        verdict = below(1000 * p99, 100, "ms")
        out += [
            Figure(
                "freshness",
                f"freshness p50 at {x.target:,.0f}/s offered (outside probes; histogram "
                f"{freshness.ms(x.hist_pct(50))} ms) vs idle trickle median",
                f"{1000 * p50:,.0f} ms",
                f"{1000 * idle_p50:,.0f} ms",
                f"{p50 / idle_p50:.1f}",
            ),
            Figure(
                "freshness",
                f"freshness p99 at {x.target:,.0f}/s offered (histogram "
                f"{freshness.ms(x.hist_pct(99))} ms; {x.within_100ms:.0%} within 100 ms) "
                "vs idle trickle max",
                f"{1000 * p99:,.0f} ms",
                f"{1000 * idle_max:,.0f} ms",
                f"{p99 / idle_max:.1f}",
                target,
                verdict if is_target else f"({verdict})",
            ),
            Figure(
                "freshness",
                f"worker kept up at {x.target:,.0f}/s? applied/s during the window vs achieved "
                f"offer (lag at end {x.lag_at_end:,}, max {x.max_lag:,}; drained in "
                f"{x.drain_s:.1f} s; worker {x.cpu.get('worker', 0):.2f} cores, others "
                f"{x.cpu.get('others', 0):.2f})",
                f"{x.applied_rate:,.0f}/s",
                f"{x.achieved:,.0f}/s",
                f"{x.applied_rate / x.achieved:.2f}",
                "kept up",
                "kept up" if x.lag_at_end <= 0.5 * x.target else "fell behind",
            ),
        ]
    return out


def run_api(opts: argparse.Namespace) -> list[Figure]:
    argv = ["--duration", "3", "--raw-seconds", "2", "--warmup", "1"] if opts.quick else []
    rows = api_bench.measure(api_bench.build_parser().parse_args(argv))
    api_bench.table(rows)
    by = {r.key: r for r in rows}
    bare = by["bare"]
    out = []

    def rate_row(key: str, name: str, target: float | None = None) -> None:
        r = by[key]
        ratio = r.rate / bare.rate
        out.append(
            Figure(
                "api",
                f"{name} (p50 {r.p50_ms:.1f} ms, p99 {r.p99_ms:.1f} ms) vs bare endpoint",
                f"{r.rate:,.0f}/s",
                f"{bare.rate:,.0f}/s",
                f"{ratio:.2f}",
                f">= {target:.2f}" if target else "-",
                at_least(ratio, target) if target else "-",
            )
        )

    rate_row("single", "single lookups, GET /v1/availability/{sku}", 0.70)
    half = by["half"]
    out.append(
        Figure(
            "api",
            f"single lookups p99 at half the peak ({half.rate:,.0f}/s) vs bare p99 at full load",
            f"{half.p99_ms:.1f} ms",
            f"{bare.p99_ms:.1f} ms",
            f"{half.p99_ms / bare.p99_ms:.2f}",
            "< 10 ms",
            below(half.p99_ms, 10, "ms"),
        )
    )
    rate_row("batch", f"batch lookups of {api_bench.BATCH_SKUS} SKUs (requests/s)")
    rate_row("reserve_hot", "reservations through the API, one hot SKU", 0.70)
    rate_row("reserve_spread", "reservations through the API, spread SKUs", 0.70)
    rate_row("raw_store", "ReservationStore.reserve (the saga), no HTTP")
    rate_row("raw_script", "hold/take.lua alone (EVALSHA through redis-py), no HTTP")
    rate_row("delivery", "delivery options, 3-line basket, POST /v1/delivery-options")
    dhalf = by["delivery_half"]
    out.append(
        Figure(
            "api",
            f"delivery options p99 at half their peak ({dhalf.rate:,.0f}/s) vs bare p99",
            f"{dhalf.p99_ms:.1f} ms",
            f"{bare.p99_ms:.1f} ms",
            f"{dhalf.p99_ms / bare.p99_ms:.2f}",
        )
    )
    again = by["bare_again"]
    out.append(
        Figure(
            "api",
            "bare endpoint again at the end (drift) vs bare at the start",
            f"{again.rate:,.0f}/s",
            f"{bare.rate:,.0f}/s",
            f"{again.rate / bare.rate:.2f}",
        )
    )
    return out


def run_memory(opts: argparse.Namespace) -> list[Figure]:
    pairs = opts.pairs or (100_000 if opts.quick else 1_000_000)
    argv = ["--pairs", str(pairs), "--delta-pairs", "3000" if opts.quick else "30000"]
    r = ledger_memory.measure(ledger_memory.build_parser().parse_args(argv))
    out = [
        Figure(
            "memory",
            f"Redis bytes per (SKU, location), {r.pairs:,} pairs, as shipped "
            f"({r.encodings.get('shipped', '?')} ledger hashes) vs served counts only",
            f"{r.shipped:.0f} B",
            f"{r.served_only:.0f} B",
            f"{r.shipped / r.served_only:.1f}",
            "< 200 B",
            below(r.shipped, 200, "B"),
        )
    ]
    for name, b in r.proposals.items():
        if name == ledger_memory.COPY_CONTROL:
            out.append(
                Figure(
                    "memory",
                    f"{name} (checks the method of the proposals) vs as shipped",
                    f"{b:.0f} B",
                    f"{r.shipped:.0f} B",
                    f"{b / r.shipped:.2f}",
                )
            )
            continue
        out.append(
            Figure(
                "memory",
                f"proposal (not shipped): {name}, {r.pairs:,} pairs",
                f"{b:.0f} B",
                f"{r.served_only:.0f} B",
                f"{b / r.served_only:.1f}",
                "< 200 B",
                f"({below(b, 200, 'B')})",
            )
        )
    for (d, setting), b in r.deltas.items():
        out.append(
            Figure(
                "memory",
                f"with {d} kept deltas per pair, {setting} (fewer pairs)",
                f"{b:,.0f} B",
                f"{r.served_only:.0f} B",
                f"{b / r.served_only:.0f}",
            )
        )
    return out


def run_hotpair(opts: argparse.Namespace) -> list[Figure]:
    batches = 100 if opts.quick else 300
    cold, hot = (hot_pair.run_tree(ROOT, kept, batches) for kept in (0, 50_000))
    return [
        Figure(
            "hotpair",
            "LedgerStore.apply movements/s, 5 % on a pair with 50,000 kept deltas, vs none kept",
            f"{hot['rate']:,.0f}/s",
            f"{cold['rate']:,.0f}/s",
            fmt_ratio(hot["rate"] / cold["rate"]),
            ">= 0.90",
            at_least(hot["rate"] / cold["rate"], 0.90),
        ),
        Figure(
            "hotpair",
            "batch apply time p99 (100 movements), 50,000 kept vs none",
            f"{hot['p99_ms']:.1f} ms",
            f"{cold['p99_ms']:.1f} ms",
            fmt_ratio(hot["p99_ms"] / cold["p99_ms"]),
        ),
        Figure(
            "hotpair",
            "AOF bytes per movement, 50,000 kept",
            f"{hot['aof_per_movement']:,.0f} B",
            f"{cold['aof_per_movement']:,.0f} B",
            fmt_ratio(hot["aof_per_movement"] / cold["aof_per_movement"]),
            "< 300 B",
            below(hot["aof_per_movement"], 300, "B"),
        ),
    ]


RUNNERS: dict[str, Callable[[argparse.Namespace], list[Figure]]] = {
    "apply": run_apply,
    "mixed": run_mixed,
    "freshness": run_freshness,
    "api": run_api,
    "memory": run_memory,
    "hotpair": run_hotpair,
}


# --------------------------------------------------------------------------------------------


def machine() -> str:
    def sh(*argv: str) -> str:
        try:
            return subprocess.run(argv, capture_output=True, text=True, cwd=ROOT).stdout.strip()
        except OSError:
            return ""

    model = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in sh("lscpu").splitlines()
            if ln.startswith("Model name")
        ),
        platform.processor() or "?",
    )
    commit = sh("git", "rev-parse", "--short", "HEAD") or "?"
    dirty = " (with uncommitted changes)" if sh("git", "status", "--porcelain") else ""
    return (
        f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}; {os.cpu_count()} cores "
        f"(nproc), {model}, {platform.machine()}; Python {platform.python_version()}; "
        f"commit {commit}{dirty}"
    )


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def print_table(figures: list[Figure]) -> None:
    print("| section | figure | value | baseline | ratio | target | verdict |")
    print("|---|---|---:|---:|---:|---|---|")
    for f in figures:
        print(
            f"| {f.section} | {f.name} | {f.value} | {f.baseline} | {f.ratio} | {f.target} "
            f"| {f.verdict} |"
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only", help=f"comma-separated sections to run, of: {','.join(SECTIONS)} (all)"
    )
    parser.add_argument("--skip", default="", help="comma-separated sections not to run")
    parser.add_argument("--quick", action="store_true", help="smaller, shorter runs (~5 min)")
    parser.add_argument("--messages", type=int, help="apply: messages (50000; quick 10000)")
    parser.add_argument(
        "--rates", help="freshness: offered rates/s (1000,2000,5000; quick 1000,5000)"
    )
    parser.add_argument(
        "--freshness-seconds", type=float, help="freshness: seconds per rate (15; quick 6)"
    )
    parser.add_argument("--pairs", type=int, help="memory: pairs (1000000; quick 100000)")
    parser.add_argument(
        "--py-spy",
        metavar="PATH",
        nargs="?",
        const="",
        help="apply: py-spy the worker under load (binary PATH, or found; see profiling.py). "
        "py-spy pauses the worker to sample, so that run's apply rate is lower",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    # SIGTERM (and SIGINT, which a shell's background job ignores) become SystemExit, so every
    # benchmark's `finally` stops the processes it started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = build_parser()
    opts = parser.parse_args(argv)
    chosen = [s.strip() for s in (opts.only or ",".join(SECTIONS)).split(",") if s.strip()]
    skipped = {s.strip() for s in opts.skip.split(",") if s.strip()}
    unknown = [s for s in [*chosen, *skipped] if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    chosen = [s for s in SECTIONS if s in chosen and s not in skipped]
    started = time.monotonic()
    head = machine()
    load_before = load()
    print(f"{head}\nload average before: {load_before}\nsections: {', '.join(chosen)}", flush=True)
    figures: list[Figure] = []
    failed = []
    for section in chosen:
        print(f"\n===== {section} (load average {load()}) =====", flush=True)
        t = time.monotonic()
        try:
            figures += RUNNERS[section](opts)
        except Exception as exc:  # one broken section must not hide the others' figures
            traceback.print_exc()
            failed.append(section)
            figures.append(
                Figure(section, f"{section} failed: {exc!r}"[:200], "-", verdict="error")
            )
        print(f"===== {section} took {time.monotonic() - t:.0f} s =====", flush=True)
    print(f"\n{head}")
    print(
        f"load average before: {load_before}; after: {load()}; "
        f"{time.monotonic() - started:.0f} s in all{' (quick)' if opts.quick else ''}\n"
    )
    print_table(figures)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
