"""Delivery options for a product page: per service the earliest promise the network can keep
for a basket with the stock there is now, soonest first, and why the others are not offered."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from atp.core.network import Network
from atp.core.planning.candidates import Order
from atp.core.planning.pickup import PickupStore, TransferOption, pickup_stores
from atp.core.planning.sourcing import Part, Plan, plan


@dataclass(frozen=True, slots=True)
class DeliveryOption:
    service: str
    kind: str
    plan: Plan | None  # None: pickup only by transfer to the nearest store
    stores: list[PickupStore] = field(default_factory=list)  # pickup: stores with the basket
    transfer: TransferOption | None = None  # pickup: ready by, via a transfer

    @property
    def promised_by(self) -> datetime:
        if self.plan is not None:
            return self.plan.promised_by
        assert self.transfer is not None
        return self.transfer.ready_at


@dataclass(frozen=True, slots=True)
class DeliveryOptions:
    options: list[DeliveryOption]  # soonest first
    not_offered: list[tuple[str, str]]  # (service, reason)


def delivery_options(
    network: Network, order: Order, *, channel: str | None, max_parts: int
) -> DeliveryOptions:
    """Every service of the network for `order`; `channel` overrides each service's own."""
    options: list[DeliveryOption] = []
    not_offered: list[tuple[str, str]] = []
    for service in network.services.values():
        if service.kind == "pickup":
            stores, transfer, why = pickup_stores(network, service, order)
            if stores:
                best = Plan(service.id, (Part(stores[0].promise, tuple(order.lines)),))
                options.append(DeliveryOption(service.id, "pickup", best, stores, transfer))
            elif transfer is not None:
                options.append(DeliveryOption(service.id, "pickup", None, [], transfer))
            else:
                not_offered.append((service.id, why or "not offered"))
            continue
        outcome = plan(network, service, order, channel=channel, max_parts=max_parts, max_plans=1)
        if outcome.plans:
            options.append(DeliveryOption(service.id, service.kind, outcome.plans[0]))
        else:
            not_offered.append((service.id, outcome.reason or "not offered"))
    options.sort(key=lambda o: o.promised_by)
    return DeliveryOptions(options, not_offered)
