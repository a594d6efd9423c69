"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter, Request

from api.problems import problem
from api.responses import FastJSON

router = APIRouter(tags=["health"])


@router.get("/healthz", response_class=FastJSON, summary="The process is alive")
async def healthz() -> FastJSON:
    return FastJSON({"status": "ok"})


@router.get("/readyz", response_class=FastJSON, summary="Redis answers; ready for traffic")
async def readyz(request: Request) -> object:
    if await request.app.state.stock.ping():
        return FastJSON({"status": "ready"})
    return problem(503, "not_ready", "Not ready", "Redis does not answer", request.url.path)
