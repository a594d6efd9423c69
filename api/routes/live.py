"""Live availability for product pages: GET /v1/stream/availability, Server-Sent Events.

Not under /v1/availability/, where a SKU named `stream` would meet it. First one `availability`
event per SKU with the answer GET /v1/availability/{sku} gives, then one per real change (a
movement, or a reservation taking or giving back units), each with an `id:`; a reconnect that
sends `Last-Event-ID` is sent the SKUs that changed after it (or every SKU, when the feed no
longer goes back that far). How it is fanned out: api/live.py.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response, StreamingResponse

from api.deps import Services, requiring, services_of
from api.live import GroupKey, frame
from api.problems import PROBLEM_JSON, InvalidRequest
from api.routes.availability import answer, check_sku, origin_of
from api.schemas import ChannelQ, PostalQ, Problem, RadiusQ

router = APIRouter(prefix="/v1/stream", tags=["live"], route_class=requiring("read"))

_PROBLEM = {"model": Problem, "content": {PROBLEM_JSON: {}}}
SkusQ = Annotated[
    str,
    Query(
        min_length=1,
        description="SKUs, comma-separated (at most ATP_STREAM_MAX_SKUS, default 50)",
    ),
]
EVENTS = {
    "description": "`text/event-stream`: `availability` events (`id:`, `data:` the JSON of "
    "GET /v1/availability/{sku}), a `: heartbeat` comment on a quiet stream",
    "content": {"text/event-stream": {"schema": {"type": "string"}}},
}


@router.get(
    "/availability",
    response_class=StreamingResponse,
    responses={200: EVENTS, **{s: _PROBLEM for s in (413, 422, 429, 503)}},
    summary="Availability of SKUs as it changes (Server-Sent Events)",
)
async def stream_availability(
    request: Request,
    skus: SkusQ,
    channel: ChannelQ = "online",
    postal_code: PostalQ = None,
    radius_km: RadiusQ = None,
) -> Response:
    svc = services_of(request)
    wanted = list(dict.fromkeys(s.strip() for s in skus.split(",") if s.strip()))
    limit = svc.settings.stream_max_skus
    if len(wanted) > limit:
        raise InvalidRequest(
            "too_many_skus",
            f"{len(wanted)} SKUs asked; at most {limit} per stream",
            status=413,
            limit=limit,
        )
    if not wanted:
        raise InvalidRequest("invalid_sku", "skus names no SKU")
    for i, sku in enumerate(wanted):
        check_sku(sku, f"skus[{i}]")
    svc.network.channel(channel)
    origin = origin_of(postal_code)
    hub = svc.live
    if hub.full:
        raise InvalidRequest(
            "too_many_streams",
            f"this API process holds {hub.max_connections} streams, its limit "
            "(ATP_STREAM_MAX_CONNECTIONS); try again, another process may have room",
            status=429,
            retry_after_s=5,
        )
    # Subscribed before anything is read: a change from now on reaches this stream.
    groups: list[GroupKey] = [(sku, channel, postal_code, radius_km) for sku in wanted]
    sub = hub.subscribe(groups)
    try:
        cursor = await hub.feed.last_id()
        missed = await _changed_since(svc, request.headers.get("last-event-id"), wanted, channel)
        keys = [g for g in groups if g[0] in missed]
        bodies = await asyncio.gather(*(live_answer(svc, k, origin) for k in keys))
    except BaseException:
        hub.unsubscribe(sub)
        raise
    first = [frame(cursor, body) for body in bodies]
    svc.metrics.stream_events.inc(len(first))
    return StreamingResponse(
        _counted(svc, hub.events(sub, first, svc.settings.stream_heartbeat_s)),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _counted(svc: Services, events: Any) -> Any:
    svc.metrics.streams.inc()
    try:
        async for data in events:
            yield data
    finally:
        svc.metrics.streams.dec()


async def _changed_since(
    svc: Services, last_event_id: str | None, skus: list[str], channel: str
) -> set[str]:
    """The SKUs to send at once: all of them, or after a reconnect those that changed since."""
    if last_event_id is None:
        return set(skus)
    changes = await svc.live.feed.since(last_event_id.strip())
    if changes is None:  # older than the feed keeps: start afresh
        return set(skus)
    asked = set(skus)
    return {c.sku for c in changes if c.sku in asked and c.channel in (channel, "*")}


async def live_answer(
    svc: Services, key: GroupKey, origin: tuple[float, float] | None
) -> dict[str, Any]:
    """The answer of GET /v1/availability/{sku} for a stream's group, with `age_ms` and
    `behind_ms`."""
    sku, channel, _, radius_km = key
    body, age_ms = await answer(svc, sku, channel, origin, radius_km)
    body["age_ms"] = age_ms
    body["behind_ms"] = await svc.behind.behind_ms()
    return body
