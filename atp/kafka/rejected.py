"""Records for `stock.rejected`: the original bytes, where they came from, and why."""

from __future__ import annotations

import base64
from typing import Any

import orjson


def rejection(
    *,
    raw: bytes | None,
    key: bytes | None,
    topic: str,
    partition: int,
    offset: int,
    reason: str,
    message: str,
    now_ms: int,
) -> bytes:
    """A rejected-topic record; bytes that are not UTF-8 travel as base64."""
    record: dict[str, Any] = {
        "reason": reason,
        "message": message,
        "source_topic": topic,
        "partition": partition,
        "offset": offset,
        "rejected_at_ms": now_ms,
    }
    record.update(_payload("value", raw))
    record.update(_payload("key", key))
    return orjson.dumps(record)


def _payload(name: str, data: bytes | None) -> dict[str, Any]:
    if data is None:
        return {name: None}
    try:
        return {name: data.decode("utf-8")}
    except UnicodeDecodeError:
        return {f"{name}_b64": base64.b64encode(data).decode("ascii")}


def original_bytes(record: dict[str, Any], name: str = "value") -> bytes | None:
    """Inverse of the payload encoding, for replay."""
    if f"{name}_b64" in record:
        return base64.b64decode(record[f"{name}_b64"])
    value = record.get(name)
    return None if value is None else str(value).encode("utf-8")
