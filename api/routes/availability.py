"""Availability for product and listing pages, and explanations for service agents.

Every answer comes from one Redis round trip (pipelined for batches) and carries `updated_at`
and `age_ms`, an ETag and `Cache-Control: max-age`; a matching `If-None-Match` gets 304.
"""

from __future__ import annotations

import hashlib
import time
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from api.auth import requires
from api.problems import PROBLEM_JSON, InvalidRequest
from api.responses import (
    AvailabilityOut,
    BatchOut,
    ExplainOut,
    FastJSON,
    Problem,
    iso_ms,
)
from atp.core.availability import (
    LocationCounts,
    channel_availability,
    location_atp,
    oversell_exposure,
)
from atp.core.geo import distance_km, zip_coordinates
from atp.core.movements import is_valid_identifier
from atp.core.network import Network
from atp.store.stock import StockRecord

router = APIRouter(
    prefix="/v1/availability", tags=["availability"], dependencies=[Depends(requires("read"))]
)

PICKUP_CHANNEL = "pickup"
_PROBLEM = {"model": Problem, "content": {PROBLEM_JSON: {}}}
_PROBLEMS: dict[int | str, dict[str, Any]] = {413: _PROBLEM, 422: _PROBLEM, 503: _PROBLEM}
ZIP_PATTERN = r"^\d{5}$"

ChannelQ = Annotated[str, Query(description="Channel (location group) to answer for")]
PostalQ = Annotated[
    str | None,
    Query(pattern=ZIP_PATTERN, description="US ZIP code: adds pickup stores nearby with stock"),
]
RadiusQ = Annotated[
    float | None, Query(gt=0, le=500, description="Pickup search radius in km (default 50)")
]
IncludeQ = Annotated[
    str, Query(pattern=r"^(locations|none)$", description="`locations` (default) or `none`")
]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def check_sku(sku: str, where: str = "sku") -> None:
    if not is_valid_identifier(sku):
        raise InvalidRequest("invalid_sku", f"{where} must be 1 to 128 printable characters")


def origin_of(postal_code: str | None) -> tuple[float, float] | None:
    if postal_code is None:
        return None
    found = zip_coordinates(postal_code)
    if found is None:
        raise InvalidRequest("unknown_postal_code", f"{postal_code} is not a known US ZIP code")
    return found


def answer(
    network: Network,
    channel: str,
    sku: str,
    record: StockRecord,
    *,
    include_locations: bool,
    origin: tuple[float, float] | None,
    radius_km: float,
) -> dict[str, Any]:
    """The JSON answer for one SKU, without `age_ms` (which changes every millisecond)."""
    result = channel_availability(
        network, channel, sku, record.counts, record.updated_ms, record.inbound
    )
    body: dict[str, Any] = {
        "sku": sku,
        "channel": channel,
        "atp": result.atp,
        "status": result.status,
        "updated_at": iso_ms(result.updated_ms),
        "next_inbound": None
        if result.next_inbound is None
        else {
            "location_id": result.next_inbound.location_id,
            "eta": iso_ms(result.next_inbound.eta_ms),
            "qty": result.next_inbound.qty,
        },
    }
    if include_locations:
        body["locations"] = [loc.as_dict() for loc in result.locations]
    if origin is not None:
        body["pickup"] = pickup_nearby(network, sku, record, origin, radius_km)
    return body


def pickup_nearby(
    network: Network,
    sku: str,
    record: StockRecord,
    origin: tuple[float, float],
    radius_km: float,
) -> list[dict[str, Any]]:
    """Pickup stores within the radius that have ATP, nearest first."""
    if PICKUP_CHANNEL not in network.channels:
        return []
    out = []
    for loc in network.channel_locations(PICKUP_CHANNEL):
        if loc.lat is None or loc.lon is None:
            continue
        km = distance_km(origin, (loc.lat, loc.lon))
        if km > radius_km:
            continue
        c = record.counts.get(loc.id, LocationCounts())
        atp = location_atp(c.on_hand, c.reserved, network.safety_stock(sku, loc, PICKUP_CHANNEL))
        if atp > 0:
            out.append(
                {"location_id": loc.id, "name": loc.name, "distance_km": round(km, 1), "atp": atp}
            )
    out.sort(key=lambda r: (r["distance_km"], r["location_id"]))
    return out


def observe(request: Request, kind: str, body: dict[str, Any], updated_ms: int | None) -> None:
    """Count the lookup, a stale answer, and locations with oversell exposure."""
    state = request.app.state
    metrics = state.metrics
    metrics.lookups.labels(kind).inc()
    if updated_ms is not None and now_ms() - updated_ms > state.settings.stale_after_s * 1000:
        metrics.stale.inc()
    for loc in body.get("locations") or ():
        if oversell_exposure(loc["on_hand"], loc["reserved"], loc["safety_stock"]) > 0:
            metrics.oversell.inc()


def conditional(request: Request, body: dict[str, Any], updated_ms: int | None) -> Response:
    """JSON with an ETag over the content, Cache-Control, and 304 for a matching If-None-Match.

    The ETag covers everything but `age_ms`, which changes every millisecond; the body is
    serialised once and `age_ms` appended to it (orjson's object ends in `}`).
    """
    content = orjson.dumps(body)
    etag = 'W/"' + hashlib.blake2b(content, digest_size=8).hexdigest() + '"'
    headers = {
        "ETag": etag,
        "Cache-Control": f"max-age={request.app.state.settings.cache_max_age_s}",
    }
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    age = b"null" if updated_ms is None else str(max(0, now_ms() - updated_ms)).encode()
    return Response(
        content[:-1] + b',"age_ms":' + age + b"}", media_type="application/json", headers=headers
    )


@router.get(
    "/{sku}",
    response_class=FastJSON,
    responses={200: {"model": AvailabilityOut}, **_PROBLEMS},
    summary="ATP and stock status of one SKU on a channel; nearby pickup stores",
)
async def get_availability(
    request: Request,
    sku: str,
    channel: ChannelQ = "online",
    postal_code: PostalQ = None,
    radius_km: RadiusQ = None,
    include: IncludeQ = "locations",
) -> Response:
    check_sku(sku)
    state = request.app.state
    network = state.networks.current
    network.channel(channel)  # unknown channel: 422 before any Redis call
    origin = origin_of(postal_code)
    record = await state.stock.read(sku, now_ms())
    body = answer(
        network,
        channel,
        sku,
        record,
        include_locations=include == "locations",
        origin=origin,
        radius_km=radius_km or state.settings.default_radius_km,
    )
    observe(request, "single", body, record.updated_ms)
    return conditional(request, body, record.updated_ms)


class BatchQuery(BaseModel):
    skus: list[str] = Field(min_length=1, description="Up to ATP_MAX_BATCH_SKUS (500) SKUs")
    channel: str = "online"
    postal_code: str | None = Field(None, pattern=ZIP_PATTERN)
    radius_km: float | None = Field(None, gt=0, le=500)
    include: str = Field("none", pattern=r"^(locations|none)$")


@router.post(
    "/query",
    response_class=FastJSON,
    responses={200: {"model": BatchOut}, **_PROBLEMS},
    summary="Availability of many SKUs at once (one Redis round trip)",
)
async def query_availability(request: Request, query: BatchQuery) -> Response:
    state = request.app.state
    limit = state.settings.max_batch_skus
    if len(query.skus) > limit:
        raise InvalidRequest(
            "too_many_skus",
            f"{len(query.skus)} SKUs asked; at most {limit} per request",
            status=413,
            limit=limit,
        )
    for i, sku in enumerate(query.skus):
        check_sku(sku, f"skus[{i}]")
    network = state.networks.current
    network.channel(query.channel)
    origin = origin_of(query.postal_code)
    skus = list(dict.fromkeys(query.skus))  # each SKU once, in the order asked
    records = await state.stock.read_many(skus, now_ms())
    now = now_ms()
    results = []
    for sku, record in zip(skus, records, strict=True):
        body = answer(
            network,
            query.channel,
            sku,
            record,
            include_locations=query.include == "locations",
            origin=origin,
            radius_km=query.radius_km or state.settings.default_radius_km,
        )
        observe(request, "batch", body, record.updated_ms)
        body["age_ms"] = None if record.updated_ms is None else max(0, now - record.updated_ms)
        results.append(body)
    return FastJSON({"channel": query.channel, "results": results})


@router.get(
    "/{sku}/explain",
    response_class=FastJSON,
    responses={200: {"model": ExplainOut}, **_PROBLEMS},
    summary="Every term of the ATP formula per location, and why a location does not count",
)
async def explain_availability(
    request: Request, sku: str, channel: ChannelQ = "online"
) -> Response:
    check_sku(sku)
    state = request.app.state
    network: Network = state.networks.current
    network.channel(channel)
    record, ledgers = await state.stock.read_with_ledger(sku, now_ms())
    total = channel_availability(network, channel, sku, record.counts, record.updated_ms)
    rows = []
    for loc in network.locations.values():
        c = record.counts.get(loc.id, LocationCounts())
        safety, rule = network.safety_rule(sku, loc, channel)
        why_not = network.why_not_in_channel(loc, channel)
        ledger = ledgers.get(loc.id)
        rows.append(
            {
                "location_id": loc.id,
                "type": loc.type,
                "enabled": loc.enabled,
                "counts_for_channel": why_not is None,
                "excluded_because": why_not,
                "on_hand": c.on_hand,
                "reserved": c.reserved,
                "safety_stock": safety,
                "safety_stock_rule": rule,
                "atp": location_atp(c.on_hand, c.reserved, safety) if why_not is None else 0,
                "oversell_exposure": oversell_exposure(c.on_hand, c.reserved, safety),
                "inbound": []
                if ledger is None
                else [
                    {"asn": asn, "eta": iso_ms(eta), "qty": qty}
                    for asn, (eta, qty) in sorted(ledger.inbound.items(), key=lambda i: i[1])
                ],
                "last_count_at": iso_ms(ledger.count_ms) if ledger else None,
                "last_movement_at": iso_ms(ledger.last_movement_ms) if ledger else None,
                "deltas_since_count": len(ledger.deltas) if ledger else 0,
            }
        )
    body = {
        "sku": sku,
        "channel": channel,
        "formula": "atp = max(0, on_hand - reserved - safety_stock), summed over the channel",
        "atp": total.atp,
        "status": total.status,
        "low_stock_threshold": network.channel(channel).low_stock_threshold,
        "updated_at": iso_ms(record.updated_ms),
        "locations": rows,
    }
    state.metrics.lookups.labels("explain").inc()
    return conditional(request, body, record.updated_ms)
