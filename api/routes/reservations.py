"""Reservations for the routing engine and checkout: hold, confirm, extend,
release, transfer between locations and change quantities."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from api import views
from api.deps import Services, requiring, services_of
from api.problems import PROBLEM_JSON, InvalidRequest
from api.reservation_schemas import (
    ChangeIn,
    ExtendIn,
    ReservationId,
    ReservationIn,
    ReservationOut,
    TransferIn,
)
from api.responses import FastJSON
from api.schemas import Problem
from atp.core.amendments import Change, Move
from atp.core.errors import ATPError
from atp.core.reservations import DONE, ReservationLine, ReservationRequest

router = APIRouter(
    prefix="/v1/reservations", tags=["reservations"], route_class=requiring("reserve")
)

_PROBLEM = {"model": Problem, "content": {PROBLEM_JSON: {}}}
_ERRORS: dict[int | str, dict[str, Any]] = {s: _PROBLEM for s in (401, 403, 404, 409, 422, 503)}
_ANSWERS: dict[int | str, dict[str, Any]] = {200: {"model": ReservationOut}, **_ERRORS}


@router.post(
    "",
    status_code=201,
    response_class=FastJSON,
    responses={201: {"model": ReservationOut}, **_ERRORS},
    summary="Hold stock for every line, or nothing (409 lists every short line); "
    "with allow_partial, what fits",
)
async def create_reservation(request: Request, body: ReservationIn) -> Response:
    svc = services_of(request)
    svc.check_ttl(body.ttl_seconds)
    svc.refuse_kits(ln.sku for ln in body.lines)
    req = ReservationRequest(
        reservation_id=body.reservation_id,
        lines=tuple(ReservationLine(ln.sku, ln.quantity, ln.location_id) for ln in body.lines),
        ttl_seconds=body.ttl_seconds,
        channel=body.channel,
        allow_partial=body.allow_partial,
    )
    try:
        created, view = await svc.reservations.reserve(req, svc.network, svc.clock())
    except ATPError as exc:
        svc.metrics.reservation_refused(exc.code)
        raise
    svc.metrics.reservation("held" if created else "idempotent_replay")
    if created and not svc.reservations.publishes_made:  # else the reserving call did
        svc.live.notify(ln.sku for ln in body.lines)
    headers = {} if created else {"Idempotent-Replayed": "true"}
    return FastJSON(views.reservation(view), status_code=201, headers=headers)


@router.get(
    "/{reservation_id}",
    response_class=FastJSON,
    responses=_ANSWERS,
    summary="A reservation as it stands",
)
async def get_reservation(request: Request, reservation_id: ReservationId) -> Response:
    svc = services_of(request)
    view = await svc.reservations.get(reservation_id, svc.clock())
    return FastJSON(views.reservation(view))


async def _transition(svc: Services, rid: str, op: str, ttl: int | None = None) -> Response:
    try:
        view = await svc.reservations.transition(rid, op, svc.clock(), ttl)
    except ATPError as exc:
        svc.metrics.reservation_refused(exc.code)
        raise
    svc.metrics.reservation(DONE[op])
    if op == "release":  # its units are back on sale
        svc.live.notify(ln["sku"] for ln in view["lines"])
    return FastJSON(views.reservation(view))


@router.post(
    "/{reservation_id}/confirm",
    response_class=FastJSON,
    responses=_ANSWERS,
    summary="Turn a cart hold into an order hold (no expiry)",
)
async def confirm_reservation(request: Request, reservation_id: ReservationId) -> Response:
    svc = services_of(request)
    return await _transition(svc, reservation_id, "confirm")


@router.post(
    "/{reservation_id}/extend",
    response_class=FastJSON,
    responses=_ANSWERS,
    summary="Give a held reservation a new expiry, counted from now",
)
async def extend_reservation(
    request: Request, reservation_id: ReservationId, body: ExtendIn
) -> Response:
    svc = services_of(request)
    svc.check_ttl(body.ttl_seconds)
    return await _transition(svc, reservation_id, "extend", body.ttl_seconds)


@router.delete(
    "/{reservation_id}",
    response_class=FastJSON,
    responses=_ANSWERS,
    summary="Release the stock (a repeat is harmless)",
)
async def release_reservation(request: Request, reservation_id: ReservationId) -> Response:
    svc = services_of(request)
    return await _transition(svc, reservation_id, "release")


@router.post(
    "/{reservation_id}/transfer",
    response_class=FastJSON,
    responses=_ANSWERS,
    summary="Move held units to another location, checked there in the same atomic step "
    "(409 and nothing moved when it cannot take them)",
)
async def transfer_reservation(
    request: Request, reservation_id: ReservationId, body: TransferIn
) -> Response:
    svc = services_of(request)
    if body.from_location_id == body.to_location_id:
        raise InvalidRequest(
            "same_location", "from_location_id and to_location_id are the same location"
        )
    move = Move(
        body.transfer_id, body.sku, body.from_location_id, body.to_location_id, body.quantity
    )
    try:
        moved, view = await svc.reservations.transfer(
            reservation_id, move, svc.network, svc.clock()
        )
    except ATPError as exc:
        svc.metrics.reservation_refused(exc.code)
        raise
    return _done(svc, "transferred" if moved else None, [body.sku], view)  # two locations


def _done(
    svc: Services, outcome: str | None, skus: Iterable[str], view: dict[str, Any]
) -> Response:
    """The answer to a transfer or change: `outcome` when it was done now, None for a replay
    (nothing changed; said in the Idempotent-Replayed header)."""
    svc.metrics.reservation(outcome or "idempotent_replay")
    if outcome:
        svc.live.notify(skus)
    headers = {} if outcome else {"Idempotent-Replayed": "true"}
    return FastJSON(views.reservation(view), headers=headers)


@router.patch(
    "/{reservation_id}",
    response_class=FastJSON,
    responses=_ANSWERS,
    summary="New quantities for lines of a held or confirmed reservation, all or nothing: "
    "decreases always fit (down to what shipped); an increase that does not is a 409 listing "
    "the short lines",
)
async def change_reservation(
    request: Request, reservation_id: ReservationId, body: ChangeIn
) -> Response:
    svc = services_of(request)
    named = [(ln.sku, ln.location_id) for ln in body.lines]
    if len(set(named)) < len(named):
        raise InvalidRequest("duplicate_line", "a line is named more than once in the change")
    asked = Change(
        body.change_id,
        tuple(ReservationLine(ln.sku, ln.quantity, ln.location_id) for ln in body.lines),
    )
    try:
        changed, view = await svc.reservations.change(
            reservation_id, asked, svc.network, svc.clock()
        )
    except ATPError as exc:
        svc.metrics.reservation_refused(exc.code)
        raise
    return _done(svc, "changed" if changed else None, [ln.sku for ln in body.lines], view)
