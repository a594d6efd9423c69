"""Checks shared by the source adapters; each failure is an `InvalidMovement` with a stable code."""

from __future__ import annotations

from typing import Any

import orjson

from atp.core.errors import InvalidMovement
from atp.core.movements import MAX_QTY, is_valid_identifier, parse_timestamp_ms
from atp.core.network import Network

MALFORMED_JSON = "malformed_json"
SCHEMA = "schema"
UNKNOWN_LOCATION = "unknown_location"
NEGATIVE_QUANTITY = "negative_quantity"
QUANTITY_OUT_OF_RANGE = "quantity_out_of_range"
TOO_LATE = "too_late"
ADAPTER_ERROR = "adapter_error"  # an adapter raised something other than InvalidMovement: a bug
# Every reason a source message or a movement is rejected with.
REASONS = (
    MALFORMED_JSON,
    SCHEMA,
    UNKNOWN_LOCATION,
    NEGATIVE_QUANTITY,
    QUANTITY_OUT_OF_RANGE,
    TOO_LATE,
    ADAPTER_ERROR,
)


def load_object(raw: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidMovement(MALFORMED_JSON, f"not valid UTF-8 JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidMovement(SCHEMA, f"expected a JSON object, got {type(data).__name__}")
    return data


def identifier(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if not is_valid_identifier(value):
        raise InvalidMovement(SCHEMA, f"{name} must be 1 to 128 printable characters")
    return str(value)


def optional_identifier(data: dict[str, Any], name: str) -> str | None:
    return None if data.get(name) is None else identifier(data, name)


def location(data: dict[str, Any], name: str, network: Network) -> str:
    loc = identifier(data, name)
    if loc not in network.locations:
        raise InvalidMovement(
            UNKNOWN_LOCATION, f"{name} {loc!r} is not in the network file; add it, then replay"
        )
    return loc


def timestamp(data: dict[str, Any], name: str) -> int:
    try:
        return parse_timestamp_ms(data.get(name))
    except ValueError as exc:
        raise InvalidMovement(SCHEMA, f"{name}: {exc}") from None


def quantity(data: dict[str, Any], name: str, *, signed: bool = False) -> int:
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidMovement(SCHEMA, f"{name} must be a whole number, got {value!r}"[:200])
    if not signed and value < 0:
        raise InvalidMovement(NEGATIVE_QUANTITY, f"{name} must not be negative, got {value}")
    if abs(value) > MAX_QTY:
        raise InvalidMovement(
            QUANTITY_OUT_OF_RANGE, f"{name} {value} is beyond the limit of {MAX_QTY} units"[:200]
        )
    return value
