"""Plain HTML and JavaScript pages the API serves (the demo product page, the agent console): no
build step, the files read once, at import, and served with a policy that lets a page load
nothing but its own files and talk to nothing but this API."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from fastapi import APIRouter
from starlette.responses import RedirectResponse, Response

from api.problems import InvalidRequest

PAGES = Path(__file__).resolve().parent.parent  # api/: api/demo/, api/console/
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
}


def page_router(prefix: str, files: Mapping[str, Path]) -> APIRouter:
    """`prefix`/ serves files["index.html"], `prefix`/<name> each of `files` (name -> path);
    `prefix` alone redirects to `prefix`/, any other name is a 404 problem."""
    bodies = {name: (path.read_bytes(), MEDIA_TYPES[path.suffix]) for name, path in files.items()}
    router = APIRouter(prefix=prefix, include_in_schema=False)

    def serve(name: str) -> Response:
        body, media_type = bodies[name]
        return Response(body, media_type=media_type, headers=_HEADERS)

    @router.get("")
    async def root() -> Response:
        return RedirectResponse(f"{prefix}/", status_code=308)

    @router.get("/")
    async def index() -> Response:
        return serve("index.html")

    @router.get("/{name}")
    async def file(name: str) -> Response:
        if name not in bodies:
            raise InvalidRequest("not_found", f"{prefix}/ has no file {name!r}", status=404)
        return serve(name)

    return router
