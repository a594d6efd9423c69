"""Availability for product and listing pages, and explanations for service agents.

Every answer comes from one Redis round trip (pipelined for batches) and carries `updated_at`,
`age_ms` and `behind_ms` (the stream's progress, read at most every 0.5 s per process), an
ETag and `Cache-Control: max-age`; a matching `If-None-Match` gets 304.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from api import kit_views, views
from api.deps import Services, requiring, services_of
from api.problems import PROBLEM_JSON, InvalidRequest
from api.responses import FastJSON, conditional
from api.schemas import (
    AvailabilityOut,
    BatchOut,
    BatchQuery,
    ChannelQ,
    ExplainOut,
    IncludeQ,
    MovementsOut,
    PostalQ,
    Problem,
    RadiusQ,
)
from atp.core import journal
from atp.core.availability import oversell_exposure
from atp.core.geo import zip_coordinates
from atp.core.movements import is_valid_identifier
from atp.core.network import Network
from atp.core.planning import NearbyStore, pickup_nearby
from atp.store.stock import KitStock, StockRecord

router = APIRouter(prefix="/v1/availability", tags=["availability"], route_class=requiring("read"))

_PROBLEM = {"model": Problem, "content": {PROBLEM_JSON: {}}}
_PROBLEMS: dict[int | str, dict[str, Any]] = {413: _PROBLEM, 422: _PROBLEM, 503: _PROBLEM}


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


def nearby(
    network: Network,
    sku: str,
    record: StockRecord,
    origin: tuple[float, float] | None,
    radius_km: float,
) -> list[NearbyStore] | None:
    return None if origin is None else pickup_nearby(network, sku, record.counts, origin, radius_km)


def observe(svc: Services, kind: str, body: dict[str, Any], age_ms: int | None) -> None:
    """Count the lookup, a stale answer, and locations with oversell exposure."""
    svc.metrics.lookups.labels(kind).inc()
    if age_ms is not None and age_ms > svc.settings.stale_after_s * 1000:
        svc.metrics.stale.inc()
    for loc in body.get("locations") or ():
        if oversell_exposure(loc["on_hand"], loc["reserved"], loc["safety_stock"]) > 0:
            svc.metrics.oversell.inc()


def age(updated_ms: int | None, now_ms: int) -> int | None:
    return None if updated_ms is None else max(0, now_ms - updated_ms)


async def answer(
    svc: Services,
    sku: str,
    channel: str,
    origin: tuple[float, float] | None,
    radius_km: float | None,
    include_locations: bool = True,
) -> tuple[dict[str, Any], int | None]:
    """One SKU's answer on a channel (without `age_ms` and `behind_ms`), and its age: what
    GET /v1/availability/{sku} and the live streams send."""
    network = svc.network
    now = svc.clock()
    radius = radius_km or svc.settings.default_radius_km
    parts = svc.catalog.components(sku)
    if parts is not None:  # a kit: from its components
        kit = await svc.stock.read_kit(sku, parts, now)
        body = kit_views.availability(
            network,
            channel,
            kit,
            include_locations=include_locations,
            nearby=kit_views.nearby(network, kit, origin, radius),
        )
        return body, age(kit.updated_ms(), svc.clock())
    record = await svc.stock.read(sku, now)
    body = views.availability(
        network,
        channel,
        sku,
        record,
        now_ms=now,
        include_locations=include_locations,
        nearby=nearby(network, sku, record, origin, radius),
    )
    return body, age(record.updated_ms, svc.clock())


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
    svc = services_of(request)
    check_sku(sku)
    svc.network.channel(channel)  # unknown channel: 422 before any Redis call
    origin = origin_of(postal_code)
    body, age_ms = await answer(svc, sku, channel, origin, radius_km, include == "locations")
    observe(svc, "single", body, age_ms)
    behind = await svc.behind.behind_ms()
    return conditional(request, body, age_ms, behind, svc.settings.cache_max_age_s)


@router.post(
    "/query",
    response_class=FastJSON,
    responses={200: {"model": BatchOut}, **_PROBLEMS},
    summary="Availability of many SKUs at once (one Redis round trip)",
)
async def query_availability(request: Request, query: BatchQuery) -> Response:
    svc = services_of(request)
    limit = svc.settings.max_batch_skus
    if len(query.skus) > limit:
        raise InvalidRequest(
            "too_many_skus",
            f"{len(query.skus)} SKUs asked; at most {limit} per request",
            status=413,
            limit=limit,
        )
    for i, sku in enumerate(query.skus):
        check_sku(sku, f"skus[{i}]")
    network = svc.network
    network.channel(query.channel)
    origin = origin_of(query.postal_code)
    skus = list(dict.fromkeys(query.skus))  # each SKU once, in the order asked
    catalog = svc.catalog
    kit_parts = {sku: parts for sku in skus if (parts := catalog.components(sku)) is not None}
    # One round trip: the SKUs asked (a kit: its components).
    plain = [sku for sku in skus if sku not in kit_parts]
    reads = list(dict.fromkeys([*plain, *(p.sku for ps in kit_parts.values() for p in ps)]))
    records = dict(zip(reads, await svc.stock.read_many(reads, svc.clock()), strict=True))
    now = svc.clock()
    behind = await svc.behind.behind_ms()
    radius = query.radius_km or svc.settings.default_radius_km
    locations = query.include == "locations"
    results = []
    for sku in skus:
        if sku in kit_parts:
            parts = kit_parts[sku]
            kit = KitStock(sku, parts, tuple(records[p.sku] for p in parts))
            near = kit_views.nearby(network, kit, origin, radius)
            body = kit_views.availability(
                network, query.channel, kit, include_locations=locations, nearby=near
            )
            updated_ms = kit.updated_ms()
        else:
            record = records[sku]
            updated_ms = record.updated_ms
            body = views.availability(
                network,
                query.channel,
                sku,
                record,
                now_ms=now,
                include_locations=locations,
                nearby=nearby(network, sku, record, origin, radius),
            )
        body["age_ms"] = age(updated_ms, now)
        body["behind_ms"] = behind
        observe(svc, "batch", body, body["age_ms"])
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
    svc = services_of(request)
    check_sku(sku)
    network = svc.network
    network.channel(channel)
    now = svc.clock()
    parts = svc.catalog.components(sku)
    if parts is not None:  # a kit: its components' terms
        kit = await svc.stock.read_kit(sku, parts, now)
        body = kit_views.explanation(network, channel, kit)
        updated_ms = kit.updated_ms()
    else:
        record, ledgers = await svc.stock.read_with_ledger(sku, now)
        body = views.explanation(network, channel, sku, record, ledgers, now)
        updated_ms = record.updated_ms
    svc.metrics.lookups.labels("explain").inc()
    age_ms = age(updated_ms, svc.clock())
    behind = await svc.behind.behind_ms()
    return conditional(request, body, age_ms, behind, svc.settings.cache_max_age_s)


_MOVEMENTS_LIMIT = 500


@router.get(
    "/{sku}/movements",
    response_class=FastJSON,
    responses={200: {"model": MovementsOut}, **_PROBLEMS},
    summary="The newest movements the ledger saw for a SKU, with their outcome (for agents)",
)
async def movements(
    request: Request,
    sku: str,
    location_id: Annotated[str | None, Query(description="one location only")] = None,
    limit: Annotated[int, Query(ge=1, le=_MOVEMENTS_LIMIT)] = 50,
    before: Annotated[str | None, Query(description="`next` of the previous page")] = None,
) -> Response:
    """Newest first; at most ATP_JOURNAL_ENTRIES are kept per location (older ones are gone,
    and repeats count too). An unknown SKU has none."""
    svc = services_of(request)
    check_sku(sku)
    if location_id is not None and location_id not in svc.network.locations:
        raise InvalidRequest("unknown_location", f"{location_id} is not in the network file")
    journals = await svc.stock.journals(sku, location_id)
    got = journal.page(journals, limit, views.read_cursor(before))
    more = len(journal.page(journals, 1, journal.cursor(*got[-1]))) > 0 if got else False
    svc.metrics.lookups.labels("movements").inc()
    return FastJSON(
        {
            "sku": sku,
            "location_id": location_id,
            "movements": [views.movement(loc, e) for loc, e in got],
            "next": views.write_cursor(journal.cursor(*got[-1])) if more else None,
        }
    )
