"""Availability for product pages: GET /v1/availability/{sku}."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Query, Request

from api.problems import PROBLEM_JSON, InvalidRequest
from api.responses import AvailabilityOut, FastJSON, Problem, iso_ms
from atp.availability import channel_availability
from atp.movements import is_valid_identifier

router = APIRouter(prefix="/v1/availability", tags=["availability"])

_PROBLEMS = {
    422: {"model": Problem, "content": {PROBLEM_JSON: {}}},
    503: {"model": Problem, "content": {PROBLEM_JSON: {}}},
}


@router.get(
    "/{sku}",
    response_class=FastJSON,
    responses={200: {"model": AvailabilityOut}, **_PROBLEMS},
    summary="ATP and stock status of one SKU on a channel",
)
async def get_availability(
    request: Request,
    sku: str,
    channel: str = Query("online", description="Channel (location group) to answer for"),
) -> FastJSON:
    if not is_valid_identifier(sku):
        raise InvalidRequest("invalid_sku", "sku must be 1 to 128 printable characters")
    state = request.app.state
    network = state.network
    network.channel(channel)  # unknown channel: 422 before any Redis call
    record = await state.stock.read(sku)
    answer = channel_availability(network, channel, sku, record.counts, record.updated_ms)
    return FastJSON(
        {
            "sku": answer.sku,
            "channel": answer.channel,
            "atp": answer.atp,
            "status": answer.status,
            "locations": [asdict(loc) for loc in answer.locations],
            "updated_at": iso_ms(answer.updated_ms),
        }
    )
