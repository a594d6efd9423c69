"""The demo product page (ATP_DEMO_PAGE): plain HTML and JavaScript in api/demo/, no build step.

It uses only the public API, as a retailer's page would: the live stream for the badge and the
count, delivery options for the promise and its countdown, the stream's `pickup` for stores near
a ZIP code. The files are read once, at import, and served with a policy that lets the page load
nothing but itself and talk to nothing but this API.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from starlette.responses import RedirectResponse, Response

from api.problems import InvalidRequest

router = APIRouter(prefix="/demo", include_in_schema=False)

_FILES = {
    "index.html": "text/html; charset=utf-8",
    "demo.js": "text/javascript; charset=utf-8",
    "demo.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
_HERE = Path(__file__).resolve().parent.parent / "demo"
_BODIES = {name: (_HERE / name).read_bytes() for name in _FILES}
_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
}


@router.get("")
async def demo_root() -> Response:
    return RedirectResponse("/demo/", status_code=308)


@router.get("/")
async def demo_page() -> Response:
    return _file("index.html")


@router.get("/{name}")
async def demo_file(name: str) -> Response:
    if name not in _FILES:
        raise InvalidRequest("not_found", f"the demo page has no file {name!r}", status=404)
    return _file(name)


def _file(name: str) -> Response:
    return Response(_BODIES[name], media_type=_FILES[name], headers=_HEADERS)
