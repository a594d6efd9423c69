"""The reservation scripts' replies, decoded: a reply code becomes a typed error in one table
(RECORD_ERRORS), a record's hash a `Stored`, a script's shortfalls the lines a 409 lists."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from atp.core.errors import (
    ATPError,
    IdempotencyConflict,
    InvalidTransition,
    ReservationBusy,
    ReservationExpired,
    ReservationInProgress,
    ReservationNotFound,
    StoreUnavailable,
)
from atp.core.reservations import DONE, PENDING, ReservationRequest, Stored


class ReservationLost(StoreUnavailable):
    """The pending mark expired before the holds were all taken (a stall longer than the TTL);
    what was held is given back."""

    def __init__(self, reservation_id: str) -> None:
        super().__init__(f"reservation {reservation_id!r} took longer than its TTL to make")


# A record script's reply code -> the error it means, from the reservation id, the change asked
# for and the reply's other fields. Every other code is an answer (begun, replay, held, ok, ...).
RECORD_ERRORS: dict[str, Callable[[str, str, list[str]], ATPError]] = {
    "conflict": lambda rid, op, _: IdempotencyConflict(rid),
    "pending": lambda rid, op, fields: ReservationInProgress(rid, int(fields[0]) / 1000),
    "not_found": lambda rid, op, _: ReservationNotFound(rid),
    "invalid": lambda rid, op, fields: InvalidTransition(rid, fields[0], DONE.get(op, op)),
    "expired": lambda rid, op, _: ReservationExpired(rid),
    "lost": lambda rid, op, _: ReservationLost(rid),
}


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def stored_from(reservation_id: str, record: dict[str, str]) -> Stored:
    """A reservation's record as its hash holds it."""
    if not record or record.get("state") == PENDING:
        raise ReservationNotFound(reservation_id)
    return Stored(
        state=record["state"],
        request=orjson.loads(record["request"]),
        allocations=orjson.loads(record.get("allocations") or "[]"),
        created_ms=int(record["created_ms"]),
        updated_ms=int(record["updated_ms"]),
        expires_ms=int(record["expires_ms"]),
        # A pending transfer also keeps when it began (record/transfer.lua).
        moves=tuple(tuple(m[:6]) for m in orjson.loads(record.get("moves") or "[]")),
        changes=tuple(tuple(c) for c in orjson.loads(record.get("changes") or "[]")),
        shipped=orjson.loads(record["shipped"]) if record.get("shipped") else None,
    )


def busy(rid: str, reply: list[str]) -> ReservationBusy:
    """A record script's {'busy', kind, its id, when it began (ms)}: another transfer or change
    of the reservation is pending."""
    began = int(reply[3]) if len(reply) > 3 and reply[3] else None
    return ReservationBusy(rid, reply[1], reply[2], began_ms=began)


def short_lines(req: ReservationRequest, shortages: list[list[int]]) -> list[dict[str, object]]:
    """The request's short lines from a script's [[line, requested, available], ...]."""
    return [
        {
            "line": line,
            "sku": req.lines[line].sku,
            "location_id": req.lines[line].location_id,
            "requested": requested,
            "available": available,
        }
        for line, requested, available in sorted(shortages)
    ]
