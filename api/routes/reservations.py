"""Reservations for the routing engine and checkout: hold, confirm, extend, release."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from api.auth import requires
from api.problems import PROBLEM_JSON
from api.responses import FastJSON, Problem, iso_ms
from atp.core.errors import ATPError
from atp.core.reservations import ReservationLine, ReservationRequest

router = APIRouter(prefix="/v1/reservations", tags=["reservations"])

RID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"
SKU_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]{1,128}$"
_PROBLEM = {"model": Problem, "content": {PROBLEM_JSON: {}}}
_ERRORS: dict[int | str, dict[str, Any]] = {s: _PROBLEM for s in (401, 403, 404, 409, 422, 503)}
ReservationId = Annotated[str, Path(pattern=RID_PATTERN)]


class LineIn(BaseModel):
    sku: str = Field(pattern=SKU_PATTERN)
    quantity: int = Field(ge=1, le=1_000_000)
    location_id: str | None = Field(
        None, pattern=SKU_PATTERN, description="Omit to let the service choose in the channel"
    )


class ReservationIn(BaseModel):
    reservation_id: str = Field(pattern=RID_PATTERN, description="Client-chosen idempotency key")
    lines: list[LineIn] = Field(min_length=1, max_length=200)
    ttl_seconds: int = Field(900, ge=1, description="How long a cart hold lasts")
    channel: str = "online"


class ExtendIn(BaseModel):
    ttl_seconds: int = Field(ge=1, description="New hold time, counted from now")


class AllocationOut(BaseModel):
    location_id: str
    quantity: int


class LineOut(BaseModel):
    sku: str
    quantity: int
    location_id: str | None
    allocations: list[AllocationOut]


class ReservationOut(BaseModel):
    reservation_id: str
    state: str
    channel: str
    created_at: str
    updated_at: str
    expires_at: str | None
    lines: list[LineOut]


# Error code -> outcome label (bounded: every label here or a code from atp.errors).
OUTCOMES = {
    "insufficient_stock": "short",
    "idempotency_conflict": "conflict",
    "reservation_expired": "expired",
    "reservation_not_found": "not_found",
    "invalid_transition": "invalid_transition",
    "location_not_in_channel": "invalid",
    "unknown_channel": "invalid",
    "store_unavailable": "unavailable",
}
DONE = {"confirm": "confirmed", "extend": "extended", "release": "released"}


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def shaped(view: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in view.items() if not k.endswith("_ms")}
    out["created_at"] = iso_ms(view["created_ms"])
    out["updated_at"] = iso_ms(view["updated_ms"])
    out["expires_at"] = iso_ms(view["expires_ms"])
    return out


def check_ttl(request: Request, ttl: int) -> None:
    from api.problems import InvalidRequest

    limit = request.app.state.settings.max_reservation_ttl_s
    if ttl > limit:
        raise InvalidRequest("ttl_too_long", f"ttl_seconds {ttl} is over the limit of {limit}")


@router.post(
    "",
    status_code=201,
    response_class=FastJSON,
    responses={201: {"model": ReservationOut}, **_ERRORS},
    dependencies=[Depends(requires("reserve"))],
    summary="Hold stock for every line, or nothing (409 lists every short line)",
)
async def create_reservation(request: Request, body: ReservationIn) -> Response:
    check_ttl(request, body.ttl_seconds)
    req = ReservationRequest(
        reservation_id=body.reservation_id,
        lines=tuple(ReservationLine(ln.sku, ln.quantity, ln.location_id) for ln in body.lines),
        ttl_seconds=body.ttl_seconds,
        channel=body.channel,
    )
    state = request.app.state
    try:
        created, view = await state.reservations.reserve(req, state.networks.current, now_ms())
    except ATPError as exc:
        state.metrics.reservations.labels(OUTCOMES.get(exc.code, exc.code)).inc()
        raise
    state.metrics.reservations.labels("held" if created else "idempotent_replay").inc()
    headers = {} if created else {"Idempotent-Replayed": "true"}
    return FastJSON(shaped(view), status_code=201, headers=headers)


@router.get(
    "/{reservation_id}",
    response_class=FastJSON,
    responses={200: {"model": ReservationOut}, **_ERRORS},
    dependencies=[Depends(requires("reserve"))],
    summary="A reservation as it stands",
)
async def get_reservation(request: Request, reservation_id: ReservationId) -> Response:
    view = await request.app.state.reservations.get(reservation_id, now_ms())
    return FastJSON(shaped(view))


async def _transition(request: Request, rid: str, op: str, ttl: int | None = None) -> Response:
    state = request.app.state
    try:
        view = await state.reservations.transition(rid, op, now_ms(), ttl)
    except ATPError as exc:
        state.metrics.reservations.labels(OUTCOMES.get(exc.code, exc.code)).inc()
        raise
    state.metrics.reservations.labels(DONE[op]).inc()
    return FastJSON(shaped(view))


@router.post(
    "/{reservation_id}/confirm",
    response_class=FastJSON,
    responses={200: {"model": ReservationOut}, **_ERRORS},
    dependencies=[Depends(requires("reserve"))],
    summary="Turn a cart hold into an order hold (no expiry)",
)
async def confirm_reservation(request: Request, reservation_id: ReservationId) -> Response:
    return await _transition(request, reservation_id, "confirm")


@router.post(
    "/{reservation_id}/extend",
    response_class=FastJSON,
    responses={200: {"model": ReservationOut}, **_ERRORS},
    dependencies=[Depends(requires("reserve"))],
    summary="Give a held reservation a new expiry, counted from now",
)
async def extend_reservation(
    request: Request, reservation_id: ReservationId, body: ExtendIn
) -> Response:
    check_ttl(request, body.ttl_seconds)
    return await _transition(request, reservation_id, "extend", body.ttl_seconds)


@router.delete(
    "/{reservation_id}",
    response_class=FastJSON,
    responses={200: {"model": ReservationOut}, **_ERRORS},
    dependencies=[Depends(requires("reserve"))],
    summary="Release the stock (a repeat is harmless)",
)
async def release_reservation(request: Request, reservation_id: ReservationId) -> Response:
    return await _transition(request, reservation_id, "release")
