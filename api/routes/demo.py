"""The demo product page (ATP_DEMO_PAGE): plain HTML and JavaScript in api/demo/ (api/routes/
pages.py serves them).

It uses only the public API, as a retailer's page would: the live stream for the badge and the
count, delivery options for the promise and its countdown, the stream's `pickup` for stores near
a ZIP code.
"""

from __future__ import annotations

from api.routes.pages import PAGES, page_router

_NAMES = ("index.html", "demo.js", "demo.css", "favicon.svg")
router = page_router("/demo", {name: PAGES / "demo" / name for name in _NAMES})
