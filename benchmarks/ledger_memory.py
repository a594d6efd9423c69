"""Redis memory per (SKU, location): the ledger state and served counts, by kept deltas.

    .venv/bin/python benchmarks/ledger_memory.py [--pairs 30000]

Starts its own Redis, writes PAIRS (SKU, location) pairs through the real LedgerStore (one
count each, then D deltas after it inside the retention window, for D in 0, 10, 50) and prints
used_memory per pair. Deltas are what the dedupe window keeps; a count resets them.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from atp import embedded  # noqa: E402
from atp.movements import Effect, Movement  # noqa: E402
from atp.store import LedgerStore, client_from_url  # noqa: E402

LOCATIONS = ("WH-NJ", "WH-IL", "WH-CA")


async def load(url: str, pairs: int, deltas: int, now: int) -> None:
    client = client_from_url(url)
    store = LedgerStore(client)
    skus = pairs // len(LOCATIONS)
    try:
        batch: list[Movement] = []
        for i in range(skus):
            sku = f"SKU-{i:07d}"
            for loc in LOCATIONS:
                t = now - 3_600_000
                batch.append(
                    Movement(f"c-{sku}-{loc}", sku, loc, Effect.COUNT, 100, t, "CYCLE_COUNT", "wms")
                )
                for d in range(deltas):
                    # Event ids like the simulator's: "WMS-<run>-<sequence>" (about 26 bytes).
                    eid = f"WMS-19a2b3c4d5e-{i * 1000 + d:09d}-{loc}"
                    batch.append(
                        Movement(eid, sku, loc, Effect.DELTA, -1, t + 1 + d, "SHIPPED", "wms")
                    )
            if len(batch) >= 5000:
                await store.apply(batch, now)
                batch = []
        if batch:
            await store.apply(batch, now)
    finally:
        await client.aclose()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=30_000)
    args = parser.parse_args()
    now = time.time_ns() // 1_000_000
    print(f"{'kept deltas per pair':>22}{'bytes per pair':>16}")
    for deltas in (0, 10, 50):
        tmp = Path(tempfile.mkdtemp(prefix="atp-mem-"))
        port = embedded.free_port()
        proc = embedded.start_redis(port, tmp / "data", tmp, appendonly=False)
        try:
            url = f"redis://127.0.0.1:{port}/0"
            client = redis.Redis.from_url(url)
            before = client.info("memory")["used_memory"]
            asyncio.run(load(url, args.pairs, deltas, now))
            after = client.info("memory")["used_memory"]
            client.close()
        finally:
            proc.stop()
            shutil.rmtree(tmp, ignore_errors=True)
        print(f"{deltas:>22}{(after - before) / args.pairs:>16.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
