"""The fulfilment network: locations, channels, safety stock and delivery services."""

from atp.core.network.model import (
    SAFETY_LEVELS,
    Channel,
    FutureStock,
    Location,
    Network,
    SafetyRules,
)

__all__ = ["SAFETY_LEVELS", "Channel", "FutureStock", "Location", "Network", "SafetyRules"]
