"""`atp migrate`: the v2 ledger (one JSON value per pair) into the v3 layout (keys.py).

Each SKU is converted in one atomic script (lua/migrate_ledger.lua) that writes its pairs'
v3 structures and deletes its v2 hash, so a SKU is either v2 or v3, never half of each, and
running the command again converts only what is left. The served counts, holds and counters
keep their keys. Stop the workers first: ledger/apply.lua refuses a SKU that still has a v2
ledger (the batch waits and is tried again), and a worker started on a v2 Redis stops at once
with a message naming this command (`find_v2_ledger`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis

from atp.core.ledger import LedgerState, LedgerSummary, future_inbound
from atp.store import keys
from atp.store.client import unavailable_as_error
from atp.store.scripts import load_script
from atp.store.summaries import encode_summary

V2_LEDGERS = f"{keys.PREFIX}:{{*}}:ledger"


@dataclass(slots=True)
class MigrationReport:
    skus: int = 0
    pairs: int = 0
    deltas: int = 0
    already: int = 0  # converted meanwhile (another run)

    def summary(self) -> str:
        return (
            f"ledger v2 -> v3: {self.skus} SKUs ({self.pairs} pairs, {self.deltas} kept "
            f"deltas) converted, {self.already} already converted"
        )


def pair_args(loc: str, state: LedgerState) -> list[str | int]:
    """ARGV of one pair for migrate_ledger.lua: its summary, the arrivals expected after the
    next one (served as fu:<loc>), then its deltas by time, their sums per time, its inbound and
    its receipts (each as a count, then field/value pairs)."""
    sums: dict[int, int] = {}
    receipts: dict[str, int] = {}  # ASN -> its newest receipt's time
    for d in state.deltas.values():
        sums[d.occurred_ms] = sums.get(d.occurred_ms, 0) + d.qty
        if d.ref is not None and d.qty > 0:
            receipts[d.ref] = max(receipts.get(d.ref, d.occurred_ms), d.occurred_ms)
    parts: list[dict[str, int] | dict[int, int] | dict[str, str]] = [
        {event_id: d.occurred_ms for event_id, d in state.deltas.items()},
        sums,
        {asn: f"{eta}:{qty}" for asn, (eta, qty) in state.inbound.items()},
        receipts,
    ]
    later = ",".join(f"{eta}:{qty}" for eta, qty in future_inbound(state)[1:])
    args: list[str | int] = [loc, encode_summary(LedgerSummary.of(state)), later]
    for part in parts:
        args.append(len(part))
        for field, value in part.items():
            args += [field, value]
    return args


async def migrate_ledger(
    client: aioredis.Redis, progress: Callable[[int], None] = lambda n: None
) -> MigrationReport:
    """Convert every v2 ledger hash (SCAN on every master)."""
    script = client.register_script(load_script("migrate_ledger.lua"))
    report = MigrationReport()
    with unavailable_as_error():
        async for key in client.scan_iter(match=V2_LEDGERS, count=1000):
            name = key.decode() if isinstance(key, bytes) else key
            sku = name[name.index("{") + 1 : name.rindex("}")]
            raw: dict[bytes, bytes] = await client.hgetall(name)
            await _convert(script, sku, raw, report)
            progress(1)
    return report


async def _convert(script: Any, sku: str, raw: dict[bytes, bytes], report: MigrationReport) -> None:
    states = {}
    keep: list[str] = []
    for field, value in raw.items():
        f = field.decode()
        if f.startswith(keys.LEDGER_PREFIX):
            states[f[len(keys.LEDGER_PREFIX) :]] = LedgerState.from_list(orjson.loads(value))
        elif f.startswith("s:"):
            keep += [f, value.decode()]  # the statuses (and not v2's write version `v`)
    locs = sorted(states)
    argv: list[str | int] = [len(locs)]
    for loc in locs:
        argv += pair_args(loc, states[loc])
    argv += [len(keep) // 2, *keep]
    kv = [keys.ledger_v2(sku), keys.ledger(sku), keys.stock(sku)]
    for loc in locs:
        kv += keys.pair_keys(sku, loc)
    if await script(keys=kv, args=argv):
        report.skus += 1
        report.pairs += len(locs)
        report.deltas += sum(len(s.deltas) for s in states.values())
    else:
        report.already += 1


async def find_v2_ledger(client: aioredis.Redis) -> str | None:
    """A v2 ledger key, or None: one SCAN of the keyspace (about a second per million keys),
    run when a worker starts."""
    with unavailable_as_error():
        async for key in client.scan_iter(match=V2_LEDGERS, count=10_000):
            return key.decode() if isinstance(key, bytes) else str(key)
    return None
