"""One root exception for the project; each subclass carries a stable machine-readable code."""

from __future__ import annotations


class ATPError(Exception):
    """Root of every error this project raises on purpose."""

    code: str = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def details(self) -> dict[str, object]:
        """What a caller can act on beside the message (problem+json extension members)."""
        return {}


class InvalidMovement(ATPError):
    """A source message that cannot become a movement; the stream rejects it with `code`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class NetworkConfigError(ATPError):
    """The network file is not valid; `path` names the offending entry."""

    code = "network_config"

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


class CatalogConfigError(NetworkConfigError):
    """The catalogue file (kits) is not valid; `path` names the offending entry."""

    code = "catalog_config"


class UnknownChannel(ATPError):
    code = "unknown_channel"

    def __init__(self, channel: str, known: list[str]) -> None:
        super().__init__(f"unknown channel {channel!r}; known channels: {', '.join(known)}")
        self.channel = channel
        self.known = known

    def details(self) -> dict[str, object]:
        return {"known_channels": self.known}


class UnknownService(ATPError):
    code = "unknown_service"

    def __init__(self, service: str, known: list[str]) -> None:
        super().__init__(f"unknown service {service!r}; known services: {', '.join(known)}")
        self.service = service
        self.known = known

    def details(self) -> dict[str, object]:
        return {"known_services": self.known}


class StoreUnavailable(ATPError):
    """Redis could not be reached or answered with an error."""

    code = "store_unavailable"


class StoreFull(StoreUnavailable):
    """Redis reached its memory limit: it serves reads and refuses writes until it has room."""

    code = "store_full"


class InsufficientStock(ATPError):
    """Some lines do not fit the ATP; nothing was held. `lines` lists every short line."""

    code = "insufficient_stock"

    def __init__(self, lines: list[dict[str, object]]) -> None:
        super().__init__(f"{len(lines)} line(s) cannot be held; nothing was reserved")
        self.lines = lines

    def details(self) -> dict[str, object]:
        return {"lines": self.lines}


class IdempotencyConflict(ATPError):
    code = "idempotency_conflict"

    def __init__(self, reservation_id: str) -> None:
        super().__init__(
            f"reservation {reservation_id!r} exists with a different request; "
            "use a new reservation_id for a new request"
        )


class ReservationInProgress(ATPError):
    """The same request is being held right now (its holds are being taken SKU by SKU), or
    its last attempt got no answer: asked again after `retry_after_s`, it is answered."""

    code = "reservation_in_progress"

    def __init__(self, reservation_id: str, retry_after_s: float) -> None:
        super().__init__(
            f"reservation {reservation_id!r} is being made; "
            f"ask again in {retry_after_s:.1f} s for its answer"
        )
        self.retry_after_s = retry_after_s

    def details(self) -> dict[str, object]:
        return {"retry_after_s": self.retry_after_s}


class ReservationNotFound(ATPError):
    code = "reservation_not_found"

    def __init__(self, reservation_id: str) -> None:
        super().__init__(f"no reservation {reservation_id!r} (never made, or long closed)")


class InvalidTransition(ATPError):
    code = "invalid_transition"

    def __init__(self, reservation_id: str, state: str, action: str) -> None:
        super().__init__(f"reservation {reservation_id!r} is {state}; it cannot be {action}")
        self.state = state

    def details(self) -> dict[str, object]:
        return {"state": self.state}


class ReservationExpired(ATPError):
    code = "reservation_expired"

    def __init__(self, reservation_id: str) -> None:
        super().__init__(f"reservation {reservation_id!r} expired; its stock was released")


class LocationNotInChannel(ATPError):
    code = "location_not_in_channel"

    def __init__(self, location_id: str, channel: str, why: str) -> None:
        super().__init__(f"location {location_id!r} cannot serve channel {channel!r}: {why}")


class TransferConflict(IdempotencyConflict):
    def __init__(self, reservation_id: str, transfer_id: str) -> None:
        ATPError.__init__(
            self,
            f"transfer {transfer_id!r} of reservation {reservation_id!r} was made with other "
            "values; use a new transfer_id for a new transfer",
        )


class TransferShort(InsufficientStock):
    """The destination cannot take the units; nothing moved."""

    def __init__(self, line: dict[str, object]) -> None:
        ATPError.__init__(
            self,
            f"{line['location_id']!r} has {line['available']} of {line['sku']!r} available, "
            f"{line['requested']} asked; nothing was moved",
        )
        self.lines = [line]


class NotHeld(ATPError):
    """A transfer asks to move more than the reservation still holds at the source."""

    code = "not_held"

    def __init__(self, reservation_id: str, sku: str, location_id: str, held: int) -> None:
        super().__init__(
            f"reservation {reservation_id!r} holds {held} of {sku!r} at {location_id!r}; "
            "nothing was moved"
        )
        self.held = held

    def details(self) -> dict[str, object]:
        return {"held": self.held}


class TooManyTransfers(ATPError):
    code = "too_many_transfers"

    def __init__(self, reservation_id: str, most: int) -> None:
        super().__init__(
            f"reservation {reservation_id!r} has had {most} transfers, the most it keeps; "
            "release it and make a new one"
        )


class TooManyChanges(ATPError):
    code = "too_many_changes"

    def __init__(self, reservation_id: str, most: int) -> None:
        super().__init__(
            f"reservation {reservation_id!r} has had {most} changes, the most it keeps; "
            "release it and make a new one"
        )


class ChangeConflict(IdempotencyConflict):
    def __init__(self, reservation_id: str, change_id: str) -> None:
        ATPError.__init__(
            self,
            f"change {change_id!r} of reservation {reservation_id!r} was made with other lines; "
            "use a new change_id for a new change",
        )


class LineNotInReservation(ATPError):
    """A change names a line by SKU and location_id that the reservation does not have once."""

    code = "line_not_in_reservation"

    def __init__(self, sku: str, location_id: str | None, why: str) -> None:
        where = "without a location_id" if location_id is None else f"at {location_id!r}"
        super().__init__(f"a line of {sku!r} {where} is {why}; nothing was changed")


class BelowFulfilled(ATPError):
    """A change asks a line for fewer units than shipments already used up of it."""

    code = "below_fulfilled"

    def __init__(self, sku: str, location_id: str | None, asked: int, fulfilled: int) -> None:
        where = "" if location_id is None else f" at {location_id!r}"
        super().__init__(
            f"the line of {sku!r}{where} has {fulfilled} units shipped; its quantity cannot go "
            f"below that ({asked} asked); nothing was changed"
        )
        self.sku, self.location_id, self.fulfilled = sku, location_id, fulfilled

    def details(self) -> dict[str, object]:
        return {
            "sku": self.sku,
            "location_id": self.location_id,
            "fulfilled_quantity": self.fulfilled,
        }


class ReservationBusy(ATPError):
    """Another transfer or change of the reservation is under way and kept being so while
    this one finished the ones before it (atp/store/pending.py); or this one was given up
    by another attempt at it."""

    code = "reservation_busy"

    def __init__(
        self,
        reservation_id: str,
        kind: str,
        ident: str,
        why: str = "is under way",
        began_ms: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(
            f"{kind} {ident!r} of reservation {reservation_id!r} {why}; "
            "nothing was changed by this request: send it again"
        )
        self.kind, self.ident = kind, ident
        self.began_ms, self.retry_after_s = began_ms, retry_after_s

    def details(self) -> dict[str, object]:
        out: dict[str, object] = {"pending": {"kind": self.kind, "id": self.ident}}
        if self.retry_after_s is not None:
            out["retry_after_s"] = self.retry_after_s
        return out
