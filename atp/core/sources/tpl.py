"""3PL stock reports, topic `stock.3pl`: absolute on-hand as of `as_of`, for the listed SKUs only.

Each item is an absolute count with event id `<report_id>:<sku>`; SKUs not listed are untouched.
"""

from __future__ import annotations

from atp.core.errors import InvalidMovement
from atp.core.movements import Effect, Movement
from atp.core.network import Network
from atp.core.sources import common

SOURCE = "3pl"
KIND = "REPORT"  # every item of a stock report is an absolute count
MAX_ITEMS = 100_000


def parse(raw: bytes, network: Network) -> list[Movement]:
    data = common.load_object(raw)
    report_id = common.identifier(data, "report_id")
    common.identifier(data, "provider")
    facility_id = common.location(data, "facility_id", network)
    as_of_ms = common.timestamp(data, "as_of")
    items = data.get("items")
    if not isinstance(items, list) or len(items) > MAX_ITEMS:
        raise InvalidMovement(common.SCHEMA, f"items must be a list of at most {MAX_ITEMS} items")
    movements = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise InvalidMovement(common.SCHEMA, f"items[{i}] must be an object")
        try:
            sku = common.identifier(item, "sku")
            on_hand = common.quantity(item, "on_hand")
        except InvalidMovement as exc:
            raise InvalidMovement(exc.code, f"items[{i}].{exc.message}") from None
        if sku in seen:
            raise InvalidMovement(common.SCHEMA, f"items[{i}]: SKU {sku!r} is listed twice")
        seen.add(sku)
        movements.append(
            Movement(
                event_id=f"{report_id}:{sku}",
                sku=sku,
                location_id=facility_id,
                effect=Effect.COUNT,
                qty=on_hand,
                occurred_ms=as_of_ms,
                kind=KIND,
                source=SOURCE,
            )
        )
    return movements
