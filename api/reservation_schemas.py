"""The reservations' request and response models (the routes are api/routes/reservations.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path
from pydantic import BaseModel, Field

from api.schemas import RID_PATTERN, SKU_PATTERN

ReservationId = Annotated[str, Path(pattern=RID_PATTERN)]


class ReservationLineIn(BaseModel):
    sku: str = Field(pattern=SKU_PATTERN)
    quantity: int = Field(ge=1, le=1_000_000)
    location_id: str | None = Field(
        None, pattern=SKU_PATTERN, description="Omit to let the service choose in the channel"
    )


class ReservationIn(BaseModel):
    reservation_id: str = Field(pattern=RID_PATTERN, description="Client-chosen idempotency key")
    lines: list[ReservationLineIn] = Field(min_length=1, max_length=200)
    ttl_seconds: int = Field(900, ge=1, description="How long a cart hold lasts")
    channel: str = "online"
    allow_partial: bool = Field(
        False,
        description="Hold what fits of each line (a line may hold less than asked, or nothing); "
        "409 only when no line fits. Without it: every line in full, or nothing",
    )


class ExtendIn(BaseModel):
    ttl_seconds: int = Field(ge=1, description="New hold time, counted from now")


class TransferIn(BaseModel):
    transfer_id: str = Field(
        pattern=RID_PATTERN,
        description="Client-chosen idempotency key: the same transfer again is answered, "
        "not made twice",
    )
    sku: str = Field(pattern=SKU_PATTERN)
    from_location_id: str = Field(pattern=SKU_PATTERN)
    to_location_id: str = Field(pattern=SKU_PATTERN)
    quantity: int = Field(ge=1, le=1_000_000)


class ChangeLineIn(BaseModel):
    sku: str = Field(pattern=SKU_PATTERN)
    quantity: int = Field(
        ge=0,
        le=1_000_000,
        description="The units the line is to hold from now (0: none; the line stays)",
    )
    location_id: str | None = Field(
        None,
        pattern=SKU_PATTERN,
        description="As the line was reserved (omit for a line reserved without one)",
    )


class ChangeIn(BaseModel):
    change_id: str = Field(
        pattern=RID_PATTERN,
        description="Client-chosen idempotency key: the same change again is answered, "
        "not made twice",
    )
    lines: list[ChangeLineIn] = Field(
        min_length=1,
        max_length=200,
        description="New quantities of lines of the reservation, each named by its SKU and "
        "location_id; lines not named keep theirs",
    )


class MoveOut(BaseModel):
    transfer_id: str
    sku: str
    from_location_id: str
    to_location_id: str
    quantity: int


class AllocationOut(BaseModel):
    location_id: str
    quantity: int


class ReservationLineOut(BaseModel):
    sku: str
    quantity: int = Field(
        description="As requested (the same as `requested`), or as the last change set it"
    )
    location_id: str | None
    requested: int
    held: int = Field(
        description="Units held for the line: `requested`, or less with `allow_partial` "
        "(shipped units included)"
    )
    fulfilled_quantity: int = Field(
        description="Units of `held` that shipments (SHIPPED, PICKUP naming the reservation) "
        "used up; the rest is still held. A released or expired reservation keeps what was "
        "used up before it closed; a fulfilled one used up all it held"
    )
    allocations: list[AllocationOut]


class ReservationOut(BaseModel):
    reservation_id: str
    state: str
    channel: str
    created_at: str
    updated_at: str
    expires_at: str | None
    allow_partial: bool
    lines: list[ReservationLineOut]
    transfers: list[MoveOut] = Field(
        description="Transfers done, in order; `allocations` are where the units are now"
    )
    changes: list[str] = Field(
        description="The change_id of every change of quantities done, in order"
    )
