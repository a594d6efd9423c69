"""JSON responses serialised with orjson, and the shapes documented in OpenAPI."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import BaseModel
from starlette.responses import Response


class FastJSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def iso_ms(epoch_ms: int | None) -> str | None:
    if epoch_ms is None:
        return None
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).isoformat(timespec="milliseconds")


class LocationOut(BaseModel):
    location_id: str
    type: str
    on_hand: int
    reserved: int
    safety_stock: int
    atp: int


class AvailabilityOut(BaseModel):
    sku: str
    channel: str
    atp: int
    status: str
    locations: list[LocationOut]
    updated_at: str | None


class Problem(BaseModel):
    type: str
    title: str
    status: int
    detail: str
    code: str
    instance: str
