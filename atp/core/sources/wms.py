"""Warehouse management systems, topic `stock.wms`: one movement per message."""

from __future__ import annotations

from atp.core.errors import InvalidMovement
from atp.core.movements import Effect, Movement
from atp.core.network import Network
from atp.core.sources import common

SOURCE = "wms"

# kind -> (effect, sign applied to the non-negative qty; None = qty is signed as sent)
KINDS: dict[str, tuple[Effect, int | None]] = {
    "RECEIVED": (Effect.DELTA, 1),
    "SHIPPED": (Effect.DELTA, -1),
    "ADJUSTED": (Effect.DELTA, None),
    "DAMAGED": (Effect.DELTA, -1),
    "TRANSFER_OUT": (Effect.DELTA, -1),
    "TRANSFER_IN": (Effect.DELTA, 1),
    "CYCLE_COUNT": (Effect.COUNT, 1),
    "ASN": (Effect.INBOUND, 1),
}


def parse(raw: bytes, network: Network) -> list[Movement]:
    """One WMS message to its movement, or `InvalidMovement` naming what is wrong."""
    data = common.load_object(raw)
    event_id = common.identifier(data, "event_id")
    sku = common.identifier(data, "sku")
    kind = data.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:
        raise InvalidMovement(common.SCHEMA, f"kind must be one of {', '.join(KINDS)}")
    effect, sign = KINDS[kind]
    location_id = common.location(data, "warehouse_id", network)
    qty = common.quantity(data, "qty", signed=sign is None)
    occurred_ms = common.timestamp(data, "occurred_at")
    order_ref = common.optional_identifier(data, "order_ref")
    eta_ms = None
    if effect is Effect.INBOUND:
        eta_ms = common.timestamp(data, "eta")
    return [
        Movement(
            event_id=event_id,
            sku=sku,
            location_id=location_id,
            effect=effect,
            qty=qty if sign is None else sign * qty,
            occurred_ms=occurred_ms,
            kind=str(kind),
            source=SOURCE,
            order_ref=order_ref,
            eta_ms=eta_ms,
        )
    ]
