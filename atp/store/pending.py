"""A transfer or change of quantities whose answer was lost stays pending on the reservation's
record (its units held, a release covering them) and would block every later transfer or
change of that reservation until its client asked it again. So a later one, once the pending
one began more than the takeover time ago (ATP_RESERVATION_TAKEOVER_S, as for a pending
reservation), finishes it first: it runs it again as it was asked (each of its steps is
marked once done, so nothing is done twice), which either completes it or refuses it and
drops it, and then starts again. Before that time, and when others keep starting meanwhile,
it is 409 reservation_busy (with Retry-After).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from atp.core.amendments import Change, Move
from atp.core.errors import ATPError, ReservationBusy, StoreUnavailable
from atp.core.network import Network
from atp.core.reservations import MOVE_PENDING, ReservationLine
from atp.store import changes, transfers

if TYPE_CHECKING:
    from atp.store.reservations import ReservationStore

log = logging.getLogger(__name__)

FINISH_TRIES = 3  # pending ones finished before a request gives up as busy

Asked = TypeVar("Asked", Move, Change)
Run = Callable[
    ["ReservationStore", str, Asked, Network, int], Awaitable[tuple[bool, dict[str, Any]]]
]


async def finishing(
    run: Run[Asked], store: ReservationStore, rid: str, asked: Asked, network: Network, now_ms: int
) -> tuple[bool, dict[str, Any]]:
    """`run` (transfers.transfer or changes.change), finishing what is pending first when it
    finds the reservation busy."""
    for _ in range(FINISH_TRIES):
        try:
            return await run(store, rid, asked, network, now_ms)
        except ReservationBusy as busy:
            if busy.began_ms is None:  # this one was given up by another attempt at it
                raise
            wait_ms = busy.began_ms + store.takeover_ms - now_ms
            if wait_ms > 0:  # its own client may still be at it
                busy.retry_after_s = wait_ms / 1000
                raise
            if not await finish(store, rid, network, now_ms):
                raise
    return await run(store, rid, asked, network, now_ms)


async def finish(store: ReservationStore, rid: str, network: Network, now_ms: int) -> bool:
    """Run the reservation's pending transfer or change again, to its end; False when there
    is one that cannot be (a change listed without its lines)."""
    stored = await store.stored(rid)
    pending = next((m for m in stored.moves if m[5] == MOVE_PENDING), None)
    change = stored.pending_change()
    try:
        if pending is not None:
            tid, sku, src, dst, units, _ = pending
            log.warning("reservation %s: finishing transfer %r left pending", rid, tid)
            await transfers.transfer(store, rid, Move(tid, sku, src, dst, units), network, now_ms)
        elif change is not None:
            if change.lines is None:
                return False
            log.warning("reservation %s: finishing change %r left pending", rid, change.change_id)
            lines = tuple(
                ReservationLine(ln["sku"], ln["quantity"], ln["location_id"]) for ln in change.lines
            )
            await changes.change(store, rid, Change(change.change_id, lines), network, now_ms)
    except StoreUnavailable:
        raise
    except ATPError as exc:  # refused: dropped (or busy itself: the next try sees)
        log.warning("reservation %s: the pending one ended refused: %s", rid, exc)
    return True
