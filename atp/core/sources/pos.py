"""Store point of sale, topic `stock.pos`: one store transaction per message, several lines.

The event id of line i is `<transaction_id>:<i>`. A transaction with any unusable line is
rejected whole, so that fixing and replaying it never applies half a basket twice.
"""

from __future__ import annotations

from atp.core.errors import InvalidMovement
from atp.core.movements import Effect, Movement
from atp.core.network import Network
from atp.core.sources import common

SOURCE = "pos"
MAX_LINES = 1000

# type -> (effect, sign of the line quantity)
TYPES: dict[str, tuple[Effect, int]] = {
    "SALE": (Effect.DELTA, -1),
    "RETURN": (Effect.DELTA, 1),
    "PICKUP": (Effect.DELTA, -1),
    "RECEIPT": (Effect.DELTA, 1),
    "COUNT": (Effect.COUNT, 1),
}


def parse(raw: bytes, network: Network) -> list[Movement]:
    data = common.load_object(raw)
    transaction_id = common.identifier(data, "transaction_id")
    kind = data.get("type")
    if not isinstance(kind, str) or kind not in TYPES:
        raise InvalidMovement(common.SCHEMA, f"type must be one of {', '.join(TYPES)}")
    effect, sign = TYPES[kind]
    store_id = common.location(data, "store_id", network)
    occurred_ms = common.timestamp(data, "occurred_at")
    order_ref = common.optional_identifier(data, "order_ref")
    if kind == "PICKUP" and order_ref is None:
        raise InvalidMovement(
            common.SCHEMA, "a PICKUP names the reservation it fulfils in order_ref"
        )
    lines = data.get("lines")
    if not isinstance(lines, list) or not lines or len(lines) > MAX_LINES:
        raise InvalidMovement(common.SCHEMA, f"lines must be a list of 1 to {MAX_LINES} lines")
    movements = []
    for i, line in enumerate(lines):
        if not isinstance(line, dict):
            raise InvalidMovement(common.SCHEMA, f"lines[{i}] must be an object")
        try:
            sku = common.identifier(line, "sku")
            qty = common.quantity(line, "qty")
        except InvalidMovement as exc:
            raise InvalidMovement(exc.code, f"lines[{i}].{exc.message}") from None
        movements.append(
            Movement(
                event_id=f"{transaction_id}:{i}",
                sku=sku,
                location_id=store_id,
                effect=effect,
                qty=sign * qty,
                occurred_ms=occurred_ms,
                kind=str(kind),
                source=SOURCE,
                order_ref=order_ref,
            )
        )
    return movements
