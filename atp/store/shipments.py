"""What shipments used up of a reservation's holds (atp.core.fulfilment).

ledger/apply.lua adds the units a shipment uses up of a hold to its SKU's `shipped` hash
(keys.shipped, field `<rid>@<location>`) in the same atomic step, so the count is exact while
the reservation is open. When it closes, a release or expiry copies its count into the record
(after its holds are given back: nothing can use them up any more) and a fulfilment used up
everything it held; then its fields are dropped. A close interrupted between the two leaves
the fields until it is asked again; they are a few bytes each.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import orjson
from redis import asyncio as aioredis

from atp.core.fulfilment import shipped_from_members
from atp.core.reservations import hold_member
from atp.store import keys
from atp.store.client import unavailable_as_error

Locations = Mapping[str, Sequence[str]]  # {sku: locations the reservation holds at}


def _skus(locs: Locations) -> list[str]:
    return [sku for sku in sorted(locs) if locs[sku]]


async def used_up(client: aioredis.Redis, rid: str, locs: Locations) -> dict[str, dict[str, int]]:
    """{sku: {location: units}} shipments used up of the reservation's holds so far."""
    skus = _skus(locs)
    if not skus:
        return {}
    with unavailable_as_error():
        async with client.pipeline(transaction=False) as pipe:
            for sku in skus:
                pipe.hmget(keys.shipped(sku), [hold_member(rid, loc) for loc in locs[sku]])
            replies = await pipe.execute()
    return shipped_from_members(
        {
            sku: [(loc, int(v or 0)) for loc, v in zip(locs[sku], units, strict=True)]
            for sku, units in zip(skus, replies, strict=True)
        }
    )


def as_arg(shipped: Mapping[str, Mapping[str, int]]) -> str:
    """The count as record/release.lua and record/expire.lua keep it ('' for none)."""
    return orjson.dumps(shipped, option=orjson.OPT_SORT_KEYS).decode() if shipped else ""


async def drop(client: aioredis.Redis, rid: str, locs: Locations) -> None:
    """Forget the closed reservation's counts (its record has what it needs)."""
    skus = _skus(locs)
    if not skus:
        return
    with unavailable_as_error():
        async with client.pipeline(transaction=False) as pipe:
            for sku in skus:
                pipe.hdel(keys.shipped(sku), *(hold_member(rid, loc) for loc in locs[sku]))
            await pipe.execute()
