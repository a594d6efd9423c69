"""Reservations: the request, its fingerprint, the candidate locations per line, and the view.

Pure: the atomic check-and-hold lives in `atp/lua/reserve.lua`, called by `reservation_store`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from atp.core.errors import LocationNotInChannel
from atp.core.movements import Movement
from atp.core.network import Network

# Letters, digits and . _ : - only: the id is part of Redis keys and hold names ('<id>@<loc>').
RESERVATION_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,128}")
STATES = ("held", "confirmed", "released", "expired", "fulfilled")


@dataclass(frozen=True, slots=True)
class ReservationLine:
    sku: str
    quantity: int
    location_id: str | None = None


@dataclass(frozen=True, slots=True)
class ReservationRequest:
    reservation_id: str
    lines: tuple[ReservationLine, ...]
    ttl_seconds: int
    channel: str

    def canonical(self) -> dict[str, Any]:
        return {
            "reservation_id": self.reservation_id,
            "channel": self.channel,
            "ttl_seconds": self.ttl_seconds,
            "lines": [
                {"sku": ln.sku, "quantity": ln.quantity, "location_id": ln.location_id}
                for ln in self.lines
            ],
        }

    def fingerprint(self) -> str:
        """Equal for the same request, whatever the key order or spacing it was sent with."""
        body = orjson.dumps(self.canonical(), option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(body).hexdigest()

    def skus(self) -> list[str]:
        """Distinct SKUs in the order of first appearance: the order of the scripts' key groups."""
        return list(dict.fromkeys(ln.sku for ln in self.lines))


def candidates(network: Network, channel: str, line: ReservationLine) -> list[tuple[str, int]]:
    """Where a line may be held, with the safety stock there, in the order to try."""
    if line.location_id is not None:
        loc = network.locations.get(line.location_id)
        if loc is None:
            raise LocationNotInChannel(line.location_id, channel, "not in the network")
        why = network.why_not_in_channel(loc, channel)
        if why is not None:
            raise LocationNotInChannel(line.location_id, channel, why)
        return [(loc.id, network.safety_stock(line.sku, loc, channel))]
    # The channel's locations in network-file order: deterministic; smarter ranking is the
    # sourcing plans' job.
    return [
        (loc.id, network.safety_stock(line.sku, loc, channel))
        for loc in network.channel_locations(channel)
    ]


def view(reservation_id: str, record: dict[str, Any], now_ms: int) -> dict[str, Any]:
    """The API's representation of a stored reservation (a held one past expiry reads expired)."""
    request = orjson.loads(record["request"])
    allocations = orjson.loads(record["allocations"])
    state = record["state"]
    expires_ms = int(record["expires_ms"])
    if state == "held" and now_ms >= expires_ms:
        state = "expired"
    return {
        "reservation_id": reservation_id,
        "state": state,
        "channel": request["channel"],
        "created_ms": int(record["created_ms"]),
        "updated_ms": int(record["updated_ms"]),
        "expires_ms": expires_ms if state == "held" else None,
        "lines": [
            {
                "sku": ln["sku"],
                "quantity": ln["quantity"],
                "location_id": ln["location_id"],
                "allocations": [{"location_id": loc, "quantity": q} for loc, q in parts],
            }
            for ln, parts in zip(request["lines"], allocations, strict=True)
        ],
    }


# Movements that hand stock to the customer of a reservation named in their `order_ref`.
FULFILLING_KINDS = frozenset({"SHIPPED", "PICKUP"})


def shipment(m: Movement) -> tuple[str, str, int] | None:
    """(location, reservation id, units) when `m` ships or hands over stock for the reservation
    its `order_ref` names (a warehouse SHIPPED, a store PICKUP); else None."""
    if not m.order_ref or m.kind not in FULFILLING_KINDS:
        return None
    return m.location_id, m.order_ref, -m.qty


def hold_member(reservation_id: str, location_id: str) -> str:
    """The name of a reservation's hold at a location, in a SKU's holds hash."""
    return f"{reservation_id}@{location_id}"


def use_holds(held: Mapping[str, int], shipments: Sequence[tuple[str, str, int]]) -> list[int]:
    """Units each shipment (location, reservation id, units), in order, uses up of the hold it
    names: as much of what is still held as it shipped. 0 where nothing is held (an unknown or
    closed reservation). `held` maps hold members to units; apply_ledger.lua does the same."""
    left = dict(held)
    used = []
    for loc, rid, units in shipments:
        member = hold_member(rid, loc)
        have = left.get(member, 0)
        take = min(have, units) if have > 0 else 0
        left[member] = have - take
        used.append(take)
    return used
