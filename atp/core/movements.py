"""The canonical stock movement every source is normalised to, and its wire format."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

MAX_QTY = 1_000_000
MAX_ID_LEN = 128
# SKU, location and event ids: printable text only, no C0/C1 control characters (they break
# logs, keys and terminals).
IDENTIFIER_PATTERN = r"[^\x00-\x1f\x7f-\x9f]{1,128}"
_ID_RE = re.compile(IDENTIFIER_PATTERN)


class Effect(enum.Enum):
    """What a movement does to the ledger of its (SKU, location)."""

    DELTA = "delta"  # signed change of on-hand
    COUNT = "count"  # absolute on-hand as of occurred_at
    INBOUND = "inbound"  # units expected at eta; not on hand


@dataclass(frozen=True, slots=True)
class Movement:
    """One canonical movement of one SKU at one location.

    `qty` is signed for DELTA, the counted on-hand for COUNT and the expected units for INBOUND.
    Times are milliseconds since the Unix epoch (UTC).
    """

    event_id: str
    sku: str
    location_id: str
    effect: Effect
    qty: int
    occurred_ms: int
    kind: str  # the source's own kind (RECEIVED, SALE, ...), kept for explanations and metrics
    source: str
    order_ref: str | None = None
    eta_ms: int | None = None
    # When the source message reached the broker (its Kafka timestamp): for freshness metrics.
    produced_ms: int | None = None

    def to_wire(self) -> dict[str, object]:
        """The JSON object carried on the movements topic."""
        return {
            "event_id": self.event_id,
            "sku": self.sku,
            "location_id": self.location_id,
            "effect": self.effect.value,
            "qty": self.qty,
            "occurred_ms": self.occurred_ms,
            "kind": self.kind,
            "source": self.source,
            "order_ref": self.order_ref,
            "eta_ms": self.eta_ms,
            "produced_ms": self.produced_ms,
        }

    @classmethod
    def from_wire(cls, data: dict[str, object]) -> Movement:
        """Inverse of `to_wire`; raises KeyError/ValueError/TypeError on a foreign object."""
        order_ref = data.get("order_ref")
        eta_ms = data.get("eta_ms")
        produced_ms = data.get("produced_ms")
        return cls(
            event_id=str(data["event_id"]),
            sku=str(data["sku"]),
            location_id=str(data["location_id"]),
            effect=Effect(data["effect"]),
            qty=_int(data["qty"]),
            occurred_ms=_int(data["occurred_ms"]),
            kind=str(data["kind"]),
            source=str(data["source"]),
            order_ref=None if order_ref is None else str(order_ref),
            eta_ms=None if eta_ms is None else _int(eta_ms),
            produced_ms=None if produced_ms is None else _int(produced_ms),
        )


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {value!r}")
    return value


def is_valid_identifier(value: object) -> bool:
    """SKU, location and event ids: 1 to 128 printable characters."""
    return isinstance(value, str) and _ID_RE.fullmatch(value) is not None


def parse_timestamp_ms(value: object) -> int:
    """ISO 8601 with an offset or `Z` to epoch milliseconds; naive timestamps are refused."""
    if not isinstance(value, str):
        raise ValueError("timestamp must be an ISO 8601 string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"not an ISO 8601 timestamp: {value[:64]!r}") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError(f"timestamp has no UTC offset: {value[:64]!r}")
    return (parsed - _EPOCH) // _MS


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
