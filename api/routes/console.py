"""The agent console (/console/): plain HTML and JavaScript in api/console/ (api/routes/pages.py
serves them) for a service agent answering "why can't I buy this?".

The page holds no data: it asks the public API with the agent's key (read scope; a reservation
needs the reserve scope, as the reservations API does): /explain for every term per location
and the rule behind it, /movements for the ledger's journal, /v1/reservations/{id}.
"""

from __future__ import annotations

from api.routes.pages import PAGES, page_router

_FILES = {name: PAGES / "console" / name for name in ("index.html", "console.js", "console.css")}
router = page_router("/console", {**_FILES, "favicon.svg": PAGES / "demo" / "favicon.svg"})
