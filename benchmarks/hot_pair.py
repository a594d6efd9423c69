"""A hot (SKU, location): does a movement cost more when its pair has a long history?

    .venv/bin/python benchmarks/hot_pair.py [--baseline DIR ...] [--batches 300]

For each kept-delta count in `--kept` (0, 10,000, 50,000), a Redis of its own (started here
as `atp up` starts it: AOF on, appendfsync always; stopped by its PID) gets one hot pair
(HOT at WH-NJ: a count, then that many deltas inside the retention window) and 10,000 other
SKUs at 3 locations (a count each: a store that has seen its SKUs), then `--batches` batches
of 100 movements, 5 on the hot pair and 95 spread over the others (issue 14's mix), each
through `LedgerStore.apply` with the demo network's statuses, as the worker calls it.
Printed per case: movements/s, the apply time per batch (p50, p99), and Redis' AOF bytes and
memory growth per movement (each movement adds a kept delta).

`--baseline DIR` runs the same measurement with another source tree's LedgerStore (a
worktree or `git archive` of an older commit) in the same run, e.g. the v2 ledger:
`git worktree add /tmp/v2 7f57071` then `--baseline /tmp/v2`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

HOT_SKU, HOT_LOC = "HOT", "WH-NJ"
OTHER_LOCS = ("WH-NJ", "WH-TX", "S-0101")
PRELOAD_BATCH = 1000
OTHER_SKUS = 10_000


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kept", type=int, nargs="+", default=[0, 10_000, 50_000])
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--baseline", type=Path, action="append", default=[], metavar="DIR")
    parser.add_argument("--_tree", type=Path, help=argparse.SUPPRESS)
    return parser


def aof_bytes(data_dir: Path) -> int:
    """The AOF's size: Redis 7's appendonlydir (base + incremental files), or one file."""
    return sum(p.stat().st_size for p in data_dir.rglob("*.aof*") if p.is_file())


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def store_for(client: object, network: object) -> object:
    """The tree's LedgerStore as the worker builds it: statuses recorded with every write."""
    from atp.store.ledger import LedgerStore

    try:
        return LedgerStore(client, network=network)  # type: ignore[call-arg]
    except TypeError:  # the v2 store took a status function
        from atp.core.availability import channel_statuses

        return LedgerStore(client, statuses=channel_statuses(network))  # type: ignore[call-arg]


def preload(kept: int, now: int) -> list[list[object]]:
    """Batches that give the hot pair a count and `kept` deltas after it (an hour ago, inside
    the window), and every other pair a count: a store that has seen its SKUs before."""
    from atp.core.movements import Effect, Movement

    start = now - 3_600_000
    moves = [Movement("hot-c", HOT_SKU, HOT_LOC, Effect.COUNT, 10**6, start, "CYCLE_COUNT", "wms")]
    for i in range(kept):
        at = start + 1 + i // 20
        moves.append(Movement(f"hot-d{i}", HOT_SKU, HOT_LOC, Effect.DELTA, -1, at, "SALE", "wms"))
    for n in range(OTHER_SKUS):
        for loc in OTHER_LOCS:
            moves.append(
                Movement(
                    f"c-{n}-{loc}", other(n), loc, Effect.COUNT, 100, start, "CYCLE_COUNT", "wms"
                )
            )
    return [moves[i : i + PRELOAD_BATCH] for i in range(0, len(moves), PRELOAD_BATCH)]


def other(n: int) -> str:
    return f"SKU-{n:05d}"


def mixed_batch(rng: random.Random, seq: int) -> list[object]:
    """100 movements now: 5 on the hot pair, 95 on other SKUs."""
    from atp.core.movements import Effect, Movement

    at = int(time.time() * 1000) - 10
    batch = []
    for j in range(100):
        eid = f"m-{seq}-{j}"
        if j < 5:
            batch.append(Movement(eid, HOT_SKU, HOT_LOC, Effect.DELTA, -1, at, "SALE", "wms"))
        else:
            sku, loc = other(rng.randrange(OTHER_SKUS)), rng.choice(OTHER_LOCS)
            qty = rng.choice((-1, 1))
            batch.append(Movement(eid, sku, loc, Effect.DELTA, qty, at, "ADJUSTED", "wms"))
    return batch


async def measure(kept: int, batches: int) -> dict[str, float]:
    """One case in a fresh Redis, with the LedgerStore of the tree first on sys.path."""
    import redis as redis_sync

    from atp.network_file import load_network
    from atp.store.client import client_from_url
    from atp.tools import embedded

    work = Path(tempfile.mkdtemp(prefix="atp-hotpair-"))
    port = embedded.free_port()
    proc = embedded.start_redis(port, work / "data", work)
    url = f"redis://127.0.0.1:{port}/0"
    client = client_from_url(url, timeout_s=60.0)
    r = redis_sync.Redis.from_url(url)
    try:
        store: Any = store_for(client, load_network(ROOT / "config" / "network.yaml"))
        now = int(time.time() * 1000)
        for batch in preload(kept, now):
            await store.apply(batch, now)
        aof0, mem0 = aof_bytes(work / "data"), int(r.info("memory")["used_memory"])
        rng, times = random.Random(7), []
        for seq in range(batches):
            batch = mixed_batch(rng, seq)
            t = time.perf_counter()
            await store.apply(batch, int(time.time() * 1000))
            times.append(time.perf_counter() - t)
        aof1, mem1 = aof_bytes(work / "data"), int(r.info("memory")["used_memory"])
        n = 100 * batches
        return {
            "rate": n / sum(times),
            "p50_ms": statistics.median(times) * 1000,
            "p99_ms": percentile(times, 0.99) * 1000,
            "aof_per_movement": (aof1 - aof0) / n,
            "memory_per_movement": (mem1 - mem0) / n,
        }
    finally:
        r.close()
        await client.aclose()
        proc.stop()
        shutil.rmtree(work, ignore_errors=True)


def run_tree(tree: Path, kept: int, batches: int) -> dict[str, float]:
    """The measurement in a subprocess with `tree` first on the path."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "--_tree",
            str(tree),
            "--kept",
            str(kept),
            "--batches",
            str(batches),
        ],
        env=env,
        cwd=tree,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args._tree is not None:  # the measuring subprocess
        sys.path.insert(0, str(args._tree))
        print(json.dumps(asyncio.run(measure(args.kept[0], args.batches))))
        return 0
    trees = [("this tree", ROOT), *((str(d), d.resolve()) for d in args.baseline)]
    print(
        f"{'tree':<22} {'kept deltas':>11} {'movements/s':>12} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'AOF B/mvmt':>11} {'mem B/mvmt':>11}"
    )
    for kept in args.kept:
        for name, tree in trees:
            r = run_tree(tree, kept, args.batches)
            print(
                f"{name:<22} {kept:>11,} {r['rate']:>12,.0f} {r['p50_ms']:>8.2f} "
                f"{r['p99_ms']:>8.2f} {r['aof_per_movement']:>11,.0f} "
                f"{r['memory_per_movement']:>11,.0f}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
