"""Domain results as the API's JSON (the shapes api/schemas.py documents): availability answers,
explanations, delivery options and sourcing plans, reservations."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

import orjson

from api.problems import InvalidRequest
from api.responses import iso_ms
from atp.core.availability import (
    ChannelAvailability,
    channel_availability,
    explain,
    future_supply,
)
from atp.core.journal import Cursor, Entry
from atp.core.ledger import LedgerSummary
from atp.core.network import Network
from atp.core.planning import (
    DeliveryOption,
    DeliveryOptions,
    Destination,
    Line,
    NearbyStore,
    Outcome,
    Plan,
    Promise,
    TransferOption,
)
from atp.core.promise import seconds_until
from atp.store.stock import StockRecord

FORMULA = (
    "atp = max(0, on_hand - reserved - safety_stock), summed over the channel; "
    "available_to_order = atp + the inbound due within the channel's future_stock horizon, "
    "capped by its limit"
)


def availability(
    network: Network,
    channel: str,
    sku: str,
    record: StockRecord,
    *,
    now_ms: int,
    include_locations: bool,
    nearby: list[NearbyStore] | None,
) -> dict[str, Any]:
    """One SKU's answer, without `age_ms` (which changes every millisecond)."""
    future = future_supply(network, channel, record.future, now_ms)
    result = channel_availability(
        network, channel, sku, record.counts, record.updated_ms, record.inbound, future
    )
    return answer_body(result, include_locations, nearby)


def answer_body(
    result: ChannelAvailability, include_locations: bool, nearby: list[NearbyStore] | None
) -> dict[str, Any]:
    inbound = result.next_inbound
    body: dict[str, Any] = {
        "sku": result.sku,
        "channel": result.channel,
        "atp": result.atp,
        **to_order(result),
        "status": result.status,
        "updated_at": iso_ms(result.updated_ms),
        "next_inbound": None
        if inbound is None
        else {
            "location_id": inbound.location_id,
            "eta": iso_ms(inbound.eta_ms),
            "qty": inbound.qty,
        },
    }
    if include_locations:
        body["locations"] = [loc.as_dict() for loc in result.locations]
    if nearby is not None:
        body["pickup"] = [
            {
                "location_id": s.location_id,
                "name": s.name,
                "distance_km": s.distance_km,
                "atp": s.atp,
            }
            for s in nearby
        ]
    return body


def to_order(result: ChannelAvailability) -> dict[str, Any]:
    """Available to fulfil (`atp`'s other name), to order, and the future supply behind it."""
    return {
        "available_to_fulfil": result.atp,
        "available_to_order": result.available_to_order,
        "future": [{"eta": iso_ms(eta), "quantity": qty} for eta, qty in result.future.arrivals],
    }


def explanation(
    network: Network,
    channel: str,
    sku: str,
    record: StockRecord,
    ledgers: dict[str, LedgerSummary],
    now_ms: int,
) -> dict[str, Any]:
    """Every term of the ATP formula per location, and the events behind the counts."""
    future = future_supply(network, channel, record.future, now_ms)
    total = channel_availability(
        network, channel, sku, record.counts, record.updated_ms, future=future
    )
    rows = []
    for terms in explain(network, channel, sku, record.counts):
        loc = terms.location
        ledger = ledgers.get(loc.id)
        rows.append(
            {
                "location_id": loc.id,
                "type": loc.type,
                "enabled": loc.enabled,
                "counts_for_channel": terms.excluded_because is None,
                "excluded_because": terms.excluded_because,
                "on_hand": terms.counts.on_hand,
                "reserved": terms.counts.reserved,
                "safety_stock": terms.safety_stock,
                "safety_stock_rule": terms.safety_rule,
                "atp": terms.atp,
                "oversell_exposure": terms.oversell_exposure,
                **ledger_terms(ledger),
            }
        )
    return {
        "sku": sku,
        "channel": channel,
        "formula": FORMULA,
        "atp": total.atp,
        **to_order(total),
        "future_stock": _future_rule(network, channel),
        "status": total.status,
        "low_stock_threshold": network.channel(channel).low_stock_threshold,
        "updated_at": iso_ms(record.updated_ms),
        "locations": rows,
    }


def ledger_terms(ledger: LedgerSummary | None) -> dict[str, Any]:
    if ledger is None:
        return {
            "inbound": [],
            "last_count_at": None,
            "last_movement_at": None,
            "deltas_since_count": 0,
        }
    inbound = sorted(ledger.inbound.items(), key=lambda i: i[1])
    return {
        "inbound": [{"asn": asn, "eta": iso_ms(eta), "qty": qty} for asn, (eta, qty) in inbound],
        "last_count_at": iso_ms(ledger.count_ms),
        "last_movement_at": iso_ms(ledger.last_movement_ms),
        "deltas_since_count": ledger.deltas,
    }


def reservation(view: dict[str, Any]) -> dict[str, Any]:
    """A reservation as stored (atp.core.reservations.view), with times in ISO 8601."""
    out = {k: v for k, v in view.items() if not k.endswith("_ms")}
    out["created_at"] = iso_ms(view["created_ms"])
    out["updated_at"] = iso_ms(view["updated_ms"])
    out["expires_at"] = iso_ms(view["expires_ms"])
    return out


class Delivery:
    """Delivery options and sourcing plans as JSON, every time in the destination's zone."""

    def __init__(self, network: Network, dest: Destination, now: datetime) -> None:
        self.network, self.dest, self.now = network, dest, now

    def t(self, moment: datetime) -> str:
        return moment.astimezone(self.dest.zone).isoformat()

    def destination(self) -> dict[str, Any]:
        return {
            "postal_code": self.dest.postal_code,
            "lat": self.dest.point[0],
            "lon": self.dest.point[1],
            "timezone": self.dest.zone.key,
        }

    def options(self, result: DeliveryOptions, explain: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "destination": self.destination(),
            "now": self.t(self.now),
            "options": [self.option(o) for o in result.options],
        }
        if explain:
            body["not_offered"] = [{"service": s, "reason": r} for s, r in result.not_offered]
        return body

    def option(self, o: DeliveryOption) -> dict[str, Any]:
        if o.plan is None:
            assert o.transfer is not None
            return self._transfer_only(o.service, o.transfer)
        out = self._planned(o.kind, o.plan)
        if o.kind == "pickup":
            out["stores"] = [
                {
                    "location_id": s.promise.location_id,
                    "name": s.name,
                    "distance_km": s.promise.distance_km,
                    "atp": s.atp,
                    "ready_by": self.t(s.promise.ready_at),
                    "cutoff_at": self.t(s.promise.cutoff_at),
                    "order_within_seconds": seconds_until(s.promise.cutoff_at, self.now),
                }
                for s in o.stores
            ]
            out["transfer"] = self.transfer(o.transfer)
        return out

    def _planned(self, kind: str, p: Plan) -> dict[str, Any]:
        first = p.parts[0].promise
        last = max((part.promise for part in p.parts), key=lambda q: q.promised_by)
        starts = [part.promise.window_start for part in p.parts]
        return {
            "service": p.service,
            "kind": kind,
            "location_id": first.location_id if len(p.parts) == 1 else None,
            "promised_by": self.t(p.promised_by),
            "window_start": None if None in starts else self.t(max(starts)),  # type: ignore[type-var]
            "delivery_date": last.delivery_date.isoformat(),
            "cutoff_at": self.t(p.cutoff_at),
            "order_within_seconds": seconds_until(p.cutoff_at, self.now),
            "split": len(p.parts) > 1,
            "parts": [self.part(part.promise, part.lines) for part in p.parts],
        }

    def _transfer_only(self, service_id: str, t: TransferOption) -> dict[str, Any]:
        """Pickup when no store near has the basket but one can get it by transfer."""
        store = self.network.locations[t.store_id]
        return {
            "service": service_id,
            "kind": "pickup",
            "location_id": store.id,
            "promised_by": self.t(t.ready_at),
            "window_start": None,
            "delivery_date": t.ready_at.astimezone(self.dest.zone).date().isoformat(),
            "cutoff_at": self.t(t.cutoff_at),
            "order_within_seconds": seconds_until(t.cutoff_at, self.now),
            "split": False,
            "parts": [],
            "stores": [],
            "transfer": self.transfer(t),
        }

    def part(self, p: Promise, lines: tuple[Line, ...]) -> dict[str, Any]:
        return {
            "location_id": p.location_id,
            "location_name": self.network.locations[p.location_id].name,
            "distance_km": p.distance_km,
            "ready_at": self.t(p.ready_at),
            "promised_by": self.t(p.promised_by),
            "lines": [{"sku": ln.sku, "quantity": ln.quantity} for ln in lines],
        }

    def plan(self, rank: int, p: Plan) -> dict[str, Any]:
        return {
            "rank": rank,
            "promised_by": self.t(p.promised_by),
            "cutoff_at": self.t(p.cutoff_at),
            "order_within_seconds": seconds_until(p.cutoff_at, self.now),
            "split": len(p.parts) > 1,
            "total_distance_km": round(p.distance_km, 1),
            "parts": [self.part(part.promise, part.lines) for part in p.parts],
        }

    def plans(
        self,
        service: str,
        channel: str,
        outcome: Outcome,
        reserved_plan: int | None,
        reservation: dict[str, Any] | None,
    ) -> dict[str, Any]:
        return {
            "service": service,
            "channel": channel,
            "destination": self.destination(),
            "now": self.t(self.now),
            "plans": [self.plan(i + 1, p) for i, p in enumerate(outcome.plans)],
            "reason": outcome.reason,
            "reserved_plan": reserved_plan,
            "reservation": reservation,
        }

    def transfer(self, t: TransferOption | None) -> dict[str, Any] | None:
        if t is None:
            return None
        return {
            "location_id": t.store_id,
            "from_location_id": t.from_location_id,
            "ready_by": self.t(t.ready_at),
        }


def _future_rule(network: Network, channel: str) -> dict[str, Any] | None:
    """The channel's future_stock rule as the network file gives it (None: it promises none)."""
    rule = network.channel(channel).future_stock
    if rule is None:
        return None
    return {
        "horizon_days": rule.horizon_ms / 86_400_000,
        "limit_units": rule.limit_units,
        "limit_percent": rule.limit_percent,
    }


def movement(location_id: str, e: Entry) -> dict[str, Any]:
    """One journal entry as GET /v1/availability/{sku}/movements answers it."""
    return {
        "event_id": e.event_id,
        "location_id": location_id,
        "source": e.source,
        "kind": e.kind,
        "effect": e.effect.value,
        "quantity": e.quantity,
        "occurred_at": iso_ms(e.occurred_ms),
        "seen_at": iso_ms(e.seen_ms),
        "outcome": e.outcome.value,
        "on_hand_after": e.on_hand,
    }


def write_cursor(c: Cursor) -> str:
    """A page's `next`: opaque to clients (URL-safe base64 of the cursor's JSON)."""
    return base64.urlsafe_b64encode(orjson.dumps(c)).decode().rstrip("=")


def read_cursor(raw: str | None) -> Cursor | None:
    if raw is None:
        return None
    try:
        padded = raw + "=" * (-len(raw) % 4)
        seen, occurred, loc, eid = orjson.loads(base64.urlsafe_b64decode(padded))
        if not (isinstance(seen, int) and isinstance(occurred, int)):
            raise ValueError("not a cursor")
        return (seen, occurred, str(loc), str(eid))
    except (ValueError, TypeError):
        raise InvalidRequest(
            "invalid_cursor", "`before` must be the `next` of an earlier page, unchanged"
        ) from None
