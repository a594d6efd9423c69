"""A pair's ledger summary as atp/store/lua/ledger/apply.lua writes it (atp/store/keys.py)."""

from __future__ import annotations

from collections.abc import Mapping

import redis.asyncio as aioredis

from atp.core.ledger import LedgerSummary
from atp.store import keys


async def pair_summaries(
    client: aioredis.Redis, sku: str, ledger: Mapping[bytes, bytes]
) -> dict[str, LedgerSummary]:
    """The summaries in a SKU's ledger hash, with each pair's inbound read in one pipeline."""
    encoded = {
        k.decode()[len(keys.LEDGER_PREFIX) :]: v.decode()
        for k, v in ledger.items()
        if k.decode().startswith(keys.LEDGER_PREFIX)
    }
    if not encoded:
        return {}
    async with client.pipeline(transaction=False) as pipe:
        for loc in encoded:
            pipe.hgetall(keys.pair_keys(sku, loc)[2])
        inbound = await pipe.execute()
    return {
        loc: decode_summary(value, _inbound(rows))
        for (loc, value), rows in zip(encoded.items(), inbound, strict=True)
    }


def decode_summary(value: str, inbound: dict[str, tuple[int, int]]) -> LedgerSummary:
    """A pair's summary as ledger/apply.lua writes it (keys.py)."""
    base_qty, base_ms, count_ms, last_ms, delta_sum, deltas, count_id = value.split(",", 6)
    return LedgerSummary(
        base_qty=int(base_qty),
        base_ms=_opt(base_ms),
        count_ms=_opt(count_ms),
        count_id=count_id or None,
        last_movement_ms=_opt(last_ms),
        delta_sum=int(delta_sum),
        deltas=int(deltas),
        inbound=inbound,
    )


def encode_summary(s: LedgerSummary) -> str:
    """The inverse of `decode_summary` (ledger/apply.lua's encode_pair), for `atp migrate`."""
    numbers = (s.base_qty, s.base_ms, s.count_ms, s.last_movement_ms, s.delta_sum, s.deltas)
    return ",".join("" if n is None else str(n) for n in numbers) + "," + (s.count_id or "")


def _opt(text: str) -> int | None:
    return int(text) if text else None


def _inbound(raw: Mapping[bytes, bytes]) -> dict[str, tuple[int, int]]:
    out = {}
    for asn, value in raw.items():
        eta, qty = value.split(b":")
        out[asn.decode()] = (int(eta), int(qty))
    return out
