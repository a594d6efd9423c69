"""A worker that starts behind a backlog: does it catch up with bounded memory?

    .venv/bin/python benchmarks/backlog.py [--messages 1000000] [--skus 5000]

Starts its own embedded broker and Redis on free 127.0.0.1 ports, produces `--messages` WMS
messages into stock.wms before any worker runs, measures a plain aiokafka consumer reading
them (the same-run baseline: what reading alone costs), then starts an API and a worker and,
every `--sample-s` (5), prints the worker's and the broker's RSS, the movements applied, the
worker's consumer lag, and the `age_ms` and `behind_ms` the API answers for a SKU
(`behind_ms` grows while the worker is behind, and the API answers throughout). At the end:
the worker's peak RSS beside its RSS at the first sample, the catch-up time and rate, and
whether every movement was applied.
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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402

from atp.kafka import topics  # noqa: E402
from atp.settings import Settings  # noqa: E402
from atp.tools import embedded  # noqa: E402
from atp.tools.embedded import ManagedProcess  # noqa: E402
from benchmarks.apply_rate import (  # noqa: E402
    aiokafka_ceiling,
    produce,
    spawn_worker,
    start_stack,
    stop_all,
    wms_messages,
    worker_metrics,
)
from benchmarks.soak import consumer_lag, rss_mb  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--skus", type=int, default=5_000)
    parser.add_argument("--sample-s", type=float, default=5.0)
    parser.add_argument("--keep-logs", action="store_true")
    return parser


def freshness(base: str, sku: str) -> tuple[int | None, int | None]:
    """(age_ms, behind_ms) of the API's answer for `sku`."""
    with (
        contextlib.suppress(OSError),
        urllib.request.urlopen(f"{base}/v1/availability/{sku}", timeout=5) as r,
    ):
        body = orjson.loads(r.read())
        return body.get("age_ms"), body.get("behind_ms")
    return None, None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="atp-backlog-"))
    procs: list[ManagedProcess] = []
    ok = False
    try:
        bootstrap, redis_url = start_stack(work, procs)
        prefix = f"backlog{os.getpid()}."
        settings = Settings(kafka_bootstrap=bootstrap, topic_prefix=prefix)
        asyncio.run(topics.ensure_topics(settings))
        messages, _ = wms_messages(args.messages, args.skus)
        wms = settings.topic(topics.WMS)
        produced_s = asyncio.run(produce(bootstrap, wms, messages))
        del messages
        broker = procs[0]
        print(
            f"produced {args.messages:,} WMS messages ({args.skus:,} SKUs) in {produced_s:.1f} s;"
            f" broker RSS {rss_mb(broker.pid):,.0f} MB",
            flush=True,
        )
        ceiling_s = asyncio.run(aiokafka_ceiling(bootstrap, wms, args.messages))
        print(f"baseline: a plain aiokafka consumer reads them in {ceiling_s:.1f} s", flush=True)

        worker, metrics_url = spawn_worker(bootstrap, redis_url, prefix, work, procs)
        api_port = embedded.free_port()
        env = {
            **os.environ,
            "ATP_KAFKA_BOOTSTRAP": bootstrap,
            "ATP_REDIS_URL": redis_url,
            "ATP_TOPIC_PREFIX": prefix,
            "ATP_GROUP_ID": f"bench-worker-{os.getpid()}",  # spawn_worker's: its progress
            "ATP_API_PORT": str(api_port),
            "ATP_NETWORK_FILE": str(ROOT / "config" / "network.yaml"),
            "ATP_DATA_DIR": str(work / "api-data"),
            "ATP_LOG_LEVEL": "warning",
        }
        procs.append(embedded.spawn("api", [sys.executable, "-m", "api"], work / "logs", env))
        base = f"http://127.0.0.1:{api_port}"
        started = time.monotonic()
        first_applied_at = None
        applied = 0.0
        rows = []
        deadline = started + 600 + args.messages / 500
        while applied < args.messages and time.monotonic() < deadline:
            time.sleep(args.sample_s)
            if not worker.alive():
                raise RuntimeError(f"the worker exited:\n{worker.log_tail()}")
            with contextlib.suppress(OSError):
                applied = worker_metrics(metrics_url)["atp_ledger_outcomes_total"]
            if applied and first_applied_at is None:
                first_applied_at = time.monotonic()
            lag = None
            with contextlib.suppress(OSError):
                lag = consumer_lag(metrics_url)
            row = (
                time.monotonic() - started,
                rss_mb(worker.pid),
                rss_mb(broker.pid),
                applied,
                lag,
                *freshness(base, "SKU-000000"),
            )
            rows.append(row)
            print(
                f"  {row[0]:6.0f} s  worker {row[1]:6.0f} MB  broker {row[2]:6.0f} MB  "
                f"applied {row[3]:>10,.0f}  lag {row[4] if lag is not None else '-':>9}  "
                f"age_ms {row[5]}  behind_ms {row[6]}",
                flush=True,
            )
        done = time.monotonic()
        ok = applied == args.messages
        behind = freshness(base, "SKU-000000")[1]
        while ok and behind != 0 and time.monotonic() < done + 15:
            time.sleep(0.5)
            behind = freshness(base, "SKU-000000")[1]
        print(f"behind_ms {behind} {time.monotonic() - done:.1f} s after the last movement applied")
        peak = max(r[1] for r in rows)
        rate = args.messages / (done - (first_applied_at or started))
        print(
            f"\nworker RSS {rows[0][1]:,.0f} MB at the first sample, peak {peak:,.0f} MB; "
            f"caught up in {done - started:,.0f} s from its start "
            f"({rate:,.0f} movements/s from its first applied batch; the plain consumer read "
            f"{args.messages / ceiling_s:,.0f}/s); "
            + ("every movement applied" if ok else f"ONLY {applied:,.0f} applied")
        )
        return 0 if ok else 1
    finally:
        stop_all(procs, work, keep_logs=args.keep_logs or not ok)


if __name__ == "__main__":
    sys.exit(main())
