"""Delivery options for product pages and sourcing plans for order routing.

Both read the basket's stock in one pipelined Redis round trip and leave the rest to the pure
planner (atp/core/planning/). Times are ISO 8601 in the destination's time zone.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from api import views
from api.deps import Services, requiring, services_of
from api.problems import PROBLEM_JSON, InvalidRequest
from api.responses import FastJSON
from api.schemas import (
    BasketLineIn,
    DeliveryQuery,
    DestinationIn,
    OptionsOut,
    PlanQuery,
    PlansOut,
    Problem,
)
from atp.core.errors import ATPError, ReservationNotFound
from atp.core.geo import nearest_timezone, zip_coordinates, zip_timezone
from atp.core.planning import Destination, Line, Order, Outcome, Plan, plan
from atp.core.planning import delivery_options as plan_delivery_options
from atp.core.reservations import ReservationLine, ReservationRequest

router = APIRouter(prefix="/v1", tags=["delivery"], route_class=requiring("read"))

_PROBLEM = {"model": Problem, "content": {PROBLEM_JSON: {}}}
_ERRORS: dict[int | str, dict[str, Any]] = {s: _PROBLEM for s in (401, 403, 409, 422, 503)}


def destination_of(d: DestinationIn) -> Destination:
    if d.postal_code is not None:
        point, zone = zip_coordinates(d.postal_code), zip_timezone(d.postal_code)
        if point is None or zone is None:
            raise InvalidRequest(
                "unknown_postal_code", f"{d.postal_code} is not a known US ZIP code"
            )
        return Destination(point, ZoneInfo(zone), d.postal_code)
    assert d.lat is not None and d.lon is not None
    zone = nearest_timezone((d.lat, d.lon))
    if zone is None:
        raise InvalidRequest(
            "destination_out_of_area",
            f"no US ZIP code within 300 km of {d.lat}, {d.lon}: outside the delivery area",
        )
    return Destination((d.lat, d.lon), ZoneInfo(zone))


def order_time(svc: Services, given: datetime | None) -> datetime:
    if given is None:
        return svc.now()
    if not svc.settings.allow_now_override:
        raise InvalidRequest(
            "now_not_allowed",
            "`now` is accepted only where ATP_ALLOW_NOW_OVERRIDE=true (tests, what-if); omit it",
        )
    return given.astimezone(UTC)


async def order_of(
    svc: Services, lines: list[BasketLineIn], dest: Destination, now: datetime
) -> Order:
    """The basket with its stock, read in one pipelined round trip."""
    skus = list(dict.fromkeys(ln.sku for ln in lines))
    svc.refuse_kits(skus)
    records = await svc.stock.read_many(skus, svc.clock())
    stock = {sku: rec.counts for sku, rec in zip(skus, records, strict=True)}
    return Order([Line(ln.sku, ln.quantity) for ln in lines], stock, dest, now)


@router.post(
    "/delivery-options",
    response_class=FastJSON,
    responses={200: {"model": OptionsOut}, **_ERRORS},
    summary="For each delivery service, the earliest promise the network can keep with stock now",
)
async def delivery_options(
    request: Request,
    query: DeliveryQuery,
    explain: bool = Query(False, description="List the services not offered, with the reason"),
) -> Response:
    svc = services_of(request)
    network = svc.network
    network.channel(query.channel or "online")
    dest = destination_of(query.destination)
    now = order_time(svc, query.now)
    order = await order_of(svc, query.lines, dest, now)
    result = plan_delivery_options(
        network, order, channel=query.channel, max_parts=svc.settings.max_plan_parts
    )
    svc.metrics.lookups.labels("delivery_options").inc()
    return FastJSON(views.Delivery(network, dest, now).options(result, explain))


@router.post(
    "/sourcing-plans",
    response_class=FastJSON,
    responses={200: {"model": PlansOut}, **_ERRORS},
    summary="Ranked plans of which locations fulfil an order; optionally reserve the best",
)
async def sourcing_plans(request: Request, query: PlanQuery) -> Response:
    svc = services_of(request)
    if query.reserve is not None:
        svc.auth.require(request, "reserve")
        svc.check_ttl(query.reserve.ttl_seconds)
    network = svc.network
    service = network.service(query.service)
    channel = query.channel or service.channel
    network.channel(channel)
    dest = destination_of(query.destination)
    now = order_time(svc, query.now)
    shape = views.Delivery(network, dest, now)
    if query.reserve is not None:
        # An id already used answers with what it holds: the plan is not made again.
        existing = await _existing(svc, query.reserve.reservation_id)
        if existing is not None:
            svc.metrics.reservation("idempotent_replay")
            body = shape.plans(query.service, channel, Outcome(service.id), None, existing)
            return FastJSON(body, headers={"Idempotent-Replayed": "true"})
    order = await order_of(svc, query.lines, dest, now)
    outcome = plan(
        network,
        service,
        order,
        channel=channel,
        max_parts=svc.settings.max_plan_parts,
        max_plans=query.max_plans,
    )
    reserved_plan = reservation = None
    if query.reserve is not None:
        if not outcome.plans:
            raise InvalidRequest(
                "no_plan", outcome.reason or "no plan can fulfil the order", status=409
            )
        reserved_plan, reservation = await _hold_first(svc, query, channel, outcome.plans)
    svc.metrics.lookups.labels("sourcing_plans").inc()
    return FastJSON(shape.plans(query.service, channel, outcome, reserved_plan, reservation))


async def _existing(svc: Services, reservation_id: str) -> dict[str, Any] | None:
    try:
        view = await svc.reservations.get(reservation_id, svc.clock())
    except ReservationNotFound:
        return None
    return views.reservation(view)


async def _hold_first(
    svc: Services, query: PlanQuery, channel: str, plans: list[Plan]
) -> tuple[int, dict[str, Any]]:
    """Reserve plans in rank order until one holds (stock may have moved since the read)."""
    assert query.reserve is not None
    requests = [
        ReservationRequest(
            reservation_id=query.reserve.reservation_id,
            lines=tuple(
                ReservationLine(ln.sku, ln.quantity, part.promise.location_id)
                for part in p.parts
                for ln in part.lines
            ),
            ttl_seconds=query.reserve.ttl_seconds,
            channel=channel,
        )
        for p in plans
    ]
    try:
        index, created, view = await svc.reservations.reserve_first(
            requests, svc.network, svc.clock()
        )
    except ATPError as exc:
        svc.metrics.reservation_refused(exc.code)
        raise
    svc.metrics.reservation("held" if created else "idempotent_replay")
    if created and not svc.reservations.publishes_made:  # else the reserving call did
        svc.live.notify(ln["sku"] for ln in view["lines"])
    return index + 1, views.reservation(view)
