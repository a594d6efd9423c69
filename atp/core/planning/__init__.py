"""Delivery promises, sourcing plans and pickup: what the network can promise for a basket.

candidates: per location the promise it can make for a service; sourcing: ranked plans;
pickup: stores with the basket nearby; options: the product page's delivery options.
"""

from atp.core.planning.candidates import (
    Destination,
    Line,
    Order,
    Promise,
    Stock,
    atp_at,
    candidates,
    promise_for,
)
from atp.core.planning.options import DeliveryOption, DeliveryOptions, delivery_options
from atp.core.planning.pickup import (
    NearbyStore,
    PickupStore,
    TransferOption,
    pickup_nearby,
    pickup_stores,
)
from atp.core.planning.sourcing import Outcome, Part, Plan, plan

__all__ = [
    "DeliveryOption",
    "DeliveryOptions",
    "Destination",
    "Line",
    "NearbyStore",
    "Order",
    "Outcome",
    "Part",
    "PickupStore",
    "Plan",
    "Promise",
    "Stock",
    "TransferOption",
    "atp_at",
    "candidates",
    "delivery_options",
    "pickup_nearby",
    "pickup_stores",
    "plan",
    "promise_for",
]
