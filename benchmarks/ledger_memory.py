"""Redis memory per (SKU, location): the ledger state and served counts, with 1M pairs loaded.

    .venv/bin/python benchmarks/ledger_memory.py [--pairs 1000000] [--delta-pairs 30000]
                                                 [--no-proposals]

Each layout is loaded into a Redis of its own (started here, AOF off, stopped by its PID in a
`finally` block), and `used_memory` growth (INFO memory) is divided by the number of pairs:

  ledger, as shipped       PAIRS pairs written through the real `LedgerStore.apply` (one absolute
                           count each, batches of 5,000 movements, LOCATIONS per SKU), with the
                           per-channel statuses the worker records (`s:<channel>`) and the
                           ledger counters (atp:v1:stats), Redis' default hash encoding
                           settings. The figure issue 7 asks for.
  served counts only       the baseline: only what the API serves, `oh:<loc>` and `ts` in the
                           stock hash of each SKU (pipelined HSET), same key names.
  proposals (measured, not shipped; `--no-proposals` skips them):
    hash-max-listpack-value 128   the shipped keys under that Redis setting
    ... and short key names       the same with every key renamed (atp:v1:{S}:ledger -> {S}:l)
  (proposals are the shipped keys copied by DUMP/RESTORE into a Redis with that setting, which
  re-encodes each hash; a copy under the default settings is printed as the control)
  kept deltas              DELTA_PAIRS pairs with a count then D deltas after it (the dedupe
                           window), at the default setting and at hash-max-listpack-value 1024.
  journal off              the same loads with ATP_JOURNAL_ENTRIES=0: every other row keeps
                           the journal of --journal-entries movements per pair (a pair with D
                           deltas has min(D + 1, that) entries), so the difference is its cost.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from atp.core.ledger import Policy  # noqa: E402
from atp.core.movements import Effect, Movement  # noqa: E402
from atp.network_file import load_network  # noqa: E402
from atp.store import keys  # noqa: E402
from atp.store.client import client_from_url  # noqa: E402
from atp.store.ledger import LedgerStore  # noqa: E402
from atp.tools import embedded  # noqa: E402

LOCATIONS = ("WH-NJ", "WH-IL", "WH-CA")
BATCH = 5000  # movements per LedgerStore.apply
COPY_CONTROL = "control: the shipped keys copied by DUMP/RESTORE, same settings"


def sku_name(i: int) -> str:
    return f"SKU-{i:07d}"


async def load(url: str, pairs: int, deltas: int, now: int, journal: int) -> None:
    """PAIRS pairs through the real LedgerStore, set up as the worker sets it up: a count each,
    then `deltas` deltas after it; the journal keeps `journal` entries per pair."""
    client = client_from_url(url)
    network = load_network(ROOT / "config" / "network.yaml")
    store = LedgerStore(client, Policy(journal_entries=journal), network=network)
    skus = pairs // len(LOCATIONS)
    try:
        batch: list[Movement] = []
        for i in range(skus):
            sku = sku_name(i)
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
            if len(batch) >= BATCH:
                await store.apply(batch, now)
                batch = []
        if batch:
            await store.apply(batch, now)
    finally:
        await client.aclose()


def load_served_only(url: str, pairs: int, now: int) -> None:
    """The baseline: only the served counts (oh:<loc>, ts), in the same stock hashes."""
    client = redis.Redis.from_url(url)
    try:
        pipe = client.pipeline(transaction=False)
        for i in range(pairs // len(LOCATIONS)):
            fields: dict[str, int] = {keys.ON_HAND_PREFIX + loc: 100 for loc in LOCATIONS}
            fields[keys.UPDATED_FIELD] = now
            pipe.hset(keys.stock(sku_name(i)), mapping=fields)  # type: ignore[arg-type]
            if len(pipe) >= 2000:
                pipe.execute()
        pipe.execute()
    finally:
        client.close()


def short_name(key: bytes) -> bytes:
    """atp:v1:{SKU}:ledger -> {SKU}:l, atp:v1:{SKU}:stock -> {SKU}:s (the proposal's names)."""
    tagged = key.removeprefix(keys.PREFIX.encode() + b":")
    return tagged.replace(b":ledger", b":l").replace(b":stock", b":s")


def copy_keys(
    src: redis.Redis, dst: redis.Redis, rename: Callable[[bytes], bytes] | None = None
) -> int:
    """Every key of `src` into `dst` by DUMP/RESTORE, pipelined. RESTORE builds each value
    anew under `dst`'s settings (a hash short and small enough becomes a listpack), as a load
    through LedgerStore into `dst` would; it is much faster for 1M pairs."""
    copied = 0
    batch: list[bytes] = []

    def flush() -> None:
        pipe = src.pipeline(transaction=False)
        for key in batch:
            pipe.dump(key)
        dumps = pipe.execute()
        pipe = dst.pipeline(transaction=False)
        for key, blob in zip(batch, dumps, strict=True):
            pipe.restore(rename(key) if rename else key, 0, blob)
        pipe.execute()
        batch.clear()

    for key in src.scan_iter(count=2000):
        batch.append(key)
        copied += 1
        if len(batch) >= 2000:
            flush()
    if batch:
        flush()
    return copied


@contextlib.contextmanager
def fresh_redis(config: dict[str, str] | None = None) -> Iterator[tuple[redis.Redis, str]]:
    """A Redis of its own (AOF off) with `config` set, stopped by its PID on the way out."""
    tmp = Path(tempfile.mkdtemp(prefix="atp-mem-"))
    port = embedded.free_port()
    proc = embedded.start_redis(port, tmp / "data", tmp, appendonly=False)
    try:
        url = f"redis://127.0.0.1:{port}/0"
        client = redis.Redis.from_url(url)
        try:
            for name, value in (config or {}).items():
                client.config_set(name, value)
            yield client, url
        finally:
            client.close()
    finally:
        proc.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def encoding(client: redis.Redis, match: str = "*ledger") -> str:
    """OBJECT ENCODING of one key matching `match` (of any key if none does)."""
    sample = next(iter(client.scan_iter(match=match, count=1000)), None)
    sample = sample or next(iter(client.scan_iter(count=100)), None)
    enc = client.object("encoding", sample) if sample else "?"
    return enc.decode() if isinstance(enc, bytes) else str(enc)


def bytes_per_pair(
    pairs: int, fill: Callable[[str], None], config: dict[str, str] | None = None
) -> tuple[float, str]:
    """(used_memory growth / pairs, encoding of one ledger hash) in a fresh Redis."""
    with fresh_redis(config) as (client, url):
        before = used_memory(client)
        fill(url)
        return (used_memory(client) - before) / pairs, encoding(client)


@dataclass
class MemoryResult:
    pairs: int
    shipped: float  # bytes per pair, the ledger as shipped
    served_only: float  # bytes per pair, the baseline
    proposals: dict[str, float] = field(default_factory=dict)
    deltas: dict[tuple[int, str], float] = field(default_factory=dict)  # (D, setting) -> bytes
    encodings: dict[str, str] = field(default_factory=dict)
    load_s: float = 0.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=1_000_000, help="(SKU, location) pairs")
    parser.add_argument(
        "--delta-pairs", type=int, default=30_000, help="pairs for the kept-deltas rows"
    )
    parser.add_argument("--no-proposals", action="store_true", help="only the shipped layout")
    parser.add_argument(
        "--journal-entries",
        type=int,
        default=Policy().journal_entries,
        help="movements kept per pair (ATP_JOURNAL_ENTRIES; the shipped default)",
    )
    return parser


def measure(args: argparse.Namespace) -> MemoryResult:
    now = time.time_ns() // 1_000_000
    pairs = args.pairs - args.pairs % len(LOCATIONS)

    def ledger(
        deltas: int, n: int = pairs, journal: int = args.journal_entries
    ) -> Callable[[str], None]:
        return lambda url: asyncio.run(load(url, n, deltas, now, journal))

    lp128 = {"hash-max-listpack-value": "128"}
    proposals: dict[str, float] = {}
    encodings: dict[str, str] = {}
    with fresh_redis() as (shipped_redis, url):
        t = time.monotonic()
        before = used_memory(shipped_redis)
        ledger(0)(url)
        shipped = (used_memory(shipped_redis) - before) / pairs
        load_s = time.monotonic() - t
        encodings["shipped"] = enc = encoding(shipped_redis)
        print(
            f"ledger as shipped, {pairs:,} pairs: {shipped:.0f} bytes/pair ({enc}; loaded "
            f"through LedgerStore.apply in {load_s:.0f} s)",
            flush=True,
        )
        for name, config, rename in (
            # The control: a copy under the same settings must come out as the load did.
            (COPY_CONTROL, None, None),
            ("hash-max-listpack-value 128", lp128, None),
            ("hash-max-listpack-value 128 + short key names", lp128, short_name),
        ):
            if args.no_proposals:
                break
            with fresh_redis(config) as (dst, _):
                before = used_memory(dst)
                copy_keys(shipped_redis, dst, rename)
                proposals[name] = b = (used_memory(dst) - before) / pairs
                encodings[name] = enc = encoding(dst, "*:l" if rename else "*ledger")
            print(f"{name}: {b:.0f} bytes/pair ({enc})", flush=True)
    served, _ = bytes_per_pair(pairs, lambda url: load_served_only(url, pairs, now))
    print(f"served counts only (baseline): {served:.0f} bytes/pair", flush=True)
    result = MemoryResult(pairs, shipped, served, proposals, encodings=encodings, load_s=load_s)
    n = args.delta_pairs - args.delta_pairs % len(LOCATIONS)
    for d in (10, 50, 200):
        for setting, config in (
            ("default", None),
            ("listpack-value 1024", {"hash-max-listpack-value": "1024"}),
        ):
            b, enc = bytes_per_pair(n, ledger(d, n), config)
            result.deltas[(d, setting)] = b
            print(
                f"{d} kept deltas, {n:,} pairs, {setting}: {b:.0f} bytes/pair ({enc})", flush=True
            )
    # What the journal costs: the same loads with none (ATP_JOURNAL_ENTRIES=0).
    for d in (0, 10, 50):
        b, _ = bytes_per_pair(n, ledger(d, n, 0))
        result.deltas[(d, "journal off")] = b
        print(f"{d} kept deltas, {n:,} pairs, journal off: {b:.0f} bytes/pair", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    result = measure(build_parser().parse_args(argv))
    print(f"\n| layout ({result.pairs:,} pairs, {len(LOCATIONS)} per SKU) | bytes per pair |")
    print("|---|---:|")
    print(f"| ledger as shipped | {result.shipped:.0f} |")
    print(f"| served counts only (baseline) | {result.served_only:.0f} |")
    for name, b in result.proposals.items():
        print(f"| {'' if name == COPY_CONTROL else 'proposal: '}{name} | {b:.0f} |")
    for (d, setting), b in result.deltas.items():
        print(f"| {d} kept deltas per pair, {setting} | {b:.0f} |")
    verdict = "met" if result.shipped < 200 else f"missed by {result.shipped - 200:.0f} bytes"
    print(f"\ntarget < 200 bytes per pair: {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
