"""A baseline for benchmarks: the same app, middleware and server, no work (ATP_BENCH_ENDPOINTS)."""

from __future__ import annotations

from fastapi import APIRouter

from api.responses import FastJSON

router = APIRouter(include_in_schema=False)


@router.get("/_bench/bare", response_class=FastJSON)
async def bare() -> FastJSON:
    return FastJSON({"ok": True})
