"""Transfers: move units a reservation holds from one location to another, checked at the
destination in the same atomic step (medusajs/medusa#16488 is what happens otherwise).

A saga of three single-slot scripts, so the same code runs on one Redis and on a cluster:

1. `record/transfer.lua` begin: the reservation is held (not overdue) or confirmed; the
   transfer is listed as pending in its record, so a release, confirm, extend or fulfilment
   from then on covers the destination too. A transfer id seen before is a replay (done) or
   a retry (pending: step 2 knows whether it moved).
2. `hold/transfer.lua` in the SKU's slot: checks what the reservation still holds at the
   source and the ATP at the destination, and moves, all at once; a mark makes a retry move
   nothing twice.
3. `record/transfer.lua` commit (moved: done, published as `transferred`) or abort (nothing
   moved: forgotten).

A crash after step 2 leaves the transfer pending: its units are held at the destination and a
release gives them back, but the reservation shows them at the source until the same transfer
is asked again (the retry answers it). A change that ran while a transfer moved covers what
the transfer moved once it sees the record (`ReservationStore._cover_transfers`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from atp.core.amendments import Move
from atp.core.errors import (
    LocationNotInChannel,
    NotHeld,
    TooManyTransfers,
    TransferConflict,
    TransferShort,
)
from atp.core.network import Network
from atp.core.reservations import (
    CONFIRMED,
    HELD,
    MAX_MOVES,
    MOVE_PENDING,
    ReservationLine,
    Stored,
    candidates,
)
from atp.store import keys
from atp.store.client import unavailable_as_error
from atp.store.replies import busy

if TYPE_CHECKING:
    from atp.store.reservations import ReservationStore

NO_ROOM = 10**15  # a safety stock no destination has room beyond


async def transfer(
    store: ReservationStore, rid: str, move: Move, network: Network, now_ms: int
) -> tuple[bool, dict[str, Any]]:
    """Move the units (all or nothing): (True, the reservation after), or (False, it) when
    this transfer id was done before. Raises NotHeld, TransferShort, TransferConflict,
    TooManyTransfers, or what the reservation's state refuses (not found, expired, closed)."""
    stored = await store.stored(rid)
    channel = stored.request["channel"]
    line = ReservationLine(move.sku, move.quantity, move.to_location_id)
    unservable: LocationNotInChannel | None = None
    try:
        [(_, safety)] = candidates(network, channel, line)  # the destination serves the channel
    except LocationNotInChannel as exc:
        # It left the channel while this transfer was pending: finished all the same, as
        # moved if it did, else refused (no room there) and dropped.
        if (move.transfer_id, MOVE_PENDING) not in {(m[0], m[5]) for m in stored.moves}:
            raise
        safety, unservable = NO_ROOM, exc
    values = [
        move.transfer_id,
        move.sku,
        move.from_location_id,
        move.to_location_id,
        move.quantity,
    ]
    with unavailable_as_error():
        begun = await _step(store, rid, now_ms, "begin", values)
        if begun[0] == "replay":
            return False, await store.get(rid, now_ms)
        attempt = begun[1]
        mark = keys.transfer_mark(move.sku, rid, move.transfer_id)
        reply = await store.run_hold(
            "transfer",
            move.sku,
            rid,
            now_ms,
            move.from_location_id,
            move.to_location_id,
            move.quantity,
            safety,
            keys.mark_ttl_ms(store.replay_ttl_ms),
            attempt,
            extra_keys=[mark],
        )
        if reply[0] != "moved":
            await _step(store, rid, now_ms, "abort", values, attempt)
            raise unservable or _refusal(rid, move, reply[0], int(reply[1]))
        await _step(store, rid, now_ms, "commit", values)
        # Kept from the commit's time on the caller's clock: the `transferred` event's, from
        # which `atp rebuild` sets it.
        await store.client.pexpireat(mark, now_ms + keys.mark_ttl_ms(store.replay_ttl_ms))
        return True, await store.get(rid, now_ms)


async def _step(
    store: ReservationStore,
    rid: str,
    now_ms: int,
    phase: str,
    values: list[Any],
    attempt: str = "",
) -> list[str]:
    reply = await store.run_record("transfer", rid, now_ms, phase, *values, MAX_MOVES, attempt)
    if reply[0] == "transfer_conflict":
        raise TransferConflict(rid, values[0])
    if reply[0] == "too_many":
        raise TooManyTransfers(rid, MAX_MOVES)
    if reply[0] == "busy":
        raise busy(rid, reply)
    return reply


def _refusal(rid: str, move: Move, code: str, units: int) -> Exception:
    if code == "not_held":
        return NotHeld(rid, move.sku, move.from_location_id, units)
    return TransferShort(
        {
            "sku": move.sku,
            "location_id": move.to_location_id,
            "requested": move.quantity,
            "available": units,
        }
    )


async def cover(
    store: ReservationStore,
    rid: str,
    op: str,
    now_ms: int,
    ttl_seconds: int | None,
    covered: dict[str, list[str]],
    after: Stored,
) -> None:
    """A transfer begun while a change of state ran may have moved units to a location the
    change did not cover: give them back (the reservation is closed) or take them off, or
    onto, the new expiry."""
    new = {
        sku: fresh
        for sku, locs in after.hold_locations().items()
        if (fresh := [loc for loc in locs if loc not in covered.get(sku, [])])
    }
    if not new:
        return
    if after.state not in (HELD, CONFIRMED):
        await store.give_back(rid, now_ms, new)
    elif op in ("confirm", "extend"):
        new_expiry = now_ms + (ttl_seconds or 0) * 1000
        await store.persist_or_extend(rid, op, now_ms, new_expiry, new)
