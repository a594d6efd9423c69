"""Put a reservation back as its events left it, holds included (`atp rebuild`)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import orjson

from atp.core.reservations import CONFIRMED, HELD, ReservationRequest
from atp.store import keys
from atp.store.client import unavailable_as_error
from atp.store.reservations import ReservationStore


async def restore(
    store: ReservationStore,
    reservation_id: str,
    state: str,
    request: dict[str, Any],
    allocations: list[Any],
    times: tuple[int, int, int],
    record_expires_ms: int | None,
) -> bool:
    """Put a reservation back as its events left it, holds included.

    `times` is (created_ms, updated_ms, expires_ms). Returns False when the reservation
    exists already (then it is left alone: it is newer than the events). Holds are set, not
    added, so a rebuild that is run again puts back the same units.
    """
    req = ReservationRequest.from_canonical(reservation_id, request)
    created, updated, expires = times
    with unavailable_as_error():
        if await store.client.exists(keys.reservation(reservation_id)):
            return False
        if state in (HELD, CONFIRMED):
            units: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
            for line, parts in zip(request["lines"], allocations, strict=True):
                for loc, qty in parts:
                    units[line["sku"]][loc] += qty
            for sku, by_loc in units.items():
                pairs = [x for loc, qty in by_loc.items() for x in (loc, qty)]
                await store.run_hold(
                    "restore", sku, reservation_id, updated, state, expires, *pairs
                )
        reply = await store.run_record(
            "restore",
            reservation_id,
            updated,
            state,
            req.fingerprint(),
            orjson.dumps(request),
            orjson.dumps(allocations),
            created,
            expires,
            "" if record_expires_ms is None else record_expires_ms,
        )
    return reply[0] == "restored"
