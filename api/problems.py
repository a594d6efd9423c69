"""The one place where errors become HTTP: RFC 9457 `application/problem+json` responses."""

from __future__ import annotations

import math
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from api.auth import Forbidden, Unauthorized
from atp.core.errors import (
    ATPError,
    BelowFulfilled,
    ChangeConflict,
    IdempotencyConflict,
    InsufficientStock,
    InvalidTransition,
    LineNotInReservation,
    LocationNotInChannel,
    NotHeld,
    ReservationBusy,
    ReservationExpired,
    ReservationInProgress,
    ReservationNotFound,
    StoreFull,
    StoreUnavailable,
    TooManyChanges,
    TooManyTransfers,
    TransferConflict,
    UnknownChannel,
    UnknownService,
)

PROBLEM_JSON = "application/problem+json"


class InvalidRequest(ATPError):
    """A request the API refuses before touching Redis; `code` says which rule it broke, and
    `status` which HTTP status (422 unless said otherwise)."""

    def __init__(self, code: str, message: str, status: int = 422, **extra: Any) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.extra = extra

    def details(self) -> dict[str, object]:
        return self.extra


# Error class -> (HTTP status, title). An error gets the entry of the first class along its
# MRO that has one, so a subclass can have its own; an error's own `status` wins.
STATUS: dict[type[ATPError], tuple[int, str]] = {
    InvalidRequest: (422, "Invalid request"),
    Unauthorized: (401, "Unauthorized"),
    Forbidden: (403, "Forbidden"),
    UnknownChannel: (422, "Unknown channel"),
    UnknownService: (422, "Unknown delivery service"),
    LocationNotInChannel: (422, "Location cannot serve the channel"),
    InsufficientStock: (409, "Not enough stock"),
    IdempotencyConflict: (409, "Reservation id already used for another request"),
    ReservationInProgress: (409, "Reservation is being made"),
    InvalidTransition: (409, "Not possible in the reservation's state"),
    ReservationExpired: (409, "Reservation expired"),
    ReservationNotFound: (404, "Reservation not found"),
    TransferConflict: (409, "Transfer id already used for another transfer"),
    NotHeld: (409, "The reservation does not hold that much there"),
    TooManyTransfers: (409, "Too many transfers"),
    ChangeConflict: (409, "Change id already used for another change"),
    LineNotInReservation: (422, "No such line in the reservation"),
    BelowFulfilled: (409, "Fewer than were shipped"),
    ReservationBusy: (409, "Another change of the reservation is under way"),
    TooManyChanges: (409, "Too many changes"),
    StoreUnavailable: (503, "Stock store unavailable"),
    StoreFull: (503, "Stock store full"),
}


def status_of(exc: ATPError) -> tuple[int, str]:
    """The HTTP status and title of an error (500 for an ATPError nobody mapped)."""
    status, title = next(
        (STATUS[cls] for cls in type(exc).__mro__ if cls in STATUS), (500, "Internal error")
    )
    return getattr(exc, "status", status), title


def problem(
    status: int, code: str, title: str, detail: str, instance: str, **extra: Any
) -> Response:
    body = {
        "type": f"/problems/{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "instance": instance,
        **extra,
    }
    headers = {"Retry-After": "1"} if status == 503 else {}
    retry_after = extra.get("retry_after_s")
    if isinstance(retry_after, int | float):  # when asking again will get the answer
        headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return Response(orjson.dumps(body), status, headers=headers, media_type=PROBLEM_JSON)


def install(app: FastAPI) -> None:
    async def on_atp_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ATPError)
        status, title = status_of(exc)
        return problem(status, exc.code, title, exc.message, request.url.path, **exc.details())

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = [
            {"location": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
            for e in exc.errors()
        ]
        detail = "; ".join(f"{e['location']}: {e['message']}" for e in errors)
        return problem(
            422, "validation", "Invalid request", detail, request.url.path, errors=errors
        )

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return problem(exc.status_code, code, str(exc.detail), str(exc.detail), request.url.path)

    app.add_exception_handler(ATPError, on_atp_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
