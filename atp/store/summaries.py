"""A pair's ledger summary as atp/store/lua/ledger/apply.lua writes it (atp/store/keys.py)."""

from __future__ import annotations

from collections.abc import Mapping

import redis.asyncio as aioredis

from atp.core.ledger import LedgerSummary
from atp.store import keys


async def pair_summaries(
    client: aioredis.Redis, sku: str, ledger: Mapping[bytes, bytes]
) -> dict[str, LedgerSummary]:
    """The summaries in a SKU's ledger hash, completed from each pair's structures (its
    inbound, how many deltas are kept and the newest one's time) and the served on-hand, read
    in one pipeline."""
    encoded = {
        k.decode()[len(keys.LEDGER_PREFIX) :]: v.decode()
        for k, v in ledger.items()
        if k.decode().startswith(keys.LEDGER_PREFIX)
    }
    if not encoded:
        return {}
    async with client.pipeline(transaction=False) as pipe:
        pipe.hmget(keys.stock(sku), [keys.ON_HAND_PREFIX + loc for loc in encoded])
        for loc in encoded:
            d, _, n, _ = keys.pair_keys(sku, loc)
            pipe.hgetall(n)
            pipe.zcard(d)
            pipe.zrange(d, -1, -1, withscores=True)
        on_hand, *rows = await pipe.execute()
    return {
        loc: decode_summary(
            value,
            _inbound(rows[3 * i]),
            on_hand=int(on_hand[i] or 0),
            deltas=rows[3 * i + 1],
            newest_delta_ms=int(rows[3 * i + 2][0][1]) if rows[3 * i + 2] else None,
        )
        for i, (loc, value) in enumerate(encoded.items())
    }


def decode_summary(
    value: str,
    inbound: dict[str, tuple[int, int]],
    *,
    on_hand: int,
    deltas: int,
    newest_delta_ms: int | None,
) -> LedgerSummary:
    """A pair's summary as ledger/apply.lua writes it (keys.py), with what the function keeps
    beside it rather than in it: the served on-hand (base plus the kept deltas' sum), how many
    deltas are kept and the newest one's time. The stored delta sum and count (fields 5 and 6,
    an older writer's) are not read."""
    base_qty, base_ms, count_ms, last_ms, _, _, count_id = value.split(",", 6)
    last = [t for t in (_opt(last_ms), newest_delta_ms) if t is not None]
    return LedgerSummary(
        base_qty=int(base_qty),
        base_ms=_opt(base_ms),
        count_ms=_opt(count_ms),
        count_id=count_id or None,
        last_movement_ms=max(last) if last else None,
        delta_sum=on_hand - int(base_qty),
        deltas=deltas,
        inbound=inbound,
    )


def encode_summary(s: LedgerSummary) -> str:
    """What ledger/apply.lua's encode_pair writes for `s` (for `atp migrate`): the delta sum
    and count are not stored."""
    numbers = (s.base_qty, s.base_ms, s.count_ms, s.last_movement_ms)
    return ",".join("" if n is None else str(n) for n in numbers) + ",,," + (s.count_id or "")


def _opt(text: str) -> int | None:
    return int(text) if text else None


def _inbound(raw: Mapping[bytes, bytes]) -> dict[str, tuple[int, int]]:
    out = {}
    for asn, value in raw.items():
        eta, qty = value.split(b":")
        out[asn.decode()] = (int(eta), int(qty))
    return out
