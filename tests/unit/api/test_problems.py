"""Errors become problem+json: the status found along the error's MRO, fields from the error."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api import problems
from api.auth import Forbidden
from api.problems import InvalidRequest, status_of
from atp.core.errors import (
    ATPError,
    InsufficientStock,
    ReservationNotFound,
    StoreUnavailable,
    UnknownChannel,
)


class GoneForGood(ReservationNotFound):
    """A subclass nobody mapped: it gets its parent's entry."""


class Unmapped(ATPError):
    code = "unmapped"


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (ReservationNotFound("R-1"), (404, "Reservation not found")),
        (GoneForGood("R-1"), (404, "Reservation not found")),
        (Forbidden("no"), (403, "Forbidden")),
        (InvalidRequest("too_many_skus", "too many", status=413), (413, "Invalid request")),
        (Unmapped("?"), (500, "Internal error")),
    ],
)
def test_the_status_is_the_first_found_along_the_mro(error, status):
    assert status_of(error) == status


def client_raising(error: Exception) -> TestClient:
    app = FastAPI()
    problems.install(app)

    @app.get("/boom")
    async def boom() -> None:
        raise error

    return TestClient(app)


def test_an_error_s_own_fields_become_members_of_the_problem():
    short = InsufficientStock([{"line": 0, "sku": "S", "requested": 3, "available": 1}])
    r = client_raising(short).get("/boom")
    assert r.status_code == 409
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["code"] == "insufficient_stock" and body["instance"] == "/boom"
    assert body["lines"] == short.lines
    r = client_raising(UnknownChannel("tv", ["online", "pickup"])).get("/boom")
    assert (r.status_code, r.json()["known_channels"]) == (422, ["online", "pickup"])


def test_store_trouble_says_when_to_come_back():
    r = client_raising(StoreUnavailable("Redis is unavailable: test")).get("/boom")
    assert (r.status_code, r.headers["retry-after"]) == (503, "1")
