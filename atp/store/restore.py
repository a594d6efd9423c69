"""Put a reservation back as its events left it, holds included (`atp rebuild`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import orjson

from atp.core.reservations import CONFIRMED, HELD, MOVE_DONE, ReservationRequest, move_units
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
    moves: Sequence[tuple[list[Any], int]] = (),
    replay_ttl_ms: int = 0,
    changes: Sequence[list[str]] = (),
    fingerprint: str | None = None,
    shipped: str = "",
) -> bool:
    """Put a reservation back with these allocations (its transfers applied) and state.

    `times`: (created_ms, updated_ms, expires_ms); `moves`: its transfers as its record keeps
    them, with when each was made (their marks kept keys.mark_ttl_ms from then); `changes`: its
    done changes (in the allocations); `fingerprint`: that of the request it was made with, if
    a change changed `request`; `shipped`: what shipments used up of a closed one. False when
    it exists (left alone: newer than the events). Holds are set, not added: run again, a
    rebuild puts back the same units.
    """
    req = ReservationRequest.from_canonical(reservation_id, request)
    created, updated, expires = times
    with unavailable_as_error():
        if await store.client.exists(keys.reservation(reservation_id)):
            return False
        if state in (HELD, CONFIRMED):
            for sku, pairs in _holds(request, allocations, moves).items():
                await store.run_hold(
                    "restore", sku, reservation_id, updated, state, expires, *pairs
                )
        reply = await store.run_record(
            "restore",
            reservation_id,
            updated,
            state,
            fingerprint or req.fingerprint(),
            orjson.dumps(request),
            orjson.dumps(allocations),
            created,
            expires,
            "" if record_expires_ms is None else record_expires_ms,
            orjson.dumps([move for move, _ in moves]) if moves else "",
            orjson.dumps(list(changes)) if changes else "",
            shipped,
        )
        for (tid, sku, *_), at in moves:
            mark = keys.transfer_mark(sku, reservation_id, tid)
            await store.client.set(mark, "1", pxat=at + keys.mark_ttl_ms(replay_ttl_ms))
    return reply[0] == "restored"


def _holds(
    request: dict[str, Any], allocations: list[Any], moves: Sequence[tuple[list[Any], int]]
) -> dict[str, list[Any]]:
    """Per SKU, [location, units, ...] it holds: the allocations with the transfers done."""
    units: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    now_held = [[list(p) for p in parts] for parts in allocations]
    for move, _ in moves:
        if move[5] == MOVE_DONE:  # not yet in the allocations (a change applies them)
            move_units(request["lines"], now_held, move[1], (move[2], move[3]), move[4])
    for line, parts in zip(request["lines"], now_held, strict=True):
        for loc, qty in parts:
            units[line["sku"]][loc] += qty
    return {sku: [x for pair in by_loc.items() for x in pair] for sku, by_loc in units.items()}
