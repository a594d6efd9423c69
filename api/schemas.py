"""Every request and response model of the API (what OpenAPI documents), and the patterns its
identifiers follow, built from the core's; the reservations' are in api/reservation_schemas.py
and the webhook subscriptions' in api/webhook_schemas.py."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query
from pydantic import AwareDatetime, BaseModel, Field, model_validator

from atp.core.geo import ZIP_PATTERN
from atp.core.movements import IDENTIFIER_PATTERN
from atp.core.reservations import RESERVATION_ID_PATTERN

SKU_PATTERN = f"^{IDENTIFIER_PATTERN}$"
RID_PATTERN = f"^{RESERVATION_ID_PATTERN}$"
ZIP = f"^{ZIP_PATTERN}$"

ChannelQ = Annotated[str, Query(description="Channel (location group) to answer for")]
PostalQ = Annotated[
    str | None,
    Query(pattern=ZIP, description="US ZIP code: adds pickup stores nearby with stock"),
]
RadiusQ = Annotated[
    float | None, Query(gt=0, le=500, description="Pickup search radius in km (default 50)")
]
IncludeQ = Annotated[
    str, Query(pattern=r"^(locations|none)$", description="`locations` (default) or `none`")
]


# Availability ---------------------------------------------------------------------------


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


class FutureOut(BaseModel):
    eta: str
    quantity: int


_ATF = "units that can be promised from stock on hand now (on hand, less holds and safety stock)"
_ATO = (
    "available_to_fulfil plus the inbound due at the channel's locations within its "
    "future_stock horizon, capped by its limit (the network file); equal to available_to_fulfil "
    "for a channel without future_stock"
)
_FUTURE = "the inbound counted for available_to_order: by eta, summed over the locations"


class KitComponentOut(BaseModel):
    sku: str
    quantity: int = Field(description="units of the component in one kit")


class KitOut(BaseModel):
    components: list[KitComponentOut]


_KIT = (
    "present when the SKU is a kit of the catalogue file: its components; its counts are in "
    "kits, from its components' (config/catalog.yaml)"
)


class AvailabilityOut(BaseModel):
    sku: str
    channel: str
    atp: int = Field(description="the same as available_to_fulfil")
    available_to_fulfil: int = Field(description=_ATF)
    available_to_order: int = Field(description=_ATO)
    future: list[FutureOut] = Field(description=_FUTURE)
    status: str
    updated_at: str | None
    age_ms: int | None
    behind_ms: int | None = Field(
        description="how long before now the stream was last applied in full (0: caught up; "
        "null: no worker has reported)"
    )
    next_inbound: InboundOut | None
    locations: list[LocationOut] | None = None
    pickup: list[PickupOut] | None = None
    kit: KitOut | None = Field(None, description=_KIT)


class BatchOut(BaseModel):
    channel: str
    results: list[AvailabilityOut]


class KitComponentTermsOut(BaseModel):
    sku: str
    quantity: int
    on_hand: int
    reserved: int
    safety_stock: int
    atp: int
    kits: int = Field(description="atp // quantity")


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
    limiting_component: str | None = Field(
        None, description="a kit's: the component that makes the fewest kits here"
    )
    components: list[KitComponentTermsOut] | None = Field(
        None, description="a kit's: each component's terms here, and the kits it makes"
    )


class FutureStockOut(BaseModel):
    horizon_days: float
    limit_units: int | None
    limit_percent: int | None


class ExplainOut(BaseModel):
    sku: str
    channel: str
    formula: str
    atp: int = Field(description="the same as available_to_fulfil")
    available_to_fulfil: int = Field(description=_ATF)
    available_to_order: int = Field(description=_ATO)
    future: list[FutureOut] = Field(description=_FUTURE)
    future_stock: FutureStockOut | None = Field(
        description="the channel's future_stock rule (null: it promises no future supply)"
    )
    status: str
    low_stock_threshold: int
    updated_at: str | None
    age_ms: int | None
    behind_ms: int | None
    locations: list[ExplainLocationOut]
    kit: KitOut | None = Field(None, description=_KIT)


class MovementOut(BaseModel):
    event_id: str
    location_id: str
    source: str
    kind: str
    effect: str = Field(description="delta, count (absolute) or inbound (an ASN)")
    quantity: int
    occurred_at: str
    seen_at: str = Field(description="when the ledger applied the batch that held it")
    outcome: str = Field(description="applied, duplicate, superseded or too_late")
    on_hand_after: int = Field(description="the location's on hand after it")


class MovementsOut(BaseModel):
    sku: str
    location_id: str | None
    movements: list[MovementOut]
    next: str | None = Field(description="`before` for the next page; null on the last")


class BatchQuery(BaseModel):
    skus: list[str] = Field(min_length=1, description="Up to ATP_MAX_BATCH_SKUS (500) SKUs")
    channel: str = "online"
    postal_code: str | None = Field(None, pattern=ZIP)
    radius_km: float | None = Field(None, gt=0, le=500)
    include: str = Field("none", pattern=r"^(locations|none)$")


# Delivery options and sourcing plans ---------------------------------------------------


class BasketLineIn(BaseModel):
    sku: str = Field(pattern=SKU_PATTERN)
    quantity: int = Field(ge=1, le=100_000)


class DestinationIn(BaseModel):
    postal_code: str | None = Field(None, pattern=ZIP, description="US ZIP code")
    lat: float | None = Field(None, ge=-90, le=90)
    lon: float | None = Field(None, ge=-180, le=180)

    @model_validator(mode="after")
    def _one_form(self) -> DestinationIn:
        has_point = self.lat is not None and self.lon is not None
        if (self.postal_code is None) == (not has_point) or (self.lat is None) != (
            self.lon is None
        ):
            raise ValueError("give either postal_code, or both lat and lon")
        return self


class DeliveryQuery(BaseModel):
    lines: list[BasketLineIn] = Field(min_length=1, max_length=50)
    destination: DestinationIn
    channel: str | None = Field(
        None, description="Safety-stock rules and locations to sell from (default online)"
    )
    now: AwareDatetime | None = Field(
        None, description="Order time for tests and what-if; only if ATP_ALLOW_NOW_OVERRIDE"
    )


class ReserveIn(BaseModel):
    reservation_id: str = Field(pattern=RID_PATTERN, description="Client-chosen idempotency key")
    ttl_seconds: int = Field(900, ge=1)


class PlanQuery(DeliveryQuery):
    service: str = Field("standard", description="A service of the network file")
    max_plans: int = Field(5, ge=1, le=20)
    reserve: ReserveIn | None = Field(
        None, description="Hold the first plan that can still be held (needs the reserve scope)"
    )


class BasketLineOut(BaseModel):
    sku: str
    quantity: int


class PartOut(BaseModel):
    location_id: str
    location_name: str
    distance_km: float
    ready_at: str
    promised_by: str
    lines: list[BasketLineOut]


class StoreOut(BaseModel):
    location_id: str
    name: str
    distance_km: float
    atp: dict[str, int]
    ready_by: str
    cutoff_at: str
    order_within_seconds: int


class TransferOut(BaseModel):
    location_id: str
    from_location_id: str
    ready_by: str


class OptionOut(BaseModel):
    service: str
    kind: str
    location_id: str | None = Field(description="The one location; null when split")
    promised_by: str = Field(description="Latest arrival, or ready for pickup")
    window_start: str | None = Field(description="Couriers: earliest arrival")
    delivery_date: str
    cutoff_at: str = Field(description="Order before this to keep this promise")
    order_within_seconds: int
    split: bool
    parts: list[PartOut]
    stores: list[StoreOut] | None = Field(None, description="Pickup: stores with the basket")
    transfer: TransferOut | None = None


class NotOfferedOut(BaseModel):
    service: str
    reason: str


class DestinationOut(BaseModel):
    postal_code: str | None
    lat: float
    lon: float
    timezone: str


class OptionsOut(BaseModel):
    destination: DestinationOut
    now: str
    options: list[OptionOut]
    not_offered: list[NotOfferedOut] | None = None


class PlanOut(BaseModel):
    rank: int
    promised_by: str
    cutoff_at: str
    order_within_seconds: int
    split: bool
    total_distance_km: float
    parts: list[PartOut]


class PlansOut(BaseModel):
    service: str
    channel: str
    destination: DestinationOut
    now: str
    plans: list[PlanOut]
    reason: str | None
    reserved_plan: int | None
    reservation: dict[str, Any] | None


# Health and errors -------------------------------------------------------------------------


class StatusOut(BaseModel):
    status: str


class Problem(BaseModel):
    type: str
    title: str
    status: int
    detail: str
    code: str
    instance: str
