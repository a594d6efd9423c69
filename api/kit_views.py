"""Kits' answers as the API's JSON: availability and explanations in kits, with their
components (atp.core.kits)."""

from __future__ import annotations

from typing import Any

from api.responses import iso_ms
from api.views import answer_body, ledger_terms, to_order
from atp.core import kits
from atp.core.availability import LocationAvailability, summed
from atp.core.network import Location, Network
from atp.core.planning import NearbyStore, pickup_nearby
from atp.store.stock import KitStock

KIT_FORMULA = (
    "a kit's atp at a location = min over its components of floor(component atp / quantity), "
    "each component's atp = max(0, on_hand - reserved - safety_stock); summed over the "
    "channel; available_to_order = atp (a kit is promised from stock on hand)"
)


def components(kit: KitStock) -> list[dict[str, Any]]:
    return [{"sku": p.sku, "quantity": p.quantity} for p in kit.parts]


def availability(
    network: Network,
    channel: str,
    kit: KitStock,
    *,
    include_locations: bool,
    nearby: list[NearbyStore] | None,
) -> dict[str, Any]:
    """A kit's answer: as a SKU's, in kits, with its components."""
    result = kits.kit_availability(
        network, channel, kit.sku, kit.parts, kit.counts(), kit.updated_ms()
    )
    body = answer_body(result, include_locations, nearby)
    body["kit"] = {"components": components(kit)}
    return body


def nearby(
    network: Network, kit: KitStock, origin: tuple[float, float] | None, radius_km: float
) -> list[NearbyStore] | None:
    """Pickup stores near `origin` that have the kit (all its components, there)."""
    if origin is None:
        return None
    counts = kit.counts()

    def atp_of(loc: Location) -> int:
        return kits.kit_at(network, "pickup", loc, kit.parts, counts).atp

    return pickup_nearby(network, kit.sku, {}, origin, radius_km, atp_of=atp_of)


def explanation(network: Network, channel: str, kit: KitStock) -> dict[str, Any]:
    """Per location of the network: the kits it has for the channel, each component's terms
    and the component that limits it."""
    counts = kit.counts()
    rows, members = [], []
    for loc in network.locations.values():
        k = kits.kit_at(network, channel, loc, kit.parts, counts)
        why_not = network.why_not_in_channel(loc, channel)
        if why_not is None:
            members.append(LocationAvailability(loc.id, loc.type, 0, 0, 0, k.atp))
        rows.append(
            {
                "location_id": loc.id,
                "type": loc.type,
                "enabled": loc.enabled,
                "counts_for_channel": why_not is None,
                "excluded_because": why_not,
                "on_hand": k.on_hand,
                "reserved": k.reserved,
                "safety_stock": k.safety_stock,
                "safety_stock_rule": "kit: its components' safety stock",
                "atp": k.atp if why_not is None else 0,
                "oversell_exposure": 0,
                **ledger_terms(None),
                "limiting_component": k.limiting,
                "components": [
                    {
                        "sku": t.sku,
                        "quantity": t.quantity,
                        "on_hand": t.on_hand,
                        "reserved": t.reserved,
                        "safety_stock": t.safety_stock,
                        "atp": t.atp,
                        "kits": t.kits,
                    }
                    for t in k.components
                ],
            }
        )
    total = summed(network, channel, kit.sku, members, kit.updated_ms())  # the rows, summed
    return {
        "sku": kit.sku,
        "channel": channel,
        "formula": KIT_FORMULA,
        "atp": total.atp,
        **to_order(total),
        "future_stock": None,
        "status": total.status,
        "low_stock_threshold": network.channel(channel).low_stock_threshold,
        "updated_at": iso_ms(total.updated_ms),
        "locations": rows,
        "kit": {"components": components(kit)},
    }
