"""JSON responses serialised with orjson, and the shapes documented in OpenAPI."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import BaseModel
from starlette.responses import JSONResponse


class FastJSON(JSONResponse):
    """JSON via orjson (several times faster than the standard library on our answers)."""

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


class InboundOut(BaseModel):
    location_id: str
    eta: str
    qty: int


class PickupOut(BaseModel):
    location_id: str
    name: str
    distance_km: float
    atp: int


class AvailabilityOut(BaseModel):
    sku: str
    channel: str
    atp: int
    status: str
    updated_at: str | None
    age_ms: int | None
    next_inbound: InboundOut | None
    locations: list[LocationOut] | None = None
    pickup: list[PickupOut] | None = None


class BatchOut(BaseModel):
    channel: str
    results: list[AvailabilityOut]


class ExplainLocationOut(BaseModel):
    location_id: str
    type: str
    enabled: bool
    counts_for_channel: bool
    excluded_because: str | None
    on_hand: int
    reserved: int
    safety_stock: int
    safety_stock_rule: str
    atp: int
    oversell_exposure: int
    inbound: list[dict[str, object]]
    last_count_at: str | None
    last_movement_at: str | None
    deltas_since_count: int


class ExplainOut(BaseModel):
    sku: str
    channel: str
    formula: str
    atp: int
    status: str
    low_stock_threshold: int
    updated_at: str | None
    age_ms: int | None
    locations: list[ExplainLocationOut]


class Problem(BaseModel):
    type: str
    title: str
    status: int
    detail: str
    code: str
    instance: str


class StatusOut(BaseModel):
    status: str
