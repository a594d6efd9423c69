"""Liveness, readiness, metrics, and the contract of the Kafka topics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import Response

from api.deps import services_of
from api.metrics import exposition
from api.problems import PROBLEM_JSON, problem
from api.responses import FastJSON
from api.schemas import Problem, StatusOut
from atp.contracts import document_bytes

router = APIRouter(tags=["health"])


@router.get(
    "/healthz",
    response_class=FastJSON,
    responses={200: {"model": StatusOut}},
    summary="The process is alive",
)
async def healthz() -> FastJSON:
    return FastJSON({"status": "ok"})


@router.get(
    "/readyz",
    response_class=FastJSON,
    responses={200: {"model": StatusOut}, 503: {"model": Problem, "content": {PROBLEM_JSON: {}}}},
    summary="Redis answers; ready for traffic",
)
async def readyz(request: Request) -> object:
    svc = services_of(request)
    svc = services_of(request)
    if await svc.stock.ping():
        return FastJSON({"status": "ready"})
    return problem(503, "not_ready", "Not ready", "Redis does not answer", request.url.path)


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    body = exposition(request.app.state.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


@router.get(
    "/asyncapi.yaml", summary="The Kafka topics' AsyncAPI document", include_in_schema=False
)
async def asyncapi() -> Response:
    return Response(document_bytes(), media_type="application/yaml")
