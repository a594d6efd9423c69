"""Delivery options for product pages and sourcing plans for order routing.

Both read the basket's stock in one pipelined Redis round trip and leave the rest to the pure
planner (atp/core/planning.py). Times are ISO 8601 in the destination's time zone.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request
from pydantic import AwareDatetime, BaseModel, Field, model_validator
from starlette.responses import Response

from api.auth import requires
from api.problems import PROBLEM_JSON, InvalidRequest
from api.responses import FastJSON, Problem
from api.routes.reservations import OUTCOMES, RID_PATTERN, SKU_PATTERN, check_ttl, shaped
from atp.core.errors import ATPError, InsufficientStock, ReservationNotFound
from atp.core.geo import nearest_timezone, zip_coordinates, zip_timezone
from atp.core.network import Network
from atp.core.planning import (
    Destination,
    Line,
    Order,
    Outcome,
    Part,
    Plan,
    Promise,
    Stock,
    TransferOption,
    pickup_stores,
    plan,
)
from atp.core.reservations import ReservationLine, ReservationRequest

router = APIRouter(prefix="/v1", tags=["delivery"], dependencies=[Depends(requires("read"))])

_PROBLEM = {"model": Problem, "content": {PROBLEM_JSON: {}}}
_ERRORS: dict[int | str, dict[str, Any]] = {s: _PROBLEM for s in (401, 403, 409, 422, 503)}


class LineIn(BaseModel):
    sku: str = Field(pattern=SKU_PATTERN)
    quantity: int = Field(ge=1, le=100_000)


class DestinationIn(BaseModel):
    postal_code: str | None = Field(None, pattern=r"^\d{5}$", description="US ZIP code")
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
    lines: list[LineIn] = Field(min_length=1, max_length=50)
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


class LineOut(BaseModel):
    sku: str
    quantity: int


class PartOut(BaseModel):
    location_id: str
    location_name: str
    distance_km: float
    ready_at: str
    promised_by: str
    lines: list[LineOut]


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


def _destination(d: DestinationIn) -> Destination:
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


def _now(request: Request, given: datetime | None) -> datetime:
    if given is None:
        return datetime.now(UTC)
    if not request.app.state.settings.allow_now_override:
        raise InvalidRequest(
            "now_not_allowed",
            "`now` is accepted only where ATP_ALLOW_NOW_OVERRIDE=true (tests, what-if); omit it",
        )
    return given.astimezone(UTC)


async def _stock(request: Request, lines: list[LineIn]) -> Stock:
    skus = list(dict.fromkeys(ln.sku for ln in lines))
    records = await request.app.state.stock.read_many(skus, _now_ms())
    return {sku: rec.counts for sku, rec in zip(skus, records, strict=True)}


class _Shape:
    """Turns domain results into JSON, with every time in the destination's zone."""

    def __init__(self, network: Network, dest: Destination, now: datetime) -> None:
        self.network, self.dest, self.now = network, dest, now

    def t(self, moment: datetime) -> str:
        return moment.astimezone(self.dest.zone).isoformat()

    def destination(self) -> dict[str, Any]:
        return {
            "postal_code": self.dest.postal_code,
            "lat": self.dest.point[0],
            "lon": self.dest.point[1],
            "timezone": self.dest.zone.key,
        }

    def part(self, p: Promise, lines: tuple[Line, ...]) -> dict[str, Any]:
        return {
            "location_id": p.location_id,
            "location_name": self.network.locations[p.location_id].name,
            "distance_km": p.distance_km,
            "ready_at": self.t(p.ready_at),
            "promised_by": self.t(p.promised_by),
            "lines": [{"sku": ln.sku, "quantity": ln.quantity} for ln in lines],
        }

    def plan(self, rank: int, p: Plan) -> dict[str, Any]:
        return {
            "rank": rank,
            "promised_by": self.t(p.promised_by),
            "cutoff_at": self.t(p.cutoff_at),
            "order_within_seconds": _seconds(p.cutoff_at, self.now),
            "split": len(p.parts) > 1,
            "total_distance_km": round(p.distance_km, 1),
            "parts": [self.part(part.promise, part.lines) for part in p.parts],
        }

    def option(self, kind: str, p: Plan) -> dict[str, Any]:
        first = p.parts[0].promise
        last = max((part.promise for part in p.parts), key=lambda q: q.promised_by)
        starts = [part.promise.window_start for part in p.parts]
        return {
            "service": p.service,
            "kind": kind,
            "location_id": first.location_id if len(p.parts) == 1 else None,
            "promised_by": self.t(p.promised_by),
            "window_start": None if None in starts else self.t(max(starts)),  # type: ignore[type-var]
            "delivery_date": last.delivery_date.isoformat(),
            "cutoff_at": self.t(p.cutoff_at),
            "order_within_seconds": _seconds(p.cutoff_at, self.now),
            "split": len(p.parts) > 1,
            "parts": [self.part(part.promise, part.lines) for part in p.parts],
        }

    def transfer(self, t: TransferOption | None) -> dict[str, Any] | None:
        if t is None:
            return None
        return {
            "location_id": t.store_id,
            "from_location_id": t.from_location_id,
            "ready_by": self.t(t.ready_at),
        }


def _seconds(moment: datetime, now: datetime) -> int:
    return max(0, int((moment - now).total_seconds()))


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
    state = request.app.state
    network: Network = state.networks.current
    channel = query.channel or "online"
    network.channel(channel)
    dest = _destination(query.destination)
    now = _now(request, query.now)
    order = Order(
        [Line(ln.sku, ln.quantity) for ln in query.lines],
        await _stock(request, query.lines),
        dest,
        now,
    )
    shape = _Shape(network, dest, now)
    options: list[dict[str, Any]] = []
    not_offered = []
    for service in network.services.values():
        if service.kind == "pickup":
            stores, transfer, why = pickup_stores(network, service, order)
            if stores:
                best = stores[0].promise
                option = shape.option("pickup", Plan(service.id, (Part(best, tuple(order.lines)),)))
                option["stores"] = [
                    {
                        "location_id": s.promise.location_id,
                        "name": s.name,
                        "distance_km": s.promise.distance_km,
                        "atp": s.atp,
                        "ready_by": shape.t(s.promise.ready_at),
                        "cutoff_at": shape.t(s.promise.cutoff_at),
                        "order_within_seconds": _seconds(s.promise.cutoff_at, now),
                    }
                    for s in stores
                ]
                option["transfer"] = shape.transfer(transfer)
                options.append(option)
            elif transfer is not None:
                options.append(_transfer_only(shape, service.id, transfer, now))
            else:
                not_offered.append({"service": service.id, "reason": why or "not offered"})
            continue
        outcome = plan(
            network,
            service,
            order,
            channel=query.channel,
            max_parts=state.settings.max_plan_parts,
            max_plans=1,
        )
        if outcome.plans:
            options.append(shape.option(service.kind, outcome.plans[0]))
        else:
            not_offered.append({"service": service.id, "reason": outcome.reason or "not offered"})
    options.sort(key=lambda o: datetime.fromisoformat(o["promised_by"]))
    state.metrics.lookups.labels("delivery_options").inc()
    body: dict[str, Any] = {
        "destination": shape.destination(),
        "now": shape.t(now),
        "options": options,
    }
    if explain:
        body["not_offered"] = not_offered
    return FastJSON(body)


def _transfer_only(
    shape: _Shape, service_id: str, t: TransferOption, now: datetime
) -> dict[str, Any]:
    """Pickup when no store near has the basket but one can get it by transfer."""
    network = shape.network
    store = network.locations[t.store_id]
    return {
        "service": service_id,
        "kind": "pickup",
        "location_id": store.id,
        "promised_by": shape.t(t.ready_at),
        "window_start": None,
        "delivery_date": t.ready_at.astimezone(shape.dest.zone).date().isoformat(),
        "cutoff_at": shape.t(t.cutoff_at),
        "order_within_seconds": _seconds(t.cutoff_at, now),
        "split": False,
        "parts": [],
        "stores": [],
        "transfer": shape.transfer(t),
    }


@router.post(
    "/sourcing-plans",
    response_class=FastJSON,
    responses={200: {"model": PlansOut}, **_ERRORS},
    summary="Ranked plans of which locations fulfil an order; optionally reserve the best",
)
async def sourcing_plans(request: Request, query: PlanQuery) -> Response:
    state = request.app.state
    if query.reserve is not None:
        state.auth.require(request, "reserve")
        check_ttl(request, query.reserve.ttl_seconds)
    network: Network = state.networks.current
    service = network.service(query.service)
    channel = query.channel or service.channel
    network.channel(channel)
    dest = _destination(query.destination)
    now = _now(request, query.now)
    shape = _Shape(network, dest, now)
    lines = [Line(ln.sku, ln.quantity) for ln in query.lines]

    reservation = None
    reserved_plan = None
    if query.reserve is not None:
        # An id already used answers with what it holds: the plan is not made again.
        existing = await _existing(request, query.reserve.reservation_id)
        if existing is not None:
            state.metrics.reservations.labels("idempotent_replay").inc()
            body = _plans_body(shape, query, channel, Outcome(service.id), None, existing)
            return FastJSON(body, headers={"Idempotent-Replayed": "true"})
    order = Order(lines, await _stock(request, query.lines), dest, now)
    outcome = plan(
        network,
        service,
        order,
        channel=channel,
        max_parts=state.settings.max_plan_parts,
        max_plans=query.max_plans,
    )
    if query.reserve is not None:
        if not outcome.plans:
            raise InvalidRequest(
                "no_plan", outcome.reason or "no plan can fulfil the order", status=409
            )
        reserved_plan, reservation = await _hold_first(request, query, channel, outcome)
    state.metrics.lookups.labels("sourcing_plans").inc()
    return FastJSON(_plans_body(shape, query, channel, outcome, reserved_plan, reservation))


def _plans_body(
    shape: _Shape,
    query: PlanQuery,
    channel: str,
    outcome: Outcome,
    reserved_plan: int | None,
    reservation: dict[str, Any] | None,
) -> dict[str, Any]:
    return {
        "service": query.service,
        "channel": channel,
        "destination": shape.destination(),
        "now": shape.t(shape.now),
        "plans": [shape.plan(i + 1, p) for i, p in enumerate(outcome.plans)],
        "reason": outcome.reason,
        "reserved_plan": reserved_plan,
        "reservation": reservation,
    }


async def _existing(request: Request, reservation_id: str) -> dict[str, Any] | None:
    try:
        view = await request.app.state.reservations.get(reservation_id, _now_ms())
    except ReservationNotFound:
        return None
    return shaped(view)


async def _hold_first(
    request: Request, query: PlanQuery, channel: str, outcome: Outcome
) -> tuple[int, dict[str, Any]]:
    """Reserve plans in rank order until one holds (stock may have moved since the read)."""
    state = request.app.state
    assert query.reserve is not None
    shortfalls: list[dict[str, object]] = []
    for rank, p in enumerate(outcome.plans, start=1):
        req = ReservationRequest(
            reservation_id=query.reserve.reservation_id,
            lines=tuple(
                ReservationLine(ln.sku, ln.quantity, part.promise.location_id)
                for part in p.parts
                for ln in part.lines
            ),
            ttl_seconds=query.reserve.ttl_seconds,
            channel=channel,
        )
        try:
            created, view = await state.reservations.reserve(req, state.networks.current, _now_ms())
        except InsufficientStock as exc:
            shortfalls += [{**line, "plan": rank} for line in exc.lines]
            continue
        except ATPError as exc:
            state.metrics.reservations.labels(OUTCOMES.get(exc.code, exc.code)).inc()
            raise
        state.metrics.reservations.labels("held" if created else "idempotent_replay").inc()
        return rank, shaped(view)
    state.metrics.reservations.labels("short").inc()
    raise InsufficientStock(shortfalls)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
